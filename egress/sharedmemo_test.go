package egress

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/signature/redistest"
)

// restart drops the process's state of the refresh token file at path,
// as a restart of the gate does (what is on disk stays).
func restart(path string) {
	refreshFiles.Lock()
	defer refreshFiles.Unlock()
	delete(refreshFiles.m, resolvePath(path))
}

// refreshNeedsAuthorize asserts that r's next token request fails with
// authorization_required naming why, and sends nothing to the vendor.
func refreshNeedsAuthorize(t *testing.T, srv *egresstest.AuthServer, r *replica, why string) {
	t.Helper()
	before := srv.Requests()
	_, err := r.src.o.Grant.Token(t.Context())
	var te *TokenError
	if !errors.As(err, &te) || te.Code != errorAuthorizationRequired || !strings.Contains(te.Description, why) ||
		!strings.Contains(te.Description, "tokengate authorize") {
		t.Fatalf("got %v, want %s naming %q and authorize", err, errorAuthorizationRequired, why)
	}
	if srv.Requests() != before || srv.ReuseDetected() != 0 {
		t.Fatalf("a refresh token was sent (reuse detected %d)", srv.ReuseDetected())
	}
}

// refreshes asserts that r's next token request (after the shared
// access token is gone) gets a token the vendor accepts.
func refreshes(t *testing.T, srv *egresstest.AuthServer, r *replica, what string) {
	t.Helper()
	expire(t, r)
	tok, err := r.src.o.Grant.Token(t.Context())
	if err != nil || !srv.Valid(tok.Value) {
		t.Fatalf("%s: %v", what, err)
	}
	if srv.ReuseDetected() != 0 {
		t.Fatalf("%s: the vendor saw a refresh token twice and revoked the grant", what)
	}
}

// TestSharedRefreshRestartedReplicaDoesNotReseedItsCopy: replica X
// rotates the shared refresh token (its file keeps a copy), replica A
// rotates it again, then Redis loses everything (FLUSHALL, or a restart
// without persistence) and X restarts. X does not seed Redis from its
// file, whose token A spent: the file's <file>.shared (mode 0600, no
// token in it) says the token came from Redis. X asks for authorize and
// sends nothing. Authorize resets that: a shared one stores the consent
// in Redis; an unshared one (the file only) makes the file seed Redis
// again. Either way both replicas work on.
func TestSharedRefreshRestartedReplicaDoesNotReseedItsCopy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		authorize func(t *testing.T, o AuthCodeOptions)
	}{
		{"shared authorize", authorizeShared},
		{"unshared authorize, the file seeds", func(t *testing.T, o AuthCodeOptions) {
			o.Shared = nil
			authorized(t, o)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
			defer srv.Close()
			rd := redistest.Start(t)
			x, xo := acReplica(t, srv, rd.URL(), 2*time.Second)
			a, _ := acReplica(t, srv, rd.URL(), 2*time.Second)
			authorizeShared(t, xo)
			refreshes(t, srv, x, "X") // X's file: the token A spends next
			refreshes(t, srv, a, "A")
			if err := x.store.c.FlushAll(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
			x.src.Close()
			restart(xo.RefreshTokenFile)
			x2, xo2 := acReplicaAt(t, srv, rd.URL(), 2*time.Second, xo.RefreshTokenFile)
			refreshNeedsAuthorize(t, srv, x2, "gone from Redis")

			side := xo.RefreshTokenFile + sidecarSuffix
			fi, err := os.Stat(side)
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v, want mode 0600", side, err)
			}
			b, _ := os.ReadFile(side)
			for _, tok := range srv.Issued() {
				if strings.Contains(string(b), tok) {
					t.Fatalf("%s holds a token in clear", side)
				}
			}
			tc.authorize(t, xo2)
			refreshes(t, srv, x2, "X after a new consent")
			refreshes(t, srv, a, "A after a new consent")
		})
	}
}

