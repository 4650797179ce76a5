#!/usr/bin/env bash
# One GPU call for two questions: what the golf winner does as the shipped model, and whether training with
# retrieved neighbours helps more than retrieval at inference only (issue 28). Trains the variant NAME of
# runs/golf.sh for SECONDS, then STEPS of records from its export twice, from the same start: the records as
# they are (SHARDS_A, tag "plain") and the same records with their package's retrieved declarations
# (`gocoder relate`, then `gocoder shards`: SHARDS_B, tag "related"); then each model's greedy MBXP answers
# (complete mode), scored elsewhere by `gocoder bench --completions` (a CPU machine with Go).
#
#   runs/golf-related.sh PACK SHARDS_A SHARDS_B OUT SECONDS STEPS [NAME]     (NAME default modern8-ab)
#
# LIMIT: only the first LIMIT MBXP problems (a CPU check of the script); DEVICE: cuda (default) or cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
GOCODER=${GOCODER:-gocoder}
MBXP=${MBXP:-../shared/bench/mbxp_go.jsonl}
if [ $# -lt 6 ]; then
  echo "usage: runs/golf-related.sh PACK SHARDS_A SHARDS_B OUT SECONDS STEPS [NAME]" >&2
  exit 2
fi
pack=$1 a=$2 b=$3 out=$4 seconds=$5 steps=$6 name=${7:-modern8-ab}
mkdir -p "$out"
runs/golf.sh run "$pack" "$out" "$seconds" "$name"
for tag in plain related; do
  shards=$a
  [ "$tag" = related ] && shards=$b
  runs/golf.sh records "$pack" "$out" "$name" "$steps" "$shards" "$tag"
  echo "== MBXP answers of $name-$tag ($(date +%T))" >&2
  $GOCODER bench --file "$MBXP" --format mbxp --mode complete --checkpoint "$out/$name-$tag/model" --samples 1 \
    --k 1 --batch-size 256 --device "${DEVICE:-cuda}" --answers-only --out "$out/mbxp-$tag.jsonl" \
    ${LIMIT:+--limit "$LIMIT"}
done
