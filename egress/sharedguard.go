package egress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.uber.org/zap"
)

// authorizeHint is how an operator gives a shared entry a new consent.
func (g *RefreshGrant) authorizeHint() string {
	return fmt.Sprintf("run `tokengate authorize %s --config FILE` (it stores the refresh token in Redis, encrypted)", g.o.Name)
}

// authorizationRequired is the 503 (a permanent failure: no token is
// sent until an operator acts, or the holder restores the newest) that
// names why.
func (g *RefreshGrant) authorizationRequired(why string) *TokenError {
	return &TokenError{Code: errorAuthorizationRequired, Status: http.StatusUnauthorized, Description: why + ": " + g.authorizeHint()}
}

// persistMemo writes what this replica knows beside its refresh token
// file; f.sem is held. A failure is logged: the memory copy still
// guards this process.
func (g *RefreshGrant) persistMemo() {
	if err := g.file.persist(); err != nil {
		g.log.Warn("what this replica knows of the shared refresh token could not be written beside the refresh token file: after a restart it may not know it",
			zap.String("file", g.file.sidecar()), zap.Error(err))
	}
}

// seed makes the first record from the refresh token file, only when
// the file's token has never been in Redis as far as this replica knows
// (m.Shared unset): a file `tokengate authorize` wrote for an unshared
// entry, or one an unshared entry rotated. A record that vanished
// (Redis flushed, or restarted without persistence) is not re-made from
// a copy this replica holds, even after a restart (the memo is beside
// the file): another replica may have spent it since.
func (g *RefreshGrant) seed(ctx context.Context, l *sharedLock, m *sharedMemo) (*refreshRecord, error) {
	f := g.file
	if m.Shared {
		return nil, g.authorizationRequired("the shared refresh token is gone from Redis (flushed, or restarted without persistence); the copy this replica holds may have been spent by another, so none is sent")
	}
	var rt string
	if f.path != "" {
		if b, err := os.ReadFile(f.path); err == nil {
			rt = strings.TrimSpace(string(b))
		}
	}
	switch {
	case rt == "":
		return nil, g.authorizationRequired("no shared refresh token in Redis yet")
	case rt == f.refused:
		return nil, g.authorizationRequired("the refresh token in " + f.path + " was refused (invalid_grant)")
	case m.spent(rt):
		return nil, g.authorizationRequired("the refresh token in " + f.path + " is one this replica already spent")
	}
	// Noted beside the file before Redis holds it: if this process dies
	// once it is stored, the next start does not seed it again.
	m.Shared = true
	if err := f.persist(); err != nil {
		m.Shared = false
		return nil, &notRequested{fmt.Errorf("the refresh token file is not seeded into Redis: %s, which would record that it was, cannot be written: %w", f.sidecar(), err)}
	}
	rec, err := g.o.Shared.seedRefresh(ctx, l, rt)
	if err == nil && rec == nil {
		err = errors.New("no record after seeding")
	}
	if err != nil {
		if again, lerr := g.o.Shared.loadRefresh(ctx); lerr == nil && again == nil {
			m.Shared = false // certainly not stored: the file may seed later
			g.persistMemo()
		}
		return nil, &notRequested{fmt.Errorf("seeding the shared refresh token from %s: %w", f.path, err)}
	}
	if rec.rt == rt {
		m.hold(rec.gen, rt)
		f.held = rt
	}
	g.persistMemo()
	g.log.Info("the shared refresh token was seeded from the refresh token file", zap.String("refresh_token_file", f.path))
	return rec, nil
}

// restore answers a record this replica must not send: older than a
// generation it saw (Redis went back: a failover to a lagging replica, a
// restore from backup, writes lost), or holding a token it spent (it
// refreshed without Redis meanwhile, unshared). If it rotated last and
// still holds the newest token, and no replica reported a newer
// generation on the record (hw), that token replaces the record as the
// generation after every one seen; otherwise nothing is sent, the
// generation this replica saw is reported on the record, and the 503
// names the cause until the replica that holds the newest restores it
// (at its next refresh) or an operator authorizes again.
//
// A replica knows the generations it rotated, read in the record, or
// read with a shared access token (each replica renews its access token
// from the shared one, so it learns every generation moments after it
// is stored). One that rotated and then missed every later generation
// until Redis went back (cut off from Redis meanwhile) believes it holds
// the newest; if it asks before any replica that knows better reported
// on the record, it restores a token that may be spent.
func (g *RefreshGrant) restore(ctx context.Context, l *sharedLock, rec *refreshRecord, m *sharedMemo) (*refreshRecord, error) {
	f, st := g.file, g.o.Shared
	why := fmt.Sprintf("the shared refresh token in Redis (generation %d) is one this replica already spent (Redis went back, or kept it while this replica refreshed unshared)", rec.gen)
	if rec.gen < m.Max {
		why = fmt.Sprintf("the shared refresh token in Redis (generation %d) is older than generation %d, which this replica saw: Redis went back (a failover to a lagging replica, a restore from backup, writes lost in a crash)", rec.gen, m.Max)
	}
	held, ok := f.heldToken(m)
	if !m.newest() || !ok || rec.hw > m.Max {
		if rec.gen < m.Max && rec.hw < m.Max {
			if err := st.markStale(ctx, l, rec.gen, m.Max); err != nil {
				g.log.Warn("the generation this replica saw could not be noted on the stale shared refresh token", zap.Error(err))
			}
		}
		return nil, g.authorizationRequired(why + "; it may be spent, so none is sent; the replica that holds the newest restores it at its next refresh; if none does")
	}
	gen := max(m.Max, rec.gen, rec.hw) + 1
	if err := st.restoreRefresh(ctx, l, rec.gen, gen, held); err != nil {
		return nil, &notRequested{fmt.Errorf("restoring the newest refresh token in Redis: %w", err)}
	}
	m.hold(gen, held)
	g.persistMemo()
	g.log.Warn(why+": this replica rotated last and restored the newest refresh token it holds", zap.Uint64("generation", gen))
	return &refreshRecord{gen: gen, state: stateReady, rt: held}, nil
}

// rotatedUnshared notes an unshared refresh of an entry that may have
// been shared before or be shared after a reload: rt is spent (never
// sent again, and a shared record holding it is stale), next is the
// newest token this replica holds, and the file, which no other replica
// has seen, may seed an empty Redis. f.sem is held.
func (g *RefreshGrant) rotatedUnshared(rt, next string) {
	m := &g.file.memo
	m.spend(rt)
	m.Held, m.Shared = fingerprint(next), false
	g.file.held = next
	g.persistMemo()
}

// consentedUnshared notes a new consent stored in the file of an
// unshared entry (`tokengate authorize`): the file's token is the newest
// and has never been in Redis. f.sem is held.
func (f *refreshFile) consentedUnshared(rt string) error {
	m := f.knowledge(zap.NewNop())
	m.Gen, m.Held, m.Shared = m.Max, fingerprint(rt), false
	f.held = rt
	return f.persist()
}
