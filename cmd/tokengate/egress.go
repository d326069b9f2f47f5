package main

import (
	"context"
	"crypto/tls"
	"errors"
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
	"github.com/tokengate/tokengate/proxy"
)

// egressRunner is one egress entry at work: its token source (refreshed in
// the background) and the handler that injects the token.
type egressRunner struct {
	cfg       config.Egress
	source    *egress.Source
	handler   http.Handler
	transport *http.Transport
	stopRun   context.CancelFunc
}

// egressListener serves one egress entry's listen address; a reload
// swaps the handler behind it.
type egressListener struct {
	name string
	addr string
	tls  *config.TLS
	ln   net.Listener
	srv  *http.Server
	h    swappable
}

// egressSet runs the egress entries of the current configuration.
type egressSet struct {
	log *zap.Logger
	m   *metrics

	mu        sync.Mutex
	runners   map[string]*egressRunner   // by name
	listeners map[string]*egressListener // by entry name
}

func newEgressSet(log *zap.Logger, m *metrics) *egressSet {
	return &egressSet{log: log.Named("egress"), m: m, runners: map[string]*egressRunner{}, listeners: map[string]*egressListener{}}
}

// egressPlan is a prepared change: new runners built and new listeners
// opened, nothing running yet. commit applies it; discard undoes it.
type egressPlan struct {
	runners   map[string]*egressRunner
	fresh     []*egressRunner
	listeners map[string]*egressListener // by entry name
	opened    []*egressListener
}

// prepare builds what cfgs need. Entries whose configuration did not
// change keep their runner, so a reload loses no token.
func (s *egressSet) prepare(cfgs []config.Egress) (*egressPlan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &egressPlan{runners: map[string]*egressRunner{}, listeners: map[string]*egressListener{}}
	for i, c := range cfgs {
		r := s.runners[c.Name]
		if r == nil || !reflect.DeepEqual(r.cfg, c) {
			var err error
			if r, err = s.newRunner(c); err != nil {
				p.discard()
				return nil, fmt.Errorf("egress[%d] (%s): %w", i, c.Name, err)
			}
			p.fresh = append(p.fresh, r)
		}
		p.runners[c.Name] = r
		if l := s.listeners[c.Name]; l != nil && l.addr == c.Listen {
			if !reflect.DeepEqual(l.tls, c.TLS) {
				s.log.Warn("egress tls changes take effect only after a restart", zap.String("egress", c.Name))
			}
			p.listeners[c.Name] = l
			continue
		}
		l, err := s.listen(c)
		if err != nil {
			p.discard()
			return nil, fmt.Errorf("egress[%d] (%s): %w", i, c.Name, err)
		}
		p.listeners[c.Name] = l
		p.opened = append(p.opened, l)
	}
	return p, nil
}

// discard closes what prepare made.
func (p *egressPlan) discard() {
	for _, r := range p.fresh {
		r.stop()
	}
	for _, l := range p.opened {
		l.ln.Close()
	}
}

// commit starts the plan's new runners and listeners, points every
// listener at its entry, and stops what the new configuration dropped.
func (s *egressSet) commit(ctx context.Context, p *egressPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range p.fresh {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		r.stopRun = cancel
		go r.source.Run(rctx)
	}
	for name, l := range p.listeners {
		l.h.set(p.runners[name].handler)
	}
	for _, l := range p.opened {
		go func() {
			var err error
			if l.srv.TLSConfig != nil {
				err = l.srv.ServeTLS(l.ln, "", "")
			} else {
				err = l.srv.Serve(l.ln)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("egress listener stopped", zap.String("listen", l.addr), zap.Error(err))
			}
		}()
		s.log.Info("egress listening", zap.String("egress", l.name), zap.String("addr", l.ln.Addr().String()),
			zap.String("upstream", p.runners[l.name].cfg.Upstream.URL))
	}
	for name, r := range s.runners {
		if p.runners[name] != r {
			r.stop()
		}
	}
	for name, l := range s.listeners {
		if p.listeners[name] != l {
			go func() {
				sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = l.srv.Shutdown(sctx)
			}()
		}
	}
	s.runners, s.listeners = p.runners, p.listeners
}

// newRunner builds an entry's source and handler without starting them.
func (s *egressSet) newRunner(c config.Egress) (*egressRunner, error) {
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
	topts, err := tokenOptions(c.Token)
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
		so.Grant = egress.NewRefreshGrant(authCodeOptions(c, topts))
	}
	ho := egress.HandlerOptions{
		Name: name, Upstream: upstream, Transport: transport,
		RetryBodyLimit: int64(c.RetryBodyLimit), MaxBodySize: int64(c.Upstream.MaxBodySize),
		ForwardedHeaders: c.ForwardedHeaders, Logger: s.log,
		// A browser cannot present a client certificate; without that,
		// only requests addressed to a loopback name are taken.
		LoopbackHosts: !c.ClientCertsRequired(),
	}
	if s.m != nil {
		so.OnTokenRequest = func(result string) { s.m.egressTokenRequests.WithLabelValues(name, result).Inc() }
		so.OnWait = s.m.egressWaits.WithLabelValues(name).Inc
		ho.Observer = s.m
	}
	src := egress.NewSource(so)
	ho.Tokens = src
	return &egressRunner{cfg: c, source: src, handler: egress.NewHandler(ho), transport: transport}, nil
}

// tokenOptions describes an entry's token requests (the running source
// and tokengate check use the same).
func tokenOptions(t config.EgressToken) (egress.TokenOptions, error) {
	client, err := tokenClient(t)
	if err != nil {
		return egress.TokenOptions{}, err
	}
	return egress.TokenOptions{
		URL: t.URL, ClientID: t.ClientID, ClientSecret: t.ClientSecret,
		Auth: egress.AuthStyle(t.Auth), Scopes: t.Scopes, Params: t.Params,
		DefaultLifetime: t.DefaultLifetime.D(), Client: client,
	}, nil
}

// tokenClient is the HTTP client for an entry's token requests.
func tokenClient(t config.EgressToken) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := proxy.LoadCertPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("token.ca_file: %w", err)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: t.Timeout.D()}, nil
}

// listen opens an entry's listener (TLS when configured).
func (s *egressSet) listen(c config.Egress) (*egressListener, error) {
	l := &egressListener{name: c.Name, addr: c.Listen, tls: c.TLS}
	l.srv = &http.Server{
		Handler:           &l.h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       config.DefaultIdleTimeout,
		MaxHeaderBytes:    256 << 10,
		ErrorLog:          zap.NewStdLog(s.log),
	}
	if t := c.TLS; t != nil {
		certs, err := newCertReloader(t.CertFile, t.KeyFile, s.log.Named("tls"))
		if err != nil {
			return nil, err
		}
		if l.srv.TLSConfig, err = serverTLS(t, certs); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", c.Listen, err)
	}
	l.ln = ln
	return l, nil
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
	for name, l := range s.listeners {
		out[name] = l.ln.Addr().String()
	}
	return out
}

// shutdown stops every listener (draining within ctx) and every runner.
func (s *egressSet) shutdown(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range s.listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
			}
		})
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
