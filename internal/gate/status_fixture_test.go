package gate

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/internal/status"
	"github.com/tokengate/tokengate/verifier/verifiertest"
)

// Secrets the status fixture's gate holds; none may ever show.
const (
	stClientSecret  = "St4tus-Egress/Secret+Value"
	stLeakySecret   = "L3aky-Client-Secret-Value"
	stRefreshToken  = "rt-St4tus-Refresh-Token-0123456789"
	stGitHubSecret  = "st4tus-github-signing-secret"
	stInjectedHTML  = `<img src=x onerror="document.title='pwned'">`
	stEgressEntry   = "vendor"
	stLeakyEntry    = "leaky"
	stAuthCodeEntry = "usercode"
)

// statusFixture is a running gate with a real issuer (discovery, JWKS),
// an introspection issuer, a bearer route, two queued routes (one whose
// message stays pending, one whose message becomes a dead letter), an
// egress entry holding a token, and two whose token endpoint echoes every
// credential it is sent (with HTML) in its error description.
type statusFixture struct {
	g      *Gate
	path   string // the configuration file
	idp    *verifiertest.IdP
	intro  *verifiertest.Introspector
	admin  string
	up     *egresstest.Upstream
	grants sync.Map // grant types the leaky endpoint was asked for
	secret []string // every secret and token the gate holds or saw
}

