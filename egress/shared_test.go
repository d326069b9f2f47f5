package egress

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// replica is one gate's view of a shared entry: its own Redis client,
// store and Source.
type replica struct {
	src    *Source
	store  *SharedStore
	events *eventLog
}

type eventLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *eventLog) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[s]++
}

func (e *eventLog) count(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[s]
}

// redisClient is a client of url with short timeouts.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond, 1
	o.DisableIdentity = true
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func sharedStore(t *testing.T, url string, key []byte, topts TokenOptions, authCode bool, ev *eventLog, log *zap.Logger) *SharedStore {
	t.Helper()
	st, err := NewSharedStore(SharedOptions{Client: redisClient(t, url), Key: key, Name: "vendor", Token: topts, AuthorizationCode: authCode,
		OpTimeout: 300 * time.Millisecond, Logger: log, OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// ccReplica is a client-credentials replica sharing through url.
func ccReplica(t *testing.T, e *egresstest.TokenEndpoint, url string, key []byte, log *zap.Logger) *replica {
	t.Helper()
	if log == nil {
		log = zap.NewNop()
	}
	topts := TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret, Auth: AuthBasic, Scopes: []string{"a", "b"},
		Client: &http.Client{Timeout: 2 * time.Second}}
	ev := &eventLog{n: map[string]int{}}
	st := sharedStore(t, url, key, topts, false, ev, log)
	s := NewSource(SourceOptions{Name: "vendor", Token: topts, Shared: st, Logger: log, WaitTimeout: 5 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(s.Close)
	return &replica{src: s, store: st, events: ev}
}

// redisValues returns every key and value in the server (hash fields
// and values included), as text.
func redisValues(t *testing.T, url string) string {
	t.Helper()
	c := redisClient(t, url)
	ctx := t.Context()
	var b strings.Builder
	iter := c.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		b.WriteString(k + "\n")
		switch c.Type(ctx, k).Val() {
		case "string":
			b.WriteString(c.Get(ctx, k).Val() + "\n")
		case "hash":
			for f, v := range c.HGetAll(ctx, k).Val() {
				b.WriteString(f + "=" + v + "\n")
			}
		default:
			t.Fatalf("key %s of type %s", k, c.Type(ctx, k).Val())
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// noneInClear fails if any of toks appears in Redis.
func noneInClear(t *testing.T, url string, toks []string) {
	t.Helper()
	all := redisValues(t, url)
	if all == "" {
		t.Fatal("Redis is empty: nothing was shared")
	}
	for _, tok := range toks {
		if tok != "" && strings.Contains(all, tok) {
			t.Fatalf("Redis holds a token in clear")
		}
	}
}

// TestSharedTokenOneRequestForTheFleet: three replicas asking at once
// make one token request; every one gets its token; Redis holds it only
// sealed.
func TestSharedTokenOneRequestForTheFleet(t *testing.T) {
	srv := redistest.Start(t)
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	e.Script(func(int) egresstest.Answer { return egresstest.Answer{Delay: 200 * time.Millisecond} })
	rs := []*replica{ccReplica(t, e, srv.URL(), testKey, nil), ccReplica(t, e, srv.URL(), testKey, nil), ccReplica(t, e, srv.URL(), testKey, nil)}
	var wg sync.WaitGroup
	toks := make([]string, len(rs))
	for i, r := range rs {
		wg.Go(func() {
			tok, err := r.src.Token(t.Context())
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
				return
			}
			toks[i] = tok.Value
		})
	}
	wg.Wait()
	if got := e.Count(); got != 1 {
		t.Fatalf("token requests = %d, want 1 for the three replicas", got)
	}
	for i := range toks {
		if toks[i] != toks[0] {
			t.Fatalf("replica %d got another token", i)
		}
	}
	noneInClear(t, srv.URL(), e.Issued())
}

// TestSharedTokenIsBoundToItsEntryAndKey: a sealed token copied to
// another entry's key does not open there, nor with another token_key;
// each then requests its own.
func TestSharedTokenIsBoundToItsEntryAndKey(t *testing.T) {
	srv := redistest.Start(t)
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	a := ccReplica(t, e, srv.URL(), testKey, nil)
	ta, err := a.src.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Another client of the same vendor, same entry name: another key.
	other := TokenOptions{URL: e.URL, ClientID: "other-client", ClientSecret: "s", Scopes: []string{"a", "b"}}
	b := sharedStore(t, srv.URL(), testKey, other, false, &eventLog{n: map[string]int{}}, zap.NewNop())
	if b.tokenKey() == a.store.tokenKey() {
		t.Fatal("two clients share one key")
	}
	c := redisClient(t, srv.URL())
	v := c.Get(t.Context(), a.store.tokenKey()).Val()
	if err := c.Set(t.Context(), b.tokenKey(), v, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.loadToken(t.Context()); err != nil || got != nil {
		t.Fatalf("a token sealed for another entry opened: %v %v", got != nil, err)
	}
	same := TokenOptions{URL: e.URL, ClientID: testID, ClientSecret: testSecret, Scopes: []string{"b", "a"}}
	otherKey := sharedStore(t, srv.URL(), bytes.Repeat([]byte{8}, 32), same, false, &eventLog{n: map[string]int{}}, zap.NewNop())
	if otherKey.tokenKey() != a.store.tokenKey() {
		t.Fatal("the same client and scopes (in another order) make another key")
	}
	if got, err := otherKey.loadToken(t.Context()); err != nil || got != nil {
		t.Fatalf("a token opened with another key: %v %v", got != nil, err)
	}
	if got, err := a.store.loadToken(t.Context()); err != nil || got == nil || got.Value != ta.Value {
		t.Fatalf("the entry's own token does not open: %v", err)
	}
}

// TestSharedTokenFallsBackWhenRedisIsDown: with Redis gone, each replica
// requests its own token (logged once per outage, counted each time),
// never none, and does not ask Redis again for redisRetryAfter; when
// Redis answers again the tokens are shared again.
func TestSharedTokenFallsBackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	e := egresstest.NewTokenEndpoint(testID, testSecret, time.Hour)
	defer e.Close()
	core, logs := observer.New(zapcore.InfoLevel)
	r1 := ccReplica(t, e, srv.URL(), testKey, zap.New(core))
	r2 := ccReplica(t, e, srv.URL(), testKey, nil)
	srv.Stop()
	for i, r := range []*replica{r1, r2} {
		if _, err := r.src.Token(t.Context()); err != nil {
			t.Fatalf("replica %d got no token with Redis down: %v", i, err)
		}
	}
	if _, err := r1.src.o.Grant.Token(t.Context()); err != nil { // a renewal, still without Redis
		t.Fatal(err)
	}
	if e.Count() != 3 {
		t.Fatalf("token requests = %d, want each replica's own (3)", e.Count())
	}
	if n := logs.FilterMessageSnippet("does not answer").Len(); n != 1 {
		t.Fatalf("%d fallback log lines, want 1 per outage", n)
	}
	if n := r1.events.count(SharedFallback); n != 2 {
		t.Fatalf("fallbacks counted: %d, want 2", n)
	}
	srv.Start()
	for _, r := range []*replica{r1, r2} {
		r.src.o.Grant.(*sharedGrant).skipUntil.Store(0) // as if redisRetryAfter had passed
	}
	t1, err := r1.src.o.Grant.Token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t2, err := r2.src.o.Grant.Token(t.Context())
	if err != nil || t2.Value != t1.Value {
		t.Fatalf("after Redis came back the replicas do not share: %v", err)
	}
	if logs.FilterMessageSnippet("answers again").Len() != 1 || e.Count() != 4 {
		t.Fatalf("after Redis came back: %d token requests, logs %v", e.Count(), logs.All())
	}
}
