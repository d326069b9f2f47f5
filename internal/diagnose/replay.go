package diagnose

import (
	"context"
	"fmt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/stack"
	"github.com/tokengate/tokengate/signature"
)

// checkReplayStore pings a Redis replay store once (unless its URL is
// among the configuration's problems) and checks every signature route's
// secrets decode for its scheme.
func checkReplayStore(ctx context.Context, cfg *config.Config, badPaths map[string]bool) []string {
	var problems []string
	b := stack.NewBuilder(stack.Options{})
	for i, r := range cfg.Routes {
		if s := r.Signature; s != nil && s.Scheme != "" && len(s.AllSecrets()) > 0 {
			if _, err := signature.New(signature.Options{Scheme: s.Scheme, Secrets: s.AllSecrets()}); err != nil {
				problems = append(problems, fmt.Sprintf("routes[%d].signature: %v", i, err))
			}
		}
	}
	if !cfg.Signatures.RedisReplay() || notProbed("signatures.replay_store", badPaths) {
		return problems
	}
	st, err := b.ReplayStore(cfg.Signatures)
	if err != nil {
		return append(problems, fmt.Sprintf("signatures.replay_store: %v", err))
	}
	rs := st.(*signature.RedisStore)
	defer rs.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := rs.Ping(ctx); err != nil {
		problems = append(problems, fmt.Sprintf("signatures.replay_store: Redis does not answer: %v", err))
	}
	return problems
}