// leakyEndpoint is a token endpoint that answers every request 503 and
// puts everything it was sent (the Basic credentials, decoded too, every
// form value: client secret, refresh token) and some HTML into its
// error_description.
func leakyEndpoint(t *testing.T, grants *sync.Map) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		grants.Store(r.PostForm.Get("grant_type"), true)
		var echo []string // the secrets first: a long text is cut
		for _, k := range []string{"refresh_token", "client_secret"} {
			if v := r.PostForm.Get(k); v != "" {
				echo = append(echo, k+"="+v)
			}
		}
		if id, sec, ok := r.BasicAuth(); ok {
			idu, _ := url.QueryUnescape(id)
			secu, _ := url.QueryUnescape(sec)
			echo = append(echo, "decoded="+idu+":"+secu, "basic="+id+":"+sec, r.Header.Get("Authorization"))
		}
		// 503: retried, never "refused", so every attempt echoes again
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "temporarily_unavailable", "error_description": stInjectedHTML + " you sent " + strings.Join(echo, " ")})
	}))
	t.Cleanup(s.Close)
	return s
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	f := &statusFixture{idp: verifiertest.New(), intro: verifiertest.NewIntrospector()}
	t.Cleanup(f.idp.Close)
	t.Cleanup(f.intro.Close)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/hooks/gh":
			w.WriteHeader(http.StatusServiceUnavailable) // retried: stays pending
		case "/hooks/ghdead":
			w.WriteHeader(http.StatusBadRequest) // a dead letter at once
		default:
			_, _ = io.WriteString(w, "received")
		}
	}))
	t.Cleanup(recv.Close)
	e, up := vendor(t, stClientSecret, time.Hour)
	f.up = up
	leaky := leakyEndpoint(t, &f.grants)
	dir := t.TempDir()
	rtFile := write(t, dir, "refresh-token", stRefreshToken+"\n")
	t.Setenv("TG_ST_EGRESS_SECRET", stClientSecret)
	t.Setenv("TG_ST_LEAKY_SECRET", stLeakySecret)
	t.Setenv("TG_ST_INTRO_SECRET", f.intro.ClientSecret)
	t.Setenv("TG_ST_GH", stGitHubSecret)
	path := write(t, dir, "tokengate.yaml", fmt.Sprintf(`
listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
shutdown_grace: 2s
upstream: %[1]s
queue: { store: "file://%[2]s" }
issuers:
  - name: idp
    issuer: %[3]s
    audiences: [%[4]s]
    timeout: 5s
  - name: partner
    issuer: https://partner.example
    audiences: [%[4]s]
    introspection: { url: %[5]q, client_id: %[6]s, client_secret: "${TG_ST_INTRO_SECRET}" }
routes:
  - { name: api, path_prefix: /api, require: { scopes: ["webhooks:write"] } }
  - name: gh
    path: /hooks/gh
    signature: { scheme: github, secrets: ["${TG_ST_GH}"] }
    delivery: { mode: queued, backoff: { initial: 1m, max: 1m } }
  - name: ghdead
    path: /hooks/ghdead
    signature: { scheme: github, secrets: ["${TG_ST_GH}"] }
    delivery: { mode: queued }
egress:
  - name: %[7]s
    listen: 127.0.0.1:0
    upstream: %[8]s
    insecure_http: true
    token: { url: %[9]s, client_id: client, client_secret: "${TG_ST_EGRESS_SECRET}" }
  - name: %[10]s
    listen: 127.0.0.1:0
    upstream: %[8]s
    insecure_http: true
    ready_requires_token: false
    token: { url: %[11]s, client_id: leaky-client, client_secret: "${TG_ST_LEAKY_SECRET}", auth: form }
  - name: %[12]s
    listen: 127.0.0.1:0
    upstream: %[8]s
    insecure_http: true
    ready_requires_token: false
    token:
      grant: authorization_code
      url: %[11]s
      authorize_url: %[11]s/authorize
      redirect_uri: http://127.0.0.1:1/callback
      refresh_token_file: %[13]s
      client_id: user-client
      client_secret: "${TG_ST_LEAKY_SECRET}"
`, recv.URL, filepath.Join(dir, "queue"), f.idp.Issuer(), testAud, f.intro.URL(), f.intro.ClientID,
		stEgressEntry, up.URL, e.URL, stLeakyEntry, leaky.URL, stAuthCodeEntry, rtFile))
	g, err := startWith(t.Context(), path, Options{QueueCheckEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	f.g, f.admin, f.path = g, "http://"+g.AdminAddr(), path
	f.secret = []string{stClientSecret, stLeakySecret, stRefreshToken, stGitHubSecret, f.intro.ClientSecret,
		url.QueryEscape(stClientSecret), url.QueryEscape(stLeakySecret), url.QueryEscape(f.intro.ClientSecret),
		base64.StdEncoding.EncodeToString([]byte("client:" + url.QueryEscape(stClientSecret))),
		base64.StdEncoding.EncodeToString([]byte("leaky-client:" + url.QueryEscape(stLeakySecret)))}
	return f
}

// traffic sends real requests: on the bearer route one allowed, one
// without a token, one with too little scope and one with a token the
// introspection endpoint does not know; one no route takes; one signed
// message to each queued route; one request through the egress entry. It adds the tokens sent
// to f.secret and waits until the state they cause is visible.
func (f *statusFixture) traffic(t *testing.T) {
	t.Helper()
	eventually(t, "the issuer's keys", func() bool { return f.g.cur.Load().JWTs()[0].Ready() })
	good, narrow := f.idp.Mint(f.idp.Claims(testAud, "webhooks:write")), f.idp.Mint(f.idp.Claims(testAud, "other"))
	f.secret = append(f.secret, good, narrow, "opaque-unknown-token-42")
	pub := "http://" + f.g.Addr()
	for _, c := range []struct {
		token string
		want  int
	}{{good, 200}, {"", 401}, {narrow, 403}, {"opaque-unknown-token-42", 401}} {
		h := http.Header{}
		if c.token != "" {
			h.Set("Authorization", "Bearer "+c.token)
		}
		if a := post(t, pub+"/api/orders", h, `{}`); a.status != c.want {
			t.Fatalf("bearer route, token %.10q: %d, want %d", c.token, a.status, c.want)
		}
	}
	if a := post(t, pub+"/nowhere", nil, `{}`); a.status != http.StatusNotFound {
		t.Fatalf("no route: %d, want 404", a.status)
	}
	for _, p := range []string{"/hooks/gh", "/hooks/ghdead"} {
		body := `{"action":"opened"}`
		if a := post(t, pub+p, githubHeaders(stGitHubSecret, "d-"+p, body), body); a.status != http.StatusAccepted {
			t.Fatalf("%s: %d, want 202", p, a.status)
		}
	}
	eventually(t, "the vendor token", func() bool { return f.snapshot(t).egress(stEgressEntry).TokenHeld })
	resp, err := http.Get("http://" + f.g.EgressAddrs()[stEgressEntry] + "/v1/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := f.up.Seen()
	if resp.StatusCode != http.StatusOK || len(seen) == 0 || seen[len(seen)-1].Token == "" {
		t.Fatalf("egress request: %d, upstream saw %d requests", resp.StatusCode, len(seen))
	}
	f.secret = append(f.secret, seen[len(seen)-1].Token)
	eventually(t, "the leaky entries' failures and the dead letter", func() bool {
		s := f.snapshot(t)
		_, cc := f.grants.Load("client_credentials")
		_, rt := f.grants.Load("refresh_token")
		return cc && rt && s.egress(stLeakyEntry).LastError != "" && s.egress(stAuthCodeEntry).LastError != "" && s.queue("ghdead").Dead == 1
	})
}

// snap is a decoded /status.json with lookups by name.
type snap struct{ status.Snapshot }

func (f *statusFixture) snapshot(t *testing.T) snap {
	t.Helper()
	var s snap
	if err := json.Unmarshal([]byte(get(t, f.admin+"/status.json")), &s.Snapshot); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s snap) egress(name string) status.Egress {
	for _, e := range s.Egress {
		if e.Name == name {
			return e
		}
	}
	return status.Egress{}
}

func (s snap) queue(route string) status.QueueRoute {
	if s.Queue != nil {
		for _, q := range s.Queue.Routes {
			if q.Route == route {
				return q
			}
		}
	}
	return status.QueueRoute{}
}

func (s snap) route(name string) status.Route {
	for _, r := range s.Routes {
		if r.Name == name {
			return r
		}
	}
	return status.Route{}
}

func (s snap) issuer(name string) status.Issuer {
	for _, is := range s.Issuers {
		if is.Name == name {
			return is
		}
	}
	return status.Issuer{}
}
