#!/usr/bin/env bash
# Builds tokengate release binaries with the Dockerfile's exact build line,
# writes their SHA-256 sums and a CycloneDX SBOM per target.
#
#   bash scripts/release.sh [VERSION] [OUTDIR]     (defaults: git describe, dist/)
#
# Targets: linux/amd64, linux/arm64, darwin/arm64. The SBOM tool is pinned and
# installed from the Go module proxy into $GOBIN (default ~/.cache/tokengate-ci/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
out="${2:-dist}"
sbom_version=v1.10.0
export GOBIN="${GOBIN:-$HOME/.cache/tokengate-ci/bin}"
mkdir -p "$GOBIN" "$out"
out=$(cd "$out" && pwd)
[ -x "$GOBIN/cyclonedx-gomod" ] && "$GOBIN/cyclonedx-gomod" version 2>/dev/null | grep -q "${sbom_version#v}" ||
  go install "github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$sbom_version"

# The Dockerfile's RUN line, so the release and the image cannot drift apart.
build_line=$(grep -E '^RUN CGO_ENABLED=0 go build' Dockerfile | sed -e 's/^RUN //')
[ -n "$build_line" ] || { echo "release: no build line in Dockerfile" >&2; exit 1; }

rm -f "$out"/tokengate-* "$out/SHA256SUMS"
for target in linux/amd64 linux/arm64 darwin/arm64; do
  os=${target%/*} arch=${target#*/}
  name="tokengate-$version-$os-$arch"
  (
    export GOOS=$os GOARCH=$arch VERSION=$version
    eval "${build_line//\/out\/tokengate/$out/$name}"
    CGO_ENABLED=0 "$GOBIN/cyclonedx-gomod" app -json -licenses=false -main cmd/tokengate \
      -output "$out/$name.cdx.json" . 2>/dev/null
  )
  echo "built $name"
done
(cd "$out" && sha256sum tokengate-* > SHA256SUMS)
cat "$out/SHA256SUMS"
