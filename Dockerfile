# syntax=docker/dockerfile:1
#
# kafka-backup as a container: a static binary on distroless, run as a
# non-root user, reading its Benthos config from a mounted file.
#
#   docker build -t kafka-backup \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg DATE_BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run --rm -p 4195:4195 \
#     -v $PWD/config/local-redpanda.yaml:/etc/kafka-backup/config.yaml:ro \
#     -v kafka-backup-data:/var/lib/kafka-backup \
#     -e KAFKA_BROKERS=broker:9092 -e BACKUP_TOPICS=orders kafka-backup
#
# Probes: the Benthos HTTP server (0.0.0.0:4195 unless the config sets
# http.address) answers GET /ping (200 while the process runs: liveness) and
# GET /ready (200 once input and output are connected, 503 otherwise:
# readiness), and serves /metrics. There is deliberately no HEALTHCHECK: the
# runtime image has no shell or HTTP client to run one, and orchestrators
# probe over HTTP themselves (docs/operations.md, config/kubernetes/).
#
# The build line below is the one tests/e2e_docker_test.go parses and runs,
# so the binary the tests check is the binary this image ships. It matches
# `make build`.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Set by BuildKit from --platform (cross-compiled on the build platform).
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG DATE_BUILT
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.dateBuilt=${DATE_BUILT}" \
      -o /out/kafka-backup ./cmd/kafka-backup
# The volume's mount point, owned by the runtime user: a named volume starts
# as a copy of it, so the spool is writable without running as root.
RUN mkdir -p /out/var/lib/kafka-backup/spool

# distroless/static: CA certificates (/etc/ssl/certs, for FTPS and Kafka TLS),
# time zone data (/usr/share/zoneinfo), /etc/passwd with user nonroot (65532);
# no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="kafka-backup" \
      org.opencontainers.image.description="Back up Kafka topics into Kafka log segment files, on local disk or FTP/FTPS" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/kafka-backup /kafka-backup
COPY --from=build --chown=65532:65532 /out/var/lib/kafka-backup /var/lib/kafka-backup
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The FTP spool (/var/lib/kafka-backup/spool) and, for the local destination,
# the backup itself: acknowledged records not yet uploaded live only here, so
# mount a persistent volume.
VOLUME ["/var/lib/kafka-backup"]
# Benthos HTTP server: /ping, /ready, /metrics.
EXPOSE 4195
ENTRYPOINT ["/kafka-backup"]
CMD ["run", "/etc/kafka-backup/config.yaml"]
