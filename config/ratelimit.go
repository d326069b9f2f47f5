package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// What a route's rate limit counts per (RouteRateLimit.Key): always a
// verified identity or the resolved client address, never a header the
// client chose.
const (
	// RateKeyClientID: the verified token's client id (with its issuer).
	RateKeyClientID = "client_id"
	// RateKeySubject: the verified token's subject (with its issuer).
	RateKeySubject = "subject"
	// RateKeySignatureRoute: one bucket for the route; its signing secret
	// identifies the sender.
	RateKeySignatureRoute = "signature_route"
	// RateKeyRemoteIP: the client address, resolved through
	// trusted_proxies (an IPv6 address by its /64).
	RateKeyRemoteIP = "remote_ip"
)

var rateKeys = []string{RateKeyClientID, RateKeySubject, RateKeySignatureRoute, RateKeyRemoteIP}

// RouteRateLimit bounds the requests one sender gets through a route:
// counted after verification, per Key; past it the sender gets 429 with
// Retry-After and nothing reaches the receiver (nor the queue). In memory
// per gate by default; in Redis, shared by every replica, when the
// top-level redis block is set.
type RouteRateLimit struct {
	// Key is what is counted: client_id, subject, signature_route or
	// remote_ip. Required.
	Key string `yaml:"key"`
	// Rate is "N/s", "N/m" or "N/h". Required.
	Rate Rate `yaml:"rate"`
	// Burst is how many requests a sender may make at once (at least 1).
	// Required.
	Burst int `yaml:"burst"`
}

// Rate is N events per second, minute or hour, written "100/s", "5/m" or
// "1000/h".
type Rate struct {
	N   int
	Per time.Duration
}

var rateRE = regexp.MustCompile(`^([0-9]+)/(s|m|h)$`)

// UnmarshalYAML parses "N/s", "N/m" or "N/h".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	bad := fmt.Errorf("invalid rate %q: write N/s, N/m or N/h with N a whole number of at least 1, e.g. \"100/s\"", n.Value)
	if n.Kind != yaml.ScalarNode {
		return bad
	}
	m := rateRE.FindStringSubmatch(strings.TrimSpace(n.Value))
	if m == nil {
		return bad
	}
	v, err := strconv.Atoi(m[1])
	if err != nil || v < 1 || v > 1_000_000_000 {
		return bad
	}
	r.N, r.Per = v, map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	return nil
}

// MarshalYAML writes the rate as "N/s".
func (r Rate) MarshalYAML() (any, error) { return r.String(), nil }

// String is "100/s" ("" for no rate).
func (r Rate) String() string {
	unit, ok := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	if !ok {
		return ""
	}
	return strconv.Itoa(r.N) + "/" + unit
}

// rateLimits validates the routes' rate_limit blocks: a key the route's
// requests always have, a rate, a burst, and a name of its own (buckets
// are kept by route name).
func (v *validator) rateLimits() {
	named := map[string]int{}
	for i, r := range v.c.Routes {
		rl := r.RateLimit
		if rl == nil {
			continue
		}
		p := fmt.Sprintf("routes[%d].rate_limit", i)
		if j, dup := named[r.Name]; dup {
			v.add(fmt.Sprintf("routes[%d].name", i), "%q is also the name of rate-limited routes[%d]: rate-limited routes need names of their own, since buckets are kept per route name (set name:)", r.Name, j)
		} else {
			named[r.Name] = i
		}
		if err := v.rateKey(r, rl.Key); err != nil {
			v.add(p+".key", "%v", err)
		}
		if rl.Rate.N < 1 {
			v.add(p+".rate", "required: N/s, N/m or N/h, e.g. \"100/s\"")
		}
		if rl.Burst < 1 {
			v.add(p+".burst", "must be at least 1: the requests a sender may make at once")
		}
	}
}

// rateKey says why key cannot be counted on route r, or nil.
func (v *validator) rateKey(r Route, key string) error {
	mode := r.AuthMode()
	switch key {
	case "":
		return fmt.Errorf("required: one of %s", strings.Join(rateKeys, ", "))
	case RateKeyRemoteIP:
		return nil
	case RateKeyClientID, RateKeySubject:
		if r.Public || (mode != AuthBearer && mode != AuthAll) {
			return fmt.Errorf("%s is read from the verified bearer token, which not every request on this route has (public, or auth: signature or any): use signature_route or remote_ip", key)
		}
		return nil
	case RateKeySignatureRoute:
		if r.Public || (mode != AuthSignature && mode != AuthAll) {
			return errors.New("signature_route needs every request on the route to be signed (auth: signature or all): use client_id, subject or remote_ip")
		}
		return nil
	}
	return fmt.Errorf("must be one of %s, got %q%s", strings.Join(rateKeys, ", "), key, didYouMean(key, rateKeys))
}
