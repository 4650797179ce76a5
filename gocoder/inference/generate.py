"""Generation: the Generator (a checkpoint, its tokenizer and the engine) and the refinement loop.

Over ~400 lines on purpose: a round's prompt, its decoding (`decode_output`) and its verdict
(`judge`) are what `Generator.sample` does, and the loop (`step`, `solve`, `generate_for_pr`) only
orders rounds, so the two read together; the loop's state is gocoder/inference/candidates.py's.

One round: the model writes `<PLAN>...</PLAN><CODE>...</CODE>` from the prompt (problem + context),
gocheck judges the code (syntax; go/types with typecheck), tests run when given, and the refinement
controller (`Engine.decide` on the validator's verdict features) says continue / refine / done. On
another round the previous code and its first diagnostic go into a refine block of the prompt,
exactly as the training shards' repair examples show them (gocoder/training/data.py `_examples`),
and the model re-plans and rewrites.

The loop is a step API (`init_state`, `step`, `should_halt`, `save_state`/`load_state`) so that a
caller can drive, pause and resume it; `solve` runs it, or a search over candidates
(gocoder/inference/search.py).
NOTE(gocoder): "continue" (the controller's verdict on an unfinished draft) also leads to a
repair round: the engine only takes a prompt region, and the shards teach repair from
partial drafts exactly like that.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.check.validate import fix_imports
from gocoder.inference.candidates import (  # noqa: F401
    # TestResult, init_state, refine_record: re-exported
    Candidate,
    LoopState,
    TestResult,
    energy,
    init_state,
    refine_record,
)
from gocoder.inference.engine import Sampling
from gocoder.inference.incremental import Watcher
from gocoder.model.model import DONE
from gocoder.record import Context, Problem, Record
from gocoder.text.serialize import cut_points, format_diagnostic, prompt, prompt_budget

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "default"
WHEEL_MODEL = Path(__file__).resolve().parents[1] / "_models" / "default"
MAX_OUTPUT = 2000  # characters of failing test output kept for the refine block


# ------------------------------------------------------------------------------ decoding the output

# a name runs to its newline
_STEP = re.compile(r"<INTENT:([A-Z]+)>(?:<TARGET:([a-z]+)>([^\n]*)(?:\n|$))?(.*)", re.S)


def _unline(s: str) -> str:
    from gocoder.text.serialize import unescape

    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), unescape(s))


def decode_output(text: str) -> tuple[list[dict], str, bool]:
    """(plan steps, code, finished) of a generated `<PLAN>...</PLAN><CODE>...</CODE>`.
    Lenient where the model strays (a step without an intent is skipped); finished is
    False without a closing </CODE>."""
    from gocoder.text.serialize import unescape

    plan_text, _, rest = text.partition("</PLAN>")
    steps = []
    for chunk in plan_text.removeprefix("<PLAN>").split("<STEP>")[1:]:
        m = _STEP.match(chunk)
        if m:
            target = f"{m.group(2)}:{_unline(m.group(3))}" if m.group(2) else ""
            steps.append(
                {"intent": m.group(1), "target": target, "description": unescape(m.group(4))}
            )
    if "<CODE>" not in rest:
        return steps, "", False
    body = rest.split("<CODE>", 1)[1]
    code, closed, _ = body.partition("</CODE>")
    return steps, unescape(code), bool(closed)


# -------------------------------------------------------------------------------------- the model

class Generator:
    """A checkpoint ready to write Go: model, tokenizer, engine and the gocheck client."""

    def __init__(self, model: Any, tok: Any, meta: dict[str, Any], device: str = "cpu",
                 segments: int | None = None, path: Path | None = None, watch: bool = True):
        self.model, self.tok, self.meta, self.path = model, tok, meta, path
        from gocoder.inference.engine import Engine

        self.max_len = model.cfg.max_seq_len
        self.engine = Engine(
            model.to(device),
            code_open=tok.token_id("<CODE>"),
            device=device,
            segments=segments,
            plan_close=tok.token_id("</PLAN>"),
        )
        # the engine's KV caches live on it: threads (gocoder bench's workers) take turns
        # generating, while their gocheck and sandbox work still overlaps
        self.lock = threading.Lock()
        self.code_close = tok.token_id("</CODE>")
        self.calls = 0  # candidates generated: the budget of a search counts these
        # tree-sitter follows the code as it is written and stops a candidate at its first final
        # error (gocoder/inference/incremental.py); it parses at the ids that end a line
        self.watch = watch
        self.line_ids = {i for i, t in enumerate(self.piece_text) if "\n" in t} if watch else set()
        self.cut = 0  # candidates stopped early at a syntax error

    @functools.cached_property
    def piece_text(self) -> list[str]:
        """Each id's text, decoded once: the loop's line ends and
        bench's complete mode look ids up."""
        return [self.tok.decode([i]) for i in range(self.tok.vocab_size)]

    @classmethod
    def load(
        cls, checkpoint: str | Path | None = None, device: str = "cpu", segments: int | None = None
    ) -> Generator:
        from gocoder.model.checkpoint import checkpoint_dir, load_model
        from gocoder.text.tokenizer import Tokenizer

        if checkpoint is None:
            checkpoint = (
                DEFAULT_MODEL if DEFAULT_MODEL.exists() or not WHEEL_MODEL.exists() else WHEEL_MODEL
            )
            if not Path(checkpoint).exists():
                raise GocoderError(
                    f"{checkpoint}: no default model shipped yet; pass --checkpoint DIR"
                )
        p = checkpoint_dir(checkpoint)
        model, meta = load_model(p)
        tok_path = p / "tokenizer.model"
        if not tok_path.exists():
            tok_path = Path(meta.get("config", {}).get("train", {}).get("tokenizer", "tokenizer"))
        tok = Tokenizer.load(tok_path)
        if tok.hash != meta.get("tokenizer_hash"):
            raise GocoderError(
                f"{tok_path}: not the tokenizer {p} was trained with (sha256 differs)"
            )
        return cls(model, tok, meta, device, segments, p)

    def prompt_text(self, rec: Record) -> str:
        """The prompt region of rec as training serializes it (with its refine block, if any)."""
        return prompt(rec)

    def prompt_keep(self, max_new: int) -> int:
        """Prompt tokens kept when max_new positions are left for the answer (the rest is cut)."""
        return prompt_budget(self.max_len, max_new)

    def prompt_ids(self, rec: Record, max_new: int) -> list[int]:
        """Token ids of the prompt, cut as the shards cut one (gocoder/training/data.py
        Shard.example: its middle goes, the problem at the head and the refine block at the tail
        stay) to leave max_new positions."""
        ids = self.tok.encode(self.prompt_text(rec))
        head, tail = cut_points(len(ids), self.prompt_keep(max_new))
        return ids[:head] + ids[tail:]

    def with_related(
        self, rec: Record, index: Any, max_new: int, exclude: tuple[str, ...] = ()
    ) -> Record:
        """rec with the declarations of index (gocoder/inference/retrieve.py) that best
        match its problem, as many as its prompt holds uncut with max_new positions left
        (none when the prompt is cut already).

        NOTE(gocoder): related code is never allowed to cause a cut. Kept in the head that the
        cut keeps, it emptied the shipped model's answer on the PR-benchmark problem tried that
        way (pond@2fbcfba08fdd: its plan ran past max_new), as cut prompts without retrieval do
        (3 of 3 concurrent-map problems)."""
        from gocoder.inference.retrieve import with_related

        keep = self.prompt_keep(max_new)

        def fits(r: Record) -> bool:
            return len(self.tok.encode(self.prompt_text(r))) <= keep

        return with_related(rec, index, fits, exclude=exclude)

    def code_of(self, ids: list[int]) -> str | None:
        """The code in generated ids so far (unescaped), or None before <CODE>."""
        text = self.tok.decode(ids)
        return decode_output(text)[1] if "<CODE>" in text else None

    def sample(
        self,
        rec: Record,
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        typecheck: bool = False,
        tests: Callable[[str], TestResult] | None = None,
    ) -> list[Candidate]:
        """n independent plan+code candidates for one record, each checked, tested and judged."""
        from gocoder.check.validate import get_checker

        s = dataclasses.replace(sampling or Sampling(), stop=(self.code_close,))
        watcher = Watcher(self.code_of, self.line_ids) if self.watch else None
        with self.lock:
            comps = self.engine.generate(
                [self.prompt_ids(rec, s.max_new_tokens)], s, samples=n, on_token=watcher
            )
        self.calls += len(comps)
        self.cut += len(watcher.stopped) if watcher else 0
        texts = [self.tok.decode(c.tokens) for c in comps]
        decoded = [decode_output(t) for t in texts]
        checks = get_checker().check_many([code for _, code, _ in decoded], typecheck=typecheck)
        cands = [judge(text, d, res, typecheck=typecheck, tests=tests)
                 for text, d, res in zip(texts, decoded, checks, strict=True)]
        with self.lock:
            decisions = self.engine.decide(comps, [c.verdict for c in cands])
        for c, d in zip(cands, decisions, strict=True):
            c.decision = d
        return cands


