# syntax=docker/dockerfile:1
# Build: a static binary (no cgo), trimmed paths, version stamped.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/edge ./cmd/edge \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/purge ./cmd/purge \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/dnsgeo ./cmd/dnsgeo \
 && mkdir -p /out/cache

# Run: distroless static (CA certificates for S3, tzdata), non-root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edge /usr/local/bin/edge
# The purge CLI, for release pipelines: docker run --entrypoint purge edge url ...
COPY --from=build /out/purge /usr/local/bin/purge
# The DNS server, so one image serves a region (deploy/kubernetes runs it
# as command: /usr/local/bin/dnsgeo).
COPY --from=build /out/dnsgeo /usr/local/bin/dnsgeo
# The disk tier, writable by the nonroot user (uid 65532); mount a volume
# here so the cache survives restarts.
COPY --from=build --chown=65532:65532 /out/cache /var/cache/edge
VOLUME ["/var/cache/edge"]
USER nonroot:nonroot
EXPOSE 8080 9080
ENTRYPOINT ["/usr/local/bin/edge", "-cache-dir", "/var/cache/edge", "-http", ":8080", "-admin", ":9080"]
