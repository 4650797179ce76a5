"""Benchmark answers: the codes a model writes for a benchmark's problems, batched on the engine
(`Engine.decode`: a GPT decodes through a static cache and a CUDA graph on a GPU), for `gocoder
bench` to score, or written as they come to a JSONL (`gocoder bench --answers-only`) that
`--completions` scores where Go is. The inference side of the bench: no sandbox, no Go toolchain.

complete mode's per-token work stays off the decode: the engine reads the ids back every few steps,
where the close of the function ends a row (on_token); the cut after the close and the closing of a
budget-cut answer (gocoder/inference/incremental.py close_function) run on the text afterwards; the
n-gram guard and token healing are masks on the device (gocoder/inference/engine.py).
"""

from __future__ import annotations

import dataclasses
import re
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from gocoder import GocoderError
from gocoder.config import BenchConfig, GenerateConfig
from gocoder.eval.benchmarks import (
    Answer,
    Problem,
    completion_from_code,
    last_func,
    load_problems,
    problem_record,
)
from gocoder.inference.engine import Sampling
from gocoder.inference.incremental import close_function
from gocoder.progress import Progress
from gocoder.records import JsonlWriter

if TYPE_CHECKING:  # the loader and the loop: imported where a checkpoint is loaded
    from gocoder.inference.generate import Generator

_OPEN_BRACE = re.compile(r"[ \t]*\{\s*\Z")  # the signature's open brace and what follows it


def batch_seed(seed: int, batch: Sequence[Problem]) -> int:
    """One seed a batch, from the run's seed and the batch's first problem: a rerun of the same
    batch draws the same samples; every row of the batch draws its own (the generator moves on)."""
    return seed + zlib.crc32(batch[0].id.encode())


def complete_codes(
    gen: Generator, problems: Sequence[Problem], n: int, s: Sampling
) -> list[list[str]]:
    """n codes per problem in complete mode: each harness prompt is read as a Go file from its
    start (after an eos, where pretraining's files start; fed as code from position 1, as
    TokenShard rows were) and continued until the function closes (a "}" at the start of a line)
    or an eos; one that does not parse (the budget cut it, or a line broke) is closed at its last
    line between statements that leaves it parsing (gocoder/inference/incremental.py
    close_function). The prompt is cut before its open brace and the first id must write it
    (token healing: " {\n\t" is one piece, so a prompt that ends in " {\n" reads as text training
    rarely saw). The code is the prompt's signature line and the body written after it, the whole
    function that completion_from_code reads. One engine call per prompt ending (the healed text
    picks the first ids); answers come back in the problems' order."""
    heads, heals = [], []
    for p in problems:
        m = _OPEN_BRACE.search(p.prompt)
        cut = m.start() if m else len(p.prompt)
        heads.append(p.prompt[:cut])
        heals.append(p.prompt[cut:])
    out: list[list[str]] = [[] for _ in problems]
    for heal in dict.fromkeys(heals):
        idx = [i for i, h in enumerate(heals) if h == heal]
        for i, codes in zip(idx,
                            _complete(gen, [problems[i] for i in idx], [heads[i] for i in idx],
                                      heal, n, s),
                            strict=True):  # fmt: skip
            out[i] = codes
    return out


