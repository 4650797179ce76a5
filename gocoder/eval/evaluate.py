"""`gocoder eval`: run the refinement loop on held-out records and measure what it wrote.

Per record (problem and context as the prompt, the record's plan and solution as the reference):
exact match, AST similarity (1 - the normalized edit distance between gocheck's normalized syntax
trees, op "ast"), syntax- and type-valid, intent accuracy and target F1 of the generated plan,
iterations, a premature stop (the controller said done on code that failed), first-try vs final
validity. Rows go to a JSONL as they are measured, so a killed run resumes where it stopped. An
arena (`compare`) runs two checkpoints on the same records and counts per-record wins; `promote`
copies the winner into a best slot atomically.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gocoder import GocoderError
from gocoder.record import Record

if TYPE_CHECKING:  # the loader and the loop: imported where a checkpoint is loaded
    from gocoder.inference.generate import Generator

SUMMARY = (
    "exact_match",
    "ast_similarity",
    "syntax_valid",
    "type_valid",
    "intent_accuracy",
    "target_f1",
    "iterations",
    "premature_stop",
    "first_try_valid",
    "final_valid",
)


def edit_similarity(a: list[str], b: list[str]) -> float:
    """1 - Levenshtein(a, b) / max(len): 1 for equal sequences, 0 for nothing in common."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def shape(code: str, checker: Any = None) -> list[str]:
    """gocheck's normalized syntax tree of code (node kinds in
    pre-order; see go/gocheck/shape.go)."""
    from gocoder.check.validate import _raw, get_checker

    resp = (checker or get_checker()).request({"op": "ast", "kind": "auto", "_raw": _raw(code)})
    if resp.get("error"):
        raise GocoderError(f"gocheck ast: {resp['error']}")
    return list(resp.get("shape") or [])


def _norm_code(code: str) -> str:
    return "\n".join(line.rstrip() for line in code.strip("\n").splitlines())


def _target(t: str) -> str:
    kind, _, name = (t or "").partition(":")
    return f"{'type' if kind == 'struct' else kind}:{name}" if t else ""


def plan_scores(pred: list[dict], gold: list[dict]) -> tuple[float, float]:
    """(intent accuracy, target F1): intents compared step by step over the longer plan; targets
    as sets (a struct target is a type, as the serializer writes it)."""
    n = max(len(pred), len(gold))
    acc = (
        1.0
        if n == 0
        else sum(p.get("intent") == g.get("intent") for p, g in zip(pred, gold, strict=False)) / n
    )
    P = {_target(s.get("target", "")) for s in pred} - {""}
    G = {_target(s.get("target", "")) for s in gold} - {""}
    f1 = 1.0 if not P and not G else 2 * len(P & G) / (len(P) + len(G))
    return acc, f1


