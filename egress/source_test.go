package egress

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
)

func newTestSource(e *egresstest.TokenEndpoint, mod func(*SourceOptions)) *Source {
	o := SourceOptions{
		Name:  "vendor",
		Token: TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret, Auth: AuthBasic},
		// Short backoff keeps the tests quick; the logic is the same.
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	return NewSource(o)
}

// TestSingleFlightAtStart: 500 requests arriving together before any token
// exists cause exactly one token request, and all get its token.
func TestSingleFlightAtStart(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	e.Script(func(int) egresstest.Answer { return egresstest.Answer{Delay: 200 * time.Millisecond} })
	s := newTestSource(e, nil)
	defer s.Close()
	const n = 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	toks := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			tok, err := s.Token(context.Background())
			errs[i] = err
			if err == nil {
				toks[i] = tok.Value
			}
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: token %q err %v; want the shared token", i, toks[i], errs[i])
		}
	}
	if got := e.Count(); got != 1 {
		t.Fatalf("token requests = %d, want exactly 1", got)
	}
}

func TestRefreshAt(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		life, before, want time.Duration
	}{
		{time.Hour, 0, 48 * time.Minute},
		{3 * time.Second, 0, 2400 * time.Millisecond},
		{time.Hour, 10 * time.Minute, 50 * time.Minute},
		{3 * time.Second, 5 * time.Second, 1500 * time.Millisecond}, // never before half-life
		{24 * time.Hour, time.Hour, 23 * time.Hour},
	} {
		s := NewSource(SourceOptions{RefreshBefore: tc.before})
		tok := &Token{Obtained: t0, Expiry: t0.Add(tc.life)}
		if got := s.refreshAt(tok).Sub(t0); got != tc.want {
			t.Errorf("life %v refresh_before %v: refresh after %v, want %v", tc.life, tc.before, got, tc.want)
		}
		if !s.refreshAt(tok).Before(usableUntil(tok)) {
			t.Errorf("life %v: refresh at %v is not before the token stops being used", tc.life, s.refreshAt(tok).Sub(t0))
		}
		s.Close()
	}
}

// TestProactiveRefresh: with 2s tokens under steady load, the background
// refresh renews each token before it expires: no request waits for a
// token after the first, none carries an expired one (the upstream
// checks every token), and tokens are fetched about once per 1.6s, not
// in a loop.
func TestProactiveRefresh(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, 2*time.Second)
	defer e.Close()
	// A request that finds no usable token is counted (OnWait) however
	// fast the endpoint answers; the endpoint is a little slow anyway.
	e.Script(func(int) egresstest.Answer { return egresstest.Answer{Delay: 20 * time.Millisecond} })
	up := egresstest.NewUpstream(e)
	defer up.Close()
	var waits atomic.Int64
	s := newTestSource(e, func(o *SourceOptions) { o.OnWait = func() { waits.Add(1) } })
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	if _, err := s.Token(ctx); err != nil {
		t.Fatal(err)
	}
	waits.Store(0)
	h := newTestHandler(t, up.URL, s, nil)
	const run = 5 * time.Second
	deadline := time.Now().Add(run)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if code := post(t, h, "/v1/hooks", "{}"); code != http.StatusOK {
					t.Errorf("status %d", code)
					return
				}
				sent.Add(1)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if r := up.Refusals(); r != 0 {
		for _, s := range up.Seen() {
			if s.Err != nil {
				t.Errorf("upstream refused a token: %v", s.Err)
				break
			}
		}
		t.Fatalf("%d of %d requests carried an invalid token", r, sent.Load())
	}
	if w := waits.Load(); w != 0 {
		t.Errorf("%d requests had to wait for a token in steady state, want 0", w)
	}
	// 1 + one per 1.6s over 5s ≈ 4; a loop would be far more.
	if c := e.Count(); c < 3 || c > 6 {
		t.Errorf("token requests over %v with 2s tokens: %d, want 3..6", run, c)
	}
}

