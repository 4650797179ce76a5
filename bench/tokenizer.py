"""Tokenizer benchmark on the Go distribution's source (GOROOT/src): run by hand, not by pytest.

For each model type and vocabulary size: train on every .go file (streamed, chunked), in a fresh
process so that its peak RSS is the training's own; then round-trip every file byte-exact (must be
100%), chars/token; then encode throughput of Tokenizer.encode_batch against SentencePiece's own
`encode` called with the same list and threads (the limit), best of --repeat, as a ratio, and
whether both gave the same ids.

    python bench/tokenizer.py [--go-src DIR] [--vocab 16000 32000] [--types bpe unigram]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import sentencepiece as spm

from gocoder.text.tokenizer import Tokenizer, corpus_texts, go_files, read_go, train_tokenizer
from gocoder.training.tokenizer_run import evaluate_tokenizer


def _train(go_src: str, out: str, vocab: int, kind: str, threads: int, sample_chars: int = 0) -> dict:
    t0 = time.perf_counter()
    train_tokenizer(corpus_texts(go_src=go_src), out, vocab, kind, threads=threads, sample_chars=sample_chars)
    return {"train_s": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _best(fn, repeat: int) -> tuple[float, object]:
    """The best wall time of repeat calls, and the last call's result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None  # free the previous result before timing the next call
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    goroot = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip()
    ap.add_argument("--go-src", default=f"{goroot}/src", help="folder of .go files (default GOROOT/src)")
    ap.add_argument("--out", default="/tmp/gocoder-tokbench", help="where the tokenizers are written")
    ap.add_argument("--vocab", type=int, nargs="+", default=[16000, 32000], help="vocabulary sizes")
    ap.add_argument("--types", nargs="+", default=["bpe", "unigram"], help="model types")
    ap.add_argument("--threads", type=int, default=2, help="training and encode threads")
    ap.add_argument("--repeat", type=int, default=2, help="encode timings: best of this many")
    ap.add_argument("--sample-chars", type=int, default=0,
                    help="train on the first N characters of the corpus (0: all); evaluation is always on all of it")
    args = ap.parse_args()

    files = go_files(args.go_src)
    texts = [read_go(p) for p in files]
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"# {len(files)} .go files, {nbytes / 1e6:.1f} MB, {sum(map(len, texts)) / 1e6:.1f} M chars; "
          f"{platform.machine()}, {mp.cpu_count()} cores, sentencepiece {spm.__version__}", flush=True)
    rows = []
    ctx = mp.get_context("spawn")
    for kind in args.types:
        for vocab in args.vocab:
            out = Path(args.out) / f"{kind}-{vocab}"
            with ctx.Pool(1) as pool:  # a fresh process: ru_maxrss is this training's peak
                row = pool.apply(_train, (args.go_src, str(out), vocab, kind, args.threads, args.sample_chars))
            row["sample_chars"] = args.sample_chars
            tok = Tokenizer.load(out)
            rep = evaluate_tokenizer(tok, args.go_src, show=3, threads=args.threads)
            sp = spm.SentencePieceProcessor(model_file=str(out / "gocoder.model"))
            ours, ours_ids = _best(lambda tok=tok: tok.encode_batch(texts, threads=args.threads), args.repeat)
            limit, sp_ids = _best(lambda sp=sp: sp.encode(texts, num_threads=args.threads), args.repeat)
            same_ids = ours_ids == sp_ids
            del ours_ids, sp_ids
            row.update(kind=kind, vocab=vocab, files=rep.items, mismatches=rep.mismatches,
                       examples=rep.examples, chars_per_token=rep.chars_per_token["go"],
                       bytes_per_token=nbytes / rep.tokens, ours_mb_s=nbytes / ours / 1e6,
                       spm_mb_s=nbytes / limit / 1e6, ratio=limit / ours, same_ids=same_ids)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| model | vocab | round trip exact | chars/token | bytes/token | train s | peak RSS MB "
          "| encode_batch MB/s | sp.encode(list) MB/s | ours/limit | same ids |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['vocab']} | {r['files'] - r['mismatches']}/{r['files']} | "
              f"{r['chars_per_token']:.3f} | {r['bytes_per_token']:.3f} | {r['train_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['ours_mb_s']:.2f} | {r['spm_mb_s']:.2f} | {r['ratio']:.3f} | "
              f"{r['same_ids']} |")
    if any(r["mismatches"] or not r["same_ids"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
