package status

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// SameHost serves the status page only to requests addressed to this
// listener by a name a web page cannot take over: an IP literal,
// localhost (or a name under .localhost, which never leaves the
// machine), or the host of listen (admin_listen), with any port. Any
// other Host gets 421 Misdirected Request.
//
// The page has no login. A web page an operator has open can re-bind
// its own name to 127.0.0.1 (DNS rebinding) while a port is forwarded
// to the admin listener, and then read the page as same-origin; the
// browser still sends the page's own name as Host, which this refuses.
// /healthz, /readyz and /metrics are not behind it: the kubelet and
// Prometheus address them by IP or by a service name.
func SameHost(listen string, next http.Handler) http.Handler {
	own, _, err := net.SplitHostPort(listen)
	if err != nil {
		own = listen
	}
	own = hostName(own)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !allowedHost(r.Host, own) {
			securityHeaders(w, "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusMisdirectedRequest)
			_, _ = w.Write([]byte("misdirected request: the status page answers only a Host that is an IP address, localhost or admin_listen's host\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedHost reports whether a Host header names an IP, localhost or
// own. No Host at all (HTTP/1.0) passes: browsers always send one.
func allowedHost(host, own string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = hostName(host)
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost") || own != "" && host == own
}

// hostName is a host in the form compared: lower case, without IPv6
// brackets or a final dot.
func hostName(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}