// TestBackoffThenSuccess: 5xx answers are retried with backoff inside one
// flight while the caller waits; the caller gets the token.
func TestBackoffThenSuccess(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	e.Script(func(n int) egresstest.Answer {
		if n <= 2 {
			return egresstest.Answer{Status: 502}
		}
		return egresstest.Answer{}
	})
	var results []string
	var mu sync.Mutex
	s := newTestSource(e, func(o *SourceOptions) {
		o.OnTokenRequest = func(r string) { mu.Lock(); results = append(results, r); mu.Unlock() }
	})
	defer s.Close()
	if _, err := s.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.Count() != 3 {
		t.Fatalf("token requests %d, want 3", e.Count())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(results) != 3 || results[0] != "server_error" || results[2] != "success" {
		t.Fatalf("results %v", results)
	}
}

// TestRetryAfterObeyed: after a 429 with Retry-After: 1 the next token
// request waits at least a second, although the backoff is 20ms.
func TestRetryAfterObeyed(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	var times []time.Time
	var mu sync.Mutex
	e.Script(func(n int) egresstest.Answer {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if n == 1 {
			return egresstest.Answer{Status: 429, Header: http.Header{"Retry-After": {"1"}}}
		}
		return egresstest.Answer{}
	})
	s := newTestSource(e, nil)
	defer s.Close()
	if _, err := s.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 2 {
		t.Fatalf("token requests %d, want 2", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 990*time.Millisecond {
		t.Fatalf("second request %v after a 429 with Retry-After: 1", gap)
	}
}

// TestOldTokenKeptWhileRefreshFails: the endpoint fails after the first
// token; the old token is still used until it expires, then callers get
// an UnavailableError naming the cause.
func TestOldTokenKeptWhileRefreshFails(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, 2*time.Second)
	defer e.Close()
	e.Script(func(n int) egresstest.Answer {
		if n > 1 {
			return egresstest.Answer{Status: 503}
		}
		return egresstest.Answer{}
	})
	s := newTestSource(e, func(o *SourceOptions) { o.WaitTimeout = 300 * time.Millisecond })
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	first, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1700 * time.Millisecond) // past the refresh point (1.6s)
	if e.Count() < 2 {
		t.Fatalf("no refresh attempted by 1.7s (requests %d)", e.Count())
	}
	tok, err := s.Token(ctx)
	if err != nil || tok != first {
		t.Fatalf("while refresh fails the old token must serve: %v", err)
	}
	if s.Ready() != nil {
		t.Fatalf("ready while a valid token is held: %v", s.Ready())
	}
	time.Sleep(400 * time.Millisecond) // past expiry
	_, err = s.Token(ctx)
	var ue *UnavailableError
	var te *TokenError
	if !errors.As(err, &ue) || !errors.As(err, &te) || te.Code != "server_error" {
		t.Fatalf("after expiry: %v, want UnavailableError caused by server_error", err)
	}
	if s.Ready() == nil {
		t.Fatal("ready without a token")
	}
}

// TestPermanentErrorFailsFast: invalid_client ends the wait at once, and
// the next attempt waits for the backoff instead of hammering.
func TestPermanentErrorFailsFast(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, "other-secret", time.Hour)
	defer e.Close()
	s := newTestSource(e, func(o *SourceOptions) {
		o.MinBackoff, o.MaxBackoff = time.Second, time.Second
		o.WaitTimeout = 5 * time.Second
	})
	defer s.Close()
	start := time.Now()
	_, err := s.Token(context.Background())
	var te *TokenError
	if !errors.As(err, &te) || te.Code != "invalid_client" {
		t.Fatalf("err %v, want invalid_client", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a permanent error took %v to report", d)
	}
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, _ = s.Token(ctx)
		cancel()
	}
	if e.Count() != 1 {
		t.Fatalf("%d token requests within the backoff, want 1", e.Count())
	}
}

func TestCloseEndsWaiters(t *testing.T) {
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	e.Script(func(int) egresstest.Answer { return egresstest.Answer{Status: 500} })
	s := newTestSource(e, nil)
	done := make(chan error)
	go func() { _, err := s.Token(context.Background()); done <- err }()
	time.Sleep(100 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a waiter was not released by Close")
	}
}
