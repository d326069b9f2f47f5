package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
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
	timeouts listener.Timeouts

	mu        sync.Mutex
	runners   map[string]*egressRunner   // by entry name
	listeners map[string]*egressListener // by listenKey
	keys      map[string]string          // entry name → listenKey
}

func newEgressSet(log *zap.Logger, m *telemetry.Metrics, t listener.Timeouts) *egressSet {
	return &egressSet{log: log.Named("egress"), m: m, timeouts: t, runners: map[string]*egressRunner{},
		listeners: map[string]*egressListener{}, keys: map[string]string{}}
}

// listenKey identifies an entry's listener across reloads: its address,
// so that the socket outlives renames and swaps. A ":0" address (any free
// port) is not a socket one can name again; it stays the entry's own.
func listenKey(c config.Egress) string {
	if _, port, err := net.SplitHostPort(c.Listen); err == nil && port == "0" {
		return "\x00" + c.Name + "\x00" + c.Listen
	}
	return c.Listen
}

// egressPlan is a prepared change: new runners built, new listeners bound
// and changed TLS settings loaded, nothing running or swapped yet. commit
// applies it; discard undoes it.
type egressPlan struct {
	runners   map[string]*egressRunner // by entry name
	fresh     []*egressRunner
	keys      map[string]string          // entry name → listenKey
	listeners map[string]*egressListener // by listenKey
	handlers  map[string]http.Handler    // by listenKey
	tls       map[string]tlsChange       // by listenKey: kept listeners whose tls changed
	opened    []*egressListener
}

type tlsChange struct {
	setup *listener.TLSSetup
	cfg   *config.TLS
}

// prepare builds what cfgs need; bodyRead bounds reading an app's body.
// Entries whose configuration did not change keep their runner, so a
// reload loses no token; addresses that stay keep their listener.
func (s *egressSet) prepare(cfgs []config.Egress, bodyRead time.Duration) (*egressPlan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &egressPlan{runners: map[string]*egressRunner{}, keys: map[string]string{}, listeners: map[string]*egressListener{},
		handlers: map[string]http.Handler{}, tls: map[string]tlsChange{}}
	for i, c := range cfgs {
		if err := s.prepareEntry(p, c, bodyRead); err != nil {
			p.discard()
			return nil, fmt.Errorf("egress[%d] (%s): %w", i, c.Name, err)
		}
	}
	return p, nil
}

func (s *egressSet) prepareEntry(p *egressPlan, c config.Egress, bodyRead time.Duration) error {
	r := s.runners[c.Name]
	if r == nil || !reflect.DeepEqual(r.cfg, c) || r.bodyRead != bodyRead {
		var err error
		if r, err = s.newRunner(c, bodyRead); err != nil {
			return err
		}
		p.fresh = append(p.fresh, r)
	}
	p.runners[c.Name] = r
	key := listenKey(c)
	p.keys[c.Name] = key
	p.handlers[key] = r.handler
	if el := s.listeners[key]; el != nil {
		p.listeners[key] = el
		if !reflect.DeepEqual(el.tls, c.TLS) {
			setup, err := tlsSetup(c.TLS, s.log)
			if err != nil {
				return err
			}
			p.tls[key] = tlsChange{setup, c.TLS}
		}
		return nil
	}
	setup, err := tlsSetup(c.TLS, s.log)
	if err != nil {
		return err
	}
	l, err := listener.New(listener.Options{Name: "egress", Addr: c.Listen, Handler: r.handler, TLS: setup,
		Timeouts: s.timeouts, Logger: s.log})
	if err != nil {
		return err
	}
	el := &egressListener{l: l, tls: c.TLS}
	p.listeners[key] = el
	p.opened = append(p.opened, el)
	return nil
}

// discard closes what prepare made.
func (p *egressPlan) discard() {
	for _, r := range p.fresh {
		r.stop()
	}
	for _, el := range p.opened {
		_ = el.l.Close()
	}
}

// commit starts the plan's new runners and listeners, points every
// listener at the entry now at its address, and stops what the new
// configuration dropped.
func (s *egressSet) commit(ctx context.Context, p *egressPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range p.fresh {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r.stopRun = cancel
		go r.source.Run(rctx)
	}
	for key, el := range p.listeners {
		if t, ok := p.tls[key]; ok {
			el.l.SetTLS(t.setup) // next connections; established ones keep theirs
			el.tls = t.cfg
		}
		el.l.SetHandler(p.handlers[key])
	}
	for _, el := range p.opened {
		el.l.Start()
	}
	for name, key := range p.keys {
		if el := p.listeners[key]; s.listeners[key] != el || s.keys[name] != key {
			s.log.Info("egress listening", zap.String("egress", name), zap.String("addr", el.l.Addr().String()),
				zap.Bool("tls", el.tls != nil), zap.String("upstream", p.runners[name].cfg.Upstream.URL))
		}
	}
	for name, r := range s.runners {
		if p.runners[name] != r {
			r.stop()
		}
	}
	for key, el := range s.listeners {
		if p.listeners[key] != el {
			go func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = el.l.Shutdown(sctx)
			}()
		}
	}
	s.runners, s.listeners, s.keys = p.runners, p.listeners, p.keys
}

// newRunner builds an entry's source and handler without starting them.
func (s *egressSet) newRunner(c config.Egress, bodyRead time.Duration) (*egressRunner, error) {
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
	}
	if c.Token.AuthorizationCode() {
		so.Grant = egress.NewRefreshGrant(stack.AuthCodeOptions(c, topts))
	}
	ho := egress.HandlerOptions{
		Name: name, Upstream: upstream, Transport: transport,
		RetryBodyLimit: int64(c.RetryBodyLimit), MaxBodySize: int64(c.Upstream.MaxBodySize), BodyReadTimeout: bodyRead,
		ForwardedHeaders: c.ForwardedHeaders, Logger: s.log,
		// A browser cannot present a client certificate; without that,
		// only requests addressed to a loopback name are taken.
		LoopbackHosts: !c.ClientCertsRequired(),
	}
	if s.m != nil {
		so.OnTokenRequest = s.m.EgressTokenRequests(name)
		so.OnWait = s.m.EgressWaits(name)
		ho.Observer = s.m
	}
	src := egress.NewSource(so)
	ho.Tokens = src
	return &egressRunner{cfg: c, bodyRead: bodyRead, source: src, handler: egress.NewHandler(ho), transport: transport}, nil
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
		s.log.Error("shutdown: a refresh token refresh was still at the vendor after the grace period; if the vendor rotated the token, the grant must be authorized again", zap.Error(err))
	}
}