// TestSharedRefreshGoneBackIsNotSent: Redis's record goes back to a
// generation the replicas rotated past (a failover to a lagging replica,
// a restore from backup, writes lost with appendfsync everysec),
// replayed as an operator would: the record saved at one generation,
// written back (DEL, HSET) two rotations later. Replica A, which only
// read the shared access tokens (and so learnt the newest generation),
// sends nothing, asks for authorize and reports the generation it saw on
// the record; replica Y, which rotated once and then missed X's
// rotation (so it believes it holds the newest), sees that report and
// does not restore its token, which X spent. Then either the holder (X,
// which rotated last) restores
// the newest token as the generation after every one seen, or an
// operator authorizes again; either way every replica works on, and the
// vendor never sees a refresh token twice.
func TestSharedRefreshGoneBackIsNotSent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recover func(t *testing.T, srv *egresstest.AuthServer, x *replica, xo AuthCodeOptions)
	}{
		{"the holder restores the newest", func(t *testing.T, srv *egresstest.AuthServer, x *replica, _ AuthCodeOptions) {
			refreshes(t, srv, x, "X, the holder")
		}},
		{"authorize again, the holder gone", func(t *testing.T, _ *egresstest.AuthServer, x *replica, xo AuthCodeOptions) {
			x.src.Close()
			authorizeShared(t, xo)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
			defer srv.Close()
			rd := redistest.Start(t)
			x, xo := acReplica(t, srv, rd.URL(), 2*time.Second)
			y, _ := acReplica(t, srv, rd.URL(), 2*time.Second)
			a, _ := acReplica(t, srv, rd.URL(), 2*time.Second)
			authorizeShared(t, xo)
			refreshes(t, srv, x, "X")
			c, key := x.store.c, x.store.refreshKey()
			saved, err := c.HMGet(t.Context(), key, "g", "ct").Result()
			if err != nil {
				t.Fatal(err)
			}
			refreshes(t, srv, y, "Y")                                   // spends the saved token
			refreshes(t, srv, x, "X again")                             // X rotated last
			if _, err := a.src.o.Grant.Token(t.Context()); err != nil { // A takes X's access token
				t.Fatal(err)
			}
			if err := c.Del(t.Context(), key, x.store.tokenKey()).Err(); err != nil {
				t.Fatal(err)
			}
			if err := c.HSet(t.Context(), key, "g", saved[0], "st", stateReady, "ct", saved[1]).Err(); err != nil {
				t.Fatal(err)
			}
			refreshNeedsAuthorize(t, srv, a, "older than generation")
			refreshNeedsAuthorize(t, srv, y, "older than generation")
			tc.recover(t, srv, x, xo)
			refreshes(t, srv, a, "A after the recovery")
			refreshes(t, srv, y, "Y after the recovery")
		})
	}
}

// TestSharedUnsharedAndBackDoesNotSendTheStaleRecord: a reload switches
// a shared entry to unshared; its refreshes rotate the token in the
// file three times, while Redis keeps the token this replica spent
// first. A reload back to shared (the gate rebuilds the grant for the
// same file), or a restart while unshared, does not send Redis's stale
// token: the replica knows it spent it (fingerprints in memory and in
// <file>.shared) and writes its own newest token to Redis as the next
// generation, then refreshes with that.
func TestSharedUnsharedAndBackDoesNotSendTheStaleRecord(t *testing.T) {
	for _, restarted := range []bool{false, true} {
		name := "reload"
		if restarted {
			name = "restart while unshared"
		}
		t.Run(name, func(t *testing.T) {
			srv := egresstest.NewAuthServer("deployteq-app", "app-secret", time.Hour)
			defer srv.Close()
			rd := redistest.Start(t)
			x, xo := acReplica(t, srv, rd.URL(), 2*time.Second)
			authorizeShared(t, xo)
			refreshes(t, srv, x, "shared")
			x.src.Close()

			uo := xo // the reload: the same entry and file, unshared
			uo.Shared = nil
			u := NewSource(SourceOptions{Name: "deployteq", Token: uo.Token, Grant: NewRefreshGrant(uo)})
			defer u.Close()
			for i := range 3 {
				if _, err := u.o.Grant.Token(context.Background()); err != nil {
					t.Fatalf("unshared refresh %d: %v", i, err)
				}
			}
			if restarted {
				restart(xo.RefreshTokenFile)
			}
			back, _ := acReplicaAt(t, srv, rd.URL(), 2*time.Second, xo.RefreshTokenFile) // the reload back to shared
			refreshes(t, srv, back, "shared again")
			refreshes(t, srv, back, "shared again, once more")
			if srv.Refreshes() != 6 {
				t.Fatalf("%d refreshes, want 6", srv.Refreshes())
			}
		})
	}
}
