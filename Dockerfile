# syntax=docker/dockerfile:1
# Build: docker build -t edgeproxy:dev .   (deploy/ uses this name and tag)
# Run:   docker run -p 8080:8080 -e EDGEPROXY_ORIGIN_S3_ENDPOINT=minio:9000 \
#          -e EDGEPROXY_ORIGIN_S3_ACCESS_KEY=... -e EDGEPROXY_ORIGIN_S3_SECRET_KEY=... edgeproxy:dev
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/edgeproxy ./cmd/edgeproxy
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/edgectl ./cmd/edgectl
RUN mkdir /cache

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
COPY config.yaml /etc/edgeproxy/config.yaml
# The disk tier's directory in deploy/ (cache.disk_dir), empty and owned by
# the user, so that a volume first mounted here is writable by it.
COPY --from=build --chown=nonroot:nonroot /cache /var/cache/edgeproxy
USER nonroot:nonroot
EXPOSE 8080
ENV EDGEPROXY_CONFIG=/etc/edgeproxy/config.yaml
ENTRYPOINT ["/usr/local/bin/edgeproxy"]
