package queue

import (
	"context"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestFileStorePacksItsPages: messages arrive in id order and leave from
// the oldest, so the messages bucket's leaf pages are packed to
// messagesFill, not to bbolt's default half (a backlog of small messages
// took twice the pages: 600 of 100 bytes, 149 leaf pages 43 % full).
func TestFileStorePacksItsPages(t *testing.T) {
	cases := []struct {
		name       string
		n, acked   int
		concurrent bool
	}{
		{"one sender, none delivered", 600, 0, false},
		{"one sender, the oldest half delivered", 600, 300, false},
		{"16 senders at once: ids of one millisecond out of order", 800, 200, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := OpenFile(FileOptions{Dir: t.TempDir()})
			must(t, err)
			defer s.Close()
			ctx := context.Background()
			body := strings.Repeat("x", 100) // a small webhook: a leaf page holds several
			start := time.Now()
			ms := make([]*Message, c.n)
			for i := range ms {
				ms[i] = msg("gh", start.Add(time.Duration(i/8)*time.Millisecond), body)
			}
			if c.concurrent {
				errs := make(chan error, c.n)
				sem := make(chan struct{}, 16)
				for _, m := range ms {
					sem <- struct{}{}
					go func() { errs <- s.Add(ctx, m); <-sem }()
				}
				for range ms {
					must(t, <-errs)
				}
			} else {
				for _, m := range ms {
					must(t, s.Add(ctx, m))
				}
			}
			for _, m := range ms[:c.acked] {
				must(t, s.Ack(ctx, m))
			}
			must(t, s.commits.flush()) // what the journal holds is in the store file
			must(t, s.db.View(func(tx *bolt.Tx) error {
				st := tx.Bucket(bucketMessages).Stats()
				if st.KeyN != c.n-c.acked {
					t.Fatalf("%d messages stored, want %d", st.KeyN, c.n-c.acked)
				}
				fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
				t.Logf("leaf pages %.0f %% full: %d of %d bytes in %d pages", 100*fill, st.LeafInuse, st.LeafAlloc, st.LeafPageN)
				if fill < 0.75 {
					t.Fatalf("leaf pages %.0f %% full (%d of %d bytes in %d pages), want at least 75 %%",
						100*fill, st.LeafInuse, st.LeafAlloc, st.LeafPageN)
				}
				return nil
			}))
		})
	}
}
