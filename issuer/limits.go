package issuer

import (
	"fmt"

	"github.com/tokengate/tokengate/ratelimit"
)

// The token endpoint's bucket families, as Options.OnLimitFallback names
// them.
const (
	// LimitPerIP: every token request, per client address.
	LimitPerIP = "token_endpoint_per_ip"
	// LimitPerClient: failed logins per client id (known or not).
	LimitPerClient = "token_endpoint_per_client"
	// LimitIPFailures: failed logins per client address.
	LimitIPFailures = "token_endpoint_per_ip_failures"
)

// limiter makes one bucket family. Its name (a part of each Redis key)
// holds the issuer's URL, length-prefixed: two Token URLs sharing a
// Redis never share a bucket.
func (o *Options) limiter(family string, perSecond float64, burst int) *ratelimit.Keyed {
	ro := ratelimit.Options{Shared: o.Shared, Now: o.Now}
	if f := o.OnLimitFallback; f != nil {
		ro.OnFallback = func() { f(family) }
	}
	name := fmt.Sprintf("%s|%d:%s", family, len(o.Issuer), o.Issuer)
	return ratelimit.New(name, ratelimit.PerSecond(perSecond, burst), ro)
}
