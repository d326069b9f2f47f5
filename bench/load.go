package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/proxy"
)

// request is one request the load generator sends.
type request struct {
	method, path, token string
	body                func() io.Reader // nil: a small JSON body
	contentType         string
	basic               [2]string // token endpoint credentials
	class               int       // caller's tag (valid, invalid kinds)
	header              http.Header
}

// result is what came back.
type result struct {
	class   int
	status  int
	latency time.Duration
	err     bool
}

// stats summarises a run.
type stats struct {
	results []result
	elapsed time.Duration
	bytes   int64
}

func (s *stats) count() int { return len(s.results) }

func (s *stats) rps() float64 { return float64(len(s.results)) / s.elapsed.Seconds() }

// percentile of latencies of results matching keep (nil: all).
func (s *stats) percentile(p float64, keep func(result) bool) time.Duration {
	var l []time.Duration
	for _, r := range s.results {
		if keep == nil || keep(r) {
			l = append(l, r.latency)
		}
	}
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return l[min(int(float64(len(l))*p), len(l)-1)]
}

func (s *stats) statuses() map[int]int {
	m := map[int]int{}
	for _, r := range s.results {
		m[r.status]++
	}
	return m
}

const smallBody = `{"event":"tracking_update","tracking_number":"1Z999AA10123456784","status":"in_transit"}`

// client returns an HTTP client keeping conns connections to one host.
func client(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost, t.MaxConnsPerHost = conns, conns, conns
	t.DisableCompression = true
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// load is a closed-loop generator: conns workers each send a request, wait
// for the answer, and send the next, until the duration ends or next says
// there is nothing left.
func load(base string, conns int, d time.Duration, next func(i int64) (request, bool)) *stats {
	c := client(conns)
	defer c.Transport.(*http.Transport).CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var seq atomic.Int64
	var mu sync.Mutex
	st := &stats{}
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Go(func() {
			var local []result
			var bytes int64
			for ctx.Err() == nil {
				req, ok := next(seq.Add(1) - 1)
				if !ok {
					break
				}
				r, n := send(c, base, req)
				bytes += n
				if ctx.Err() != nil && r.err {
					break // cut off by the end of the run, not a failure
				}
				local = append(local, r)
			}
			mu.Lock()
			st.results = append(st.results, local...)
			st.bytes += bytes
			mu.Unlock()
		})
	}
	wg.Wait()
	st.elapsed = time.Since(start)
	return st
}

func send(c *http.Client, base string, q request) (result, int64) {
	var body io.Reader
	var n int64
	if q.body != nil {
		body = q.body()
	} else {
		body = strings.NewReader(smallBody)
	}
	method := q.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+q.path, body)
	if err != nil {
		return result{class: q.class, err: true}, 0
	}
	ct := q.contentType
	if ct == "" {
		ct = "application/json"
	}
	req.Header.Set("Content-Type", ct)
	if q.token != "" {
		req.Header.Set("Authorization", "Bearer "+q.token)
	}
	if q.basic[0] != "" {
		req.SetBasicAuth(q.basic[0], q.basic[1])
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return result{class: q.class, err: true, latency: time.Since(start)}, 0
	}
	n, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{class: q.class, status: resp.StatusCode, latency: time.Since(start)}, n
}

// newBareProxy is the baseline: httputil.ReverseProxy with Rewrite and
// tokengate's transport settings, and nothing else (no buffer pool).
func newBareProxy(upstream string) http.Handler {
	target, err := url.Parse(upstream)
	if err != nil {
		panic(err)
	}
	u := config.Upstream{URL: upstream, DialTimeout: config.Duration(config.DefaultDialTimeout),
		ResponseTimeout: config.Duration(config.DefaultResponseTimeout), MaxIdleConns: config.DefaultMaxIdleConns}
	t, err := proxy.NewTransport(u)
	if err != nil {
		panic(err)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: t,
	}
}

// sink is the upstream: it reads the whole body and answers 200.
func sink() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
}
