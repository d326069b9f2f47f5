package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/signature/redistest"
)

// signedBodySize is the signed webhook's body: 1 KB of JSON.
const signedBodySize = 1024

// signed measures Standard Webhooks signatures (HMAC-SHA256 over
// "id.timestamp.body") on 1 KB bodies, every request a new message id so
// the replay store records each one: in memory, or in a real redis-server
// started for the scenario.
func (e *env) signed(name string, withRedis bool) (row, error) {
	key := []byte("bench-signing-key-not-for-production")
	secretFile := filepath.Join(e.dir, "signing-secret")
	if err := os.WriteFile(secretFile, []byte("whsec_"+base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		return row{}, err
	}
	store := "memory"
	if withRedis {
		srv, err := redistest.New(e.dir)
		if err != nil {
			return row{name: name, jwks: -1, introspections: -1, note: "not run: " + err.Error()}, nil
		}
		defer srv.Stop()
		store = srv.URL()
	}
	p, err := e.startWith(name, func(pub, admin string) string {
		return fmt.Sprintf(`listen: %s
admin_listen: %s
upstream: %q
signatures: { replay_store: %q }
routes:
  - path: /hooks/signed
    signature: { scheme: standard-webhooks, secret_files: [%q] }
`, pub, admin, e.sink.URL, store, secretFile)
	})
	if err != nil {
		return row{}, err
	}
	defer p.stop()
	body := `{"type":"shipment.updated","data":{"pad":"` + strings.Repeat("x", signedBodySize-45) + `"}}`
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	cpu0 := p.cpuSeconds()
	st := e.load("http://"+p.addr, e.o.conns, e.o.duration, func(i int64) (request, bool) {
		id := "msg_" + run + "_" + strconv.FormatInt(i, 10)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, key)
		io.WriteString(m, id+"."+ts+".")
		io.WriteString(m, body)
		h := http.Header{
			"Webhook-Id": {id}, "Webhook-Timestamp": {ts},
			"Webhook-Signature": {"v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))},
		}
		return request{path: "/hooks/signed", header: h, body: func() io.Reader { return strings.NewReader(body) }}, true
	})
	r := e.fill(name, st, p, cpu0)
	r.jwks, r.introspections = -1, -1
	r.note = strings.TrimPrefix(fmt.Sprintf("%s; %d-byte bodies, replay store %s", r.note, len(body), strings.SplitN(store, ":", 2)[0]), "; ")
	return r, nil
}
