package egress

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// Source defaults.
const (
	DefaultWaitTimeout = 10 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = time.Minute
	// refreshFraction: without RefreshBefore a token is renewed after 80 %
	// of its lifetime (a 1h token after 48m, a 3s token after 2.4s).
	refreshFraction = 0.8
	// maxSafety is the most a token's usable window is cut short, so that
	// a request never leaves with a token about to expire in transit.
	maxSafety = 5 * time.Second
	// forcedRefreshEvery bounds token drops caused by upstream 401s: an
	// upstream that refuses every token must not turn each app request
	// into a token request.
	forcedRefreshEvery = 5 * time.Second
	flightKey          = "token"
)

// errStopped is the cause given to callers after Close.
var errStopped = errors.New("egress stopped")

// SourceOptions configure a Source.
type SourceOptions struct {
	// Name of the egress entry, for logs, metrics and error bodies.
	Name string
	// Token describes the token requests.
	Token TokenOptions
	// Grant, when set, makes the token requests instead of a client
	// credentials request with Token (a RefreshGrant for an entry that
	// acts for a user).
	Grant Grant
	// RefreshBefore renews the token this long before it expires, but
	// never before half its lifetime has passed. Zero: at 80 % of its
	// lifetime.
	RefreshBefore time.Duration
	// WaitTimeout bounds how long a caller waits for a token when none is
	// valid. Default 10s.
	WaitTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed token
	// requests (exponential, with jitter). Defaults 500ms and 1m. A 429's
	// Retry-After is waited out even when longer.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives token events; never the token or the secret.
	Logger *zap.Logger
	// OnTokenRequest is called after every token request with "success"
	// or the failure's label (TokenError.Label).
	OnTokenRequest func(result string)
	// OnWait is called when a caller finds no valid token and has to
	// wait for one (in steady state, with the background refresh, never).
	OnWait func()
	// Shared, when set, shares the entry's tokens with the other replicas
	// (token.shared: redis): one token request per token lifetime for the
	// fleet; without an answer from Redis, a client-credentials entry
	// requests its own tokens. With a Grant that is a RefreshGrant, give
	// its AuthCodeOptions the same store.
	Shared *SharedStore
	// Tracer, when set, makes each token request a span that begins a
	// trace of its own (it serves every caller waiting, and the
	// background refresh). nil: none. A caller's wait is a span of its
	// request's trace whatever this says (tracing.go).
	Tracer trace.TracerProvider
}

// Grant makes one token request, without retries; the Source retries,
// caches and renews.
type Grant interface {
	Token(ctx context.Context) (*Token, error)
}

// Source obtains, caches and renews one egress entry's access token. It
// is safe for concurrent use.
type Source struct {
	o      SourceOptions
	log    *zap.Logger
	group  singleflight.Group
	forced *rate.Limiter
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	tok       *Token
	lastErr   error
	failures  int
	notBefore time.Time     // no token request before this (backoff)
	changed   chan struct{} // closed when tok or notBefore change
	last      attemptRecord // the last token request (Status)
	waits     atomic.Uint64 // callers that found no valid token (Status)
	held      heldTokens    // the newest access tokens, hidden from error texts
}

// NewSource makes a Source; Run starts its background refresh, Close
// ends it.
func NewSource(o SourceOptions) *Source {
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = DefaultWaitTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{
		o: o, log: o.Logger.With(zap.String("egress", o.Name)),
		forced: rate.NewLimiter(rate.Every(forcedRefreshEvery), 1),
		ctx:    ctx, cancel: cancel, changed: make(chan struct{}),
	}
	if o.Shared != nil {
		sg := &sharedGrant{st: o.Shared, inner: o.Grant, refreshAt: s.refreshAt}
		if o.Grant == nil {
			sg.own = func(ctx context.Context) (*Token, error) { return Fetch(ctx, o.Token) }
		}
		s.o.Grant = sg
	}
	if g, ok := s.o.Grant.(interface{ useLogger(*zap.Logger) }); ok {
		g.useLogger(s.log)
	}
	return s
}

// Name is the egress entry's name.
func (s *Source) Name() string { return s.o.Name }

// Token returns a token that is valid now and will be for the request's
// flight. When there is none it joins (or starts) the one token request
// in flight and waits for it, at most WaitTimeout.
func (s *Source) Token(ctx context.Context) (*Token, error) {
	if t := s.usable(time.Now()); t != nil {
		_, span := tokenSpan(ctx, s.o.Name) // held: a span of no length, when sampled
		endTokenSpan(span, false, nil)
		return t, nil
	}
	_, span := tokenSpan(ctx, s.o.Name)
	t, err := s.wait(ctx)
	endTokenSpan(span, true, err)
	return t, err
}

// wait joins (or starts) the token request in flight and waits for a
// valid token, at most WaitTimeout.
func (s *Source) wait(ctx context.Context) (*Token, error) {
	s.waits.Add(1)
	if s.o.OnWait != nil {
		s.o.OnWait()
	}
	timer := time.NewTimer(s.o.WaitTimeout)
	defer timer.Stop()
	for {
		ch := s.group.DoChan(flightKey, s.flight)
		select {
		case r := <-ch:
			if t := s.usable(time.Now()); t != nil {
				return t, nil
			}
			if r.Err != nil {
				var te *TokenError
				if errors.As(r.Err, &te) && te.Permanent() || errors.Is(r.Err, errStopped) {
					return nil, s.unavailable(r.Err)
				}
			}
		case <-ctx.Done():
			return nil, s.unavailable(ctx.Err())
		case <-timer.C:
			return nil, s.unavailable(fmt.Errorf("no token within %v", s.o.WaitTimeout))
		}
	}
}

