package gate

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/egress"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/telemetry"
	"github.com/tokengate/tokengate/listener"
	"github.com/tokengate/tokengate/proxy"
)

// egressRunner is one egress entry at work: its token source (refreshed in
// the background) and the handler that injects the token.
type egressRunner struct {
	cfg       config.Egress
	bodyRead  time.Duration // the configuration's body_read_timeout
	shared    *sharedRedis  // the client a shared entry's store uses, nil if not shared
	source    *egress.Source
	handler   http.Handler
	transport *http.Transport
	stopRun   context.CancelFunc
}

// egressListener is one listen address of the egress side. A reload
// points it at whichever entry now names its address (a rename, two
// entries swapping addresses) by swapping its handler, and applies a
// changed tls block to its next connections; the socket stays open.
type egressListener struct {
	l   *listener.Listener
	tls *config.TLS // what its TLS setup was built from
}

// egressSet runs the egress entries of the current configuration.
type egressSet struct {
	log      *zap.Logger
	m        *telemetry.Metrics
	tr       *telemetry.Tracing // nil: tracing off
	timeouts listener.Timeouts

	mu        sync.Mutex
	redis     *sharedRedis               // the redis block's client, nil while no entry shares
	runners   map[string]*egressRunner   // by entry name
	listeners map[string]*egressListener // by listenKey
	keys      map[string]string          // entry name → listenKey
}

func newEgressSet(log *zap.Logger, m *telemetry.Metrics, tr *telemetry.Tracing, t listener.Timeouts) *egressSet {
	return &egressSet{log: log.Named("egress"), m: m, tr: tr, timeouts: t, runners: map[string]*egressRunner{},
		listeners: map[string]*egressListener{}, keys: map[string]string{}}
}

// newRunner builds an entry's source and handler without starting them;
// a shared entry's store uses rc.
func (s *egressSet) newRunner(c config.Egress, bodyRead time.Duration, rc *sharedRedis) (*egressRunner, error) {
	upstream, err := url.Parse(c.Upstream.URL)
	if err != nil {
		return nil, err
	}
	transport, err := proxy.NewTransport(c.Upstream)
	if err != nil {
		return nil, err
	}
	// Unlike the receiver next door, a vendor API is on the internet: an
	// egress honours HTTPS_PROXY/NO_PROXY like its token requests do.
	transport.Proxy = http.ProxyFromEnvironment
	topts, err := stack.TokenOptions(c.Token)
	if err != nil {
		return nil, err
	}
	name := c.Name
	so := egress.SourceOptions{
		Name:          name,
		Token:         topts,
		RefreshBefore: c.Token.RefreshBefore.D(),
		WaitTimeout:   c.WaitTimeout.D(),
		Logger:        s.log,
		Tracer:        s.tr.Provider(),
	}
	var shared *egress.SharedStore
	if c.Token.SharedOn() {
		var onEvent func(string)
		if s.m != nil {
			onEvent = s.m.EgressShared(name)
		}
		if shared, err = stack.SharedStore(c, &rc.cfg, rc.c, topts, s.log, onEvent); err != nil {
			return nil, err
		}
		so.Shared = shared
	} else {
		rc = nil
	}
	if c.Token.AuthorizationCode() {
		ao := stack.AuthCodeOptions(c, topts)
		ao.Shared = shared
		so.Grant = egress.NewRefreshGrant(ao)
	}
	ho := egress.HandlerOptions{
		Name: name, Upstream: upstream, Transport: transport,
		RetryBodyLimit: int64(c.RetryBodyLimit), MaxBodySize: int64(c.Upstream.MaxBodySize), BodyReadTimeout: bodyRead,
		ForwardedHeaders: c.ForwardedHeaders, Logger: s.log,
		// A browser cannot present a client certificate; without that,
		// only requests addressed to a loopback name are taken.
		LoopbackHosts: !c.ClientCertsRequired(),
		Propagator:    s.tr.Propagator(),
	}
	if s.m != nil {
		so.OnTokenRequest = s.m.EgressTokenRequests(name)
		so.OnWait = s.m.EgressWaits(name)
		ho.Observer = s.m
	}
	src := egress.NewSource(so)
	ho.Tokens = src
	// The app's trace is continued: an egress listener's callers are the
	// operator's own apps (loopback, or holding a client certificate).
	h := s.tr.Handler(egress.NewHandler(ho), "egress "+name, trustApps)
	return &egressRunner{cfg: c, bodyRead: bodyRead, shared: rc, source: src, handler: h, transport: transport}, nil
}

// stop ends a runner's background refresh and its idle connections.
func (r *egressRunner) stop() {
	if r.stopRun != nil {
		r.stopRun()
	}
	r.source.Close()
	r.transport.CloseIdleConnections()
}

// ready reports the first entry that needs a token for readiness and has
// none.
func (s *egressSet) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.runners))
	for n := range s.runners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := s.runners[n]
		if r.cfg.ReadyRequiresTokenOrDefault() {
			if err := r.source.Ready(); err != nil {
				return err
			}
		}
	}
	return nil
}

// sources lists the running token sources, for the expiry gauge.
func (s *egressSet) sources() []*egress.Source {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*egress.Source, 0, len(s.runners))
	for _, r := range s.runners {
		out = append(out, r.source)
	}
	return out
}

// addrs are the bound addresses, by entry name (for tests and logs).
func (s *egressSet) addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for name, key := range s.keys {
		out[name] = s.listeners[key].l.Addr().String()
	}
	return out
}

// shutdown stops every listener (draining within ctx) and every runner.
func (s *egressSet) shutdown(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wg sync.WaitGroup
	for _, el := range s.listeners {
		wg.Go(func() { _ = el.l.Shutdown(ctx) })
	}
	wg.Wait()
	for _, r := range s.runners {
		r.stop()
	}
	// A refresh already at the vendor finishes and stores the rotated
	// refresh token (lost otherwise: the next start would send the spent
	// one, and a vendor with reuse detection revokes the grant).
	if err := egress.DrainRefreshes(ctx); err != nil {
		s.log.Error("shutdown: a rotated refresh token could not be stored; the grant must be authorized again", zap.Error(err))
	}
	if s.redis != nil {
		_ = s.redis.c.Close() // after the drain: a rotated refresh token is written through it
	}
}
