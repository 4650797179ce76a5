#!/usr/bin/env bash
# What a GPU machine needs, beside the repository, to generate AND score `gocoder bench` in one call
# (it has torch, numpy, sentencepiece, safetensors and transformers, no network, no Go): issue 25.
#
#   runs/gpu-kit.sh pack [KIT]        here: pack KIT (default .kit, an ignored folder of the repo) and check it
#   source runs/gpu-kit.sh unpack [KIT]   there: unpack to /tmp/gokit, set PATH, GOROOT, PYTHONPATH, GOCODER_GOCHECK
#
# The kit: the wheels gocoder imports that the machine may lack or hold at other versions (cp312, manylinux,
# x86_64; installed with pip --no-index --no-deps --target /tmp/site), a trimmed Go toolchain (the go command,
# compile, link, asm and vet (go test asks for it even with -vet=off), pkg/include and the standard
# library's sources without tests, testdata or cmd/: xz), the gocheck binary built here (GOCODER_GOCHECK, gocoder/check/toolchain.py), and the MBXP file.
set -euo pipefail
cmd=${1:-}
KIT=${2:-.kit}
# typer 0.15 with its click: newer typer asks for pydantic, which the GPU machine may not have (0.15.1 runs
# gocoder's CLI: checked with `pip install --target` of these wheels alone)
WHEELS="typer==0.15.1 click==8.1.8 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0
shellingham==1.5.4 tree-sitter==0.26.1 tree-sitter-go==0.25.0 gitpython==3.1.45 gitdb==4.0.12 smmap==5.0.2"
MBXP=${MBXP:-../shared/bench/mbxp_go.jsonl}

pack() {
  local root here py goroot t
  here=$(pwd)
  py=${PYTHON:-python3}
  mkdir -p "$KIT"
  grep -qx "/$KIT/" .git/info/exclude 2>/dev/null || echo "/$KIT/" >> "$(git rev-parse --git-path info/exclude)"
  rm -rf "$KIT/wheels"
  # shellcheck disable=SC2086
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$KIT/wheels" $WHEELS
  goroot=$("$py" -c 'from gocoder.check.toolchain import find_go; import subprocess; go, env = find_go();
print(subprocess.run([go, "env", "GOROOT"], env=env, capture_output=True, text=True).stdout.strip())')
  t=$(mktemp -d)
  mkdir -p "$t/go/bin" "$t/go/pkg/tool/linux_amd64"
  cp "$goroot/bin/go" "$t/go/bin/"
  for tool in compile link asm vet; do  # go test asks for vet even with -vet=off
    cp "$goroot/pkg/tool/linux_amd64/$tool" "$t/go/pkg/tool/linux_amd64/"
  done
  cp -r "$goroot/pkg/include" "$t/go/pkg/"
  cp "$goroot/VERSION" "$goroot/go.env" "$t/go/"
  (cd "$goroot" && find src -path src/cmd -prune -o -name testdata -prune -o -type f ! -name '*_test.go' -print0 |
     tar --null -T - -cf -) | tar -xf - -C "$t/go"
  tar -C "$t" -cf - go | xz -9 -T0 > "$KIT/go.tar.xz"
  rm -rf "$t"
  gocheck=$("$py" -c 'from gocoder.check.toolchain import gocheck_binary; print(gocheck_binary())')
  xz -9 -c "$gocheck" > "$KIT/gocheck.xz"
  cp "$MBXP" "$KIT/mbxp_go.jsonl"
  check
  du -b "$KIT"/* "$KIT"/wheels | sed "s|$here/||"
  echo "kit: $(du -sb "$KIT" | cut -f1) bytes in $KIT"
}

unpack() {
  local dest=/tmp/gokit
  mkdir -p "$dest"
  tar -C "$dest" -xJf "$KIT/go.tar.xz"
  xz -dc "$KIT/gocheck.xz" > "$dest/gocheck" && chmod +x "$dest/gocheck"
  if [ -z "${SKIP_WHEELS:-}" ]; then  # SKIP_WHEELS: a check on a machine whose Python has them
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      "$KIT"/wheels/*.whl
  fi
  export PATH="$dest/go/bin:$PATH" GOROOT="$dest/go" GOCODER_GOCHECK="$dest/gocheck"
  export PYTHONPATH="/tmp/site:$(pwd)${PYTHONPATH:+:$PYTHONPATH}" GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
  export CGO_ENABLED=0 GOCACHE="$dest/gobuild" GOCODER_CACHE="$dest/cache"
}

check() {
  # the packed toolchain, unpacked apart from the one it came from: builds and runs a program, and
  # `go test` passes and fails an MBXP-style harness
  local t
  t=$(mktemp -d)
  tar -C "$t" -xJf "$KIT/go.tar.xz"
  mkdir -p "$t/p"
  cat > "$t/p/main.go" <<'GO'
package main

import (
	"fmt"
	"sort"
	"strings"
)

func triple(n int) int { return 3 * n }

func main() {
	xs := []string{"b", "a"}
	sort.Strings(xs)
	fmt.Println(strings.Join(xs, ","), triple(2))
}
GO
  cat > "$t/p/main_test.go" <<'GO'
package main

import "testing"

func TestTriple(t *testing.T) {
	if triple(2) != 6 {
		t.Fatal("triple(2) != 6")
	}
}
GO
  printf 'module p\n\ngo 1.21\n' > "$t/p/go.mod"
  (
    cd "$t/p"
    export PATH="$t/go/bin:/usr/bin:/bin" GOROOT="$t/go" GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
      CGO_ENABLED=0 GOCACHE="$t/cache" HOME="$t" GOPATH="$t/gopath"
    [ "$(go run .)" = "a,b 6" ] || { echo "gpu-kit: the trimmed toolchain's program printed the wrong thing" >&2; exit 1; }
    go test -vet=off . >/dev/null
    sed -i 's/3 \* n/2 * n/' main.go
    if go test -vet=off . >/dev/null 2>&1; then echo "gpu-kit: go test passed a wrong answer" >&2; exit 1; fi
  )
  echo "gpu-kit: the trimmed toolchain builds, runs and tests ($("$t/go/bin/go" version))"
  rm -rf "$t"
}

case "$cmd" in
  pack) pack ;;
  unpack) unpack ;;
  check) check ;;
  *) echo "usage: runs/gpu-kit.sh pack|check [KIT]  or  source runs/gpu-kit.sh unpack [KIT]" >&2; exit 2 ;;
esac