def score(rec: Record, res: Any, checker: Any = None) -> dict[str, Any]:
    """The measurements of one record's result (a gocoder.inference.generate.Result)."""
    gold = rec.code
    acc, f1 = plan_scores(res.plan, [s.to_dict() for s in rec.steps])
    # a tree search asks the controller nothing: no premature stop to count
    premature = (
        any(t.get("premature") for t in res.trace)
        if any("premature" in t for t in res.trace)
        else None
    )
    return {
        "id": rec.id,
        "code": res.code,
        "plan": res.plan,
        "exact_match": _norm_code(res.code) == _norm_code(gold),
        "ast_similarity": edit_similarity(shape(res.code, checker), shape(gold, checker)),
        "syntax_valid": res.syntax_ok,
        "type_valid": res.type_ok,
        "intent_accuracy": acc,
        "target_f1": f1,
        "iterations": res.iterations,
        "premature_stop": premature,
        "first_try_valid": res.first_try_ok,
        "final_valid": res.syntax_ok and res.type_ok is not False and res.passed is not False,
        "passed": res.passed,
        "candidates": res.candidates,
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over rows (type_valid over the rows that were type-checked,
    premature_stop over loop rows)."""
    out: dict[str, Any] = {"items": len(rows)}
    for k in SUMMARY:
        vals = [float(r[k]) for r in rows if r.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def load_records(data: str | Path, limit: int | None = None) -> list[Record]:
    """The first limit records of data; a bad one is an error naming its line, none is an error."""
    from gocoder.records import read_jsonl_numbered

    recs = []
    for lineno, d in read_jsonl_numbered(data):
        if limit is not None and len(recs) >= limit:
            break
        recs.append(Record.from_dict(d, where=f"{data}:{lineno}"))
    if not recs:  # a summary of nothing would read as a model that scores 0
        why = (
            "--limit 0"
            if limit == 0
            else "an empty file (annotate warns when a split gets no repository)"
        )
        raise GocoderError(f"{data}: no records to evaluate: {why}")
    return recs


def evaluate(gen: Generator, data: str | Path, out: str | Path, *, limit: int | None = None,
             solve_kw: dict | None = None, progress: Any = None) -> dict[str, Any]:
    """Run gocoder.inference.generate.solve on each record of data (up to limit) and write one
    row per record to out (JSONL, resumable: ids already there are not redone). Returns the
    summary over all rows of out that belong to these records."""
    from gocoder.inference.generate import solve
    from gocoder.records import JsonlWriter, read_jsonl

    recs = load_records(data, limit)
    with JsonlWriter(out) as w:
        for rec in recs:
            if rec.id not in w.seen:
                w.write(score(rec, solve(gen, rec, **(solve_kw or {}))))
            if progress is not None:
                progress(1)
    ids = {r.id for r in recs}
    rows = [r for r in read_jsonl(out) if r["id"] in ids]
    return dict(summarize(rows), out=str(out))


def _key(r: dict[str, Any]) -> tuple:
    """What makes one answer better than another: passing, then parsing, then AST similarity."""
    return (bool(r["final_valid"]), bool(r["syntax_valid"]), round(r["ast_similarity"], 9))


def compare(a: Path | str, b: Path | str) -> dict[str, Any]:
    """The arena: per record (by id, in both files), a win, a loss or a tie of a against b;
    win_rate = (wins + ties / 2) / items."""
    from gocoder.records import read_jsonl

    rb = {r["id"]: r for r in read_jsonl(b)}
    wins = losses = ties = 0
    for r in read_jsonl(a):
        if r["id"] in rb:
            ka, kb = _key(r), _key(rb[r["id"]])
            wins, losses, ties = wins + (ka > kb), losses + (ka < kb), ties + (ka == kb)
    n = wins + losses + ties
    return {"items": n, "wins": wins, "losses": losses, "ties": ties,
            "win_rate": (wins + ties / 2) / n if n else None}


def promote(winner: str | Path, best: str | Path) -> Path:
    """Copy the checkpoint folder winner to best, atomically: a copy under a temporary name, then
    renames (the old best is removed only once the new one is in place)."""
    src, dst = Path(winner), Path(best)
    if not (src / "config.json").is_file():
        raise GocoderError(f"{src}: not a checkpoint folder (no config.json)")
    tmp, old = dst.with_name(f".{dst.name}.tmp"), dst.with_name(f".{dst.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    # weights, config, tokenizer
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("state.pt"))
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)
    return dst


def run_eval(
    cfg: Any,
    checkpoint: str | Path,
    data: str | Path,
    *,
    out: str | Path | None = None,
    limit: int | None = None,
    against: str | Path | None = None,
    best: str | Path | None = None,
    margin: float = 0.02,
    progress: Any = None,
) -> dict[str, Any]:
    """`gocoder eval`: evaluate checkpoint on data (cfg: the [generate] section); with against,
    evaluate it too on the same records and run the arena; with best, copy the winner there when
    its win rate clears 0.5 + margin. Rows go to out (default
    work/eval/NAME-DATA-SETTINGS.jsonl, one file per settings)."""
    from gocoder.inference.generate import Generator, sampling_from
    from gocoder.records import content_hash

    if limit is not None and limit < 1:
        raise GocoderError(f"--limit {limit}: must be at least 1")
    # a win rate is in [0, 1]: a margin past 0.5 never promotes, below 0 always
    if not 0 <= margin <= 0.5:
        raise GocoderError(f"--margin {margin:g}: expected a win-rate margin from 0 to 0.5")
    if best is not None and against is None:
        raise GocoderError(
            "--promote needs --against: a checkpoint is promoted by winning the arena"
        )

    kw = {
        "samples": cfg.samples,
        "max_iters": cfg.max_iters,
        "search": cfg.search,
        "budget": cfg.budget or None,
        "typecheck": cfg.typecheck,
        "sampling": sampling_from(cfg, cfg.samples, cfg.search),
        "ucb_c": cfg.ucb_c,
    }

    def one(gen: Generator, dest: str | Path | None) -> dict[str, Any]:
        if dest is None:
            tag = content_hash(
                str(gen.path.resolve()), str(Path(data).resolve()), repr(sorted(kw.items()))
            )[:10]
            dest = Path("work/eval") / f"{gen.path.name}-{Path(data).stem}-{tag}.jsonl"
        return evaluate(gen, data, dest, limit=limit, solve_kw=kw, progress=progress)

    # every input is checked before the first model is evaluated: the records (cheap) first, then
    # both models, so a missing or corrupt --against fails in seconds, not after a whole evaluation
    load_records(data, limit)
    gen_a = Generator.load(checkpoint, device=cfg.device)
    gen_b = Generator.load(against, device=cfg.device) if against is not None else None
    res = one(gen_a, out)
    report: dict[str, Any] = {"checkpoint": str(gen_a.path), "summary": res}
    if gen_b is None:
        return report
    res_b = one(
        gen_b, Path(res["out"]).with_name(Path(res["out"]).stem + "-against.jsonl") if out else None
    )
    arena = compare(res["out"], res_b["out"])
    report.update(against=str(gen_b.path), against_summary=res_b, arena=arena, promoted=None)
    rate = arena["win_rate"]
    if best is not None and rate is not None and abs(rate - 0.5) >= margin and rate != 0.5:
        report["promoted"] = str(promote(gen_a.path if rate > 0.5 else gen_b.path, best))
    return report
