package pinger

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestWatcherKeepsTheLastAnswerAndLogsChangesOnce: Err is "not reached"
// until the first ping, then each ping's result; a server that stops
// answering is logged once however many pings fail, and once when it
// answers again.
func TestWatcherKeepsTheLastAnswerAndLogsChangesOnce(t *testing.T) {
	var down atomic.Bool
	var pings atomic.Int64
	core, logs := observer.New(zap.InfoLevel)
	w := Start(Options{
		Ping: func(ctx context.Context) error {
			pings.Add(1)
			if down.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		Timeout: time.Second, Interval: 5 * time.Millisecond, Name: "test server", Log: zap.New(core),
		Down: "test server down", Up: "test server up",
	})
	defer w.Stop()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after 10s waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("the first answer", func() bool { return w.Err() == nil })
	down.Store(true)
	wait("a failed ping", func() bool { return w.Err() != nil })
	n := pings.Load()
	wait("two more failed pings", func() bool { return pings.Load() >= n+2 })
	if err := w.Err(); !strings.Contains(err.Error(), "test server does not answer: connection refused") {
		t.Fatalf("Err = %v", err)
	}
	down.Store(false)
	wait("the answer again", func() bool { return w.Err() == nil })
	if got := logs.FilterMessage("test server down").Len(); got != 1 {
		t.Fatalf("%d down lines, want 1", got)
	}
	if got := logs.FilterMessage("test server up").Len(); got != 1 {
		t.Fatalf("%d up lines, want 1", got)
	}
	w.Stop()
	w.Stop() // twice is fine
	var none *Watcher
	if none.Err() != nil {
		t.Fatal("a nil watcher has an error")
	}
}

// TestCheckedWatcherKnowsAtOnceAndTakesObservedFailures: with Checked,
// Err is the first ping's answer when Start returns (never "not reached
// yet"), worded with Fails; a failure observed outside the pings holds
// until the next ping answers.
func TestCheckedWatcherKnowsAtOnceAndTakesObservedFailures(t *testing.T) {
	cases := []struct {
		name    string
		ping    error
		wantErr string
	}{
		{"writable", nil, ""},
		{"not writable", errors.New("disk full"), "queue store cannot be written: disk full"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var answer atomic.Pointer[error]
			answer.Store(&c.ping)
			w := Start(Options{Ping: func(context.Context) error { return *answer.Load() }, Timeout: time.Second, Interval: time.Hour,
				Checked: true, Name: "queue store", Fails: "cannot be written"})
			defer w.Stop()
			err := w.Err()
			if (err == nil) != (c.wantErr == "") || err != nil && err.Error() != c.wantErr {
				t.Fatalf("Err at once = %v, want %q", err, c.wantErr)
			}
			w.Observe(errors.New("write failed"))
			if err := w.Err(); err == nil || err.Error() != "queue store cannot be written: write failed" {
				t.Fatalf("after an observed failure Err = %v", err)
			}
		})
	}
	var none *Watcher
	none.Observe(errors.New("x")) // a nil watcher takes nothing
}
