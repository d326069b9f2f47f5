package redisconn

import (
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/signature/redistest"
)

// TestNewTalksToTheServer: the client reaches a real redis-server at the
// configured URL, with the configured timeout.
func TestNewTalksToTheServer(t *testing.T) {
	srv := redistest.Start(t)
	c, err := New(&config.Redis{URL: srv.URL(), Timeout: config.Duration(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Options().ReadTimeout != 2*time.Second {
		t.Errorf("read timeout %v", c.Options().ReadTimeout)
	}
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestNewHidesThePassword: a URL it cannot use is refused without
// quoting its password; so is one whose unescaped # would make a piece of
// the password the host.
func TestNewHidesThePassword(t *testing.T) {
	for _, u := range []string{"redis://:hunter2@127.0.0.1:6379/x", "redis://:hunter2@[::1:6379/0",
		"redis://:hun^ter2@127.0.0.1:6379/0", "redis://:p@ssw0rd#hunter2@127.0.0.1:6379/0"} {
		_, err := New(&config.Redis{URL: u})
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err = %v", u, err)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("no block: no error")
	}
}
