package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strings"
)

// Forwarding decides whose X-Forwarded-* headers to believe. Only a peer
// inside a trusted CIDR (an ingress or load balancer in front of tokengate)
// may say who the client is; anyone else's claims are replaced.
type Forwarding struct {
	trusted []netip.Prefix
}

// NewForwarding parses CIDRs or single addresses.
func NewForwarding(cidrs []string) (*Forwarding, error) {
	f := &Forwarding{}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			a, aerr := netip.ParseAddr(c)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", c, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		f.trusted = append(f.trusted, p.Masked())
	}
	return f, nil
}

func (f *Forwarding) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range f.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func peerAddr(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	return a.Unmap(), err == nil
}

// ErrForwardedFor: a trusted proxy's X-Forwarded-For holds, where the
// client's address should be, something that is not an address. The
// request is refused (400): the client is unknown, and counting it as the
// proxy would put every client behind that proxy in one rate-limit
// bucket.
var ErrForwardedFor = errors.New("X-Forwarded-For from a trusted proxy is not an address")

// ClientIP is the resolved client address: the peer, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For entry that is not itself
// a trusted proxy (entries are read by ParseForwardedFor; empty list
// elements are skipped); the peer when the chain names nobody else. Logs
// and rate limits use it. It fails with ErrForwardedFor when an entry it
// must read is not an address: never the proxy's address in its place.
func (f *Forwarding) ClientIP(r *http.Request) (string, error) {
	peer, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr, nil
	}
	if f == nil || !f.isTrusted(peer) {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && !strings.HasPrefix(host, "::ffff:") {
			return host, nil // the peer as written: no allocation
		}
		return peer.String(), nil
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			e := strings.Trim(parts[j], " \t")
			if e == "" {
				continue // RFC 9110 §5.6.1: empty list elements are ignored
			}
			a, ok := ParseForwardedFor(e)
			if !ok {
				return "", ErrForwardedFor
			}
			if !f.isTrusted(a) {
				return a.String(), nil
			}
		}
	}
	return peer.String(), nil
}

// ParseForwardedFor reads one X-Forwarded-For entry: an address ("ip"),
// an IPv6 address in brackets ("[ipv6]"), or either with a port
// ("ip:port", "[ipv6]:port"), as Azure Application Gateway writes them;
// the port is 1 to 65535, in digits without a leading zero. An IPv4-mapped
// IPv6 address is its IPv4 address. Anything else, a zone included, is not
// an address.
func ParseForwardedFor(e string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(e)
	if err != nil {
		a, err = parseWithPort(e)
	}
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseWithPort reads "ip:port", "[ipv6]:port" or "[ipv6]".
func parseWithPort(e string) (netip.Addr, error) {
	if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		a, err := netip.ParseAddr(e[1 : len(e)-1])
		if err == nil && !a.Is6() {
			err = errors.New("an IPv4 address in brackets")
		}
		return a, err
	}
	ap, err := netip.ParseAddrPort(e) // refuses an IPv4 address in brackets, an IPv6 one without
	if err != nil {
		return netip.Addr{}, err
	}
	if port := e[strings.LastIndexByte(e, ':')+1:]; ap.Port() == 0 || port[0] == '0' {
		return netip.Addr{}, errors.New("port out of range or with a leading zero")
	}
	return ap.Addr(), nil
}

// trustedPeer reports whether the request's peer is a trusted proxy.
func (f *Forwarding) trustedPeer(r *http.Request) bool {
	peer, ok := peerAddr(r.RemoteAddr)
	return ok && f != nil && f.isTrusted(peer)
}

// apply sets X-Forwarded-For/-Proto/-Host on the outbound request:
// extended from a trusted peer, replaced for anyone else.
func (f *Forwarding) apply(pr *httputil.ProxyRequest, trusted bool) {
	if trusted {
		if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
			pr.Out.Header["X-Forwarded-For"] = append([]string(nil), v...)
		}
	}
	pr.SetXForwarded() // appends the peer to a kept chain
	if trusted {
		if v := pr.In.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", v)
		}
		if v := pr.In.Header.Get("X-Forwarded-Host"); v != "" {
			pr.Out.Header.Set("X-Forwarded-Host", v)
		}
	}
}
