"""`gocoder bench`: score completions of a public Go benchmark in the sandbox, with pass@k.

Completions come from a JSONL (task_id + completion, as MXEval's evaluate_functional_correctness
reads; `generation` as CodeGeeX writes is accepted too) or from a Generator: `gen.sample(rec, n)`
scores the model without the refinement loop, `solve(gen, rec, max_iters=K, tests=...)` with it (the
loop sees the harness's own verdict). Per-problem results append to OUT/results.jsonl as they finish,
so a rerun skips problems already done; OUT/summary.json holds pass@k, excluded problems and status counts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from gocoder import GocoderError
from gocoder.benchmarks import Problem, completion_from_code, load_problems, problem_record
from gocoder.config import BenchConfig, GenerateConfig
from gocoder.progress import Progress
from gocoder.records import JsonlWriter, read_jsonl, read_jsonl_numbered
from gocoder.sandbox import Limits, SandboxResult, run_go

OUTPUT_KEEP = 2000  # characters of failing output kept per sample in results.jsonl


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


def read_completions(path: str | Path) -> dict[str, list[str]]:
    """task_id -> completions, in file order; a line without task_id or completion is an error naming it."""
    out: dict[str, list[str]] = defaultdict(list)
    for lineno, rec in read_jsonl_numbered(path):
        text = rec.get("completion", rec.get("generation"))
        if not isinstance(rec.get("task_id"), str) or not isinstance(text, str):
            raise GocoderError(f"{path}:{lineno}: expected task_id and completion (strings)")
        out[rec["task_id"]].append(text)
    return dict(out)


def score(problem: Problem, completion: str, limits: Limits) -> SandboxResult:
    """Run the harness's program for one completion."""
    return run_go(problem.program(completion), mode=problem.mode, limits=limits)


def _sample_row(res: SandboxResult) -> dict[str, Any]:
    row = {"status": res.status, "wall_s": round(res.wall_s, 3), "build_s": round(res.build_s, 3)}
    if not res.passed:
        row["output"] = (res.build_output if res.status == "build_error" else res.stderr + res.stdout)[-OUTPUT_KEEP:]
    return row


def _tests_runner(problem: Problem, limits: Limits) -> Callable[[str], Any]:
    """The refinement loop's test callback: the harness's own verdict on the model's code."""
    from gocoder.generate import TestResult

    def run(code: str) -> TestResult:
        res = score(problem, completion_from_code(problem, code), limits)
        out = res.build_output if res.status == "build_error" else res.stderr + res.stdout
        return TestResult(passed=res.passed, output=f"{res.status}: {out}"[:OUTPUT_KEEP])

    return run


def _problem_job(problem: Problem, comps: list[str] | None, generator: Any, samples: int, refine_iters: int,
                 task: str, limits: Limits, sampling: Any = None) -> dict[str, Any]:  # fmt: skip
    row: dict[str, Any] = {"id": problem.id, "format": problem.format}
    refined: list[str] = []
    if comps is None:
        rec = problem_record(problem, task)
        comps = [completion_from_code(problem, c.code) for c in generator.sample(rec, samples, sampling)]
        if refine_iters > 0:
            from gocoder.generate import solve

            tests = _tests_runner(problem, limits)
            refined = [completion_from_code(problem, solve(generator, rec, max_iters=refine_iters, tests=tests,
                                                           sampling=_nth(sampling, i)).code)
                       for i in range(samples)]  # fmt: skip
    results = [_sample_row(score(problem, c, limits)) for c in comps]
    row.update(n=len(results), c=sum(r["status"] == "ok" for r in results), samples=results, completions=comps)
    if refined:
        rres = [_sample_row(score(problem, c, limits)) for c in refined]
        row["refined"] = {"n": len(rres), "c": sum(r["status"] == "ok" for r in rres), "samples": rres,
                          "completions": refined}  # fmt: skip
    return row


def _nth(sampling: Any, i: int) -> Any:
    """The sampler of the i-th refinement run of a problem: its own seed, so that runs differ."""
    if sampling is None or sampling.seed is None:
        return sampling
    return dataclasses.replace(sampling, seed=sampling.seed + 1000 * i)


