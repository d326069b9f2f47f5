package gate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/listener"
)

// A reload's change to the egress side, in two steps: prepare builds
// and binds everything the new configuration needs (nothing swapped yet,
// so a failed reload changes nothing); commit swaps it in.

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
	redis     *sharedRedis             // the redis block's client the plan's shared entries use
	newRedis  bool                     // made by prepare (closed by discard)
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

// prepare builds what cfg's egress entries need. Entries whose
// configuration (and, for a shared one, the redis block) did not change
// keep their runner, so a reload loses no token; addresses that stay
// keep their listener.
func (s *egressSet) prepare(cfg *config.Config) (*egressPlan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfgs, bodyRead := cfg.Egress, cfg.BodyReadTimeout.D()
	p := &egressPlan{runners: map[string]*egressRunner{}, keys: map[string]string{}, listeners: map[string]*egressListener{},
		handlers: map[string]http.Handler{}, tls: map[string]tlsChange{}}
	if err := s.prepareRedis(p, cfg); err != nil {
		return nil, err
	}
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
	if r == nil || !reflect.DeepEqual(r.cfg, c) || r.bodyRead != bodyRead || c.Token.SharedOn() && r.shared != p.redis {
		var err error
		if r, err = s.newRunner(c, bodyRead, p.redis); err != nil {
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
	if p.newRedis {
		defer p.redis.c.Close()
	}
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
	if old := s.redis; old != nil && old != p.redis {
		// Stopped runners may still be writing a rotated refresh token
		// through it: closed a minute later.
		time.AfterFunc(time.Minute, func() { _ = old.c.Close() })
	}
	s.runners, s.listeners, s.keys, s.redis = p.runners, p.listeners, p.keys, p.redis
}
