package verifier

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// TestKeyStatusFollowsDiscoveryAndFetches: KeyStatus reports, from memory,
// discovery pending, then failed with its error, then done with the kids
// fetched; a failed refetch later keeps the kids and says why it failed.
// A configured JWKS URL needs no discovery; in-memory keys are never
// fetched.
func TestKeyStatusFollowsDiscoveryAndFetches(t *testing.T) {
	idp := verifiertest.New()
	defer idp.Close()
	idp.SetDown(true)
	j := newJWT(t, idp, nil)
	if st := j.KeyStatus(); st.Discovery != DiscoveryPending || len(st.KeyIDs) != 0 || st.Error != "" || st.InMemory {
		t.Fatalf("before start: %+v", st)
	}
	if err := j.Start(context.Background()); err == nil {
		t.Fatal("started with the issuer down")
	}
	if st := j.KeyStatus(); st.Discovery != DiscoveryFailed || !strings.Contains(st.Error, "discovery") || !st.Fetched.IsZero() {
		t.Fatalf("discovery failed: %+v", st)
	}
	idp.SetDown(false)
	if err := j.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range idp.Keys() {
		kids = append(kids, k.ID)
	}
	st := j.KeyStatus()
	if st.Discovery != DiscoveryDone || !slices.Equal(st.KeyIDs, kids) || st.Fetched.IsZero() || st.Error != "" {
		t.Fatalf("after start: %+v, want kids %v", st, kids)
	}
	fetched := st.Fetched
	idp.SetDown(true)
	if err := j.Refresh(context.Background()); err == nil {
		t.Fatal("refreshed with the issuer down")
	}
	st = j.KeyStatus()
	if !slices.Equal(st.KeyIDs, kids) || !st.Fetched.Equal(fetched) || st.Error == "" || st.Attempted.Before(fetched) {
		t.Fatalf("after a failed refetch: %+v", st)
	}

	fixed := newJWT(t, idp, func(o *JWTOptions) { o.JWKSURL = idp.JWKSURL() })
	if st := fixed.KeyStatus(); st.Discovery != DiscoveryNone {
		t.Fatalf("configured JWKS URL: %+v", st)
	}
	var pub []jose.JSONWebKey
	for _, k := range idp.Keys() {
		pub = append(pub, k.Public())
	}
	ks, err := NewStaticKeySet(pub)
	if err != nil {
		t.Fatal(err)
	}
	mem := newJWT(t, idp, func(o *JWTOptions) { o.KeySet = ks })
	if st := mem.KeyStatus(); !st.InMemory || !slices.Equal(st.KeyIDs, kids) || st.Discovery != DiscoveryNone {
		t.Fatalf("in memory: %+v", st)
	}
}

// TestIntrospectionStatusRecordsTheEndpoint: a failing endpoint is
// reported with its error; the next answer (an inactive token is an
// answer) clears it. The token is never in the status.
func TestIntrospectionStatusRecordsTheEndpoint(t *testing.T) {
	in := verifiertest.NewIntrospector()
	defer in.Close()
	v := newIntrospection(t, in, nil)
	if st := v.Status(); !st.LastAnswer.IsZero() || st.Error != "" {
		t.Fatalf("before any call: %+v", st)
	}
	in.SetStatus(500)
	const token = "opaque-status-token-1"
	if _, err := v.Verify(context.Background(), token); err == nil {
		t.Fatal("verified with the endpoint failing")
	}
	st := v.Status()
	if st.LastFailure.IsZero() || !strings.Contains(st.Error, "500") || strings.Contains(st.Error, token) {
		t.Fatalf("after a failure: %+v", st)
	}
	in.SetStatus(0)
	before := time.Now()
	if _, err := v.Verify(context.Background(), token); err == nil {
		t.Fatal("an unknown token verified")
	}
	if st := v.Status(); st.LastAnswer.Before(before) || st.Error != "" || !st.LastFailure.IsZero() {
		t.Fatalf("after an answer: %+v", st)
	}
}
