#!/usr/bin/env bash
# The recipe of the shipped model, models/default/ (MODEL_CARD.md): every step that made it, in order, with
# the settings it was made with. Each step is a command of runs/default.sh or of gocoder; the settings are
# runs/default.sh's environment knobs, all written out here, so a later change of its defaults does not
# change this recipe.
#
# Usage: runs/default-model.sh [--dry-run] [STEP...]
#   no STEP      every step not done yet, in order (a done step is stamped in $WORK/.recipe and skipped)
#   STEP...      those steps, done or not: a machine runs its own part (copy $WORK between machines)
#   --dry-run    print each step's command, as one shell line, and run nothing
#   -h, --help   this text
#
# Steps (where each ran for the shipped model; run 1 to 3 as MODEL_CARD.md's "Training" tells them):
#   corpus   CPU     whole Go files (Go distribution, Debian bookworm + trixie) and the standalone functions
#   data     CPU     the hierarchical records -> $WORK/shards (apt-get installs Debian's Go sources as root)
#   files    2 GPUs  run 1: the GPT (GPU 0) and the recursive model (GPU 1), 400 s each: files, records,
#                    functions; the GPT, $WORK/gpt, is the one carried on
#   export1          run 1's GPT as int8 -> $WORK/gpt-files
#   records  1 GPU   run 2 from it: 300 record steps, then 4 epochs of the standalone functions -> $WORK/gpt-cont
#   export2          run 2 as int8 -> $WORK/gpt-cont-int8
#   again    CPU     run 3 from it: 120 record steps of 8 rows, no EMA -> $WORK/gpt-final
#   ship             run 3 as int8 -> models/default (its card and plots stay)
#
# A step that runs unstamps the steps after it (their input changed), and a training or export step that
# runs starts its output folder afresh (runs/default.sh train and continue start new runs, never resume).
# Environment: WORK (default work/default), BENCH, HELDOUT, GOCODER, as runs/default.sh reads them.
# NOTE: the shipped model's corpus put the whole Go distribution in train (MODEL_CARD.md: before the split
# fix of issue 26); `corpus` now splits by package, so a rebuild does not give the shipped weights.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/default}
export WORK
GOCODER=${GOCODER:-gocoder}
STAMPS=$WORK/.recipe
ORDER=(corpus data files export1 records export2 again ship)

usage() { sed -n '/^# Usage:/,/^#   -h/p' "$0" | sed 's/^# \{0,1\}//'; }

# each step: its knobs (all of runs/default.sh's that it reads, pinned), its command (@WORK@: $WORK,
# @GOCODER@: $GOCODER), the folders under $WORK it makes
declare -A KNOBS CMD OUTS
KNOBS[corpus]="SUITES=trixie"
CMD[corpus]="runs/default.sh corpus"
CMD[data]="runs/default.sh data"
KNOBS[files]="LIMIT=400 GPT_FILES=7600 GPT_RECORDS=600 REC_FILES=1500 REC_RECORDS=250 REC_FUNCS=250 FUNC_EPOCHS=4
MAX_PACKAGE_TOKENS=16000000 SETS="
CMD[files]="runs/default.sh train"
OUTS[files]="gpt recursive"
CMD[export1]="@GOCODER@ export @WORK@/gpt -o @WORK@/gpt-files --quantize int8"
OUTS[export1]="gpt-files"
KNOBS[records]="CONT_RECORDS=300 CONT_FUNC_EPOCHS=4 CONT_LR=0.001 CONT_WARMUP=10 CONT_EMA=0.98 CONT_BATCH=64 SETS="
CMD[records]="runs/default.sh continue gpt @WORK@/gpt-files @WORK@/gpt-cont"
OUTS[records]="gpt-cont"
CMD[export2]="@GOCODER@ export @WORK@/gpt-cont -o @WORK@/gpt-cont-int8 --quantize int8"
OUTS[export2]="gpt-cont-int8"
KNOBS[again]="CONT_RECORDS=120 CONT_FUNC_EPOCHS=0 CONT_LR=0.0003 CONT_WARMUP=5 CONT_EMA=0 CONT_BATCH=8
SETS='--set train.compile=false'"
CMD[again]="runs/default.sh continue gpt @WORK@/gpt-cont-int8 @WORK@/gpt-final"
OUTS[again]="gpt-final"
CMD[ship]="runs/default.sh ship gpt-final"

DRY=0 WANT=()
for a in "$@"; do
  case $a in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY=1 ;;
    -*) echo "error: unknown option $a" >&2; usage >&2; exit 2 ;;
    *) [[ -v "CMD[$a]" ]] || { echo "error: no step $a; the steps: ${ORDER[*]}" >&2; exit 2; }
       WANT+=("$a") ;;
  esac
done

# the step's command as one shell line: WORK, GOCODER and its knobs as environment assignments, then
# the command (GOCODER stays unquoted in it: "python3 -m gocoder" is three words, as runs/default.sh has it)
line_of() {
  local w g knobs=${KNOBS[$1]:-} cmd=${CMD[$1]}
  w=$(printf %q "$WORK") g=$(printf %q "$GOCODER")
  cmd=${cmd//@WORK@/$w}
  cmd=${cmd//@GOCODER@/$GOCODER}
  echo "WORK=$w GOCODER=$g ${knobs//$'\n'/ }${knobs:+ }$cmd"
}

if [[ $DRY == 1 ]]; then
  for s in "${ORDER[@]}"; do
    if [[ ${#WANT[@]} -gt 0 && " ${WANT[*]} " != *" $s "* ]]; then continue; fi
    echo "# $s"
    line_of "$s"
  done
  exit 0
fi

mkdir -p "$STAMPS"
exec 9> "$STAMPS/.lock"  # one recipe at a time in a WORK folder: two would write the same runs
flock -n 9 || { echo "error: $WORK: another runs/default-model.sh is running there" >&2; exit 2; }

run_step() {
  local name=$1 later=0 s
  for s in "${ORDER[@]}"; do
    [[ $later == 1 ]] && rm -f "$STAMPS/$s"
    [[ $s == "$name" ]] && later=1
  done
  for s in ${OUTS[$name]:-}; do rm -rf "${WORK:?}/$s"; done  # a new run, never the rest of a cut one
  echo "== $name ($(date +%T)): $(line_of "$name")" >&2
  bash -c "$(line_of "$name")"
  date +%FT%T > "$STAMPS/$name"
}

if [[ ${#WANT[@]} -gt 0 ]]; then
  for s in "${ORDER[@]}"; do
    if [[ " ${WANT[*]} " == *" $s "* ]]; then run_step "$s"; fi
  done
else
  for s in "${ORDER[@]}"; do
    if [[ -e $STAMPS/$s ]]; then
      echo "== $s done $(cat "$STAMPS/$s") (skipped)" >&2
    else
      run_step "$s"
    fi
  done
fi
echo "models/default: the shipped model's recipe is done" >&2
