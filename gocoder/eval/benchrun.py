"""`gocoder bench`: score a model (or a completions file) on a public Go benchmark in the sandbox.

Three figures, side by side and never mixed, each with its budget (docs/BENCHMARKS.md):
- greedy: pass@1 without feedback, one greedy answer a problem;
- sampled: pass@k by the unbiased estimator of Chen et al. (2021), "Evaluating Large Language Models
  Trained on Code", over n >= k answers drawn at a temperature and top-p;
- loop: pass@1 with the refinement loop, which may run the problem's visible checks only (and reads
  the compiler's and the checks' output); the one answer it submits is scored on the hidden checks.
Model answers are generated in batches by the engine (many prompts per call: a GPU with
`--device cuda`); the loop runs problem by problem, and its first round is the greedy
answer (never generated twice).
Each answer is run in the sandbox and judged by gocoder/eval/scoring.py. Rows append to
OUT/results.jsonl as they finish, so a rerun skips problems already done.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from gocoder import GocoderError
from gocoder.check.sandbox import Limits
from gocoder.config import BenchConfig, GenerateConfig
from gocoder.eval.answers import (  # noqa: F401
    answer_codes,
    batch_seed,
    complete_codes,
    generate_codes,
)
from gocoder.eval.benchmarks import Problem, completion_from_code, load_problems, problem_record
from gocoder.eval.checks import feedback
from gocoder.eval.figures import mean_pass_at_k, pass_at_k, summarize  # noqa: F401 (here too)
from gocoder.eval.scoring import (  # noqa: F401 (NO_CHECK, parses: re-exported)
    NO_CHECK,
    OUTPUT_KEEP,
    excluded_why,
    parses,
    score,
    scored,
)
from gocoder.fsio import atomic_write
from gocoder.inference.engine import Sampling
from gocoder.progress import Progress
from gocoder.records import JsonlWriter, read_jsonl, read_jsonl_numbered

if TYPE_CHECKING:  # the loader and the loop: imported where a checkpoint is loaded
    from gocoder.inference.generate import Generator


def read_completions(path: str | Path) -> dict[str, list[str]]:
    """task_id -> completions, in file order; a line without task_id or
    completion is an error naming it."""
    out: dict[str, list[str]] = defaultdict(list)
    for lineno, rec in read_jsonl_numbered(path):
        text = rec.get("completion", rec.get("generation"))
        if not isinstance(rec.get("task_id"), str) or not isinstance(text, str):
            raise GocoderError(f"{path}:{lineno}: expected task_id and completion (strings)")
        out[rec["task_id"]].append(text)
    return dict(out)


def _visible_runner(problem: Problem, limits: Limits, tc: bool) -> Callable[[str], Any] | None:
    """The loop's test callback: the visible checks' verdict and
    feedback (None: the format has none)."""
    from gocoder.inference.generate import TestResult

    vis = problem.visible()
    if not vis.test and not vis.files:  # synth-fix's checks are its package's test files
        return None

    def run(code: str) -> TestResult:
        comp = completion_from_code(vis, code)
        res = score(vis, comp, limits, tc)
        return TestResult(passed=res.passed, output=feedback(vis, comp, res))

    return run


def _loop_job(problem: Problem, gen: Generator, cfg: BenchConfig, task: str, limits: Limits,
              base: Sampling) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The loop on the visible checks: (its first round's code = the greedy
    answer, the submitted answer's row)."""
    from gocoder.inference.generate import solve

    t0 = time.monotonic()
    tests = _visible_runner(problem, limits, cfg.typecheck_first)
    r = solve(gen, problem_record(problem, task), max_iters=cfg.refine_iters, tests=tests,
              sampling=base)  # greedy rounds (base is greedy): the first is the greedy answer
    seconds = time.monotonic() - t0
    row = scored(problem, [completion_from_code(problem, r.code)], limits, cfg.typecheck_first)
    row.update(candidates=r.candidates, rounds=r.iterations, seconds=round(seconds, 3),
               visible_passed=r.passed,
               feedback=[t["verdict"]["diagnostic"][:OUTPUT_KEEP] for t in r.trace])  # fmt: skip
    return r.trace[0]["code"], row


def _filter_job(
    p: Problem, comps: list[str], limits: Limits, t_gen: float, tc: bool
) -> dict[str, Any]:
    """Complete mode's loop: the candidates (the greedy answer, then the sampled ones;
    completions, the text after the prompt) run the visible checks in order; the first to pass
    them is submitted (the greedy answer when none does), scored on the hidden checks. One round,
    no feedback in a prompt: CodeT-style filtering by the checks a user has."""
    t0 = time.monotonic()
    vis = p.visible()
    pick, passed, tried = comps[0], False, set()
    # synth-fix's checks are its package's test files
    for comp in comps if vis.test or vis.files else ():
        if comp in tried:  # a small model repeats itself: each distinct candidate runs once
            continue
        tried.add(comp)
        if score(vis, comp, limits, tc).passed:
            pick, passed = comp, True
            break
    row = scored(p, [pick], limits, tc)
    row.update(candidates=len(comps), rounds=1, seconds=round(time.monotonic() - t0 + t_gen, 3),
               visible_passed=passed, visible_runs=len(tried))  # fmt: skip
    return row


