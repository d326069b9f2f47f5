package telemetry

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/proxy"
)

// TestProductionDocsListEveryMetricAndDecision keeps docs/production.md's
// metric table honest: every metric this package registers and every
// decision label the proxy records is named there.
func TestProductionDocsListEveryMetricAndDecision(t *testing.T) {
	doc, err := os.ReadFile("../../docs/production.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, b...)
	}
	names := regexp.MustCompile(`"(tokengate_[a-z0-9_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the package's sources", len(names))
	}
	for _, n := range names {
		if !strings.Contains(string(doc), n[1]) {
			t.Errorf("docs/production.md does not list the metric %s", n[1])
		}
	}
	var row string
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `tokengate_requests_total{") {
			row = line
		}
	}
	for _, d := range []string{proxy.DecisionAllow, proxy.DecisionPublic, proxy.DecisionNoRoute, proxy.DecisionNoToken,
		proxy.DecisionBadRequest, proxy.DecisionInvalid, proxy.DecisionForbidden, proxy.DecisionUnavailable, proxy.DecisionError,
		proxy.DecisionBadSignature, proxy.DecisionReplayed, proxy.DecisionDuplicate, proxy.DecisionRateLimited} {
		if !regexp.MustCompile(`\b` + d + `\b`).MatchString(row) {
			t.Errorf("the decision %q is not in docs/production.md's tokengate_requests_total row", d)
		}
	}
}
