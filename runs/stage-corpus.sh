#!/usr/bin/env bash
# Carry the corpus's text parts to a GPU machine in small calls, then tokenize them there.
#
#   runs/stage-corpus.sh pack OUT/text STAGE_DIR N   # here: parts into STAGE_DIR/batch-K/, at most N MiB each
#   runs/stage-corpus.sh tokenize STAGE_ROOT         # there: every STAGE_ROOT/batch-*/part-* -> STAGE_ROOT/tokens
#
# A device call carries at most ~64 MiB, the repository included: carry one batch-K folder a call (N=40
# leaves room for the repository), into the same STAGE_ROOT on the warm machine, then run `tokenize` there
# (16 cores; needs only python, numpy, sentencepiece, typer and rich) before training on STAGE_ROOT/tokens.
# Each batch holds a SHA256SUMS, checked before tokenizing, so a truncated copy fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "error: $*" >&2; exit 2; }

case "${1:-}" in
pack)
    [ $# -eq 4 ] || die "usage: $0 pack OUT/text STAGE_DIR N"
    TEXT=$2 STAGE=$3 LIMIT=$(( $4 * 1024 * 1024 ))
    ls "$TEXT"/part-*.jsonl.xz >/dev/null 2>&1 || die "$TEXT: no part-*.jsonl.xz files"
    k=0 used=0
    for part in "$TEXT"/part-*.jsonl.xz; do
        size=$(stat -c %s "$part")
        [ "$size" -le "$LIMIT" ] || die "$part: $size bytes, over the $4 MiB batch"
        if [ $used -gt 0 ] && [ $(( used + size )) -gt "$LIMIT" ]; then k=$((k + 1)) used=0; fi
        dir=$STAGE/batch-$(printf %03d $k)
        mkdir -p "$dir"
        cp "$part" "$dir/"
        (cd "$dir" && sha256sum "$(basename "$part")" >> SHA256SUMS)
        used=$(( used + size ))
    done
    echo "$((k + 1)) batches in $STAGE (at most $4 MiB each)"
    ;;
tokenize)
    [ $# -eq 2 ] || die "usage: $0 tokenize STAGE_ROOT"
    ROOT=$2
    ls -d "$ROOT"/batch-* >/dev/null 2>&1 || die "$ROOT: no batch-* folders"
    mkdir -p "$ROOT/text"
    for dir in "$ROOT"/batch-*/; do
        (cd "$dir" && sha256sum --quiet -c SHA256SUMS) || die "$dir: checksum mismatch (copy it again)"
        ln -f "$dir"/part-*.jsonl.xz "$ROOT/text/"
    done
    PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} "${PYTHON:-python3}" -m gocoder corpus tokenize \
        --text "$ROOT/text" --tokenizer "${TOKENIZER:-tokenizer}" -o "$ROOT/tokens" --workers "$(nproc)" \
        --max-package-tokens "${MAX_PACKAGE_TOKENS:-16000000}"
    ;;
*)
    die "usage: $0 pack OUT/text STAGE_DIR N | $0 tokenize STAGE_ROOT"
    ;;
esac
