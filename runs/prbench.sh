#!/usr/bin/env bash
# The PR benchmark (docs/PRBENCH.md), rebuilt and measured by one command:
#   clone the pinned repositories -> gocoder prbench build -> prbench run without and with retrieval.
#
# Usage: runs/prbench.sh [WORK_DIR] [LIMIT]     (default work/prbench, 60 problems; the clones need network)
# Rerunnable: a clone already at its pinned commit is kept, and prbench run resumes from its results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
WORK=${1:-work/prbench}
LIMIT=${2:-60}
# owner/name and the HEAD the benchmark was built from: small, standard-library-only Go repositories
# that Debian does not package (the shipped model trained on the Go distribution and Debian's golang-*-dev);
# docs/PRBENCH.md says how they were picked
PINNED="
sourcegraph/conc 5f936abd7ae87036af1f75c95fb9d0daaf00116b
orcaman/concurrent-map 85296bce05256a80153a9e0c2bf6f4e167a4fe8d
gammazero/deque 3fda0c0936bc0da7c56f33da005e6cd5d2ef28a9
hako/durafmt 5c1018a4e16b9db6718f25e524de025b1fc67303
huandu/go-clone 7fc9a448658a78953fcaff9ada4b02090fd5eb70
alitto/pond a2e34e8e23337b9d420c1505606a6565d00b9294
kljensen/snowball 80af012a384a793519cfa4f6b42ba9f791c29ac1
mroth/weightedrand 7942b7d5a8b36901ab64dd4c3789d31c96bdcdcb
d5/tengo 8daf696551f2e9ab519a55df2d6b16bcd012066d
dominikbraun/graph b8919a8021b1f0342a473db682040f713ba56454
destel/rill 05264483f167ef8d20071e5fc8b69fd3e321005c
adhocore/gronx fea40e3e90e70476877cfb9b50fac10c7de41c5c
puzpuzpuz/xsync d35ffd10679cb71d1439ab0518fe0dfb6739d4d4
phuslu/lru b8078c4cafb1207af662ac1df344fadade98d5fa
brianvoe/gofakeit f0b548a543358d5eee6c5858a0a6738344fd3ce2
rickar/cal dc7d0b1efe0f2ea5529dc0f9ec9011a4b16b33ec
DavidGamba/go-getoptions d9222021aaac09a7860236777bc8a57e3d4fb6ae
jaswdr/faker d4d4793d385419927c852915a6623184f8ca9371
joomcode/errorx 3280086cb5400e2900300ba010ddf658fa717fc4
bluele/gcache d8b7e051c564c174fea6ef60d180abf601099015
spyzhov/ajson 1f0ecf9280c56ba64e5ce1883d90594ef588e751
akamensky/argparse bafecdd102c0aa4801ad57d73c93c92e21975869
sethvargo/go-envconfig c883e6f492ed6ca42f582a4cf52b610b07943b17
Rhymond/go-money c07849088c52b3dc7021b8c9a3a4fe1edfe6bbdd
xo/dburl 7880f2740dcf3bbed9d38ad13262786f3be7cd63
elliotchance/orderedmap 52e7d06b83711821d4265e063720cb009c234ded
"
mkdir -p "$WORK/clones"
REPOS=()
while read -r slug sha; do
    [ -n "$slug" ] || continue
    dir="$WORK/clones/${slug#*/}"
    [ -d "$dir/.git" ] || git clone -q "https://github.com/$slug" "$dir"
    git -C "$dir" checkout -q --detach "$sha"  # the history up to the pinned HEAD: the same problems
    REPOS+=(--repo "$dir")
done <<< "$PINNED"
gocoder prbench build "${REPOS[@]}" --per-repo 40 --out "$WORK/prbench.jsonl"
gocoder prbench run -f "$WORK/prbench.jsonl" --repos-dir "$WORK/clones" --limit "$LIMIT" -o "$WORK/plain"
gocoder prbench run -f "$WORK/prbench.jsonl" --repos-dir "$WORK/clones" --limit "$LIMIT" --retrieve \
    -o "$WORK/retrieve"
