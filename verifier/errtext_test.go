package verifier

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestHugeDiscoveryAnswersBounded: an identity provider whose discovery
// answers a long error page gives an error (Start's, KeyStatus's) of at
// most MaxRemoteErrorText bytes and a note of what was cut; an answer
// larger than MaxDiscoverySize (8 MB error page, 2 MB document) is
// refused without being read whole; the error is still a discovery error.
func TestHugeDiscoveryAnswersBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		size   int
		want   string
	}{
		{"512 KiB error page", http.StatusInternalServerError, 512 << 10, "bytes cut"},
		{"8 MB error page", http.StatusInternalServerError, 8 << 20, "larger than"},
		{"2 MB document", http.StatusOK, 2 << 20, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Repeat("E", tc.size)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			j, err := NewJWT(JWTOptions{Name: "idp", Issuer: srv.URL, Audiences: []string{"a"}, Algorithms: []string{"RS256"},
				Client: &http.Client{Timeout: 30 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			err = j.Start(context.Background())
			if err == nil {
				t.Fatal("started")
			}
			for _, text := range []string{err.Error(), j.KeyStatus().Error} {
				if len(text) > MaxRemoteErrorText+100 || !strings.Contains(text, tc.want) {
					t.Errorf("an error of %d bytes without %q: %.200s…", len(text), tc.want, text)
				}
			}
			var de *discoveryError
			if !errors.As(err, &de) {
				t.Errorf("not a discovery error: %T", err)
			}
		})
	}
}

// TestBoundKeepsShortErrors: a short error is returned as it is; a long
// one is cut on a rune boundary, without control characters, and still
// matches what it wraps.
func TestBoundKeepsShortErrors(t *testing.T) {
	short := errors.New("short")
	if bound(short) != short || bound(nil) != nil {
		t.Fatal("a short error or nil was changed")
	}
	long := errors.Join(context.DeadlineExceeded, errors.New(strings.Repeat("é\n", MaxRemoteErrorText)))
	b := bound(long)
	if len(b.Error()) > MaxRemoteErrorText+40 || strings.ContainsRune(b.Error(), '\n') || !errors.Is(b, context.DeadlineExceeded) {
		t.Errorf("%d bytes, is deadline %v: %.80q", len(b.Error()), errors.Is(b, context.DeadlineExceeded), b.Error())
	}
	if !strings.HasPrefix(b.Error(), context.DeadlineExceeded.Error()) {
		t.Errorf("cut from elsewhere than the end: %.80q", b.Error())
	}
}
