"""Retrieval quality on the PR benchmark without generating: BM25 against the model's own embeddings.

For each problem of a `gocoder prbench build` file, the repository at the parent commit is indexed
(gocoder/inference/retrieve.py, the changed file left out as prbench run leaves it out) and ranked for the
problem's description and details, the query `with_related` asks. A declaration is *needed* when it is a
top-level declaration of another file of the repository whose name (a method's without its receiver)
is an identifier of the real answer, comments and strings left out, and not a name the answer declares
itself; a method's only when its receiver's type is named in the answer or in the file it goes into.
Per ranking: recall@k (the share of the needed declarations in the top k) and hit@k (at least one of
them there), means over the problems with at least one needed declaration; MRR of the first.

Rankings: bm25; embed (cosine of the model's mean-pooled vectors, pooling "hidden" = final hidden
states or "embedding" = token embeddings); hybrid (reciprocal rank fusion of bm25 and embed). Each
distinct declaration text is embedded once per run (the same vector each time: a memo).

    PYTHONPATH=. python -m bench.retrieval_recall -f PROBLEMS.jsonl --repos-dir CLONES [--work DIR]
        [--checkpoint MODEL] [--pooling hidden,embedding] [--limit N] [--json OUT]
    PYTHONPATH=. python -m bench.retrieval_recall --time-repo DIR [--pooling hidden]   # index time, memory
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

from gocoder.eval.prbench import tree_at
from gocoder.inference.retrieve import Embedder, build_index
from gocoder.records import read_jsonl_numbered
from gocoder.text.gosource import COMMENT, IDENT, LITERAL

KS = (1, 3, 5)
_IDENT = re.compile(IDENT)
# Go comments and literals: their words are not identifiers of the code
_NOT_CODE = re.compile(f"{COMMENT}|{LITERAL}", re.S)


class Memo:
    """An Embedder that embeds each distinct text once (the vectors are the embedder's own)."""

    def __init__(self, emb: Embedder):
        self.emb, self.key, self.cache, self.texts = emb, emb.key, {}, 0

    def embed(self, texts: list[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if new:
            for t, v in zip(new, self.emb.embed(new), strict=True):
                self.cache[t] = v
            self.texts += len(new)
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 1), np.float32)


def used_names(code: str) -> set[str]:
    """The identifiers of Go code, comments and literals left out."""
    return set(_IDENT.findall(_NOT_CODE.sub(" ", code)))


def declared_names(code: str) -> set[str]:
    """The names the answer's own top-level declarations take (a method's without its receiver)."""
    from gocoder.check.validate import check

    return {d.name.split(".")[-1] for d in check(code, kind="auto", gofmt=False).decls}


def needed(idx, path: str, answer: str, before: str) -> set[tuple[str, str]]:
    """(file, name) of the declarations of other files whose names the answer uses; a method's only when
    its receiver's type is named in the answer or the file it goes into (`wg.Wait()` on a sync.WaitGroup
    needs none of the repository's Wait methods)."""
    want, around = used_names(answer) - declared_names(answer), used_names(answer) | used_names(before)
    out = set()
    for p, f in idx.files.items():
        for d in f["decls"] if p != path else ():
            recv, _, name = d[1].rpartition(".")
            if name in want and (not recv or recv in around):
                out.add((p, d[1]))
    return out


def scores(ranked: list[tuple[str, str]], need: set[tuple[str, str]]) -> dict[str, float]:
    row = {}
    for k in KS:
        got = len(need & set(ranked[:k]))
        row[f"recall@{k}"], row[f"hit@{k}"] = got / len(need), float(got > 0)
    first = next((r for r, x in enumerate(ranked) if x in need), None)
    row["mrr"] = 0.0 if first is None else 1 / (first + 1)
    return row


def rank(idx, q: str, path: str, method: str, need: set[tuple[str, str]]) -> dict[str, float]:
    hits = idx.search(q, k=len(idx), exclude=[path], method=method)
    return scores([(h.path, h.name) for h in hits], need)


def measure(problems: list[dict], repos_dir: Path, work: Path, embedders: dict[str, Memo]) -> dict:
    rows, t0 = [], time.perf_counter()
    for n, p in enumerate(problems):
        tree = tree_at(repos_dir / p["repo"], p["parent"], work / "trees" / p["repo"])
        q = f"{p['description']}\n{p.get('details', '')}"
        row: dict = {"id": p["id"]}
        for i, (pooling, memo) in enumerate(list(embedders.items()) or [("", None)]):
            idx, _ = build_index(tree, work / "index" / p["repo"] / f"{p['parent']}.{pooling or 'bm25'}.json",
                                 embedder=memo)
            if i == 0:
                need = needed(idx, p["path"], p["answer"], p["before"])
                row["need"] = len(need)
                if not need:
                    break
                row["bm25"] = rank(idx, q, p["path"], "bm25", need)
            if pooling:
                for m in ("embed", "hybrid"):
                    row[f"{m}-{pooling}"] = rank(idx, q, p["path"], m, need)
        rows.append(row)
        print(f"{n + 1}/{len(problems)} {p['id']}: needed {row['need']} "
              f"({time.perf_counter() - t0:.0f} s, {sum(m.texts for m in embedders.values())} texts embedded)",
              file=sys.stderr)
    scored = [r for r in rows if r["need"]]
    names = [k for k in scored[0] if k not in ("id", "need")] if scored else []
    table = {name: {s: round(float(np.mean([r[name][s] for r in scored])), 3) for s in scored[0][name]}
             for name in names}
    return {"problems": len(rows), "with_needed": len(scored),
            "needed_mean": round(float(np.mean([r["need"] for r in scored])), 2) if scored else 0,
            "repos": sorted({r["id"].split("@")[0] for r in scored}), "table": table,
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def time_repo(repo: Path, work: Path, emb: Embedder | None) -> dict:
    """Index a folder from nothing: seconds, the index file's size and the process's peak memory."""
    out = work / f"time-{repo.name}.json"
    out.unlink(missing_ok=True)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    idx, st = build_index(repo, out, embedder=emb)
    return {"repo": str(repo), "files": st.files, "decls": st.decls, "seconds": st.seconds,
            "embed_seconds": st.embed_seconds, "index_bytes": out.stat().st_size,
            "peak_rss_mb_before": round(rss0 / 1024), "peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-f", "--file", type=Path, help="problems JSONL (gocoder prbench build)")
    ap.add_argument("--repos-dir", type=Path, help="folder of the clones, one per repository")
    ap.add_argument("--work", type=Path, default=Path("work/retrieval-recall"), help="trees and indexes")
    ap.add_argument("--checkpoint", default=None, help="model to embed with (default: the shipped model)")
    ap.add_argument("--pooling", default="hidden,embedding", help="poolings to measure, comma-separated ('' none)")
    ap.add_argument("--max-tokens", type=int, default=128, help="tokens of a text the model reads")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--time-repo", type=Path, default=None, help="only time indexing this folder from nothing")
    ap.add_argument("--json", type=Path, default=None, help="write the result (with per-problem rows) here")
    args = ap.parse_args()
    poolings = [x for x in args.pooling.split(",") if x]
    base = None
    if poolings:
        from gocoder.inference.generate import Generator

        gen = Generator.load(args.checkpoint)
        base = {p: Embedder.of(gen, p, args.max_tokens) for p in poolings}
    if args.time_repo is not None:
        res = [time_repo(args.time_repo, args.work, None)] + [
            {"pooling": p, **time_repo(args.time_repo, args.work, e)} for p, e in (base or {}).items()]
    else:
        if args.file is None or args.repos_dir is None:
            ap.error("give -f PROBLEMS.jsonl and --repos-dir, or --time-repo DIR")
        problems = [rec for _, rec in read_jsonl_numbered(args.file)][: args.limit]
        res = measure(problems, args.repos_dir, args.work, {p: Memo(e) for p, e in (base or {}).items()})
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res if isinstance(res, list) else {k: v for k, v in res.items() if k != "rows"}, indent=1))


if __name__ == "__main__":
    main()