def _batch_rows(batch: list[Problem], cfg: BenchConfig, gen: Generator, task: str, limits: Limits,
                pool: ThreadPoolExecutor, base: Sampling) -> list[dict[str, Any]]:  # fmt: skip
    """Generate a batch's answers (greedy, sampled, loop) and score them, problems in parallel."""
    t0 = time.monotonic()
    greedy: list[list[str]] | None = None
    filtering = cfg.mode == "complete" and cfg.refine_iters > 0
    if cfg.refine_iters == 0 or filtering:
        greedy = answer_codes(gen, batch, task, 1,
                              dataclasses.replace(base, temperature=0.0, top_p=1.0, top_k=0),
                              cfg.mode)  # fmt: skip
    t_greedy = time.monotonic() - t0
    sampled, t_sampled = None, 0.0
    if cfg.samples > 1:
        t1 = time.monotonic()
        s = dataclasses.replace(
            base, temperature=cfg.temperature, top_p=cfg.top_p, seed=batch_seed(cfg.seed, batch)
        )
        sampled = answer_codes(gen, batch, task, cfg.samples, s, cfg.mode)
        t_sampled = time.monotonic() - t1

    tc = cfg.typecheck_first

    def job(i: int) -> dict[str, Any]:
        p = batch[i]
        row: dict[str, Any] = {"id": p.id, "format": p.format}
        if filtering:
            comps = [
                completion_from_code(p, c) for c in greedy[i] + (sampled[i] if sampled else [])
            ]
            row["loop"] = _filter_job(p, comps, limits, (t_greedy + t_sampled) / len(batch), tc)
            row["greedy"] = scored(p, [completion_from_code(p, c) for c in greedy[i]], limits, tc)
        elif cfg.refine_iters > 0:
            first, row["loop"] = _loop_job(p, gen, cfg, task, limits, base)
            row["greedy"] = scored(p, [completion_from_code(p, first)], limits, tc)
        else:
            row["greedy"] = scored(p, [completion_from_code(p, c) for c in greedy[i]], limits, tc)
            row["greedy"]["gen_s"] = round(t_greedy / len(batch), 3)
        if sampled is not None:
            row["sampled"] = scored(
                p, [completion_from_code(p, c) for c in sampled[i]], limits, tc
            )
            row["sampled"]["gen_s"] = round(t_sampled / len(batch), 3)
        return row

    return list(pool.map(job, range(len(batch))))