def judge(text: str, decoded: tuple[list[dict], str, bool], res: Any, *, typecheck: bool = False,
          tests: Callable[[str], TestResult] | None = None) -> Candidate:
    """The candidate of one generated text (decode_output's reading of it) and gocheck's
    verdict on its code: the tests run only on code that parses; the controller's
    decision comes later (Engine.decide)."""
    from gocoder.check.validate import verdict_features

    plan, code, finished = decoded
    ok = bool(res.ok and finished and code.strip())
    type_ok = (res.type_ok if res.ok else None) if typecheck else None
    terrs = res.type_errors if type_ok is False else ()
    first = res.errors[0] if res.errors else (terrs[0] if terrs else None)
    diag = format_diagnostic(first) if first else ("" if finished else "unfinished code")
    t = tests(code) if tests is not None and ok else None
    if t is not None and not t.passed:
        diag = diag or t.output[:MAX_OUTPUT]
    n_err = len(res.errors) or len(terrs) or int(not ok)  # unfinished or empty code: one error
    return Candidate(
        code, plan, ok, type_ok, t, None, text, finished, n_err, diag, verdict_features(code, res)
    )


# --------------------------------------------------------------------------------------- the loop

def step(gen: Generator, state: LoopState, *, samples: int = 1, sampling: Sampling | None = None,
         typecheck: bool = False, tests: Callable[[str], TestResult] | None = None) -> LoopState:
    """One round: sample, check, judge; the round's best becomes
    current and the best overall is kept."""
    prev = state.candidates[state.current] if state.current is not None else None
    rec = state.rec if prev is None else refine_record(state.rec, prev)
    s = sampling or Sampling()
    # another round, other samples: greedy rounds differ by their prompt only
    if s.seed is not None:
        s = dataclasses.replace(s, seed=s.seed + state.iteration)
    cands = gen.sample(rec, samples, s, typecheck=typecheck, tests=tests)
    base = len(state.candidates)
    state.candidates.extend(cands)
    pick = min(range(len(cands)), key=lambda i: energy(cands[i]))
    state.current = base + pick
    if state.best is None or energy(cands[pick]) < energy(state.candidates[state.best]):
        state.best = state.current
    c = cands[pick]
    said = (
        "done"
        if c.decision is not None and max(range(3), key=lambda i: c.decision.probs[i]) == DONE
        else (
            "refine"
            if c.decision is None or c.decision.probs[1] >= c.decision.probs[0]
            else "continue"
        )
    )
    # "done" on code that does not parse, or that fails the tests it was given (the
    # feedback the repair round then reads), is overridden: the controller's features see
    # gocheck's verdict, not the tests'
    premature = said == "done" and not (c.syntax_ok and (c.tests is None or c.tests.passed))
    state.premature += premature
    # "done" on code that fails its tests, or the type check it was asked for, is overridden too:
    # another round gets the failure as its diagnostic
    state.done = c.passed or (said == "done" and not premature and c.type_ok is not False)
    state.trace.append(
        {
            "iteration": state.iteration,
            "action": "refine" if prev else "generate",
            "code": c.code,
            "plan": c.plan,
            "decision": said,
            "premature": premature,
            "done_prob": c.done_prob,
            "energy": energy(c),
            "verdict": {
                "syntax_ok": c.syntax_ok,
                "type_ok": c.type_ok,
                "finished": c.finished,
                "tests": None if c.tests is None else c.tests.passed,
                "diagnostic": c.diagnostic,
                "errors": c.errors,
            },
        }
    )
    state.iteration += 1
    return state


