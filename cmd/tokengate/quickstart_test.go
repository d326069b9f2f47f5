package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickstartEgressCurl runs the quickstart as the README's first
// command does (examples/quickstart.yaml, its ports moved to free ones)
// and sends the README's egress curl: no token in hand, the webhook
// reaches the demo receiver through the egress and the gate.
func TestQuickstartEgressCurl(t *testing.T) {
	raw, err := os.ReadFile("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub, eg, recv := freeAddr(t), freeAddr(t), freeAddr(t)
	y := strings.NewReplacer(`":8080"`, `"`+pub+`"`, "localhost:8080", pub, "127.0.0.1:8081", eg,
		"127.0.0.1:9090", "127.0.0.1:0", "127.0.0.1:9000", recv).Replace(string(raw))
	if y == string(raw) || !strings.Contains(y, "egress:") {
		t.Fatal("the quickstart config has no egress entry to test")
	}
	dir := t.TempDir()
	secret, err := os.ReadFile("../../examples/quickstart-client-secret")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"quickstart.yaml": []byte(y), "quickstart-client-secret": secret} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &safeBuffer{}
	done := make(chan error, 1)
	go func() { done <- runQuickstart(ctx, filepath.Join(dir, "quickstart.yaml"), recv, out, io.Discard) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var resp *http.Response
	// Until the listeners are up: generous, a busy machine starts slowly
	// (the property is that the curl works, not how soon).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		resp, err = http.Post("http://"+eg+"/hooks/aftership", "application/x-www-form-urlencoded", strings.NewReader(`{"tracking_number":"1Z999AA10123456784"}`))
		if err == nil {
			break
		}
		select {
		case qerr := <-done:
			done <- qerr // for the deferred wait
			t.Fatalf("the quickstart stopped before its egress answered: %v", qerr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quickstart's egress did not answer within a minute: %v", err)
		}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"received":true`) {
		t.Fatalf("egress curl: %d %s", resp.StatusCode, b)
	}
	for _, want := range []string{">>> webhook received: POST /hooks/aftership", "X-Auth-Client-Id: aftership", `body: {"tracking_number":"1Z999AA10123456784"}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo receiver output lacks %q:\n%s", want, out.String())
		}
	}
}
