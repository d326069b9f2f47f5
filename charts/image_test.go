package charts

import (
	"os"
	"regexp"
	"testing"
)

// TestDefaultImageIsTheOneTheDockerfileBuilds: the image is not published,
// so the chart's default must be the name the Dockerfile's documented build
// gives it (to load into the nodes), never a registry path that nobody
// publishes to and anyone could claim.
func TestDefaultImageIsTheOneTheDockerfileBuilds(t *testing.T) {
	image := container(t, render(t)["Deployment"], "tokengate")["image"]
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`docker build .*-t (\S+) \.`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("the Dockerfile documents no `docker build -t NAME .`")
	}
	if image != string(m[1]) {
		t.Fatalf("the chart runs %v by default; the Dockerfile builds %s", image, m[1])
	}
}