def run_benchmark(problems: Sequence[Problem], cfg: BenchConfig, *, out: str | Path,
                  task: str = "synthesize", completions: dict[str, list[str]] | None = None,
                  generator: Any = None, limits: Limits | None = None,
                  console: Console | None = None,
                  generate: GenerateConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """Score every problem (resuming from OUT/results.jsonl), then write and return the summary. The
    answers are sampled with [generate]'s budget and guard (max_new_tokens, no_repeat_ngram); the
    sampled answers' temperature, top-p and seed are [bench]'s."""
    g = generate or GenerateConfig()
    base = Sampling(max_new_tokens=g.max_new_tokens, no_repeat_ngram=g.no_repeat_ngram,
                    max_plan_tokens=g.max_plan_tokens)
    if (
        generator is not None
        and cfg.mode == "complete"
        and cfg.refine_iters > 0
        and cfg.samples < 2
    ):
        raise GocoderError(
            "--refine-iters in complete mode filters the sampled answers by the visible checks: "
            "give --samples N (N >= 2)"
        )
    if (completions is None) == (generator is None):
        raise GocoderError("bench: give either completions or a generator")
    limits, out = limits or Limits(), Path(out)
    if out.exists() and not out.is_dir():
        raise GocoderError(
            f"{out}: not a folder; --out names the folder for results.jsonl and summary.json"
        )
    excluded = {p.id: p.excluded for p in problems if p.excluded}
    todo = [p for p in problems if not p.excluded and (completions is None or p.id in completions)]
    t0 = time.monotonic()
    with JsonlWriter(out / "results.jsonl") as writer:
        pending = [p for p in todo if p.id not in writer.seen]
        console = console or Console(stderr=True)
        columns = (TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar, \
                ThreadPoolExecutor(max(1, cfg.workers)) as pool:  # fmt: skip
            task_id = bar.add_task("bench", total=len(todo), completed=len(todo) - len(pending))
            step = cfg.batch_size if generator is not None else max(1, cfg.workers) * 4
            for at in range(0, len(pending), step):
                batch = pending[at : at + step]
                # once per problem, from the problem alone, before any
                # answer: never from what an answer did
                why = dict(
                    zip(
                        [p.id for p in batch],
                        pool.map(lambda p: excluded_why(p, limits), batch),
                        strict=True,
                    )
                )
                rows = [
                    {"id": p.id, "format": p.format, "excluded": why[p.id]}
                    for p in batch
                    if why[p.id]
                ]
                batch = [p for p in batch if not why[p.id]]
                if generator is not None and batch:
                    rows += _batch_rows(batch, cfg, generator, task, limits, pool, base)
                elif batch:
                    rows += list(
                        pool.map(
                            lambda p: _given_row(
                                p,
                                completions[p.id],
                                limits,
                                cfg.typecheck_first,
                                cfg.refine_iters > 0,
                            ),
                            batch,
                        )
                    )
                # a batch is written whole: Ctrl-C between batches loses nothing written
                for row in rows:
                    writer.write(row)
                bar.advance(task_id, len(rows))
    # The writer made out/ with its first row; with none (nothing to score) it is made here, last.
    results = out / "results.jsonl"
    ids = {p.id for p in todo}
    rows = [r for r in read_jsonl(results) if r["id"] in ids] if results.exists() else []
    excluded.update({r["id"]: r["excluded"] for r in rows if r.get("excluded")})
    summary = summarize([r for r in rows if not r.get("excluded")], cfg, excluded,
                        time.monotonic() - t0, len(pending))  # fmt: skip
    # whole, or the last one stays
    atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _given_row(
    p: Problem, comps: list[str], limits: Limits, tc: bool, loop: bool = False
) -> dict[str, Any]:
    """A completions file's answers, scored; with loop, also the one answer that filtering
    them by the visible checks submits, in the file's order (put the greedy answer first: it
    is submitted when none passes)."""
    row = {"id": p.id, "format": p.format, "given": scored(p, comps, limits, tc)}
    if loop:
        row["loop"] = _filter_job(p, comps, limits, 0.0, tc)
    return row


def bench(cfg: BenchConfig, file: str | Path, fmt: str, *, task: str = "synthesize",
          checkpoint: str | None = None, completions: str | Path | None = None,
          limit: int | None = None, out: str | Path | None = None, generate: GenerateConfig,
          console: Console | None = None, retrieve: str | Path | None = None,
          retrieval: Any = None) -> dict[str, Any]:  # fmt: skip
    """Load a benchmark file, take completions from a JSONL or a checkpoint's Generator (on
    generate.device, generate.max_new_tokens an answer), score them. retrieve: a folder or index
    file (gocoder/inference/retrieve.py) whose declarations best matching each problem go into
    its prompt (mode record), ranked as retrieval (a RetrieveConfig; None: bm25) says."""
    for name, bad in (("--samples", cfg.samples < 1), ("--batch-size", cfg.batch_size < 1),
                      ("--refine-iters", cfg.refine_iters < 0)):  # fmt: skip
        if bad:
            raise GocoderError(f"{name}: must be at least {0 if name == '--refine-iters' else 1}")
    problems = [
        dataclasses.replace(p, fix_imports=cfg.fix_imports)
        for p in load_problems(file, fmt, task=task)
    ]
    comps, gen = None, None
    if completions is not None:
        comps = read_completions(completions)
        unknown = sorted(set(comps) - {p.id for p in problems})
        if unknown:
            raise GocoderError(
                f"{completions}: {len(unknown)} task ids not in {file}, e.g. {unknown[0]!r}"
            )
    else:
        from gocoder.inference.generate import Generator

        gen = Generator.load(checkpoint, device=generate.device)
    if limit is not None:
        if limit < 1:
            raise GocoderError(f"--limit {limit}: must be at least 1")
        problems = problems[:limit]
    if retrieve is not None:
        if gen is None or cfg.mode != "record":
            raise GocoderError(
                "--retrieve needs a model's answers in mode record (not --completions or complete)"
            )
        problems = with_retrieved(problems, gen, retrieve, generate.max_new_tokens, task, retrieval)
    limits = Limits(
        wall_s=cfg.wall_s, cpu_s=cfg.cpu_s, memory_mb=cfg.memory_mb, build_s=cfg.build_s
    )
    return run_benchmark(problems, cfg, out=out or cfg.out, task=task, completions=comps,
                         generator=gen, limits=limits, console=console,
                         generate=generate)  # fmt: skip


def with_retrieved(
    problems: list[Problem],
    gen: Generator,
    where: str | Path,
    max_new: int,
    task: str,
    retrieval: Any = None,
) -> list[Problem]:
    """Each problem with the declarations of the index at where that best match it, as many as its
    prompt holds uncut (gocoder/inference/retrieve.py, Generator.with_related)."""
    from gocoder.inference.retrieve import open_index

    idx = open_index(where, retrieve=retrieval, gen=gen)
    out = []
    for p in problems:
        rel = gen.with_related(problem_record(p, task), idx, max_new).context.related
        out.append(dataclasses.replace(p, related=tuple((r.file, r.code) for r in rel)))
    return out
