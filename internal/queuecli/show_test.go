package queuecli

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/queue"
)

// TestShowPrintsEveryBodyExactly: a text body is shown as text; a body
// that is not UTF-8 is shown in base64 and says so, never as lossy text
// (an outside attack saw a 3 MB binary body come back as replacement
// characters).
func TestShowPrintsEveryBodyExactly(t *testing.T) {
	s, err := queue.OpenFile(queue.FileOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	target, _ := url.Parse("http://127.0.0.1:1")
	q, err := queue.New(s, queue.Options{Routes: []queue.RouteOptions{{Name: "gh"}}, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	binary := []byte{0xff, 0x00, 0xfe, 'a', 0x80}
	cases := []struct {
		name string
		body []byte
		want []string
		not  string
	}{
		{"text", []byte(`{"ü":1}`), []string{`"body": "{\"ü\":1}"`}, "body_encoding"},
		{"binary", binary, []string{`"body": "` + base64.StdEncoding.EncodeToString(binary) + `"`, `"body_encoding": "base64"`}, "\uFFFD"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &queue.Message{Route: "gh", Method: http.MethodPost, Path: "/hooks", Body: tc.body, DeliveryID: "sender-id-" + tc.name}
			if err := q.Enqueue(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := show(context.Background(), q, m.ID, &out); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("show has no %s:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), tc.not) {
				t.Errorf("show has %q:\n%s", tc.not, out.String())
			}
		})
	}
}
