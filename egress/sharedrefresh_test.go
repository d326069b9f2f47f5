package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// acReplica is an authorization-code replica sharing through url, with
// a refresh token file of its own (as a pod's own volume).
func acReplica(t *testing.T, srv *egresstest.AuthServer, url string, tokenTimeout time.Duration) (*replica, AuthCodeOptions) {
	t.Helper()
	return acReplicaAt(t, srv, url, tokenTimeout, filepath.Join(t.TempDir(), "refresh-token"))
}

// acReplicaAt is acReplica with the refresh token file file ("": none).
func acReplicaAt(t *testing.T, srv *egresstest.AuthServer, url string, tokenTimeout time.Duration, file string) (*replica, AuthCodeOptions) {
	t.Helper()
	topts := TokenOptions{URL: srv.TokenURL(), ClientID: "deployteq-app", ClientSecret: "app-secret", Auth: AuthBasic,
		Scopes: []string{"apps.webhook:execute", "offline_access"}, Client: &http.Client{Timeout: tokenTimeout}}
	ev := &eventLog{n: map[string]int{}}
	st := sharedStore(t, url, testKey, topts, true, ev, zap.NewNop())
	o := AuthCodeOptions{Name: "deployteq", Token: topts, AuthorizeURL: srv.AuthorizeURL(), RedirectURI: "https://app.example.com/cb",
		RefreshTokenFile: file, Shared: st}
	forgetRefreshFile(t, o.RefreshTokenFile)
	s := NewSource(SourceOptions{Name: "deployteq", Token: topts, Grant: NewRefreshGrant(o), Shared: st, WaitTimeout: 5 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(s.Close)
	return &replica{src: s, store: st, events: ev}, o
}

// authorizeShared runs the consent for o (authorize with a shared entry).
func authorizeShared(t *testing.T, o AuthCodeOptions) {
	t.Helper()
	a, err := NewAuthorization(o)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := a.Code(consent(t, a))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exchange(t.Context(), code); err != nil {
		t.Fatal(err)
	}
}

// expire deletes the shared access token, as its TTL would.
func expire(t *testing.T, r *replica) {
	t.Helper()
	if err := r.store.c.Del(t.Context(), r.store.tokenKey()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestSharedRefreshRotatesOnceForTheFleet: authorize seeds Redis; then,
// each time the access token runs out, three replicas asking at once
// make one refresh, and each uses the rotated refresh token the previous
// one stored: the vendor never sees a refresh token twice. Redis holds
// neither token in clear.
func TestSharedRefreshRotatesOnceForTheFleet(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	rd := redistest.Start(t)
	var rs []*replica
	var o AuthCodeOptions
	for range 3 {
		r, ro := acReplica(t, srv, rd.URL(), 2*time.Second)
		rs, o = append(rs, r), ro
	}
	authorizeShared(t, o)
	for round := 1; round <= 5; round++ {
		var wg sync.WaitGroup
		toks := make([]string, len(rs))
		for i, r := range rs {
			wg.Go(func() {
				tok, err := r.src.o.Grant.Token(t.Context())
				if err != nil {
					t.Errorf("round %d replica %d: %v", round, i, err)
					return
				}
				toks[i] = tok.Value
			})
		}
		wg.Wait()
		if srv.Refreshes() != round || srv.ReuseDetected() != 0 {
			t.Fatalf("round %d: %d refreshes (want %d), reuse detected %d", round, srv.Refreshes(), round, srv.ReuseDetected())
		}
		for i := range toks {
			if toks[i] != toks[0] || !srv.Valid(toks[i]) {
				t.Fatalf("round %d: replica %d holds another or an invalid token", round, i)
			}
		}
		noneInClear(t, rd.URL(), srv.Issued())
		expire(t, rs[0])
	}
}

// cutProxy is a TCP proxy to a Redis server that can cut one replica
// off (a network partition): its commands then fail, while the others'
// still reach the server.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

func (p *cutProxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
		go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
	}
}

// Cut closes every connection and refuses new ones until Heal.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Heal lets connections through again.
func (p *cutProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// TestSharedRefreshWaitsForAnUnstoredRotation: replica A's refresh is at
// the vendor (the refresh token rotated there) when A loses Redis. A
// keeps the rotated token, retries the write until its lock expires,
// and gives up for now. Replica X then takes the lock, finds the record
// marked spending by A, and sends nothing; once A reaches Redis again
// it stores the rotated token, and X uses that one. The vendor never
// sees a refresh token twice.
func TestSharedRefreshWaitsForAnUnstoredRotation(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	rd := redistest.Start(t)
	p := newCutProxy(t, rd.Addr())
	a, ao := acReplica(t, srv, p.URL(), 3*time.Second) // lock 6 s, a spending mark honoured 12 s
	x, _ := acReplica(t, srv, rd.URL(), 3*time.Second)
	authorizeShared(t, ao)
	cutAfterRotation(t, srv, p, a, ao)
	lock := x.store.lockKey()
	eventually(t, "A's lock to expire", func() bool { return x.store.c.Exists(t.Context(), lock).Val() == 0 })
	before := srv.Requests()
	if _, err := x.src.o.Grant.Token(t.Context()); err == nil || !strings.Contains(err.Error(), "has not stored its rotated refresh token") {
		t.Fatalf("X while A's rotation is unstored: %v", err)
	}
	if srv.Requests() != before || srv.ReuseDetected() != 0 {
		t.Fatalf("X sent the spent refresh token (reuse detected %d)", srv.ReuseDetected())
	}
	p.Heal()
	if _, err := a.src.o.Grant.Token(t.Context()); err != nil {
		t.Fatalf("A after Redis came back: %v", err)
	}
	expire(t, x)
	tok, err := x.src.o.Grant.Token(t.Context())
	if err != nil || !srv.Valid(tok.Value) {
		t.Fatalf("X after A stored its token: %v", err)
	}
	if srv.ReuseDetected() != 0 {
		t.Fatalf("the vendor saw a refresh token twice")
	}
}

// cutAfterRotation cuts replica a off Redis while its refresh is at the
// vendor (the refresh token rotated there), and waits until a gives up
// writing the rotated token for now: a copy is in its file.
func cutAfterRotation(t *testing.T, srv *egresstest.AuthServer, p *cutProxy, a *replica, ao AuthCodeOptions) {
	t.Helper()
	before := fileToken(t, ao.RefreshTokenFile)
	arrived, _, release := srv.StallRefreshes()
	defer release()
	aErr := make(chan error, 1)
	go func() { _, err := a.src.o.Grant.Token(context.Background()); aErr <- err }()
	waitFor(t, arrived, "A's refresh at the vendor")
	p.Cut()
	release()
	err := waitFor(t, aErr, "A to give up writing the rotated token")
	var te *TokenError
	if !errors.As(err, &te) || te.Code != errorNotStored {
		t.Fatalf("A: %v, want %s", err, errorNotStored)
	}
	if now := fileToken(t, ao.RefreshTokenFile); now == before || now == "" {
		t.Fatal("the rotated refresh token Redis did not take is not in A's file")
	}
}

// TestSharedShutdownStoresAnUnstoredRotation: a gate whose rotated
// refresh token Redis did not take shuts down once Redis answers again:
// the drain writes the token, and a replica started later refreshes with
// it (the vendor never sees a refresh token twice).
func TestSharedShutdownStoresAnUnstoredRotation(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	rd := redistest.Start(t)
	p := newCutProxy(t, rd.Addr())
	a, ao := acReplica(t, srv, p.URL(), 2*time.Second)
	authorizeShared(t, ao)
	cutAfterRotation(t, srv, p, a, ao)
	p.Heal()
	a.src.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := DrainRefreshes(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	y, _ := acReplica(t, srv, rd.URL(), 2*time.Second) // the next start
	if _, err := y.src.o.Grant.Token(t.Context()); err != nil {
		t.Fatalf("after the drain: %v", err)
	}
	if srv.ReuseDetected() != 0 {
		t.Fatal("the vendor saw a refresh token twice")
	}
}

// TestSharedRefreshGoneFromRedisIsNotReseeded: Redis loses the shared
// refresh token (flushed, or restarted without persistence). A replica
// that had read it does not re-seed it from its own copy, which another
// replica has spent since: it asks for authorize, sends nothing, and
// works again once authorize stored a new consent.
func TestSharedRefreshGoneFromRedisIsNotReseeded(t *testing.T) {
	srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
	defer srv.Close()
	rd := redistest.Start(t)
	x, xo := acReplica(t, srv, rd.URL(), 2*time.Second)
	a, _ := acReplica(t, srv, rd.URL(), 2*time.Second)
	authorizeShared(t, xo) // X's file holds the first refresh token
	if _, err := x.src.o.Grant.Token(t.Context()); err != nil {
		t.Fatal(err)
	}
	expire(t, x)
	if _, err := a.src.o.Grant.Token(t.Context()); err != nil { // A rotates: X's file copy is spent
		t.Fatal(err)
	}
	if err := x.store.c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	before := srv.Requests()
	_, err := x.src.o.Grant.Token(t.Context())
	var te *TokenError
	if !errors.As(err, &te) || te.Code != errorAuthorizationRequired || !strings.Contains(te.Description, "gone from Redis") {
		t.Fatalf("X with the record gone: %v", err)
	}
	if srv.Requests() != before || srv.ReuseDetected() != 0 {
		t.Fatalf("X sent its copy of a spent refresh token (reuse detected %d)", srv.ReuseDetected())
	}
	authorizeShared(t, xo)
	if _, err := x.src.o.Grant.Token(t.Context()); err != nil {
		t.Fatalf("after a new consent: %v", err)
	}
}

// TestShared401InvalidatesOnce: the vendor revokes the fleet's token;
// each replica's next app request gets a 401 from the upstream. The
// first drops the shared token and fetches a new one; the others find
// the new one (their compare-and-delete of the refused token deletes
// nothing): one token request for the fleet, every app request passes.
func TestShared401InvalidatesOnce(t *testing.T) {
	rd := redistest.Start(t)
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	up := egresstest.NewUpstream(e)
	defer up.Close()
	var rs []*replica
	var hs []*Handler
	for range 3 {
		r := ccReplica(t, e, rd.URL(), testKey, nil)
		rs, hs = append(rs, r), append(hs, newTestHandler(t, up.URL, r.src, nil))
	}
	for i, h := range hs {
		if code := serveOne(h); code != http.StatusOK {
			t.Fatalf("replica %d: %d before the revocation", i, code)
		}
	}
	first, _ := rs[0].src.Token(t.Context())
	e.Revoke(first.Value)
	for i, h := range hs { // one after the other: each holds the revoked token
		if code := serveOne(h); code != http.StatusOK {
			t.Fatalf("replica %d: %d after the revocation", i, code)
		}
	}
	if e.Count() != 2 {
		t.Fatalf("token requests = %d, want 2 (the first and one after the 401)", e.Count())
	}
	n := 0
	for _, r := range rs {
		n += r.events.count(SharedInvalidated)
	}
	if n != 1 {
		t.Fatalf("the shared token was invalidated %d times, want once", n)
	}
}

// serveOne sends one app request through h and returns the status.
func serveOne(h *Handler) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/things", strings.NewReader(`{"a":1}`)))
	return rec.Code
}

// eventually polls cond for up to 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
