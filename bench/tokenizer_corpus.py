"""Two tokenizers on the same files: tokens per byte on held-out corpus packages and on GOROOT/src.

The file sets: the valid split of `gocoder corpus build`'s text parts (packages that no tokenizer
trained with `tokenizer train --text` has seen), every .go file of the Go distribution's source, and
with --bench a benchmark's problems (prompt + test of each JSONL line; MBXP Go, which the corpus is
decontaminated against). For each set and tokenizer, every text is round-tripped (must be
byte-exact; `evaluate_tokenizer` for the first two) and its tokens counted (no eos); then the
candidate's tokens/byte over the baseline's (below 1: the candidate needs fewer tokens for the same
text, so a model sees more text per token of context).

    python bench/tokenizer_corpus.py --candidate /work/tok-candidate [--baseline tokenizer]
        [--text /work/corpus/text] [--go-src "$(go env GOROOT)/src"] [--bench FILE] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from gocoder.text.tokenizer import Tokenizer
from gocoder.training.tokenizer_run import evaluate_tokenizer


def _bench(tok: Tokenizer, path: str, threads: int) -> dict:
    """Round trip and tokens of each problem's prompt + test (a benchmark JSONL)."""
    with open(path, encoding="utf-8") as f:
        texts = [r["prompt"] + r["test"] for r in map(json.loads, f)]
    ids = tok.encode_batch(texts, threads=threads)
    return {"files": len(texts), "exact": sum(tok.decode(i) == t for i, t in zip(ids, texts, strict=True)),
            "examples": [], "bytes": sum(len(t.encode("utf-8")) for t in texts), "tokens": sum(map(len, ids))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    goroot = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()
    ap.add_argument("--baseline", default="tokenizer", help="tokenizer folder (default: the shipped tokenizer/)")
    ap.add_argument("--candidate", required=True, help="tokenizer folder to compare with the baseline")
    ap.add_argument("--text", default="/work/corpus/text", help="corpus text parts: their valid split is measured")
    ap.add_argument("--go-src", default=f"{goroot}/src", help="folder of .go files (default GOROOT/src)")
    ap.add_argument("--bench", help="a benchmark JSONL (prompt, test fields), e.g. ../shared/bench/mbxp_go.jsonl")
    ap.add_argument("--threads", type=int, default=1, help="encode threads")
    args = ap.parse_args()

    toks = {"baseline": Tokenizer.load(args.baseline), "candidate": Tokenizer.load(args.candidate)}
    rows = []
    sets = [("corpus valid split", args.text), ("GOROOT/src", args.go_src)]
    sets += [("benchmark prompt+test", args.bench)] if args.bench else []
    for name, corpus in sets:
        for which, tok in toks.items():
            if name.startswith("benchmark"):
                row = _bench(tok, corpus, args.threads)
            else:
                rep = evaluate_tokenizer(tok, corpus, show=3, threads=args.threads)
                row = {"files": rep.items, "exact": rep.items - rep.mismatches, "examples": rep.examples,
                       "bytes": rep.bytes, "tokens": rep.tokens}
            row = {"set": name, "tokenizer": which, "hash": tok.hash[:12], **row,
                   "tokens_per_byte": row["tokens"] / row["bytes"], "bytes_per_token": row["bytes"] / row["tokens"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| files | tokenizer | round trip exact | MB | tokens | tokens/byte | bytes/token |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['set']} | {r['tokenizer']} {r['hash']} | {r['exact']}/{r['files']} | {r['bytes'] / 1e6:.2f} | "
              f"{r['tokens']:,} | {r['tokens_per_byte']:.4f} | {r['bytes_per_token']:.3f} |")
    print()
    for base, cand in zip(rows[::2], rows[1::2], strict=True):
        ratio = cand["tokens_per_byte"] / base["tokens_per_byte"]
        print(f"{base['set']}: candidate/baseline tokens per byte {ratio:.4f} ({(ratio - 1) * 100:+.2f}%)")
    if any(r["exact"] != r["files"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
