package egress

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// screen refuses what an egress never forwards, before a token is spent:
// protocol upgrades, paths that climb out of the upstream's base path,
// requests a web browser sent, and (with LoopbackHosts) requests addressed
// to a name other than localhost or a loopback IP. It returns the status,
// the error kind and the cause, or 0.
//
// An egress listener spends the vendor credentials for whoever reaches it.
// A web page open in a browser on the same machine can reach a loopback
// listener too: a cross-site form POST needs no CORS preflight, and a page
// whose name is re-bound to 127.0.0.1 (DNS rebinding) even reads the
// answer. Browsers mark their requests with Sec-Fetch-Site (all current
// ones), Origin (every cross-origin POST) or a Referer naming the page;
// server-side clients (curl, Go, Python, Java, Node's fetch) send none of
// these, so such requests are refused (browserMarks). A re-bound page sends its own name as Host, which LoopbackHosts
// refuses.
func (h *Handler) screen(r *http.Request) (int, string, string) {
	if r.Header.Get("Upgrade") != "" {
		return http.StatusBadRequest, "invalid_request", "protocol upgrades are not forwarded by an egress"
	}
	if !strings.HasPrefix(r.URL.Path, "/") {
		return http.StatusBadRequest, "invalid_request", "the request target must be an absolute path"
	}
	if p := r.URL.Path; p != "/" && path.Clean(p) != strings.TrimSuffix(p, "/") {
		return http.StatusBadRequest, "invalid_request", "the path must be clean: no ., .. or empty segments"
	}
	// A backslash is a separator to some servers (IIS, and frameworks
	// that normalise it), so "..\" could still climb; control characters
	// have no place in a path.
	if strings.ContainsFunc(r.URL.Path, func(c rune) bool { return c == '\\' || c < 0x20 || c == 0x7f }) {
		return http.StatusBadRequest, "invalid_request", "the path must not hold a backslash or control characters"
	}
	// Tomcat and Spring cut path parameters (";…") out of every segment
	// before routing, so "/..;/admin" passes the check above as one odd
	// segment and reaches the vendor as "/../admin", outside the base
	// path, with the token. r.URL.Path is decoded: %3B is caught too.
	if strings.ContainsRune(r.URL.Path, ';') {
		return http.StatusBadRequest, "invalid_request", "the path must not hold a semicolon (path parameters): some servers strip them and would climb out of the upstream's base path"
	}
	if code, msg := browserMarks(r.Header); code != 0 {
		return code, "browser_request", msg + ": an egress spends the vendor credentials only for the app, not for web pages"
	}
	if !loopbackHost(r.Host) && (h.o.LoopbackHosts || !verifiedClient(r)) {
		return http.StatusMisdirectedRequest, "misdirected_request", "the request is addressed to a name other than " +
			"localhost or a loopback IP (the Host header); a loopback egress answers only those, so a web page " +
			"re-bound to 127.0.0.1 (DNS rebinding) cannot use it"
	}
	return 0, "", ""
}

// browserMarks looks for the marks a web browser leaves on a request and
// returns 403 with the reason, or 0. Every Sec-Fetch-Site line must say
// "none" (the user typed the address): a second line cannot hide a
// cross-site one behind it. Any Origin header at all, even empty or
// "null" (a sandboxed page), is a browser's. A Referer that names a host
// other than a loopback one is a web page's (an old browser without
// Sec-Fetch-* sends it with an <img> or a form); an empty Referer and one
// naming localhost or a loopback IP pass, as server-side clients send them.
func browserMarks(h http.Header) (int, string) {
	if sites, ok := h["Sec-Fetch-Site"]; ok {
		for _, site := range sites {
			if strings.TrimSpace(site) != "none" {
				return http.StatusForbidden, "a web browser sent this request (Sec-Fetch-Site: " + strconv.Quote(clean(site, 20)) + ")"
			}
		}
	}
	if _, ok := h["Origin"]; ok {
		return http.StatusForbidden, "the request carries an Origin header, as a web browser's does"
	}
	for _, ref := range h["Referer"] {
		if ref = strings.TrimSpace(ref); ref == "" {
			continue
		}
		if u, err := url.Parse(ref); err != nil || u.Host == "" || !loopbackHost(u.Host) {
			return http.StatusForbidden, "the request carries a Referer naming a page that is not on a loopback name, as a web browser's does"
		}
	}
	return 0, ""
}

// verifiedClient reports whether the request came over TLS with a
// verified client certificate. Without LoopbackHosts the Host check is
// skipped only for such requests: a keep-alive connection opened before
// a reload required client certificates still carries none.
func verifiedClient(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// loopbackHost reports whether a Host header names this machine's
// loopback: localhost, a name under .localhost (RFC 6761: never resolved
// elsewhere), or a loopback IP, with or without a port. No Host at all
// (an old HTTP/1.0 client) passes: browsers always send one.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
