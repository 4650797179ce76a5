"""The figures of a bench run, from the rows gocoder/eval/benchrun.py writes.

pass@k by the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models Trained
on Code", and the summary: one section per figure (given, greedy, sampled, loop) with its budget
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gocoder.config import BenchConfig


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. 2021's unbiased estimator 1 - C(n-c, k) / C(n, k), as a stable product."""
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@{k} needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Sequence[tuple[int, int]], ks: Sequence[int]) -> dict[str, float]:
    """pass@k averaged over problems, for each k that every problem has enough samples for."""
    return {f"pass@{k}": round(sum(pass_at_k(n, c, k) for n, c in counts) / len(counts), 6)
            for k in ks if counts and all(n >= k for n, _ in counts)}  # fmt: skip


def summarize(rows: list[dict[str, Any]], cfg: BenchConfig, excluded: dict[str, str],
              seconds: float, ran: int) -> dict[str, Any]:  # fmt: skip
    """The summary: one section per figure (given, greedy, sampled, loop), each with its budget."""
    out: dict[str, Any] = {"problems": len(rows) + len(excluded), "scored": len(rows)}
    for key in ("given", "greedy", "sampled", "loop"):
        secs = [r[key] for r in rows if key in r]
        if not secs:
            continue
        sec: dict[str, Any] = {
            "pass@k": mean_pass_at_k([(s["n"], s["c"]) for s in secs],
                                     (1,) if key in ("greedy", "loop") else cfg.ks),
            "samples": sum(s["n"] for s in secs), "passed": sum(s["c"] for s in secs),
            # as scored (a cut answer closed by the harness), and as the model wrote it
            "parsed": sum(bool(x.get("parses")) for s in secs for x in s["samples"]),
            "parsed_raw": sum(bool(x.get("parses_raw", x.get("parses")))
                              for s in secs for x in s["samples"]),
            "status_counts": dict(sorted(Counter(x["status"] for s in secs
                                                 for x in s["samples"]).items())),
        }  # fmt: skip
        if key in ("greedy", "sampled"):  # one round, no feedback
            sec.update(candidates_per_problem=1 if key == "greedy" else cfg.samples, rounds=1)
        if key == "sampled":
            sec.update(n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
        if key == "loop":
            sec.update(candidates_mean=round(sum(s["candidates"] for s in secs) / len(secs), 3),
                       rounds_max=cfg.refine_iters,
                       rounds_mean=round(sum(s["rounds"] for s in secs) / len(secs), 3),
                       seconds_per_problem=round(sum(s["seconds"] for s in secs) / len(secs), 3),
                       visible_passed=sum(bool(s["visible_passed"]) for s in secs))  # fmt: skip
        elif key != "given" and all("gen_s" in s for s in secs):
            # greedy with the loop: its first round
            sec["gen_seconds_per_problem"] = round(sum(s["gen_s"] for s in secs) / len(secs), 3)
        out[key] = sec
    out.update(excluded=[{"id": i, "reason": why} for i, why in sorted(excluded.items())],
               seconds=round(seconds, 2),
               seconds_per_problem=round(seconds / ran, 3) if ran else None)  # fmt: skip
    return out
