package proxy

import (
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

func TestClientIPResolution(t *testing.T) {
	f, err := NewForwarding([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"198.51.100.1:1234", []string{"1.2.3.4"}, "198.51.100.1"},           // untrusted peer: its claims ignored
		{"10.1.1.1:1234", []string{"1.2.3.4"}, "1.2.3.4"},                    // trusted peer: the client it names
		{"10.1.1.1:1234", []string{"6.6.6.6, 1.2.3.4, 10.9.9.9"}, "1.2.3.4"}, // right-most untrusted hop
		{"192.0.2.1:80", []string{"6.6.6.6", "5.5.5.5"}, "5.5.5.5"},          // two header lines
		{"10.1.1.1:1234", []string{"not-an-ip"}, "10.1.1.1"},                 // malformed chain proves nothing
		{"10.1.1.1:1234", nil, "10.1.1.1"},
		{"[::ffff:10.1.1.1]:1", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, c := range cases {
		r := &http.Request{RemoteAddr: c.remote, Header: http.Header{}}
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := f.ClientIP(r); got != c.want {
			t.Errorf("ClientIP(%s, %q) = %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	if _, err := NewForwarding([]string{"nonsense"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}
