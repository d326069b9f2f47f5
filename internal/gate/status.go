package gate

import (
	"context"
	"encoding/base64"
	"net/url"
	"sort"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/status"
)

// The gate is what the status page shows.
var _ status.Source = (*Gate)(nil)

// Status describes the running gate for the status page (admin listener,
// / and /status.json). It reads memory only, except the queue's counts
// (bounded by ctx). Every error text is scrubbed of the configuration's
// secrets once more (status.Snapshot.Redact).
func (g *Gate) Status(ctx context.Context) status.Snapshot {
	now := time.Now()
	st := g.cur.Load()
	cfg := st.Config()
	s := status.Snapshot{
		Version: g.version, Now: now.UTC(), Started: g.started.UTC(), UptimeSeconds: now.Sub(g.started).Seconds(),
		WindowMinutes: status.Window, Issuers: issuerStatus(st, now), Routes: g.routeStatus(cfg),
		Egress: g.eg.status(cfg, now), Replay: replayStatus(st.Replay()), Reload: *g.lastLoad.Load(),
		SharedRedis: sharedRedisStatus(st.SharedRedis()),
	}
	if q := g.queue.Load(); q != nil {
		s.Queue = q.status(ctx, now)
	}
	s.Redact(secretsOf(cfg))
	return s
}

// issuerStatus lists the issuers in configuration order, then the
// embedded token endpoint's. An egress-only gate verifies nothing: none.
func issuerStatus(st *stack.Stack, now time.Time) []status.Issuer {
	out := []status.Issuer{}
	jwts := map[string]int{}
	for i, j := range st.JWTs() {
		jwts[j.Name()] = i
	}
	for _, is := range st.Config().Issuers {
		if is.Introspection != nil {
			in := st.Introspection()
			if in == nil {
				continue
			}
			r := in.Status()
			out = append(out, status.Issuer{Name: is.Name, Kind: status.KindIntrospection, Ready: r.Error == "", LastAnswer: r.LastAnswer.UTC(), LastError: r.Error})
			continue
		}
		i, ok := jwts[is.Name]
		if !ok {
			continue
		}
		j := st.JWTs()[i]
		k := j.KeyStatus()
		s := status.Issuer{Name: is.Name, Kind: status.KindJWT, KeyIDs: k.KeyIDs, Ready: j.Ready(), LastError: k.Error}
		if is.JWKSURL == "" {
			s.Discovery = k.Discovery
		}
		if !k.Fetched.IsZero() {
			s.KeysFetched, s.KeysAgeSeconds = k.Fetched.UTC(), max(now.Sub(k.Fetched).Seconds(), 0)
		}
		out = append(out, s)
	}
	if e := st.Embedded(); e != nil {
		out = append(out, status.Issuer{Name: e.Name(), Kind: status.KindEmbedded, KeyIDs: e.KeyStatus().KeyIDs, Ready: true})
	}
	return out
}

