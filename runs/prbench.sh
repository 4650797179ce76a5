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
# that Debian does not package (the shipped model trained on the Go distribution and Debian's golang-*-dev)
PINNED="
sourcegraph/conc 5f936abd7ae87036af1f75c95fb9d0daaf00116b
orcaman/concurrent-map 85296bce05256a80153a9e0c2bf6f4e167a4fe8d
gammazero/deque 3fda0c0936bc0da7c56f33da005e6cd5d2ef28a9
hako/durafmt 5c1018a4e16b9db6718f25e524de025b1fc67303
huandu/go-clone 7fc9a448658a78953fcaff9ada4b02090fd5eb70
alitto/pond a2e34e8e23337b9d420c1505606a6565d00b9294
kljensen/snowball 80af012a384a793519cfa4f6b42ba9f791c29ac1
mroth/weightedrand 7942b7d5a8b36901ab64dd4c3789d31c96bdcdcb
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
gocoder prbench build "${REPOS[@]}" --out "$WORK/prbench.jsonl"
gocoder prbench run -f "$WORK/prbench.jsonl" --repos-dir "$WORK/clones" --limit "$LIMIT" -o "$WORK/plain"
gocoder prbench run -f "$WORK/prbench.jsonl" --repos-dir "$WORK/clones" --limit "$LIMIT" --retrieve \
    -o "$WORK/retrieve"
