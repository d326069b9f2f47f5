package egress

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// commitRetry is the pause between attempts to store a rotated refresh
// token in Redis while the lock is still held.
const commitRetry = 100 * time.Millisecond

// staleAfter is how long a spending mark is honoured: past it the
// spender has died or lost Redis for longer than its lock and its
// token request together, and another replica takes over (as a restart
// of a single gate would send the token its file holds).
func (s *SharedStore) staleAfter() time.Duration { return 2 * s.lockTTL }

// tokenLocked is Token for an entry whose refresh token is shared: the
// caller holds the shared lock l. The record is read (a newer generation
// than this replica last saw is simply the one used), marked spending,
// the refresh sent, and the rotated token stored as the next generation
// before the lock is released: in the refresh token file first, if there
// is one (a local copy), then in Redis, retried until it is written or
// the lock expires. A token Redis did not take is kept in memory and
// written by the next attempt (or at shutdown), and meanwhile the record
// stays marked: no other replica sends the spent one.
func (g *RefreshGrant) tokenLocked(ctx context.Context, l *sharedLock) (*Token, error) {
	st, f := g.o.Shared, g.file
	release, err := f.lock(ctx)
	if err != nil {
		return nil, &notRequested{fmt.Errorf("waiting for another refresh in this process: %w", err)}
	}
	defer release()
	if err := ctx.Err(); err != nil {
		return nil, &notRequested{err}
	}
	timeout := g.o.Token.timeout()
	run, err := f.begin(g.epoch, g.log, timeout)
	if err != nil {
		return nil, &notRequested{err}
	}
	defer f.end(run)
	ctx = context.WithoutCancel(ctx) // from here on, only the bounds below stop it
	if f.pendingCommit != nil {
		if err := f.pendingCommit(ctx); err != nil {
			return nil, g.notStoredShared(err)
		}
	}
	m := f.knowledge(g.log)
	defer g.persistMemo()
	rec, err := st.loadRefresh(ctx)
	if err != nil {
		return nil, &notRequested{fmt.Errorf("reading the shared refresh token: %w", err)}
	}
	if rec == nil {
		if rec, err = g.seed(ctx, l, m); err != nil {
			return nil, err
		}
	}
	m.Shared = true
	stale := rec.gen < m.Max || m.spent(rec.rt)
	m.observe(rec.gen)
	switch {
	case rec.state == stateRefused || rec.rt == f.refused:
		return nil, &TokenError{Code: errorAuthorizationRequired, Status: http.StatusUnauthorized, Description: fmt.Sprintf(
			"the shared refresh token was refused (invalid_grant: revoked or expired): run `tokengate authorize %s --config FILE`", g.o.Name)}
	case rec.state == stateSpending && rec.spender != f.id && rec.age < st.staleAfter():
		return nil, &notRequested{errors.New("another replica's refresh has not stored its rotated refresh token yet: waiting for it (the old one may be spent, and a vendor with reuse detection revokes the grant when it comes back)")}
	case stale:
		if rec, err = g.restore(ctx, l, rec, m); err != nil {
			return nil, err
		}
	case rec.state == stateSpending && rec.spender != f.id:
		g.log.Warn("another replica's refresh never stored a rotated refresh token: taking over with the stored one", zap.Duration("marked_for", rec.age.Round(time.Second)))
	}
	if err := st.markSpending(ctx, l, rec.gen, f.id); err != nil {
		return nil, &notRequested{err}
	}
	rt := rec.rt
	r := g.o.Token.redactor(append(heldFrom(ctx), rt, f.prev)...)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	tok, err := g.o.config().TokenSource(g.o.client(rctx), &oauth2.Token{RefreshToken: rt}).Token()
	if err != nil {
		te := classify(err, r)
		state := stateReady
		if te.Code == "invalid_grant" {
			f.refused, state = rt, stateRefused
			te.Description += fmt.Sprintf("; the refresh token was refused: run `tokengate authorize %s --config FILE`", g.o.Name)
		}
		st.settle(rec.gen, f.id, state)
		return nil, r.seal(te)
	}
	r = r.withTokens(tok.RefreshToken)
	gen := rec.gen
	if tok.RefreshToken == "" || tok.RefreshToken == rt {
		st.settle(rec.gen, f.id, stateReady)
	} else {
		f.prev, gen = rt, rec.gen+1
		m.spend(rt)
		if err := g.storeRotated(l, rec.gen, tok.RefreshToken); err != nil {
			return nil, r.seal(g.notStoredShared(err))
		}
	}
	t, err := accept(tok, sent, g.o.Token, r)
	if t != nil {
		t.refreshGen = gen
	}
	return t, r.seal(err)
}

// storeRotated writes the rotated refresh token rt, successor of
// generation gen: to the file first (a local copy), then to Redis, tried
// again until written or l expires. Not written, it stays pending (in
// memory, and the file): the next attempt, or shutdown, writes it.
func (g *RefreshGrant) storeRotated(l *sharedLock, gen uint64, rt string) error {
	st, f := g.o.Shared, g.file
	f.memo.hold(gen+1, rt) // noted beside the file before the file holds it
	f.held = rt
	g.persistMemo()
	if f.path != "" {
		if err := g.o.write(f, rt); err != nil {
			g.log.Warn("the rotated refresh token could not be written to the refresh token file (a copy: Redis holds the shared one)",
				zap.String("refresh_token_file", f.path), zap.Error(err))
		}
	}
	commit := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, st.opTimeout)
		defer cancel()
		current, err := st.commitRefresh(ctx, gen, rt)
		if err != nil {
			return err
		}
		if !current {
			g.log.Warn("a new consent replaced the shared refresh token while the rotated one was being stored: the rotated one belongs to the old consent and is dropped")
		}
		f.pending, f.pendingCommit, f.storeErr = "", nil, nil
		return nil
	}
	for {
		err := commit(context.Background())
		if err == nil {
			return nil
		}
		if time.Now().Add(commitRetry).After(l.deadline) {
			f.pending, f.pendingCommit, f.storeErr = rt, commit, err
			return err
		}
		time.Sleep(commitRetry)
	}
}

func (g *RefreshGrant) notStoredShared(err error) *TokenError {
	return &TokenError{Code: errorNotStored, Err: err, Description: clean(fmt.Sprintf(
		"the vendor rotated the shared refresh token and Redis did not take the new one (%v): it is kept in memory (and the refresh token file, if any) and written again; meanwhile the record stays marked, so no replica sends the spent one", err), 400)}
}

// storeShared stores a new consent's refresh token (authorize) as the
// next generation, under the shared lock and this process's lock of the
// entry, and in the refresh token file when there is one.
func (a *Authorization) storeShared(ctx context.Context, rt string) error {
	st := a.o.Shared
	l, err := st.waitLock(ctx)
	if err != nil {
		return err
	}
	defer st.release(l)
	f := a.o.refreshState()
	release, err := f.lock(ctx)
	if err != nil {
		return err
	}
	defer release()
	gen, err := st.replaceRefresh(ctx, l, rt)
	if err != nil {
		return fmt.Errorf("storing the refresh token in Redis: %w", err)
	}
	f.pending, f.pendingCommit = "", nil
	f.knowledge(zap.NewNop())
	f.memo.hold(gen, rt)
	f.held = rt
	if err := f.persist(); err != nil {
		return fmt.Errorf("stored in Redis, but %s could not be written: %w", f.sidecar(), err)
	}
	if f.path != "" {
		if err := a.o.write(f, rt); err != nil {
			return fmt.Errorf("stored in Redis, but not in %s: %w", f.path, err)
		}
	}
	return nil
}
