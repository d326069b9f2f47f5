package egress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// drained is what DrainRefreshes returned and what the refresh token file
// held at that moment: what the next start of the process reads.
type drained struct {
	err  error
	file string
}

// TestShutdownWaitsForTheRefreshAtTheVendor: SIGTERM with a shutdown
// grace (100ms) shorter than the vendor's answer. An app request through
// the real handler started a refresh; the vendor has rotated the refresh
// token and holds its answer. Shutdown stops the Source and drains: the
// drain logs at Warn that it waits past shutdown_grace and returns only
// once the rotated token is stored — so the file the next start reads
// holds it, and that start's refresh is not a reuse. When the rotated
// token cannot be stored, the drain says so with an error.
func TestShutdownWaitsForTheRefreshAtTheVendor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeFail bool
	}{{"stored", false}, {"write fails", true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, o := authFixture(t)
			authorized(t, o)
			before := fileToken(t, o.RefreshTokenFile)
			var failing atomic.Bool
			o.WriteFile = func(path string, data []byte) error {
				if failing.Load() {
					return errors.New("read-only file system")
				}
				return WriteFileAtomic(path, data)
			}
			warned := make(chan struct{}, 1)
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(zapcore.RegisterHooks(core, func(e zapcore.Entry) error {
				if e.Level == zapcore.WarnLevel && strings.Contains(e.Message, "shutdown_grace") {
					select {
					case warned <- struct{}{}:
					default:
					}
				}
				return nil
			}))
			s := NewSource(SourceOptions{Name: "deployteq", Grant: NewRefreshGrant(o), Logger: log})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"ok":true}`)) }))
			defer up.Close()
			h := newTestHandler(t, up.URL, s, nil)
			arrived, _, release := srv.StallRefreshes()
			defer release()
			app := make(chan int, 1)
			go func() {
				rr := httptest.NewRecorder()
				h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "http://localhost/v1/hooks", strings.NewReader("{}")))
				app <- rr.Code
			}()
			waitFor(t, arrived, "the refresh at the vendor")
			failing.Store(tc.writeFail)
			// Another refresh of the file (a reloaded entry's) waits for it.
			queued := refreshAsync(context.Background(), NewRefreshGrant(o))

			// SIGTERM: the Source stops, then the drain within the grace.
			requests := srv.Requests()
			s.Close()
			grace, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			res := make(chan drained, 1)
			go func() {
				err := DrainRefreshes(grace)
				b, _ := os.ReadFile(o.RefreshTokenFile)
				res <- drained{err, strings.TrimSpace(string(b))}
			}()
			var d drained
			select {
			case <-warned: // waiting past the grace, as it should: the vendor answers now
				release()
				d = waitFor(t, res, "the drain after the vendor answered")
			case d = <-res:
				release()
				t.Errorf("DrainRefreshes returned (%v) while the refresh was at the vendor", d.err)
			case <-time.After(10 * time.Second):
				t.Fatal("neither a Warn line nor the drain's end within 10s")
			}
			waitFor(t, app, "the app's request")
			if r := waitFor(t, queued, "the queued refresh"); !errors.Is(r.err, errShuttingDown) || srv.Requests() != requests {
				t.Errorf("a refresh queued behind the one at the vendor: %v, %d more token requests; want %v and none",
					r.err, srv.Requests()-requests, errShuttingDown)
			}
			if !tc.writeFail {
				// The next start reads what the file held when the process exited.
				if d.err != nil || d.file == before {
					t.Fatalf("drain: %v; the file holds the spent refresh token: %v", d.err, d.file == before)
				}
				o2 := o
				o2.RefreshTokenFile = filepath.Join(t.TempDir(), "next-start")
				forgetRefreshFile(t, o2.RefreshTokenFile)
				o2.WriteFile = nil
				if err := os.WriteFile(o2.RefreshTokenFile, []byte(d.file+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := NewRefreshGrant(o2).Token(context.Background()); err != nil || srv.ReuseDetected() != 0 {
					t.Fatalf("the next start's refresh: %v, reuse detected %d", err, srv.ReuseDetected())
				}
				if n := logs.FilterMessageSnippet("shutdown_grace").FilterField(zap.String("egress", "deployteq")).Len(); n != 1 {
					t.Errorf("%d Warn lines naming the egress, want 1", n)
				}
				return
			}
			if d.err == nil || !strings.Contains(d.err.Error(), "could not be stored") || !strings.Contains(d.err.Error(), "read-only file system") || !strings.Contains(d.err.Error(), filepath.Base(o.RefreshTokenFile)) {
				t.Fatalf("drain with a failing write: %v, want an error naming the file", d.err)
			}
		})
	}
}

// TestDrainStoresAPendingToken: an earlier refresh's rotated token could
// not be written and is kept in memory; the drain at shutdown writes it
// once more, so the next start does not send the spent one.
func TestDrainStoresAPendingToken(t *testing.T) {
	srv, o := authFixture(t)
	authorized(t, o)
	var failing atomic.Bool
	failing.Store(true)
	o.WriteFile = func(path string, data []byte) error {
		if failing.Load() {
			return errors.New("disk full")
		}
		return WriteFileAtomic(path, data)
	}
	before := fileToken(t, o.RefreshTokenFile)
	if _, err := NewRefreshGrant(o).Token(context.Background()); err == nil {
		t.Fatal("the refresh succeeded although its write failed")
	}
	failing.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := DrainRefreshes(ctx); err != nil {
		t.Fatal(err)
	}
	if fileToken(t, o.RefreshTokenFile) == before {
		t.Fatal("the rotated refresh token kept in memory was not stored by the drain")
	}
	if _, err := NewRefreshGrant(o).Token(context.Background()); err != nil || srv.ReuseDetected() != 0 {
		t.Fatalf("the next refresh: %v, reuse detected %d", err, srv.ReuseDetected())
	}
}
