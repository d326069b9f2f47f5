package queue

import (
	"context"
	"strings"
	"testing"
	"time"
)

// BenchmarkFileStoreAddAck: 32 writers each store a 1 KiB message and
// then remove it (what a sender's acknowledgement and its delivery's
// settling cost the file store), sharing group commits. ns/op is the
// store's throughput; "ms/add" is a writer's mean wait for its Add's
// commit (the latency a queued route adds to a sender's answer).
func BenchmarkFileStoreAddAck(b *testing.B) {
	s, err := OpenFile(FileOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := strings.Repeat("x", 1024)
	ctx := context.Background()
	b.SetParallelism(16) // 16 per CPU: 32 writers on two cores
	var waited, adds time.Duration
	before := s.db.Stats()
	ch := make(chan [2]time.Duration, 256)
	b.RunParallel(func(pb *testing.PB) {
		var w, n time.Duration
		for pb.Next() {
			m := msg("gh", time.Now(), body)
			start := time.Now()
			if err := s.Add(ctx, m); err != nil {
				b.Error(err)
				return
			}
			w += time.Since(start)
			n++
			if err := s.Ack(ctx, m); err != nil {
				b.Error(err)
				return
			}
		}
		ch <- [2]time.Duration{w, n}
	})
	close(ch)
	for r := range ch {
		waited, adds = waited+r[0], adds+r[1]
	}
	if adds > 0 {
		b.ReportMetric(float64(waited)/float64(adds)/1e6, "ms/add")
	}
	after := s.db.Stats()
	st := after.Sub(&before)
	b.ReportMetric(float64(st.TxStats.GetWrite())/float64(b.N), "pages/op")
}
