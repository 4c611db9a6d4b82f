# syntax=docker/dockerfile:1.7
#
# The piazza image, in three stages (deploy/dockerfile_test.go checks this layout):
#
#   builder     compiles the static binary. go.mod and go.sum are copied and the modules
#               downloaded before the source, so that layer is rebuilt only when the
#               dependencies change; downloads and the build cache live in cache mounts.
#   dev         the rebuild loop: mount the source on /src and every change to it rebuilds
#               and restarts the process (piazza-watch, below).
#                 docker build --target dev -t piazza:dev .
#                 docker run --rm -p 8080:8080 -v "$PWD:/src" piazza:dev
#   production  distroless, non-root, the binary only (the default target).
#                 docker build -t piazza:local .
#                 docker run --rm -p 8080:8080 -v piazza-data:/data piazza:local
#               runs the embedded default; deploy/docker-compose.yml runs one service per
#               container with `serve --services=<name>`.

ARG GO_VERSION=1.26.8

# ---------------------------------------------------------------------------------------- builder
# Built on the build machine's platform and cross-compiled (no cgo: the SQLite driver is pure
# Go), so a multi-platform build does not emulate the compiler.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS builder
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false

COPY go.mod go.sum ./
RUN --mount=type=cache,id=piazza-gomod,target=/go/pkg/mod,sharing=locked \
    go mod download && go mod verify

COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,id=piazza-gomod,target=/go/pkg/mod,sharing=locked \
    --mount=type=cache,id=piazza-gobuild,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/piazza ./cmd/piazza \
    && mkdir -p /out/data

# -------------------------------------------------------------------------------------------- dev
FROM builder AS dev
# The loop compiles at run time, where the cache mounts do not exist: this (local-only) image
# keeps the modules and a warm build cache in its layers, so the first rebuild is incremental.
RUN --mount=type=cache,id=piazza-gomod,target=/tmp/gomod,sharing=locked \
    cp -a /tmp/gomod/. /go/pkg/mod/ \
    && go build -o /dev/null ./cmd/piazza

COPY --chmod=0755 <<'EOF' /usr/local/bin/piazza-watch
#!/bin/sh
# piazza-watch ARGS...: builds ./cmd/piazza into /go/bin/piazza and runs it with ARGS; whenever
# a Go file, go.mod, go.sum or an embedded file (SQL, JSON, text) under the working directory
# changes, stops it (SIGTERM: it drains), rebuilds and starts it again. A failed build waits
# for the next change. Polls once a second, so it needs no file-system notification tool.
set -u
stamp=/tmp/piazza-watch.stamp
pid=
stop() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		pid=
	fi
}
trap 'stop; exit 0' TERM INT
changed() {
	find . \( -path ./data -o -path ./.git -o -path ./.infra \) -prune -o -newer "$stamp" -type f \
		\( -name '*.go' -o -name go.mod -o -name go.sum -o -name '*.sql' -o -name '*.json' -o -name '*.txt' \) \
		-print | head -n 1
}
while :; do
	touch "$stamp"
	if go build -o /go/bin/piazza ./cmd/piazza; then
		/go/bin/piazza "$@" &
		pid=$!
	else
		echo "piazza-watch: build failed; waiting for a change" >&2
	fi
	while [ -z "$(changed)" ]; do
		sleep 1
	done
	echo "piazza-watch: $(changed) changed; rebuilding" >&2
	stop
done
EOF

ENV PIAZZA_HTTP_ADDR=0.0.0.0:8080 \
    PIAZZA_ADMIN_ADDR=0.0.0.0:9090 \
    PIAZZA_GRPC_ADDR=0.0.0.0:9000 \
    PIAZZA_DATA_DIR=/data
EXPOSE 8080 9000 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=5m --retries=3 CMD ["/go/bin/piazza", "healthcheck"]
ENTRYPOINT ["piazza-watch"]
CMD ["dev"]

# ------------------------------------------------------------------------------------- production
FROM gcr.io/distroless/static-debian12:nonroot AS production
COPY --from=builder /out/piazza /usr/local/bin/piazza
# The embedded default keeps its SQLite files here; a volume mounted on it inherits the owner.
COPY --from=builder --chown=65532:65532 /out/data /data
# Numeric, so that orchestrators can verify "non-root" without reading /etc/passwd.
USER 65532:65532
WORKDIR /data
# A container listens on every interface; the admin port is for the orchestrator and
# Prometheus, and is published to no one.
ENV PIAZZA_HTTP_ADDR=0.0.0.0:8080 \
    PIAZZA_ADMIN_ADDR=0.0.0.0:9090 \
    PIAZZA_GRPC_ADDR=0.0.0.0:9000 \
    PIAZZA_DATA_DIR=/data
EXPOSE 8080 9000 9090
# No shell, no curl: the binary checks itself (GET /readyz on PIAZZA_ADMIN_ADDR, exit 0 or 1).
HEALTHCHECK --interval=10s --timeout=5s --start-period=2m --retries=3 \
    CMD ["/usr/local/bin/piazza", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/piazza"]
CMD ["dev"]
