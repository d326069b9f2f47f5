package diagnose

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/redisconn"
)

// checkSharedRedis PINGs the server of the redis: block once, as every
// connection starts: with AUTH when the URL holds a password. What uses
// it (route rate limits, the Token URL's buckets, shared egress tokens)
// falls back when it does not answer and a running gate stays ready, so
// a wrong password or address shows here, as a problem, or in the log
// and on the status page. No message holds the password.
func checkSharedRedis(ctx context.Context, cfg *config.Config, badPaths map[string]bool, out io.Writer) []string {
	if !cfg.Redis.On() || notProbed("redis", badPaths) {
		return nil
	}
	c, err := redisconn.New(cfg.Redis)
	if err != nil {
		return []string{err.Error()}
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return []string{fmt.Sprintf("redis.url: the shared Redis does not answer PING (%s): rate limits would count in each replica's memory and shared egress entries request their own tokens",
			withoutPassword(err.Error(), cfg.Redis.URL))}
	}
	fmt.Fprintf(out, "redis    %s: answers PING (rate limits, shared egress tokens)\n", config.RedactedURL(cfg.Redis.URL))
	return nil
}

// withoutPassword hides raw's password from text (the server's own error
// texts never echo it; this is the second line).
func withoutPassword(text, raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			text = strings.ReplaceAll(text, p, "[redacted]")
		}
	}
	return text
}
