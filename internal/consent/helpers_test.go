package consent

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/egress/egresstest"
	"github.com/tokengate/tokengate/internal/consent/consenttest"
)

// authCodeConfig writes an egress-only config with one authorization-code
// entry, "deployteq" (consenttest.Config).
func authCodeConfig(t *testing.T, srv *egresstest.AuthServer, upstream string) (path, rtFile, redirect string) {
	return consenttest.Config(t, srv, upstream)
}

// runAuthorize starts `tokengate authorize` for "deployteq" and returns
// the URL it asks to open and channels with its exit status and output.
func runAuthorize(t *testing.T, path string, paste bool, stdin io.Reader) (string, <-chan string, <-chan int) {
	return consenttest.Run(t, func(ctx context.Context, out io.Writer) error {
		return Authorize(ctx, path, consenttest.Entry, paste, stdin, out)
	})
}

func fileContent(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
