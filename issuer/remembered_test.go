package issuer

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// countBcrypt makes f's server count its bcrypt comparisons.
func countBcrypt(f *fixture) *atomic.Int64 {
	var n atomic.Int64
	f.srv.compare = func(h, s []byte) error {
		n.Add(1)
		return bcrypt.CompareHashAndPassword(h, s)
	}
	return &n
}

func TestReturningSenderIsVerifiedWithoutBcrypt(t *testing.T) {
	now := time.Now()
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	f := newFixture(t, func(o *Options) {
		o.Now = func() time.Time { return *clock.Load() }
		o.SecretCacheTTL = time.Hour
	})
	n := countBcrypt(f)
	login := func(secret string) int {
		return f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", secret)).status
	}
	steps := []struct {
		name    string
		secret  string
		advance time.Duration
		status  int
		bcrypt  bool // whether this step pays bcrypt
	}{
		{"first login pays bcrypt", testSecret, 0, 200, true},
		{"the same secret again: keyed hash only", testSecret, 0, 200, false},
		{"and again, a minute later", testSecret, time.Minute, 200, false},
		{"a wrong secret still pays bcrypt", "wrong-secret", 0, 401, true},
		{"the right one is still known", testSecret, 0, 200, false},
		{"past the TTL: bcrypt again", testSecret, 2 * time.Hour, 200, true},
		{"known again", testSecret, 0, 200, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			next := clock.Load().Add(st.advance)
			clock.Store(&next)
			before := n.Load()
			if got := login(st.secret); got != st.status {
				t.Fatalf("status %d, want %d", got, st.status)
			}
			if got := n.Load() - before; (got > 0) != st.bcrypt {
				t.Fatalf("%d bcrypt comparisons; want bcrypt: %v", got, st.bcrypt)
			}
		})
	}
	// A new Server (what a reload builds) knows no secret.
	g := newFixture(t, nil)
	m := countBcrypt(g)
	if r := g.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret)); r.status != 200 || m.Load() == 0 {
		t.Fatalf("after a reload: %d, %d comparisons; want 200 after bcrypt", r.status, m.Load())
	}
}

func TestSecretCacheCanBeTurnedOff(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.SecretCacheTTL = -1 })
	n := countBcrypt(f)
	for range 3 {
		if r := f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "aftership", "client_secret", testSecret)); r.status != 200 {
			t.Fatalf("%d %v", r.status, r.body)
		}
	}
	if n.Load() != 3 {
		t.Fatalf("%d comparisons for 3 logins with the cache off, want 3", n.Load())
	}
}

func TestFailuresFromOneAddressStopCostingBcrypt(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.PerIPFailRate, o.PerIPFailBurst = 0.001, 5 })
	n := countBcrypt(f)
	// The real client logs in once: its secret is now known.
	if r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret)); r.status != 200 {
		t.Fatalf("%d", r.status)
	}
	n.Store(0)
	statuses := map[int]int{}
	for i := range 20 {
		r := f.post(t, formCT, form("grant_type", "client_credentials", "client_id", "guess-"+strings.Repeat("x", i), "client_secret", "nope"))
		statuses[r.status]++
	}
	if n.Load() != 5 || statuses[401] != 5 || statuses[429] != 15 {
		t.Fatalf("20 guesses from one address: %v, %d bcrypt comparisons; want 5×401 then 429 with no bcrypt", statuses, n.Load())
	}
	// The returning sender at that address is not refused.
	if r := f.post(t, formCT, form("grant_type", "client_credentials"), "Authorization", basic("aftership", testSecret)); r.status != 200 {
		t.Fatalf("the real client after the guesses: %d %v", r.status, r.body)
	}
}

func TestMixedBcryptCostsAreRefused(t *testing.T) {
	cheap, err := bcrypt.GenerateFromPassword([]byte(testSecret), bcrypt.MinCost+1)
	if err != nil {
		t.Fatal(err)
	}
	key, err := GenerateKey("ES256")
	if err != nil {
		t.Fatal(err)
	}
	dear, _ := bcrypt.GenerateFromPassword([]byte(testSecret), bcrypt.MinCost)
	_, err = New(Options{Issuer: "http://localhost", Keys: []*Key{key}, Clients: []Client{
		{ID: "a", SecretHash: dear, Scopes: []string{"w"}},
		{ID: "b", SecretHash: cheap, Scopes: []string{"w"}},
	}})
	if err == nil || !strings.Contains(err.Error(), "different bcrypt costs") {
		t.Fatalf("New with hashes of two costs: %v", err)
	}
}
