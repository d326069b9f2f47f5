package logging

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
)

func TestServeLoggerBuffersInfoAndFlushesWarningsAndAtStop(t *testing.T) {
	var buf safeBuffer
	log, stop, err := New("json", "info", &buf, true)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("request", zap.String("path", "/a"))
	if strings.Contains(buf.String(), "/a") {
		t.Fatal("an access-log line was written at once: the log is not buffered")
	}
	log.Warn("problem")
	if s := buf.String(); !strings.Contains(s, "/a") || !strings.Contains(s, "problem") {
		t.Fatalf("a warning must flush the buffer at once: %q", s)
	}
	log.Info("last", zap.String("path", "/b"))
	stop()
	if !strings.Contains(buf.String(), "/b") {
		t.Fatal("stop did not flush the buffered line")
	}
}

type safeBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
