package queue

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestFileStoreLeaseFromMemory: a message leased from the in-memory copy
// is the message as stored (the caller's buffers changed after Add do
// not reach it), a write to the stored message (an operator's retry)
// is not hidden by the copy, and past the memory budget messages are
// read back from the file, whole.
func TestFileStoreLeaseFromMemory(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, s *FileStore)
	}{
		{"the caller's body buffer is its own after Add", func(t *testing.T, s *FileStore) {
			m := msg("gh", t0, "original")
			must(t, s.Add(ctx, m))
			copy(m.Body, "XXXXXXXX") // a pooled request buffer reused by the next request
			got := lease(t, s, "gh", t0, 1)
			if len(got) != 1 || string(got[0].Body) != "original" || got[0].Header.Get("Content-Type") != "application/json" {
				t.Fatalf("leased %+v; want the message as stored", got)
			}
		}},
		{"a write to the stored message drops the copy", func(t *testing.T, s *FileStore) {
			m := msg("gh", t0, "a")
			must(t, s.Add(ctx, m))
			later := t0.Add(time.Minute)
			must(t, s.Revive(ctx, m.ID, Progress{State: Pending, Next: later, Expires: m.Expires}))
			if got := lease(t, s, "gh", t0, 1); len(got) != 0 {
				t.Fatalf("leased %v before the revived due time", ids(got))
			}
			got := lease(t, s, "gh", later, 1)
			if len(got) != 1 || !got[0].Next.Equal(later) {
				t.Fatalf("leased %+v; want the message due at %v as written", got, later)
			}
		}},
		{"past the budget messages are read from the file", func(t *testing.T, s *FileStore) {
			const n = 6
			big := strings.Repeat("b", hotBudget/4)
			for i := range n {
				must(t, s.Add(ctx, msg("gh", t0.Add(time.Duration(i)), big+string(rune('0'+i)))))
			}
			s.mu.Lock()
			hot := s.hot
			s.mu.Unlock()
			if hot > hotBudget {
				t.Fatalf("%d bytes kept in memory, budget %d", hot, hotBudget)
			}
			got := lease(t, s, "gh", t0.Add(time.Second), n)
			if len(got) != n {
				t.Fatalf("leased %d of %d", len(got), n)
			}
			for i, m := range got {
				if !bytes.Equal(m.Body, []byte(big+string(rune('0'+i)))) {
					t.Fatalf("message %d came back with %d bytes, not as stored", i, len(m.Body))
				}
			}
			s.mu.Lock()
			hot = s.hot
			s.mu.Unlock()
			if hot != 0 {
				t.Fatalf("%d bytes still counted in memory after every message was leased", hot)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenFile(FileOptions{Dir: t.TempDir()})
			must(t, err)
			defer s.Close()
			tc.run(t, s)
		})
	}
}
