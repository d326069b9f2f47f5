package verifier

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// discoveryRetry is the least time between two failed discovery attempts.
const discoveryRetry = 5 * time.Second

// jwksLocation is where a RemoteKeySet fetches its JWKS: a URL given in
// the configuration, or one found lazily by OIDC discovery of the issuer
// (go-oidc), on first use.
type jwksLocation struct {
	// url is set once: at construction, or by the first discovery that
	// succeeds. It is read without waiting, so readiness never waits for
	// the network.
	url atomic.Pointer[string]

	name, issuer string // for discovery; name only labels its errors
	client       *http.Client
	now          func() time.Time
	// discovering is a one-slot lock held while discovery runs; a caller
	// waits for it only as long as its context allows. It guards
	// discoveredAt and discoverErr.
	discovering  chan struct{}
	discoveredAt time.Time
	discoverErr  error
}

// fixedLocation is a JWKS URL known from the start.
func fixedLocation(url string) *jwksLocation {
	l := &jwksLocation{}
	l.url.Store(&url)
	return l
}

// discoveredLocation finds the JWKS URL of issuer by OIDC discovery.
func discoveredLocation(name, issuer string, client *http.Client, now func() time.Time) *jwksLocation {
	return &jwksLocation{name: name, issuer: issuer, client: capBodies(client, MaxDiscoverySize), now: now, discovering: make(chan struct{}, 1)}
}

// known returns the JWKS URL, or "" before discovery succeeded. It reads
// memory only.
func (l *jwksLocation) known() string {
	if u := l.url.Load(); u != nil {
		return *u
	}
	return ""
}

// resolve returns the JWKS URL, running discovery first if needed (one
// discovery at a time; the others wait for it as long as their context
// allows). Failed discovery is retried at most every discoveryRetry unless
// force. Its errors are *discoveryError.
func (l *jwksLocation) resolve(ctx context.Context, force bool) (string, error) {
	if u := l.known(); u != "" {
		return u, nil
	}
	select {
	case l.discovering <- struct{}{}:
		defer func() { <-l.discovering }()
	case <-ctx.Done():
		return "", &discoveryError{fmt.Errorf("issuer %s: waiting for OIDC discovery: %w", l.name, ctx.Err())}
	}
	if u := l.known(); u != "" {
		return u, nil
	}
	if !force && l.discoverErr != nil && l.now().Sub(l.discoveredAt) < discoveryRetry {
		return "", l.discoverErr
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, l.client), l.issuer)
	l.discoveredAt = l.now()
	if err != nil {
		l.discoverErr = &discoveryError{bound(fmt.Errorf("issuer %s: OIDC discovery: %w", l.name, err))}
		return "", l.discoverErr
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		l.discoverErr = &discoveryError{fmt.Errorf("issuer %s: discovery document has no jwks_uri", l.name)}
		return "", l.discoverErr
	}
	l.discoverErr = nil
	l.url.Store(&meta.JWKSURL)
	return meta.JWKSURL, nil
}

// discoveryError: OIDC discovery failed, so there is no JWKS URL to fetch
// yet. Its text names the issuer already.
type discoveryError struct{ err error }

func (e *discoveryError) Error() string { return e.err.Error() }
func (e *discoveryError) Unwrap() error { return e.err }
