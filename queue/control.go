package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Operator is what an operator does with stored messages: *Queue does it
// on a store it holds, *ControlClient through the running gate.
type Operator interface {
	List(ctx context.Context, route string, state State, limit int) ([]*Message, error)
	Get(ctx context.Context, id string) (*Message, error)
	Retry(ctx context.Context, id string) error
	RetryDead(ctx context.Context, route string) (int, error)
	Drop(ctx context.Context, id string) error
	Stats(ctx context.Context) ([]RouteStats, error)
}

var (
	_ Operator = (*Queue)(nil)
	_ Operator = (*ControlClient)(nil)
)

// ControlSocket is the Unix socket, in the file store's directory, on
// which a running gate answers operators: the file store is locked by
// the gate, and the directory's mode (0700) and the socket's (0600) let
// only the gate's own user in. It never listens on the network.
const ControlSocket = "control.sock"

// View is a message as operators see it: payload and progress.
type View struct {
	*Message
	Progress Progress `json:"progress"`
}

func viewOf(m *Message) View { return View{Message: m, Progress: m.Progress} }

// ListenControl listens on dir's control socket (mode 0600), replacing a
// stale one left by a process that died.
func ListenControl(dir string) (net.Listener, error) {
	path := filepath.Join(dir, ControlSocket)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("queue: %s: another gate is answering on it", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	return l, nil
}

// ControlHandler serves o to operators (on the control socket only).
func ControlHandler(o Operator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := o.Stats(r.Context())
		reply(w, st, err)
	})
	mux.HandleFunc("GET /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		ms, err := o.List(r.Context(), r.URL.Query().Get("route"), State(r.URL.Query().Get("state")), limit)
		views := make([]View, len(ms))
		for i, m := range ms {
			views[i] = viewOf(m)
		}
		reply(w, views, err)
	})
	mux.HandleFunc("GET /v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		m, err := o.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			reply(w, nil, err)
			return
		}
		reply(w, viewOf(m), nil)
	})
	mux.HandleFunc("POST /v1/messages/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, o.Retry(r.Context(), r.PathValue("id")))
	})
	mux.HandleFunc("DELETE /v1/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, struct{}{}, o.Drop(r.Context(), r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/retry-dead", func(w http.ResponseWriter, r *http.Request) {
		n, err := o.RetryDead(r.Context(), r.URL.Query().Get("route"))
		reply(w, map[string]int{"retried": n}, err)
	})
	return mux
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// maxControlAnswer bounds what the control client reads of one answer
// (a shown message's body included).
const maxControlAnswer = 256 << 20

// ControlClient is an Operator that asks a running gate over its
// control socket.
type ControlClient struct{ c *http.Client }

// DialControl returns a client of the gate answering on dir's control
// socket; it connects on each call.
func DialControl(dir string) *ControlClient {
	path := filepath.Join(dir, ControlSocket)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &ControlClient{c: &http.Client{Transport: tr, Timeout: time.Minute}}
}

func (c *ControlClient) call(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://gate" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		var op *net.OpError
		if method != http.MethodGet && !(errors.As(err, &op) && op.Op == "dial") {
			// Sent, and no answer came back (the gate was killed, say): the
			// change may have been made before the connection broke.
			return fmt.Errorf("queue: the gate's control socket broke before it answered (%w): the change may have been made; see tokengate queue list", err)
		}
		return fmt.Errorf("queue: the gate's control socket: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxControlAnswer+1))
	if err != nil {
		return err
	}
	if len(body) > maxControlAnswer {
		return fmt.Errorf("queue: the gate's answer is larger than %d MiB: not read", maxControlAnswer>>20)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w (%s)", ErrNotFound, e.Error)
		}
		return fmt.Errorf("queue: the gate says: %s", e.Error)
	}
	return json.Unmarshal(body, out)
}

func fromViews(vs []View) []*Message {
	out := make([]*Message, len(vs))
	for i, v := range vs {
		v.Message.Progress = v.Progress
		out[i] = v.Message
	}
	return out
}

// List implements Operator.
func (c *ControlClient) List(ctx context.Context, route string, state State, limit int) ([]*Message, error) {
	var vs []View
	err := c.call(ctx, http.MethodGet, "/v1/messages", url.Values{"route": {route}, "state": {string(state)}, "limit": {strconv.Itoa(limit)}}, &vs)
	return fromViews(vs), err
}

// Get implements Operator.
func (c *ControlClient) Get(ctx context.Context, id string) (*Message, error) {
	var v View
	if err := c.call(ctx, http.MethodGet, "/v1/messages/"+url.PathEscape(id), nil, &v); err != nil {
		return nil, err
	}
	return fromViews([]View{v})[0], nil
}

// Retry implements Operator.
func (c *ControlClient) Retry(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, "/v1/messages/"+url.PathEscape(id)+"/retry", nil, &struct{}{})
}

// RetryDead implements Operator.
func (c *ControlClient) RetryDead(ctx context.Context, route string) (int, error) {
	var out struct{ Retried int }
	err := c.call(ctx, http.MethodPost, "/v1/retry-dead", url.Values{"route": {route}}, &out)
	return out.Retried, err
}

// Drop implements Operator.
func (c *ControlClient) Drop(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/messages/"+url.PathEscape(id), nil, &struct{}{})
}

// Stats implements Operator.
func (c *ControlClient) Stats(ctx context.Context) ([]RouteStats, error) {
	var st []RouteStats
	err := c.call(ctx, http.MethodGet, "/v1/stats", nil, &st)
	return st, err
}

// Close releases the client's idle connections.
func (c *ControlClient) Close() error {
	c.c.CloseIdleConnections()
	return nil
}
