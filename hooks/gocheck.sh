#!/usr/bin/env sh
# The pre-commit hook `gocheck` (language: script): Go's own parser on the staged .go files, with no Python
# package and no torch. It builds go/cmd/gocheck from this repository with the Go on PATH, once per source
# (cached by its hash), then runs it on the files pre-commit passes. Exit 0 clean, 1 findings, 2 usage.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
go=${GO:-go}
if ! command -v "$go" >/dev/null 2>&1; then
    echo "gocheck hook: no Go toolchain on PATH (install Go, or use the gocoder-check hook)" >&2
    exit 2
fi
sum=$(cat "$here/go/go.mod" "$here"/go/gocheck/*.go "$here"/go/cmd/gocheck/*.go | cksum | cut -d' ' -f1)
cache=${GOCODER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gocoder}
bin="$cache/gocheck-hook-$sum"
if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    # built to a temporary name and renamed: two hooks starting at once never run a half-written binary
    (cd "$here/go" && GOTOOLCHAIN=local GOFLAGS=-mod=mod "$go" build -o "$bin.$$" ./cmd/gocheck)
    mv -f "$bin.$$" "$bin"
fi
exec "$bin" -kind file "$@"
