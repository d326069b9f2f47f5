package gate

import (
	"net/http"
	"strings"
	"testing"
)

// TestStatusPageRefusesForeignHost: on a running gate's admin listener,
// / and /status.json answer 421 to a Host that is neither an IP, localhost
// nor admin_listen's host (a DNS-rebound web page's), and serve the page
// to 127.0.0.1 and localhost; /healthz, /readyz and /metrics answer any
// Host (probes and scrapers use service names).
func TestStatusPageRefusesForeignHost(t *testing.T) {
	g := startYAML(t, `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
routes:
  - { name: open, path: /open, public: true }
`)
	addr := g.AdminAddr()
	port := addr[strings.LastIndex(addr, ":"):]
	for _, tc := range []struct {
		path, host string
		want       int
	}{
		{"/status.json", "attacker.example" + port, http.StatusMisdirectedRequest},
		{"/", "attacker.example" + port, http.StatusMisdirectedRequest},
		{"/status.json", "attacker.example", http.StatusMisdirectedRequest},
		{"/status.json", addr, http.StatusOK},
		{"/", "localhost" + port, http.StatusOK},
		{"/healthz", "attacker.example" + port, http.StatusOK},
		{"/readyz", "attacker.example" + port, http.StatusOK},
		{"/metrics", "tokengate.monitoring.svc" + port, http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s with Host %s: %d, want %d", tc.path, tc.host, resp.StatusCode, tc.want)
		}
	}
}
