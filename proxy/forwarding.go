package proxy

import (
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

// ClientIP is the resolved client address: the peer, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For entry that is not itself
// a trusted proxy. Logs and rate limits use it.
func (f *Forwarding) ClientIP(r *http.Request) string {
	peer, ok := peerAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if f == nil || !f.isTrusted(peer) {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil && !strings.HasPrefix(host, "::ffff:") {
			return host // the peer as written: no allocation
		}
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer.String() // a malformed chain proves nothing
			}
			if !f.isTrusted(a) {
				return a.Unmap().String()
			}
		}
	}
	return peer.String()
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
