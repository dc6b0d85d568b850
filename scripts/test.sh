#!/usr/bin/env bash
# Runs the whole edgeproxy test suite against real servers.
#
# Installs what is missing first: redis-server and postgresql from Debian's
# packages and the MinIO server binary (built with `go install`, cached under
# ${XDG_CACHE_HOME:-~/.cache}/edgeproxy/bin, about 3 minutes the first time).
# Extra arguments go to `go test` (e.g. scripts/test.sh -run Range ./proxy).
#
# Two passes: the whole suite with -race, then the zero-allocation guards
# (`*_alloc_test.go`, built with `!race` because the race detector
# allocates) without it, `go test -run Alloc` over the same packages.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/edgeproxy"
export PATH="$CACHE/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

# PostgreSQL: internal/testenv runs initdb and postgres from
# /usr/lib/postgresql/*/bin (as the user "postgres" when the tests run as root).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "test.sh: installing postgresql (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

stamp="$CACHE/bin/minio.version"
if [ ! -x "$CACHE/bin/minio" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$MINIO_VERSION" ]; then
  echo "test.sh: installing minio@$MINIO_VERSION into $CACHE/bin (one time, a few minutes)" >&2
  mkdir -p "$CACHE/bin"
  (cd /tmp && GOBIN="$CACHE/bin" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION")
  echo "$MINIO_VERSION" >"$stamp"
fi

# tus-js-client, the tus client the upload tests drive (package-lock.json pins it).
if [ ! -d upload/testdata/tusjs/node_modules/tus-js-client ]; then
  echo "test.sh: npm ci in upload/testdata/tusjs" >&2
  (cd upload/testdata/tusjs && npm ci --no-audit --no-fund >/dev/null)
fi
# react-uploady's tus sender, the second tus client (its own protocol code).
if [ ! -d upload/testdata/rpldy/node_modules/@rpldy/tus-sender ]; then
  echo "test.sh: npm ci in upload/testdata/rpldy" >&2
  (cd upload/testdata/rpldy && npm ci --no-audit --no-fund >/dev/null)
fi

if [ "$#" -eq 0 ]; then
  set -- ./...
fi
go test -race -timeout 20m "$@"
echo "test.sh: zero-allocation guards (go test -run Alloc, without -race)" >&2
# -run Alloc after the caller's arguments, so it is the -run that applies.
exec go test -timeout 10m "$@" -run Alloc
