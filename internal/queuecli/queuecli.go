package queuecli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/queue"
)

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")

// Commands are the subcommands Run knows, for the usage text.
const Commands = "list, show ID, retry ID, retry --dead, drop ID, stats"

// Options are the subcommands' flags.
type Options struct {
	// Route restricts list and retry --dead to one route ("": list needs
	// one only when more than one route is queued).
	Route string
	// State of list: pending (default) or dead.
	State string
	// Limit of list; 0: 50.
	Limit int
	// Dead: retry every dead letter (of Route, or of every route).
	Dead bool
}

// Run loads the configuration at path, connects to its queue and runs
// cmd with its arguments, printing to out.
func Run(ctx context.Context, path, cmd string, args []string, o Options, out io.Writer) error {
	if err := validate(cmd, args, o); err != nil {
		return err
	}
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		return err
	}
	if !cfg.QueuedRoutes() {
		return errors.New("no route is queued (routes[].delivery.mode: queued): there is no queue")
	}
	op, closer, err := queue.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer closer.Close()
	switch cmd {
	case "list":
		return list(ctx, op, cfg, o, out)
	case "show":
		return show(ctx, op, args[0], out)
	case "retry":
		if o.Dead {
			return retryDead(ctx, op, cfg, o.Route, out)
		}
		if err := op.Retry(ctx, args[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "%s: due now\n", args[0])
		return err
	case "drop":
		if err := op.Drop(ctx, args[0]); err != nil {
			return err
		}
		_, err := fmt.Fprintf(out, "%s: dropped\n", args[0])
		return err
	default: // stats
		return stats(ctx, op, out)
	}
}

// validate checks cmd's arguments and flags before anything is opened.
func validate(cmd string, args []string, o Options) error {
	want := 0
	switch cmd {
	case "show", "drop":
		want = 1
	case "retry":
		if !o.Dead {
			want = 1
		}
	case "list", "stats":
	case "":
		return fmt.Errorf("%w: tokengate queue needs a command: %s", ErrUsage, Commands)
	default:
		return fmt.Errorf("%w: unknown queue command %q (%s)", ErrUsage, cmd, Commands)
	}
	if len(args) != want {
		return fmt.Errorf("%w: queue %s takes %d argument(s) (a message id), got %q", ErrUsage, cmd, want, args)
	}
	if o.State != "" && o.State != string(queue.Pending) && o.State != string(queue.Dead) {
		return fmt.Errorf("%w: --state is pending or dead, got %q", ErrUsage, o.State)
	}
	if o.Limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", ErrUsage)
	}
	return nil
}

// routes are o.Route, or every queued route of cfg and every route that
// has stored messages (a route a reload or restart stopped queueing keeps
// its messages, dead letters included, until they are retried or dropped).
func routes(ctx context.Context, op queue.Operator, cfg *config.Config, route string) ([]string, error) {
	seen := map[string]bool{}
	var all []string
	add := func(name string) {
		if !seen[name] && (route == "" || name == route) {
			seen[name] = true
			all = append(all, name)
		}
	}
	for _, r := range queue.RoutesFromConfig(cfg) {
		add(r.Name)
	}
	stats, err := op.Stats(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range stats {
		add(st.Route)
	}
	if route != "" && len(all) == 0 {
		return nil, fmt.Errorf("%w: --route %q is neither a queued route of this configuration nor a route with stored messages", ErrUsage, route)
	}
	return all, nil
}

func list(ctx context.Context, op queue.Operator, cfg *config.Config, o Options, out io.Writer) error {
	rs, err := routes(ctx, op, cfg, o.Route)
	if err != nil {
		return err
	}
	state, limit := queue.State(o.State), o.Limit
	if state == "" {
		state = queue.Pending
	}
	if limit == 0 {
		limit = 50
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDELIVERY ID\tROUTE\tSTATE\tATTEMPTS\tRECEIVED\tNEXT\tLAST")
	for _, r := range rs {
		ms, err := op.List(ctx, r, state, limit)
		if err != nil {
			return err
		}
		for _, m := range ms {
			next := "-"
			if m.State == queue.Pending {
				next = m.Next.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.ID, strconv.Quote(m.DeliveryID), m.Route, m.State, m.Attempts,
				m.Received.UTC().Format(time.RFC3339), next, last(m))
		}
	}
	return tw.Flush()
}

// last describes a message's last attempt, quoted: the receiver wrote it.
func last(m *queue.Message) string {
	s := ""
	switch a := m.Last; {
	case a == nil:
		s = "-"
	case a.Status != 0:
		s = strconv.Itoa(a.Status) + " " + strconv.Quote(a.Body)
	default:
		s = strconv.Quote(a.Error)
	}
	if m.Reason != "" {
		s = m.Reason + ": " + s
	}
	return s
}

// credentialHeaders are shown redacted: show's output lands in
// terminals and tickets.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

func show(ctx context.Context, op queue.Operator, id string, out io.Writer) error {
	m, err := op.Get(ctx, id)
	if err != nil {
		return err
	}
	h := http.Header{}
	for k, v := range m.Header {
		h[k] = v
	}
	for _, k := range credentialHeaders {
		if h.Get(k) != "" {
			h.Set(k, "[redacted]")
		}
	}
	m.Header = h
	v := struct {
		*queue.Message
		Progress queue.Progress `json:"progress"`
		Body     string         `json:"body"`
		Encoding string         `json:"body_encoding,omitempty"`
	}{m, m.Progress, string(m.Body), ""}
	if !utf8.Valid(m.Body) { // binary: shown whole and exact, not as lossy text
		v.Body, v.Encoding = base64.StdEncoding.EncodeToString(m.Body), "base64"
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func retryDead(ctx context.Context, op queue.Operator, cfg *config.Config, route string, out io.Writer) error {
	rs, err := routes(ctx, op, cfg, route)
	if err != nil {
		return err
	}
	total := 0
	for _, r := range rs {
		n, err := op.RetryDead(ctx, r)
		total += n
		if err != nil {
			return fmt.Errorf("%d dead letters retried, then: %w", total, err)
		}
	}
	_, err = fmt.Fprintf(out, "%d dead letters retried\n", total)
	return err
}

func stats(ctx context.Context, op queue.Operator, out io.Writer) error {
	st, err := op.Stats(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tPENDING\tDEAD\tBYTES\tOLDEST")
	for _, s := range st {
		oldest := "-"
		if !s.Oldest.IsZero() {
			oldest = s.Oldest.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", s.Route, s.Pending, s.Dead, s.Bytes, oldest)
	}
	return tw.Flush()
}
