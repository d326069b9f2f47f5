package status

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestSameHostRefusesOtherNames: the status page answers a Host that is an
// IP literal (v4 or v6, any port), localhost (any case, any port, a final
// dot, a name under .localhost) or admin_listen's host, and 421 to any
// other name — the name a re-bound web page sends.
func TestSameHostRefusesOtherNames(t *testing.T) {
	h := SameHost("admin.internal:9090", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("page")) }))
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:9090", 200},
		{"127.0.0.1", 200},
		{"10.1.2.3:9090", 200},
		{"[::1]:9090", 200},
		{"[fd00::7]:9090", 200},
		{"localhost:9090", 200},
		{"LocalHost:1234", 200},
		{"localhost.:9090", 200},
		{"pod.localhost:9090", 200},
		{"admin.internal:9090", 200},
		{"ADMIN.internal", 200},
		{"", 200},
		{"attacker.example", 421},
		{"attacker.example:9090", 421},
		{"localhost.attacker.example:9090", 421},
		{"admin.internal.attacker.example", 421},
		{"2130706433:9090", 421}, // a number a resolver may take for 127.0.0.1: a name here
		{"127.0.0.1.nip.io:9090", 421},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/status.json", nil)
		req.Host = tc.host
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %q: %d, want %d", tc.host, rec.Code, tc.want)
		}
		if rec.Code == 421 && (rec.Body.String() == "page" || rec.Header().Get("Cache-Control") != "no-store") {
			t.Errorf("Host %q: refused with %q, headers %v", tc.host, rec.Body, rec.Header())
		}
	}
}
