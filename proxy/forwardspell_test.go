package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// forwardingSpellings are the forwarding headers tokengate sets itself,
// in spellings CGI-style receivers (PHP's $_SERVER, many legacy stacks)
// read as the real ones: underscores for dashes, any case.
var forwardingSpellings = []string{
	"X_Forwarded_For: 203.0.113.66", "x_forwarded_for: 203.0.113.67", "X_FORWARDED_FOR: 203.0.113.68",
	"X-Forwarded_For: 203.0.113.69", "x_Forwarded-for: 203.0.113.70",
	"X_Forwarded_Host: evil.example", "x_forwarded_host: evil.example",
	"X_Forwarded_Proto: https", "X_FORWARDED_PROTO: https",
	"FORWARDED: for=203.0.113.71;proto=https", "forwarded: host=evil.example",
}

// gateSet are the canonical names the gate writes itself.
var gateSet = map[string]bool{"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "Forwarded": true}

func TestForwardingHeadersInAnySpellingNeverReachTheReceiver(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted peer %v", trusted), func(t *testing.T) {
			extra := ""
			if trusted {
				extra = "trusted_proxies: [127.0.0.1]\n"
			}
			e := newEnv(t, extra)
			req := "POST /hooks/aftership HTTP/1.1\r\nHost: gate\r\nAuthorization: Bearer " + e.token("webhooks:write") +
				"\r\nContent-Length: 2\r\nConnection: close\r\n" + strings.Join(forwardingSpellings, "\r\n") + "\r\n\r\n{}"
			conn, br := rawRequest(t, e, req)
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := e.up.requests()
			if resp.StatusCode != http.StatusOK || len(got) != 1 {
				t.Fatalf("status %d, %d forwarded", resp.StatusCode, len(got))
			}
			for k, v := range got[0].Header {
				if gateSet[normalHeader(k)] && !gateSet[k] {
					t.Errorf("%s: %q reached the receiver", k, v)
				}
			}
			h := got[0].Header
			if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q, want the peer only", xff)
			}
			if h.Get("X-Forwarded-Host") == "evil.example" || h.Get("X-Forwarded-Proto") != "http" || h.Get("Forwarded") != "" {
				t.Errorf("a client's forwarding claim was kept: %v", h)
			}
		})
	}
}