// routeStatus lists the configured routes with their recent requests,
// then any other name requests were counted under ("(none)": no route
// took them; a route renamed by a reload, until its counts age out).
func (g *Gate) routeStatus(cfg *config.Config) []status.Route {
	counts := g.traffic.Counts()
	out := []status.Route{}
	for i := range cfg.Routes {
		r := &cfg.Routes[i]
		auth := r.AuthMode()
		if r.Public {
			auth = "public"
		}
		c, ok := counts[r.Name]
		if !ok {
			c = g.traffic.Empty()
		}
		delete(counts, r.Name)
		out = append(out, status.Route{Name: r.Name, Auth: auth, Queued: r.Queued(), Counts: c, Reasons: orEmpty(c.Reasons())})
	}
	rest := make([]string, 0, len(counts))
	for name := range counts {
		rest = append(rest, name)
	}
	sort.Strings(rest)
	for _, name := range rest {
		c := counts[name]
		out = append(out, status.Route{Name: name, Counts: c, Reasons: orEmpty(c.Reasons())})
	}
	return out
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func replayStatus(r stack.ReplayStatus) status.Replay {
	if r.Kind == "" {
		return status.Replay{Kind: status.ReplayNone}
	}
	s := status.Replay{Kind: r.Kind, Reachable: true, FailOpen: r.FailOpen}
	if r.Health != nil {
		if err := r.Health(); err != nil {
			s.Reachable, s.Error = false, err.Error()
		}
	}
	return s
}

func sharedRedisStatus(r stack.SharedRedisStatus) status.SharedRedis {
	if !r.Configured {
		return status.SharedRedis{}
	}
	s := status.SharedRedis{Configured: true, Reachable: true}
	if err := r.Health(); err != nil {
		s.Reachable, s.Error = false, err.Error()
	}
	return s
}

// status lists the egress entries in configuration order with their
// token's state (never the token).
func (s *egressSet) status(cfg *config.Config, now time.Time) []status.Egress {
	s.mu.Lock()
	runners := make(map[string]*egressRunner, len(s.runners))
	for n, r := range s.runners {
		runners[n] = r
	}
	s.mu.Unlock()
	out := []status.Egress{}
	for _, c := range cfg.Egress {
		r, ok := runners[c.Name]
		if !ok {
			continue
		}
		t := r.source.Status()
		e := status.Egress{
			Name: c.Name, Grant: "client_credentials", TokenHeld: t.Held, LastAttempt: t.LastAttempt.UTC(), LastResult: t.LastResult,
			LastError: t.LastError, Failures: t.Failures, RetryAt: t.RetryAt.UTC(), Waits: t.Waits,
			ReadyRequiresToken: r.cfg.ReadyRequiresTokenOrDefault(),
		}
		if c.Token.AuthorizationCode() {
			e.Grant = "authorization_code"
		}
		if t.Held {
			e.Expires, e.RefreshAt, e.ExpiresInSeconds = t.Expiry.UTC(), t.RefreshAt.UTC(), max(t.Expiry.Sub(now).Seconds(), 0)
		}
		out = append(out, e)
	}
	return out
}

// status is the queue store's health and each queued route's stored
// messages, counted within ctx.
func (r *queueRunner) status(ctx context.Context, now time.Time) *status.Queue {
	q := &status.Queue{Store: "redis", Writable: true, Routes: []status.QueueRoute{}}
	if _, ok := r.cfg.FileDir(); ok {
		q.Store = "file"
	}
	if err := r.ready(); err != nil {
		q.Writable, q.Error = false, err.Error()
	}
	stats, err := r.q.Stats(ctx)
	if err != nil {
		q.StatsError = err.Error()
	}
	byRoute := map[string]status.QueueRoute{}
	for _, s := range stats {
		qr := status.QueueRoute{Route: s.Route, Pending: s.Pending, Dead: s.Dead, Bytes: s.Bytes}
		if !s.Oldest.IsZero() && s.Pending > 0 {
			qr.OldestAgeSeconds = max(now.Sub(s.Oldest).Seconds(), 0)
		}
		byRoute[s.Route] = qr
	}
	for _, name := range r.q.RouteNames() {
		qr, ok := byRoute[name]
		if !ok {
			qr = status.QueueRoute{Route: name}
		}
		delete(byRoute, name)
		q.Routes = append(q.Routes, qr)
	}
	var gone []status.QueueRoute // stored by a route no longer queued
	for _, qr := range byRoute {
		gone = append(gone, qr)
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].Route < gone[j].Route })
	q.Routes = append(q.Routes, gone...)
	return q
}

// secretsOf lists every secret cfg holds, for the status page's second
// redaction: client secrets (and the Basic credentials made of them),
// signing secrets, the Redis token key and the passwords of Redis URLs.
func secretsOf(cfg *config.Config) []string {
	var out []string
	for _, is := range cfg.Issuers {
		if in := is.Introspection; in != nil {
			out = append(out, basicForms(in.ClientID, in.ClientSecret)...)
		}
	}
	for _, r := range cfg.Routes {
		if r.Signature != nil {
			out = append(out, r.Signature.AllSecrets()...)
		}
	}
	for _, e := range cfg.Egress {
		out = append(out, basicForms(e.Token.ClientID, e.Token.ClientSecret)...)
	}
	if te := cfg.TokenEndpoint; te != nil {
		for _, c := range te.Clients {
			out = append(out, c.SecretFromFile, c.ClientSecretHash)
		}
	}
	urls := []string{cfg.Signatures.ReplayStore, cfg.Queue.Store}
	if r := cfg.Redis; r != nil {
		out = append(out, r.TokenKey)
		urls = append(urls, r.URL)
	}
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			p, _ := u.User.Password()
			out = append(out, p)
		}
	}
	return out
}

// basicForms are a client secret and the Basic credentials carrying it
// (RFC 6749 §2.3.1 form-encodes both parts first; many clients do not).
func basicForms(id, secret string) []string {
	if secret == "" {
		return nil
	}
	b64 := base64.RawStdEncoding.EncodeToString // a prefix of the padded form too
	return []string{secret, b64([]byte(id + ":" + secret)), b64([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))}
}
