#!/usr/bin/env bash
# Issue 25's GPU call, in one command from the repository root of a GPU machine (no network, no Go):
# unpack the kit that `runs/gpu-kit.sh pack` made here (.kit: wheels, trimmed Go, gocheck, MBXP), then
#   1. bench/generate.py: the engine's decode against GPT2LMHeadModel.generate and generate, batch 256 and 16;
#   2. `gocoder bench --answers-only`: the shipped model's MBXP answers, complete mode, n = SAMPLES at T 0.8,
#      top-p 0.95 (the generation alone, timed, cut at ANSWERS_S seconds; the file comes back xz'd);
#   3. `gocoder bench` end to end (generation, then scoring with WORKERS builds at once) on the first
#      LIMIT_SCORE problems, cut at SCORE_S seconds (results.jsonl keeps every batch written before the cut).
# Each stage's failure is reported and the next one still runs; the exit status is the first failure's.
#
#   bash runs/gpu-bench.sh                      # there; results in $OUT (or work/gpu)
#   DEVICE=cpu SAMPLES=2 LIMIT=3 LIMIT_SCORE=2 GEN_ARGS="--layers 2 --d-model 64 --heads 4 --vocab 500 \
#     --batches 4,2 --prompt-len 8 --new 16 --repeats 1" SKIP_WHEELS=1 bash runs/gpu-bench.sh /tmp/gb  # a CPU check
set -uo pipefail
DEST=${1:-${OUT:-work/gpu}}
DEVICE=${DEVICE:-cuda} SAMPLES=${SAMPLES:-100} WORKERS=${WORKERS:-16} LIMIT=${LIMIT:-} LIMIT_SCORE=${LIMIT_SCORE:-48}
SCORE_S=${SCORE_S:-100} ANSWERS_S=${ANSWERS_S:-150} GEN_ARGS=${GEN_ARGS:-} KIT=${KIT:-.kit}
mkdir -p "$DEST"
export PYTHONUNBUFFERED=1
status=0
stage() {  # stage NAME CMD...: run, time, log to $DEST/NAME.log, remember the first failure
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  echo "=== $name: $*"
  "$@" 2>&1 | tee "$DEST/$name.log"
  rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc in $(( $(date +%s) - t0 )) s"
  [ "$rc" -eq 0 ] || [ "$status" -ne 0 ] || status=$rc
}

t0=$(date +%s)
# shellcheck source=runs/gpu-kit.sh
source runs/gpu-kit.sh unpack "$KIT" || { echo "gpu-bench: unpacking $KIT failed" >&2; exit 1; }
set +e  # gpu-kit.sh's set -e: a failing stage must not end the call
echo "=== unpacked in $(( $(date +%s) - t0 )) s: $(go version), gocheck $GOCODER_GOCHECK"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'

# shellcheck disable=SC2086
stage generate python3 bench/generate.py --device "$DEVICE" $GEN_ARGS
MB=(--file "$KIT/mbxp_go.jsonl" --format mbxp --mode complete --device "$DEVICE" --samples "$SAMPLES"
    --temperature 0.8 --top-p 0.95 --k 1,10,100)
[ "$SAMPLES" -ge 100 ] || MB=("${MB[@]:0:${#MB[@]}-2}" --k 1)
rm -f /tmp/answers.jsonl
stage answers timeout -s INT "$ANSWERS_S" python3 -m gocoder bench "${MB[@]}" --batch-size 64 ${LIMIT:+--limit "$LIMIT"} --answers-only \
  --out /tmp/answers.jsonl --json
xz -T0 -c /tmp/answers.jsonl > "$DEST/answers.jsonl.xz" 2>/dev/null
stage bench timeout -s INT "$SCORE_S" python3 -m gocoder bench "${MB[@]}" --batch-size 8 --limit "$LIMIT_SCORE" \
  --workers "$WORKERS" --out /tmp/bench --json
cp /tmp/bench/summary.json "$DEST/bench-summary.json" 2>/dev/null
xz -T0 -c /tmp/bench/results.jsonl > "$DEST/bench-results.jsonl.xz" 2>/dev/null
python3 - "$DEST" <<'PY'
import json, pathlib, sys  # what the bench wrote before its cut: rows, statuses, build and run seconds
rows = [json.loads(x) for x in open("/tmp/bench/results.jsonl")] if pathlib.Path("/tmp/bench/results.jsonl").exists() else []
s = [x for r in rows for k in ("greedy", "sampled") if k in r for x in r[k]["samples"]]
print("=== bench rows", len(rows), "answers", len(s), "ok", sum(x["status"] == "ok" for x in s),
      "build_s", round(sum(x.get("build_s", 0) for x in s), 1), "wall_s", round(sum(x.get("wall_s", 0) for x in s), 1))
PY
echo "=== gpu-bench: $(( $(date +%s) - t0 )) s in all, exit $status"
exit "$status"
