package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestXForwardedFromATrustedProxyIsExtended(t *testing.T) {
	e := newEnv(t, "trusted_proxies: [127.0.0.0/8]\n")
	resp := e.do(http.MethodPost, "/hooks/aftership", "{}", append(bearer(e.token("webhooks:write")),
		"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "hooks.example.com")...)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := e.up.requests()[0].Header
	if got.Get("X-Forwarded-For") != "203.0.113.7, 127.0.0.1" || got.Get("X-Forwarded-Proto") != "https" || got.Get("X-Forwarded-Host") != "hooks.example.com" {
		t.Fatalf("from a trusted proxy: %v", got)
	}
}

func TestXForwardedFromAnUntrustedPeerIsReplaced(t *testing.T) {
	e := newEnv(t, "trusted_proxies: [10.0.0.0/8]\n")
	e.do(http.MethodPost, "/hooks/aftership", "{}", append(bearer(e.token("webhooks:write")),
		"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "evil.example")...)
	got := e.up.requests()[0].Header
	if got.Get("X-Forwarded-For") != "127.0.0.1" || got.Get("X-Forwarded-Proto") != "http" || got.Get("X-Forwarded-Host") == "evil.example" {
		t.Fatalf("from an untrusted peer: %v", got)
	}
}

// TestClientIPResolution: the client is the right-most entry that is not
// a trusted proxy, read as ip, ip:port, [ipv6] or [ipv6]:port (Azure
// Application Gateway writes ports); an entry that must be read and is
// not an address is an error, never the proxy's address in its place.
func TestClientIPResolution(t *testing.T) {
	f, err := NewForwarding([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		remote string
		xff    []string
		want   string // "": ErrForwardedFor
	}{
		{"198.51.100.1:1234", []string{"1.2.3.4"}, "198.51.100.1"},           // untrusted peer: its claims ignored
		{"198.51.100.1:1234", []string{"nonsense"}, "198.51.100.1"},          // … even unreadable ones
		{"10.1.1.1:1234", []string{"1.2.3.4"}, "1.2.3.4"},                    // trusted peer: the client it names
		{"10.1.1.1:1234", []string{"6.6.6.6, 1.2.3.4, 10.9.9.9"}, "1.2.3.4"}, // right-most untrusted hop
		{"192.0.2.1:80", []string{"6.6.6.6", "5.5.5.5"}, "5.5.5.5"},          // two header lines
		{"10.1.1.1:1234", nil, "10.1.1.1"},
		{"10.1.1.1:1234", []string{"10.2.2.2"}, "10.1.1.1"}, // nobody but proxies
		{"[::ffff:10.1.1.1]:1", []string{"2001:db8::1"}, "2001:db8::1"},
		{"10.1.1.1:1234", []string{"203.0.113.7:5555"}, "203.0.113.7"},
		{"10.1.1.1:1234", []string{"[2001:db8::1]:1"}, "2001:db8::1"},
		{"10.1.1.1:1234", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"10.1.1.1:1234", []string{"[2001:db8::1]:65535"}, "2001:db8::1"},
		{"10.1.1.1:1234", []string{"[::ffff:203.0.113.7]:80"}, "203.0.113.7"},
		{"10.1.1.1:1234", []string{"2001:db8::1:80"}, "2001:db8::1:80"}, // an address, not a port
		{"10.1.1.1:1234", []string{"203.0.113.7:5555, 10.9.9.9:443"}, "203.0.113.7"},
		{"10.1.1.1:1234", []string{"203.0.113.7, , ", ""}, "203.0.113.7"}, // empty list elements
		{"10.1.1.1:1234", []string{"nonsense, 203.0.113.7"}, "203.0.113.7"},
		{"10.1.1.1:1234", []string{"not-an-ip"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:0"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:65536"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:080"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:+80"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:http"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7:"}, ""},
		{"10.1.1.1:1234", []string{"[203.0.113.7]:80"}, ""},
		{"10.1.1.1:1234", []string{"[203.0.113.7]"}, ""},
		{"10.1.1.1:1234", []string{"::ffff:203.0.113.7:80"}, ""},
		{"10.1.1.1:1234", []string{"[2001:db8::1]:"}, ""},
		{"10.1.1.1:1234", []string{"[2001:db8::1"}, ""},
		{"10.1.1.1:1234", []string{"fe80::1%eth0"}, ""},
		{"10.1.1.1:1234", []string{"[fe80::1%eth0]:80"}, ""},
		{"10.1.1.1:1234", []string{"203.0.113.7, 10.9.9.9:99999"}, ""}, // a proxy's entry unreadable
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, err := f.ClientIP(r)
		if c.want == "" {
			if !errors.Is(err, ErrForwardedFor) {
				t.Errorf("ClientIP(%s, %q) = %q, %v; want ErrForwardedFor", c.remote, c.xff, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ClientIP(%s, %q) = %q, %v; want %s", c.remote, c.xff, got, err, c.want)
		}
	}
	if _, err := NewForwarding([]string{"nonsense"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

// TestForwardedForWithPortsKeepsClientsApart: behind a trusted proxy that
// writes ip:port (Azure Application Gateway), each client has its own
// remote_ip bucket, not the proxy's; an entry that is not an address is
// refused 400 and never forwarded.
func TestForwardedForWithPortsKeepsClientsApart(t *testing.T) {
	e := newEnv(t, `  - name: by-ip
    path: /hooks/by-ip
    public: true
    rate_limit: { key: remote_ip, rate: 1/h, burst: 1 }
trusted_proxies: [127.0.0.0/8]
`)
	get := func(xff string) *http.Response {
		return e.do(http.MethodGet, "/hooks/by-ip", "", "X-Forwarded-For", xff)
	}
	if resp := get("198.51.100.1:5555"); resp.StatusCode != http.StatusOK {
		t.Fatalf("client 1: %d %s", resp.StatusCode, bodyOf(resp))
	}
	want429(t, get("198.51.100.1:6666"), 3000, 3600) // the same client from another port
	for _, xff := range []string{"198.51.100.2:5555", "[2001:db8::1]:1", "[2001:db8:0:1::1]"} {
		if resp := get(xff); resp.StatusCode != http.StatusOK {
			t.Fatalf("client %s after client 1 spent its bucket: %d %s (one bucket for every client)", xff, resp.StatusCode, bodyOf(resp))
		}
	}
	before := len(e.up.requests())
	for _, xff := range []string{"nonsense", "198.51.100.3:0", "[198.51.100.3]:80"} {
		resp := get(xff)
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal([]byte(bodyOf(resp)), &body) != nil ||
			body.Error != "invalid_request" || body.Description != ErrForwardedFor.Error() {
			t.Fatalf("X-Forwarded-For %q from a trusted proxy: %d %s, want 400 invalid_request", xff, resp.StatusCode, bodyOf(resp))
		}
	}
	if n := len(e.up.requests()); n != before {
		t.Fatal("a request whose client is unknown reached the upstream")
	}
}
