package gate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// chromium returns the browser's path. Without one the test is skipped,
// except in CI ($CI set), where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI (apt-get install chromium): %v", err)
		}
		t.Skipf("chromium not installed (%v); CI installs it", err)
	}
	return chromiumPath
}

// TestStatusPageInABrowser loads the status page of a running gate (real
// issuer with discovery and JWKS, real requests, an egress token, queued
// routes) in headless Chromium and checks what it shows: the issuer's kid,
// the bearer route's counts and refusals, the egress token held, the
// pending message and the dead letter. Any console message, uncaught
// exception or browser log entry at error level fails the test: the page
// has no script, so a CSP violation (a style the policy's hash does not
// cover, markup injected by an error text) is the kind of thing that would
// show. A screenshot is saved in the test's temporary directory, and at
// $TOKENGATE_SCREENSHOT when set.
func TestStatusPageInABrowser(t *testing.T) {
	exe := chromium(t)
	f := newStatusFixture(t)
	f.traffic(t)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	var mu sync.Mutex
	var problems []string
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	err := chromedp.Listen(bctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled: // the page has no script: any call is wrong
			var args []string
			for _, a := range e.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			note("console.%s: %s", e.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			note("exception: %s (%s:%d)", e.ExceptionDetails.Text, e.ExceptionDetails.URL, e.ExceptionDetails.LineNumber)
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				note("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL)
			}
		}
	})
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(f.admin+"/"), chromedp.WaitVisible("#queue")); err != nil {
		t.Fatalf("loading the status page: %v", err)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	if title, err := chromedp.Run(bctx, chromedp.Title()); err != nil || title != "tokengate status" {
		t.Errorf("title %q (%v): the page's title was changed", title, err)
	}
	if s := text("#issuers"); !strings.Contains(s, f.idp.Signer().ID) || !strings.Contains(s, "ready") || !strings.Contains(s, "done") {
		t.Errorf("issuers section: %q, want kid %s, ready, discovery done", s, f.idp.Signer().ID)
	}
	if s := text("#routes"); !regexpMatch(t, `api\s+bearer\s+4\s+3\s+insufficient_scope 1\s+invalid_token 1\s+no_token 1`, s) {
		t.Errorf("routes section: %q, want api: bearer, 4 requests, 3 refused by reason", s)
	}
	if s := text("#egress"); !regexpMatch(t, stEgressEntry+`\s+client_credentials\s+held\s+\d+m`, s) || !strings.Contains(s, stInjectedHTML) || !strings.Contains(s, "[redacted]") {
		t.Errorf("egress section: %q, want %s's token held, and the failing entries' errors as text, redacted", s, stEgressEntry)
	}
	if s := text("#queue"); !regexpMatch(t, `gh\s+1\s+\S+\s+0`, s) || !regexpMatch(t, `ghdead\s+0\s+–\s+1`, s) {
		t.Errorf("queue section: %q, want gh pending 1, ghdead one dead letter", s)
	}
	if s := text("#replay"); !strings.Contains(s, "memory: reachable") {
		t.Errorf("replay section: %q", s)
	}
	// The inline style applies (its hash is in the policy): sections have
	// the stylesheet's rounded border.
	style, err := chromedp.Run(bctx, chromedp.ComputedStyle("section"))
	if err != nil {
		t.Fatal(err)
	}
	radius := ""
	for _, p := range style {
		if p.Name == "border-top-left-radius" {
			radius = p.Value
		}
	}
	if radius != "8px" {
		t.Errorf("section border radius %q, want 8px: the inline style did not apply", radius)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "status.png")
	if keep := os.Getenv("TOKENGATE_SCREENSHOT"); keep != "" {
		shot = keep
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// Console events may trail the page; a last command makes the browser
	// send what it had before answering.
	if _, err := chromedp.Run(bctx, chromedp.Title()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}

// regexpMatch reports whether s matches the regular expression re.
func regexpMatch(t *testing.T, re, s string) bool {
	t.Helper()
	return regexp.MustCompile(re).MatchString(s)
}
