# syntax=docker/dockerfile:1
#
# tokengate: a static binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=v0.1.0 -t tokengate:0.1.0 .
#   docker network create tokengate-demo
#   docker run -d --name receiver --network tokengate-demo -e HTTP_PORT=9000 mendhak/http-https-echo:37
#   docker run --rm --name tokengate --network tokengate-demo \
#     -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -v "$PWD/examples/docker:/etc/tokengate:ro" tokengate:0.1.0
#
# (examples/docker/config.yaml is made for this image: both listeners bind
# every interface inside the container, the upstream is the "receiver"
# container by name, and the admin port is published to the host's loopback
# only. examples/quickstart.yaml is for a laptop without Docker: its
# loopback-only admin port and upstream cannot work in a container.)
# The image is not published: build it, and push it to your registry for the
# Helm chart (tokengate.image.repository).
#
# Config:  /etc/tokengate/config.yaml (TOKENGATE_CONFIG); mount its directory read-only.
# Ports:   8080 public (webhooks, Token URL), 9090 admin (/healthz /readyz /metrics);
#          config files for this image bind them on every interface (":8080", ":9090").
# User:    65532 (distroless "nonroot"); the filesystem can be read-only.
# State:   /var/lib/tokengate (owned by 65532): mount a volume there for the
#          delivery queue's file store and refresh tokens.
# Health:  /tokengate probe  (GETs http://127.0.0.1:9090/readyz; no curl needed)
#
# CI builds the binary with the RUN line below verbatim (.ci/run extracts it),
# so the flags cannot rot even though no Docker engine runs there.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tokengate ./cmd/tokengate
RUN mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tokengate /tokengate
# The state directory (queue store, refresh tokens), owned by the user: a
# named volume mounted here starts with this owner.
COPY --from=build --chown=65532:65532 /out/state /var/lib/tokengate
USER 65532:65532
ENV TOKENGATE_CONFIG=/etc/tokengate/config.yaml
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/tokengate", "probe"]
ENTRYPOINT ["/tokengate"]
CMD ["serve"]
