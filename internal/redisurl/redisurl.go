// Package redisurl checks and parses the redis:// and rediss:// URLs of
// the configuration (signatures.replay_store, queue.store, redis.url)
// without ever putting the URL, or a part of it, into an error: the URL
// may hold a password, and the parsers' own errors quote it (net/url's
// `parse "redis://:pass@…": …`, an invalid port or database number that
// is a piece of a password cut by an unescaped "/").
//
//	opts, err := redisurl.Parse(os.Getenv("REDIS_URL")) // err: no part of the URL
package redisurl

import (
	"errors"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Escape is the advice every message about a password cut short gives.
const Escape = "percent-encode @ # / ? in the password as %40 %23 %2F %3F (and other reserved characters, e.g. ^ as %5E)"

// The reasons Check gives; none holds a part of the URL.
var (
	ErrNotURL   = errors.New("not a valid URL (the URL is not shown: it may hold a password); " + Escape)
	ErrScheme   = errors.New("must be a redis:// or rediss:// URL")
	ErrMisSplit = errors.New("the URL does not split where its password ends (a fragment after #, or an @ outside the user info): " + Escape)
	ErrNoHost   = errors.New("a redis URL needs a host")
	ErrClient   = errors.New("not usable by the Redis client: redis[s]://[[user]:password@]host[:port][/database] with a numeric database and known options")
)

// Check reports why raw is not a usable redis:// or rediss:// URL, or
// nil. A URL whose user info would be split elsewhere than the writer
// meant is refused: a fragment (an unescaped # in the password makes
// net/url take the rest as a fragment and a piece of the password as the
// host, which would then be shown and looked up in DNS), more than one @
// in the authority, or an @ after it (an unescaped / or ? in the
// password).
func Check(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return ErrNotURL
	case u.Scheme != "redis" && u.Scheme != "rediss":
		return ErrScheme
	case misSplit(raw, u):
		return ErrMisSplit
	case u.Host == "":
		return ErrNoHost
	}
	if _, err := redis.ParseURL(raw); err != nil {
		return ErrClient
	}
	return nil
}

// misSplit reports a fragment, or an @ that is not the one ending the
// user info.
func misSplit(raw string, u *url.URL) bool {
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return true
	}
	rest := raw[strings.Index(raw, ":")+1:]
	if !strings.HasPrefix(rest, "//") {
		return strings.Contains(rest, "@")
	}
	rest = rest[2:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	return strings.Count(rest[:end], "@") > 1 || strings.Contains(rest[end:], "@")
}

// Parse checks raw (Check) and returns the Redis client's options for it;
// the error never holds a part of raw.
func Parse(raw string) (*redis.Options, error) {
	if err := Check(raw); err != nil {
		return nil, err
	}
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, ErrClient
	}
	return o, nil
}
