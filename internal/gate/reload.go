package gate

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/internal/status"
	"github.com/tokengate/tokengate/listener"
)

// errUnchanged: a file event that did not change the configuration.
var errUnchanged = errors.New("configuration unchanged")

// Reload re-reads the configuration file if it changed. A new
// configuration is fully validated and built before it replaces the old
// one; an invalid one leaves the old one serving, every problem is logged
// and the error returned. why names the trigger in the log.
func (g *Gate) Reload(ctx context.Context, why string) error {
	return g.reload(ctx, why, false)
}

// Refresh is what SIGHUP asks: it reloads even an unchanged file, and
// refetches every issuer's JWKS.
func (g *Gate) Refresh(ctx context.Context, why string) error {
	return g.reload(ctx, why, true)
}

func (g *Gate) reload(ctx context.Context, why string, force bool) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.cur.Load()
	st, sum, err := g.buildFromFile(old, force)
	if errors.Is(err, errUnchanged) {
		return nil
	}
	var plan *egressPlan
	var pubTLS *listener.TLSSetup
	tlsChanged := err == nil && g.pubLn != nil && !reflect.DeepEqual(st.Config().TLS, old.Config().TLS)
	if tlsChanged {
		pubTLS, err = tlsSetup(st.Config().TLS, g.log)
	}
	if err == nil {
		plan, err = g.eg.prepare(st.Config())
	}
	if err == nil {
		err = g.openQueueOnReload(ctx, st.Config()) // before the swap: the new routes store at once
	}
	if err != nil {
		g.b.AbortReplay()
		g.reloadFailed(why, err)
		return err
	}
	g.swap(ctx, old, st)
	g.b.CommitReplay()
	tracingReloaded(g.log, old.Config(), st.Config())
	g.queue.Load().reloaded(g.log, st.Config())
	if tlsChanged {
		g.pubLn.SetTLS(pubTLS) // new connections; established ones keep theirs
		g.log.Info("public listener TLS settings replaced", zap.Bool("tls", pubTLS != nil))
	}
	g.eg.commit(ctx, plan)
	if force {
		st.RefreshKeys(ctx, g.log)
	}
	g.lastSum = sum
	g.m.Reloaded(true)
	g.lastLoad.Store(&status.Reload{At: time.Now().UTC(), Result: status.ReloadSuccess, Trigger: why})
	g.statusC.Invalidate() // the reload shows at once
	g.log.Info("configuration reloaded", zap.String("trigger", why), zap.Bool("cache_kept", st.Cache() == old.Cache()))
	return nil
}

// buildFromFile reads, validates and builds the configuration file.
func (g *Gate) buildFromFile(old *stack.Stack, force bool) (*stack.Stack, [32]byte, error) {
	data, err := os.ReadFile(g.path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum := sha256.Sum256(data)
	if sum == g.lastSum && !force {
		return nil, sum, errUnchanged
	}
	cfg, err := config.Parse(data, filepath.Dir(g.path), config.Options{})
	if err != nil {
		return nil, sum, err
	}
	st, err := g.b.Build(cfg, old)
	return st, sum, err
}

func (g *Gate) reloadFailed(why string, err error) {
	g.m.Reloaded(false)
	g.lastLoad.Store(&status.Reload{At: time.Now().UTC(), Result: status.ReloadFailure, Trigger: why, Error: err.Error()})
	g.statusC.Invalidate()
	var ce *config.Error
	if errors.As(err, &ce) {
		for _, e := range ce.Errs {
			g.log.Error("reload refused: configuration problem", zap.String("problem", e.Error()))
		}
	}
	g.log.Error("reload failed; still serving the previous configuration", zap.String("trigger", why), zap.Error(err))
}

// swap serves st in place of old: old's background work stops, st's
// starts, and the public listener takes st's handler for its next
// request (requests in flight finish on old).
func (g *Gate) swap(ctx context.Context, old, st *stack.Stack) {
	if st.Config().Listen != old.Config().Listen || st.Config().AdminListen != old.Config().AdminListen || st.Config().Receiving() && g.pubLn == nil {
		g.log.Warn("listen and admin_listen changes, and adding a receiving side to an egress-only configuration, take effect only after a restart")
	}
	old.Stop()
	st.WarmUp(ctx, g.log)
	g.cur.Store(st)
	if g.pubLn != nil {
		g.pubLn.SetHandler(st.Handler())
	}
	if old.Transport() != st.Transport() && old.Transport() != nil {
		old.Transport().CloseIdleConnections() // in-flight requests keep theirs
	}
}
