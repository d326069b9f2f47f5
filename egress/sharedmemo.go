package egress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// A replica does not trust Redis alone with a shared refresh token: Redis
// may lose it (FLUSHALL, a restart without persistence) or go back to an
// older state (a failover to a lagging replica, a restore from backup,
// the last second of writes lost with appendfsync everysec), and either
// could make a replica send a refresh token that is spent, which a
// vendor with reuse detection answers by revoking the grant. So each
// replica keeps what it knows (sharedMemo) in memory and, when the entry
// has a refresh token file, beside it in <file>.shared, which survives a
// restart.

// Sidecar and memo bounds.
const (
	sidecarSuffix = ".shared"
	maxSpent      = 32 // fingerprints of spent refresh tokens remembered
	// observeLockWait bounds how long noting a generation seen in an
	// access token waits for the file's lock (a refresh under way notes
	// it anyway).
	observeLockWait = 200 * time.Millisecond
)

// sharedMemo is one replica's knowledge of an entry's shared refresh
// token: <file>.shared holds it as JSON (mode 0600, written atomically).
type sharedMemo struct {
	// Shared: the refresh token file's token has been in Redis (this
	// replica read the shared record, seeded it, or a shared `tokengate
	// authorize` stored it): Redis is never seeded from the file, since
	// another replica may have spent that token since. `tokengate
	// authorize` of an unshared entry, and an unshared refresh, clear it.
	Shared bool `json:"shared"`
	// Max is the highest generation this replica saw in Redis.
	Max uint64 `json:"max"`
	// Gen is the generation this replica's newest token descends from
	// (it stored that generation); Gen == Max: it rotated last, as far as
	// it knows, and holds the newest token. 0: none.
	Gen uint64 `json:"gen"`
	// Held is the hex SHA-256 of that newest token (in the file, or in
	// memory without a file).
	Held string `json:"held,omitempty"`
	// Spent are the hex SHA-256 of the refresh tokens this replica
	// rotated away, oldest first, at most maxSpent: none is ever sent
	// again, and a record holding one is stale.
	Spent []string `json:"spent,omitempty"`
}

// fingerprint names a refresh token without holding it.
func fingerprint(rt string) string {
	sum := sha256.Sum256([]byte(rt))
	return hex.EncodeToString(sum[:])
}

// spent reports whether this replica rotated rt away.
func (m *sharedMemo) spent(rt string) bool { return slices.Contains(m.Spent, fingerprint(rt)) }

// spend notes that rt was rotated away.
func (m *sharedMemo) spend(rt string) {
	if fp := fingerprint(rt); !slices.Contains(m.Spent, fp) {
		m.Spent = append(m.Spent, fp)
	}
	if n := len(m.Spent) - maxSpent; n > 0 {
		m.Spent = slices.Delete(m.Spent, 0, n)
	}
}

// observe notes generation gen, seen in Redis.
func (m *sharedMemo) observe(gen uint64) { m.Max = max(m.Max, gen) }

// hold notes that this replica stored rt as generation gen.
func (m *sharedMemo) hold(gen uint64, rt string) {
	m.Gen, m.Held, m.Shared = gen, fingerprint(rt), true
	m.observe(gen)
}

// newest reports whether this replica rotated last, as far as it knows.
func (m *sharedMemo) newest() bool { return m.Gen != 0 && m.Gen == m.Max }

// merge takes disk's view of the file's token (disk may have been
// written by `tokengate authorize` in another process) and the union of
// what both saw.
func (m *sharedMemo) merge(disk *sharedMemo) {
	m.Shared, m.Gen, m.Held = disk.Shared, disk.Gen, disk.Held
	m.Max = max(m.Max, disk.Max)
	spent := m.Spent
	m.Spent = slices.Clone(disk.Spent)
	for _, fp := range spent {
		if !slices.Contains(m.Spent, fp) {
			m.Spent = append(m.Spent, fp)
		}
	}
	if n := len(m.Spent) - maxSpent; n > 0 {
		m.Spent = slices.Delete(m.Spent, 0, n)
	}
}

// sidecar is the memo's file, "" without a refresh token file.
func (f *refreshFile) sidecar() string {
	if f.path == "" {
		return ""
	}
	return f.path + sidecarSuffix
}

// knowledge brings f.memo up to date with the sidecar and the
// generations seen meanwhile; f.sem is held. A sidecar that cannot be
// read or parsed counts as Shared (the file never seeds Redis).
func (f *refreshFile) knowledge(log *zap.Logger) *sharedMemo {
	f.memo.observe(f.seenMax.Load())
	p := f.sidecar()
	if p == "" {
		return &f.memo
	}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		f.memoDisk = nil
		return &f.memo
	case err == nil:
		var disk sharedMemo
		if err = json.Unmarshal(b, &disk); err == nil {
			f.memo.merge(&disk)
			f.memoDisk = b
			return &f.memo
		}
	}
	log.Warn("the shared refresh token's record beside the refresh token file cannot be read: the file is not used to seed Redis",
		zap.String("file", p), zap.Error(err))
	f.memo.Shared, f.memoDisk = true, nil
	return &f.memo
}

// persist writes f.memo to the sidecar when it changed and the entry has
// been shared (or had a sidecar): an entry that was never shared gets no
// new file. f.sem is held.
func (f *refreshFile) persist() error {
	f.raiseSeen(f.memo.Max)
	p := f.sidecar()
	if p == "" || f.memoDisk == nil && !f.memo.Shared && f.memo.Max == 0 {
		return nil
	}
	b, err := json.Marshal(&f.memo)
	if err != nil || bytes.Equal(b, f.memoDisk) {
		return err
	}
	if err := WriteFileAtomic(p, append(b, '\n')); err != nil {
		return err
	}
	f.memoDisk = append(b, '\n')
	return nil
}

// heldToken is the newest token this replica holds, if it still holds
// it: the one it stored last, in memory or in the file, whose
// fingerprint the memo names, and which it has not spent.
func (f *refreshFile) heldToken(m *sharedMemo) (string, bool) {
	candidates := []string{f.held}
	if f.path != "" {
		if b, err := os.ReadFile(f.path); err == nil {
			candidates = append(candidates, strings.TrimSpace(string(b)))
		}
	}
	for _, rt := range candidates {
		if rt != "" && m.Held == fingerprint(rt) && !m.spent(rt) {
			return rt, true
		}
	}
	return "", false
}

// raiseSeen raises seenMax to gen; it reports whether it did.
func (f *refreshFile) raiseSeen(gen uint64) bool {
	for {
		old := f.seenMax.Load()
		if gen <= old {
			return false
		}
		if f.seenMax.CompareAndSwap(old, gen) {
			return true
		}
	}
}

// observe notes generation gen, seen in a shared access token, and
// writes it to the sidecar if the file is free at once (otherwise the
// refresh holding it notes it).
func (f *refreshFile) observe(gen uint64, log *zap.Logger) {
	if !f.raiseSeen(gen) || f.path == "" {
		return
	}
	select {
	case f.sem <- struct{}{}:
	default:
		return
	}
	defer func() { <-f.sem }()
	ctx, cancel := context.WithTimeout(context.Background(), observeLockWait)
	defer cancel()
	unlock, err := lockFile(ctx, f.path+".lock")
	if err != nil {
		return
	}
	defer unlock()
	f.knowledge(log)
	if err := f.persist(); err != nil {
		log.Warn("the generation of the shared refresh token seen could not be written beside the refresh token file", zap.Error(err))
	}
}