def _complete(gen: Generator, problems: list[Problem], heads: list[str], heal: str, n: int,
              s: Sampling) -> list[list[str]]:
    """complete_codes for problems whose prompts end alike: heads (each
    prompt without its ending heal)."""
    eos, text = gen.tok.eos_id, gen.piece_text
    s = dataclasses.replace(s, stop=(eos,))
    first = (
        [i for i, t in enumerate(text) if t and (t.startswith(heal) or heal.startswith(t))]
        if heal
        else None
    )
    keep = max(1, gen.engine.core.max_seq_len - 1 - s.max_new_tokens)  # a long prompt keeps its end
    line_start: dict[int, bool] = {}  # row -> its text so far ends a line

    def closed(row: int, t: int) -> bool:
        piece, at_start = text[t], line_start.get(row, not heal and heads[row // n].endswith("\n"))
        line_start[row] = piece.endswith("\n") or (at_start and piece == "")
        return (at_start and piece.startswith("}")) or "\n}" in piece

    with gen.lock:
        comps = gen.engine.decode([[eos]] * len(problems), s, samples=n, on_token=closed,
                                    forced=[gen.tok.encode(h)[-keep:] for h in heads], code_start=1,
                                    first=first)  # fmt: skip
    gen.calls += len(comps)
    codes = []
    for c in comps:
        p, head = problems[c.prompt_index], heads[c.prompt_index]
        out = head + gen.tok.decode([t for t in c.tokens if t != eos])
        end = out.find("\n}", len(head))
        out = out[: end + 2] + "\n" if end >= 0 else out
        f = last_func(p.prompt)
        # cut by the budget, or broken before its end: closed at its last line between statements
        # that leaves it parsing (an answer that parses stays as it is) cut by the budget, or broken
        # before its end: closed at its last line between statements that leaves it parsing (an
        # answer that parses stays as it is); the raw answer is kept for "parsed_raw"
        codes.append(
            Answer(close_function(out[f.start :]), out[f.start :]) if f else out[len(p.prompt) :]
        )
    return [codes[i * n : (i + 1) * n] for i in range(len(problems))]


def answer_codes(gen: Generator, problems: Sequence[Problem], task: str, n: int, s: Sampling,
                 mode: str) -> list[list[str]]:
    """n codes per problem, by the bench's mode (BenchConfig.mode)."""
    if mode == "complete":
        return complete_codes(gen, problems, n, s)
    return generate_codes(gen, problems, task, n, s)


def generate_codes(
    gen: Generator, problems: Sequence[Problem], task: str, n: int, s: Sampling
) -> list[list[str]]:
    """n codes per problem from one batched engine call (prompt-major),
    decoded as `Generator.sample` does."""
    from gocoder.inference.generate import decode_output

    s = dataclasses.replace(s, stop=(gen.code_close,))
    prompts = [gen.prompt_ids(problem_record(p, task), s.max_new_tokens) for p in problems]
    with gen.lock:
        comps = gen.engine.decode(prompts, s, samples=n)
    gen.calls += len(comps)
    codes = [decode_output(gen.tok.decode(c.tokens))[1] for c in comps]
    return [codes[i * n : (i + 1) * n] for i in range(len(problems))]


def greedy_sampling(base: Sampling) -> Sampling:
    """The greedy answer's sampling: [generate]'s budget and guard, no temperature."""
    return dataclasses.replace(base, temperature=0.0, top_p=1.0, top_k=0)


def base_sampling(g: GenerateConfig) -> Sampling:
    """The answers' budget and guard, from [generate] (their one home)."""
    return Sampling(max_new_tokens=g.max_new_tokens, no_repeat_ngram=g.no_repeat_ngram,
                    max_plan_tokens=g.max_plan_tokens)


def write_answers(gen: Generator, problems: Sequence[Problem], cfg: BenchConfig, out: str | Path, *,
                  task: str = "synthesize", generate: GenerateConfig | None = None,
                  console: Console | None = None) -> dict[str, Any]:
    """Each problem's answers, appended to the JSONL out as each batch of cfg.batch_size
    problems comes (task_id, completion, code, kind, sample): the greedy answer when
    cfg.samples == 1 or the loop filters (cfg.refine_iters), then cfg.samples sampled ones
    (T, top-p and seed as `gocoder bench` draws them: one seed a batch, batch_seed). A rerun
    skips the batches whose rows are all written and redoes a cut batch whole, writing only
    its missing rows, so a resumed file holds the answers an uncut run writes. Returns
    counts and the generation seconds."""
    base = base_sampling(generate or GenerateConfig())
    if cfg.mode == "record" and cfg.refine_iters > 0:
        raise GocoderError(
            "--answers-only with --refine-iters needs --mode complete (the record loop runs "
            "problem by problem with the checks; it has no answers to write ahead)"
        )
    kinds = ([("greedy", 1)] if cfg.samples == 1 or cfg.refine_iters > 0 else []) + \
        ([("sampled", cfg.samples)] if cfg.samples > 1 else [])
    t0, written, gen_s = time.monotonic(), 0, 0.0
    with JsonlWriter(out, key="key") as writer:
        batches = [
            list(problems[i : i + cfg.batch_size]) for i in range(0, len(problems), cfg.batch_size)
        ]
        todo = [
            b
            for b in batches
            if any(
                f"{p.id}#{k}#{j}" not in writer.seen for p in b for k, n in kinds for j in range(n)
            )
        ]
        console = console or Console(stderr=True)
        columns = (TextColumn("answers"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as bar:
            task_id = bar.add_task(
                "answers", total=len(problems), completed=len(problems) - sum(map(len, todo))
            )
            for batch in todo:
                for kind, n in kinds:
                    s = (
                        greedy_sampling(base)
                        if kind == "greedy"
                        else dataclasses.replace(
                            base,
                            temperature=cfg.temperature,
                            top_p=cfg.top_p,
                            seed=batch_seed(cfg.seed, batch),
                        )
                    )
                    t1 = time.monotonic()
                    codes = answer_codes(gen, batch, task, n, s, cfg.mode)
                    gen_s += time.monotonic() - t1
                    for p, cs in zip(batch, codes, strict=True):
                        for j, code in enumerate(cs):
                            # code_raw: the answer as the model wrote
                            # it, before the harness closed it
                            written += writer.write(
                                {
                                    "key": f"{p.id}#{kind}#{j}",
                                    "task_id": p.id,
                                    "kind": kind,
                                    "sample": j,
                                    "completion": completion_from_code(p, code),
                                    "code": code,
                                    "code_raw": getattr(code, "raw", code),
                                }
                            )
                bar.advance(task_id, len(batch))
    return {
        "answers": written,
        "problems": len(problems),
        "batches_run": len(todo),
        "generate_seconds": round(gen_s, 2),
        "seconds": round(time.monotonic() - t0, 2),
        "out": str(out),
    }


def answers(
    cfg: BenchConfig,
    file: str | Path,
    fmt: str,
    out: str | Path,
    *,
    task: str = "synthesize",
    checkpoint: str | None = None,
    limit: int | None = None,
    generate: GenerateConfig,
    console: Console | None = None,
) -> dict[str, Any]:
    """`gocoder bench --answers-only`: load the benchmark and the model (on
    generate.device), write_answers."""
    from gocoder.inference.generate import Generator

    for name, bad in (("--samples", cfg.samples < 1), ("--batch-size", cfg.batch_size < 1)):
        if bad:
            raise GocoderError(f"{name}: must be at least 1")
    if limit is not None and limit < 1:
        raise GocoderError(f"--limit {limit}: must be at least 1")
    if Path(out).is_dir():
        raise GocoderError(f"{out}: a folder; --answers-only writes --out as one JSONL file")
    # as bench limits
    problems = [p for p in load_problems(file, fmt, task=task)[:limit] if not p.excluded]
    gen = Generator.load(checkpoint, device=generate.device)
    return write_answers(gen, problems, cfg, out, task=task, generate=generate, console=console)
