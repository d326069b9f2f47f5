package gate

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"

	"github.com/tokengate/tokengate/listener"
)

// watch reloads on changes to the configuration file. Its directory is
// watched, so that editors that replace the file and Kubernetes'
// ConfigMap symlink swaps are seen; Shutdown stops it.
func (g *Gate) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	g.stopWatch = cancel
	isConfig := func(ev fsnotify.Event) bool { return relevant(ev, g.path) }
	return listener.WatchFiles(wctx, []string{filepath.Dir(g.path)}, isConfig, 0, func() { _ = g.Reload(wctx, "file change") })
}

// relevant reports whether an event in the config's directory may have
// changed the config: the file itself, or a Kubernetes "..data" swap.
func relevant(ev fsnotify.Event, path string) bool {
	base := filepath.Base(ev.Name)
	return filepath.Clean(ev.Name) == filepath.Clean(path) || base == "..data" || strings.HasPrefix(base, "..") && ev.Has(fsnotify.Create)
}