// usable returns the current token if it is valid at now with a margin.
func (s *Source) usable(now time.Time) *Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && now.Before(usableUntil(s.tok)) {
		return s.tok
	}
	return nil
}

// usableUntil is the token's expiry less a safety margin of 5 % of its
// lifetime, at most 5s.
func usableUntil(t *Token) time.Time {
	return t.Expiry.Add(-min(t.Lifetime()/20, maxSafety))
}

// refreshAt is when the background refresh renews t.
func (s *Source) refreshAt(t *Token) time.Time {
	life := t.Lifetime()
	if s.o.RefreshBefore > 0 {
		return t.Obtained.Add(max(life-s.o.RefreshBefore, life/2))
	}
	return t.Obtained.Add(time.Duration(float64(life) * refreshFraction))
}

// flight makes token requests until one succeeds, one fails permanently,
// or the Source is closed. Only one flight runs at a time (singleflight):
// every caller waiting for a token shares its result. Close does not
// cancel a request in flight (see Close); it only stops the retries.
func (s *Source) flight() (any, error) {
	for {
		s.mu.Lock()
		wait, failing := time.Until(s.notBefore), s.failures > 0
		s.mu.Unlock()
		if wait > 0 && s.pause(wait, failing, nil, nil) == pauseStopped {
			return nil, errStopped
		}
		tok, err := s.attempt()
		s.record(tok, err)
		if err == nil {
			return tok, nil
		}
		var te *TokenError
		if errors.As(err, &te) && te.Permanent() {
			return nil, err
		}
		if s.ctx.Err() != nil {
			return nil, errStopped
		}
	}
}

// attempt makes one token request, bounded by its own clock, not by
// Close: the token timeout, plus WaitTimeout for another refresh's lock.
func (s *Source) attempt() (*Token, error) {
	s.mu.Lock()
	ctx, cancel := context.WithTimeout(withHeld(context.Background(), s.held), s.o.WaitTimeout+s.o.Token.timeout())
	s.mu.Unlock()
	defer cancel()
	ctx, span := s.requestSpan(ctx)
	var tok *Token
	var err error
	if s.o.Grant != nil {
		tok, err = s.o.Grant.Token(ctx)
	} else {
		tok, err = Fetch(ctx, s.o.Token)
	}
	endRequestSpan(span, tokenResult(err))
	return tok, err
}

// record installs a new token, or notes a failure and sets the backoff.
func (s *Source) record(tok *Token, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	if err == nil {
		s.tok, s.lastErr, s.failures, s.notBefore = tok, nil, 0, time.Time{}
		s.held.add(tok.Value)
		if tok.fromShared {
			s.log.Debug("access token taken from the shared store", zap.Time("refresh_at", s.refreshAt(tok)))
			return
		}
		s.report(resultSuccess)
		s.log.Info("access token obtained", zap.Duration("lifetime", tok.Lifetime().Round(time.Second)),
			zap.Time("refresh_at", s.refreshAt(tok)), zap.String("scope", tok.Scope))
		return
	}
	err = s.held.scrub(err)
	s.failures++
	wait := backoff(s.o.MinBackoff, s.o.MaxBackoff, s.failures)
	fields := []zap.Field{zap.Int("failures", s.failures)}
	var te *TokenError
	if errors.As(err, &te) {
		wait = max(wait, te.RetryAfter)
		s.report(te.Label())
		fields = append(fields, zap.String("error", te.Code), zap.String("description", te.Description), zap.Int("status", te.Status))
	} else {
		if !isNotRequested(err) {
			s.report(errorOther)
		}
		fields = append(fields, zap.Error(err))
	}
	s.lastErr = err
	s.notBefore = time.Now().Add(wait)
	fields = append(fields, zap.Duration("retry_in", wait.Round(time.Millisecond)), zap.Bool("token_held", s.tok != nil && time.Now().Before(s.tok.Expiry)))
	s.log.Warn("token request failed", fields...)
}

func (s *Source) report(result string) {
	s.last = attemptRecord{at: time.Now(), result: result}
	if s.o.OnTokenRequest != nil {
		s.o.OnTokenRequest(result)
	}
}

// signal wakes the refresher; callers hold s.mu.
func (s *Source) signal() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Invalidate drops t after the upstream refused it, so that the next
// Token call fetches a new one. It reports whether the caller may retry:
// true when t was dropped or was already replaced, false when forced
// renewals are being made too often (an upstream that refuses every
// token does not get a token request per call).
func (s *Source) Invalidate(t *Token) bool {
	s.mu.Lock()
	if s.tok != t {
		s.mu.Unlock()
		return true // already dropped or replaced: the retry uses the next one
	}
	if !s.forced.Allow() {
		s.mu.Unlock()
		return false
	}
	s.tok = nil
	s.signal()
	s.mu.Unlock()
	s.log.Info("upstream refused the access token; fetching a new one")
	if sg, ok := s.o.Grant.(*sharedGrant); ok {
		sg.invalidate(t) // before the retry asks for a token: it must not get t back
	}
	return true
}

// Close stops the background refresh and the retries. A token request
// in flight is not cancelled: callers already waiting for it (a reload
// replaced the Source) get its token, within their WaitTimeout; if it
// fails they get an UnavailableError with its cause at once.
func (s *Source) Close() { s.cancel() }