def should_halt(state: LoopState, max_iters: int = 3) -> bool:
    return state.done or state.iteration >= max_iters


def save_state(state: LoopState, path: str | Path) -> None:
    """JSON, written to a temporary name and renamed: a kill leaves the previous state whole."""
    p = Path(path)
    d = dataclasses.asdict(dataclasses.replace(state, candidates=[]))
    d.update(rec=state.rec.to_dict(), candidates=[c.to_dict() for c in state.candidates])
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(json.dumps(d) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def load_state(path: str | Path) -> LoopState:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        d["candidates"] = [Candidate.from_dict(c) for c in d["candidates"]]
        d["rec"] = Record.from_dict(d["rec"], where=str(path))
        return LoopState(**d)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise GocoderError(f"{path}: not a saved loop state ({e})") from None


@dataclass
class Result:
    code: str
    plan: list[dict]
    iterations: int
    syntax_ok: bool
    type_ok: bool | None
    passed: bool | None  # None when no tests were given
    # the first round's candidate passed (parsed, type-checked if asked, tests if given)
    first_try_ok: bool
    trace: list[dict]  # one dict per step: action, code, verdict, decision
    premature: int = 0  # controller "done" on code that did not parse (overridden)
    candidates: int = 0  # candidates generated (model samples)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def result_of(state: LoopState, tests: Callable[[str], TestResult] | None = None) -> Result:
    """The best candidate seen (passing > parsing > the controller's
    done probability) as the answer."""
    if state.best is None:
        raise GocoderError("the loop ran no step")
    b = state.candidates[state.best]
    first = state.trace[0]["verdict"] if state.trace else {}
    first_ok = bool(
        first.get("syntax_ok")
        and first.get("type_ok") is not False
        and first.get("tests") is not False
    )
    return Result(
        b.code,
        b.plan,
        state.iteration,
        b.syntax_ok,
        b.type_ok,
        None if tests is None else bool(b.tests and b.tests.passed),
        first_ok,
        state.trace,
        state.premature,
        len(state.candidates),
    )


def solve(gen: Generator, rec: Record | Mapping[str, Any], *, samples: int = 1, max_iters: int = 3,
          search: str = "best-of", budget: int | None = None, typecheck: bool = False,
          tests: Callable[[str], TestResult] | None = None, sampling: Sampling | None = None,
          state_path: str | Path | None = None, ucb_c: float = 1.0) -> Result:
    """Write code for rec: the refinement loop with `samples` candidates a round (best-of), or
    a tree search over refinements (search="tree"); budget caps the candidates generated
    (default samples * max_iters).
    With state_path the loop saves its state after each round and resumes from it (best-of only).
    rec: a Record, or its JSON (checked by Record.from_dict)."""
    rec = Record.of(rec)
    if samples < 1 or max_iters < 1:
        raise GocoderError(f"samples ({samples}) and max_iters ({max_iters}) must be at least 1")
    budget = budget or samples * max_iters
    if search == "tree":
        from gocoder.inference.search import tree_search

        state = tree_search(gen, rec, samples=samples, max_depth=max_iters, budget=budget, c=ucb_c,
                            sampling=sampling, typecheck=typecheck, tests=tests)
        return result_of(state, tests)
    if search != "best-of":
        raise GocoderError(f"--search {search!r}: expected best-of or tree")
    sp = Path(state_path) if state_path else None
    state = load_state(sp) if sp is not None and sp.exists() else init_state(rec)
    while not should_halt(state, max_iters) and len(state.candidates) + samples <= max(
        budget, samples
    ):
        step(gen, state, samples=samples, sampling=sampling, typecheck=typecheck, tests=tests)
        if sp is not None:
            save_state(state, sp)
    return result_of(state, tests)


def sampling_from(cfg: Any, samples: int = 1, search: str = "best-of") -> Sampling:
    """The sampler of a [generate] config: greedy for one candidate a round, else at cfg.temperature
    (several identical greedy candidates, or tree expansions, would measure nothing new)."""
    greedy = samples == 1 and search == "best-of"
    return Sampling(
        max_new_tokens=cfg.max_new_tokens,
        temperature=0.0 if greedy else cfg.temperature,
        top_k=cfg.top_k,
        top_p=1.0 if greedy else cfg.top_p,
        seed=cfg.seed,
        no_repeat_ngram=cfg.no_repeat_ngram,
        max_plan_tokens=cfg.max_plan_tokens,
    )


def generate_for_pr(
    cfg: Any,
    pr_desc: str,
    context: str | Path | None = None,
    checkpoint: str | Path | None = None,
    tests: Callable[[str], TestResult] | None = None,
    repo: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    retrieval: Any = None,
) -> Result:
    """`gocoder generate`: a record from a PR description (and the file it changes), solved by
    the loop. repo: a folder whose declarations (gocoder/inference/retrieve.py, indexed or
    brought up to date first) that best match the description go into the prompt beside the file,
    within the context budget, ranked as retrieval (a RetrieveConfig; None: bm25) says."""
    if not pr_desc.strip():
        raise GocoderError(
            "--pr-desc is empty: say what the change must do, e.g. --pr-desc 'Add a Max function'"
        )
    before = ""
    if context is not None:
        try:
            before = Path(context).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise GocoderError(f"{context}: cannot read the context file: {why}") from None
    # shaped as the training records are: details repeat the description (a doc comment's first
    # sentence is its description), and a file is always named; an empty details and file drove the
    # shipped model into repeating the description instead of closing the plan
    rec = Record(id="cli", problem=Problem(description=pr_desc, details=pr_desc),
                 context=Context(file=Path(context).name if context else "main.go", before=before))
    gen = Generator.load(checkpoint, device=cfg.device)
    if repo is not None:
        from gocoder.inference.retrieve import open_index

        idx = open_index(repo, progress=progress, retrieve=retrieval, gen=gen)
        own = Path(context).resolve() if context else None
        root = idx.root.resolve()
        skip = (own.relative_to(root).as_posix(),) if own and own.is_relative_to(root) else ()
        rec = gen.with_related(rec, idx, cfg.max_new_tokens, exclude=skip)
    res = solve(
        gen,
        rec,
        samples=cfg.samples,
        max_iters=cfg.max_iters,
        search=cfg.search,
        budget=cfg.budget or None,
        typecheck=cfg.typecheck,
        sampling=sampling_from(cfg, cfg.samples, cfg.search),
        ucb_c=cfg.ucb_c,
        tests=tests,
    )
    # the answer as a Go programmer hands it over: imports fixed as goimports would, gofmt'd
    if res.syntax_ok:
        res = dataclasses.replace(res, code=fix_imports(res.code))
    return res