def run_benchmark(problems: Sequence[Problem], *, out: str | Path, completions: dict[str, list[str]] | None = None,
                  generator: Any = None, samples: int = 1, ks: Sequence[int] = (1, 10), refine_iters: int = 0,
                  task: str = "synthesize", workers: int = 2, limits: Limits | None = None,
                  console: Console | None = None, sampling: Any = None) -> dict[str, Any]:  # fmt: skip
    """Score every problem (resuming from OUT/results.jsonl), then write and return the summary.
    sampling (an engine Sampling) is how the generator samples; None: its default (greedy)."""
    if (completions is None) == (generator is None):
        raise GocoderError("bench: give either completions or a generator")
    limits = limits or Limits()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GocoderError(f"{out}: not a folder; --out names the folder for results.jsonl and summary.json")
    excluded = [p for p in problems if p.excluded]
    todo = [p for p in problems if not p.excluded and (completions is None or p.id in completions)]
    t0 = time.monotonic()
    with JsonlWriter(out / "results.jsonl") as writer:
        pending = [p for p in todo if p.id not in writer.seen]
        console = console or Console(stderr=True)
        columns = (TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar, \
                ThreadPoolExecutor(max(1, workers)) as pool:  # fmt: skip
            task_id = bar.add_task("bench", total=len(todo), completed=len(todo) - len(pending))
            futs = [pool.submit(_problem_job, p, None if completions is None else completions[p.id], generator,
                                samples, refine_iters, task, limits, sampling) for p in pending]  # fmt: skip
            try:
                for f in as_completed(futs):
                    writer.write(f.result())
                    bar.advance(task_id)
            except BaseException:  # Ctrl-C or a failed job: what is written stays; the rest is cancelled
                for f in futs:
                    f.cancel()
                raise
    # The writer made out/ with its first row; with none (nothing to score) it is made here, last.
    results = out / "results.jsonl"
    ids = {p.id for p in todo}
    rows = [r for r in read_jsonl(results) if r["id"] in ids] if results.exists() else []
    summary = summarize(rows, ks, excluded, time.monotonic() - t0, len(pending))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(rows: list[dict[str, Any]], ks: Sequence[int], excluded: Sequence[Problem], seconds: float,
              ran: int) -> dict[str, Any]:  # fmt: skip
    statuses = Counter(s["status"] for r in rows for s in r["samples"])
    refined_rows = [r["refined"] for r in rows if "refined" in r]
    return {
        "problems": len(rows) + len(excluded),
        "scored": len(rows),
        "samples": sum(r["n"] for r in rows),
        "passed": sum(r["c"] for r in rows),
        "pass@k": mean_pass_at_k([(r["n"], r["c"]) for r in rows if r["n"]], ks),
        "pass@k_refined": mean_pass_at_k([(r["n"], r["c"]) for r in refined_rows], ks) if refined_rows else None,
        "status_counts": dict(sorted(statuses.items())),
        "excluded": [{"id": p.id, "reason": p.excluded} for p in excluded],
        "seconds": round(seconds, 2),
        "seconds_per_problem": round(seconds / ran, 3) if ran else None,
    }


def bench(cfg: BenchConfig, file: str | Path, fmt: str, *, task: str = "synthesize", checkpoint: str | None = None,
          completions: str | Path | None = None, limit: int | None = None, out: str | Path | None = None,
          gen_cfg: GenerateConfig | None = None, console: Console | None = None) -> dict[str, Any]:  # fmt: skip
    """Load a benchmark file, take completions from a JSONL or a checkpoint's Generator, score them. The
    generator samples as gen_cfg ([generate]) says: at its temperature when cfg.samples > 1 (pass@k
    needs different samples), greedy for one, on its device."""
    problems = load_problems(file, fmt, task=task)
    gcfg = gen_cfg or GenerateConfig()
    comps, gen, sampling = None, None, None
    if completions is not None:
        comps = read_completions(completions)
        unknown = sorted(set(comps) - {p.id for p in problems})
        if unknown:
            raise GocoderError(f"{completions}: {len(unknown)} task ids not in {file}, e.g. {unknown[0]!r}")
    else:
        from gocoder.generate import Generator, sampling_from

        gen = Generator.load(checkpoint, device=gcfg.device)
        sampling = sampling_from(gcfg, cfg.samples)
    if limit is not None:
        if limit < 1:
            raise GocoderError(f"--limit {limit}: must be at least 1")
        problems = problems[:limit]
    limits = Limits(wall_s=cfg.wall_s, cpu_s=cfg.cpu_s, memory_mb=cfg.memory_mb, build_s=cfg.build_s)
    return run_benchmark(problems, out=out or cfg.out, completions=comps, generator=gen, samples=cfg.samples,
                         ks=cfg.ks, refine_iters=cfg.refine_iters, task=task, workers=cfg.workers, limits=limits,
                         console=console, sampling=sampling)  # fmt: skip
