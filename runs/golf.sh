#!/usr/bin/env bash
# Go golf: the best Go model one GPU trains in a fixed wall time, exported under 32 MB and scored in bits per
# byte on the corpus's held-out packages (gocoder golf; BENCHMARKS.md, "Go golf", has every result).
#
#   runs/golf.sh pack CORPUS_TEXT PACK [MB]   # CPU: the best MB of train text (and the same size drawn at
#                                             # random, for the data ablation), held-out text beside, and
#                                             # 8k and 16k tokenizers trained on the selection: one folder
#                                             # that travels to a GPU machine in one transfer
#   runs/golf.sh ablate PACK OUT SECONDS      # GPU: tokenize, then each variant below for SECONDS of training
#   runs/golf.sh run PACK OUT SECONDS NAME    # GPU: one variant (the winner, for longer)
#   runs/golf.sh records PACK OUT NAME STEPS [SHARDS [TAG]]
#                                             # then STEPS of record shards (default PACK/shards8k: plans and
#                                             # code, `gocoder shards`), so that `gocoder generate`'s format is
#                                             # learned; exported int8 to OUT/NAME-TAG/model (TAG default rec)
#
# GOCODER: how to call gocoder ("python3 -m gocoder" on a machine where the package is not installed).
set -euo pipefail
cd "$(dirname "$0")/.."
GOCODER=${GOCODER:-gocoder}
step() { echo "== $* ($(date +%T))" >&2; }

# The variants, each a list of --set overrides of configs/golf.toml (today's recipe as a GPT) and the
# tokenizer it reads (tok16k / tok8k, trained on the same selection). One change at a time where the budget
# allows; each line of BENCHMARKS.md's table is one of these.
variant() {
  local modern=(--set model.qk_norm=true --set 'model.mlp="relu2"' --set model.mlp_mult=4.0
                --set model.logit_softcap=15.0 --set train.cooldown=0.5)
  case "${1%%-*}" in  # NAME-anything: a second run of the variant NAME (the winner, longer)
    base16) V=(); TOK=tok16k; DATA=tokens16k ;;
    base8) V=(); TOK=tok8k; DATA=tokens8k ;;
    modern8) V=("${modern[@]}"); TOK=tok8k; DATA=tokens8k ;;
    loop8) V=("${modern[@]}" --set 'model.loop=[2, 5]' --set train.loop_start=0.35); TOK=tok8k; DATA=tokens8k ;;
    wide8) V=("${modern[@]}" --set model.d_model=512 --set model.n_heads=8 --set model.gpt_layers=8)
           TOK=tok8k; DATA=tokens8k ;;
    random8) V=("${modern[@]}"); TOK=tok8k; DATA=random8k ;;
    *) echo "unknown variant $1" >&2; exit 2 ;;
  esac
}

pack() {
  local text=${1:?CORPUS_TEXT} out=${2:?PACK} mb=${3:-250}
  step "select the best ${mb} MB of train text, and ${mb} MB at random"
  $GOCODER corpus select --text "$text" -o "$out/quality" --mb "$mb"
  $GOCODER corpus select --text "$text" -o "$out/random" --mb "$mb" --how random --valid-mb 0.001
  for v in 8000 16000; do
    step "a ${v}-piece tokenizer trained on the selection"
    $GOCODER tokenizer train --text "$out/quality/text" --vocab-size "$v" -o "$out/tok$((v / 1000))k" \
      --set tokenizer.sample_chars=100000000
  done
  du -sh "$out"/* >&2
}

tokenize() {  # tokenize PACK OUT DATA TOK: the variant's tokens, once (the GPU machine's cores)
  local pack=$1 out=$2 data=$3 tok=$4 text=quality
  [ "$data" = random8k ] && text=random
  [ -f "$out/$data/meta.json" ] && return
  $GOCODER corpus tokenize --text "$pack/$text/text" --tokenizer "$pack/$tok" -o "$out/$data" --workers "$(nproc)"
  if [ "$text" = random ]; then  # the random selection is scored on the same held-out text as the others
    tokenize "$pack" "$out" tokens8k tok8k
    rm -rf "$out/$data/valid" && cp -r "$out/tokens8k/valid" "$out/$data/valid"
  fi
}

run() {
  local pack=$1 out=$2 seconds=$3 name=$4
  variant "$name"
  tokenize "$pack" "$out" "$DATA" "$TOK"
  step "$name: ${seconds} s"
  # shellcheck disable=SC2206  # SETS: extra overrides for every variant
  $GOCODER golf -c configs/golf.toml ${SETS:-} "${V[@]}" --set "train.tokenizer=\"$pack/$TOK\"" \
    --tokens "$out/$DATA" -o "$out/$name" --seconds "$seconds" --json | tee -a "$out/results.jsonl"
}

records() {
  local pack=$1 out=$2 name=$3 steps=$4 shards=${5:-$1/shards8k} tag=${6:-rec}
  variant "$name"
  step "$name: $steps steps of records ($shards) from its export -> $name-$tag"
  # shellcheck disable=SC2206
  $GOCODER train -c configs/golf.toml ${SETS:-} "${V[@]}" --set "train.tokenizer=\"$pack/$TOK\"" \
    --set "train.init=\"$out/$name/model\"" --set "train.data=\"$shards\"" --set "train.out=\"$out/$name-$tag/run\"" \
    --set 'train.schedule="steps"' --set "train.steps=$steps" --set train.time_limit_s=0 --set train.compile=false \
    --set train.lr=0.001 --set train.warmup_steps=10 --set train.ema_decay=0.98 --set train.log_every=10 \
    --set 'train.stages=[{name = "records"}]' --json | tee "$out/$name-$tag.json"
  $GOCODER export "$out/$name-$tag/run" -o "$out/$name-$tag/model" --quantize int8
}

case "${1:-}" in
  pack) pack "${2:-}" "${3:-}" "${4:-250}" ;;
  ablate)
    pack=${2:?PACK} out=${3:?OUT} seconds=${4:?SECONDS}
    mkdir -p "$out"
    for name in ${VARIANTS:-base16 modern8 loop8 wide8 random8}; do run "$pack" "$out" "$seconds" "$name"; done ;;
  run)
    mkdir -p "${3:?OUT}"
    run "${2:?PACK}" "$3" "${4:?SECONDS}" "${5:?NAME}" ;;
  records) records "${2:?PACK}" "${3:?OUT}" "${4:?NAME}" "${5:?STEPS}" "${6:-}" "${7:-}" ;;
  *) echo "usage: runs/golf.sh pack CORPUS_TEXT PACK [MB] | ablate PACK OUT SECONDS | run PACK OUT SECONDS NAME" \
          "| records PACK OUT NAME STEPS [SHARDS [TAG]]" >&2
     exit 2 ;;
esac
