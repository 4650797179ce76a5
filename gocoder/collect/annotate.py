"""`gocoder annotate`: raw PR records (data/raw/) to hierarchical records (data/hierarchical/).

For each raw record (docs/FORMATS.md) every changed Go file's before and after goes to gocheck,
which lists their top-level declarations with byte spans; gocoder/collect/plans.py diffs those
lists into targets, classifies the intent and writes the steps. The solution is the text of the
added and modified declarations after the change, doc comments included; its syntax verdict is
gocheck's on the files after the change.

Splits are by Go package (gocoder/splits.py, the one home of splits: the corpus puts each package on
the same side), by a hash of its path placed on the shares of `splits.shares`, so no package is in
two splits and the split of a package never depends on what else is in the input. Records stream
through in batches (one pipelined gocheck round trip per batch); output is appended with
JsonlWriter, and records already written, or skipped before (listed in OUT/skipped.done), are not
done again: kill and rerun resumes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from gocoder import GocoderError
from gocoder.collect.intents import IntentModel, classify, load_model
from gocoder.collect.plans import DeclChange, decl_changes
from gocoder.collect.steps import plan_bytes, plan_steps
from gocoder.config import AnnotateConfig, ValidateConfig
from gocoder.progress import Progress
from gocoder.record import Context, Plan, Problem, Record, Solution, Step, Validation
from gocoder.records import jsonl_inputs, read_jsonl_numbered
from gocoder.splits import SPLITS, parse_shares, record_split

_KEYWORD = {"var": "var", "const": "const", "func": "func", "method": "func"}


def read_raw(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a raw JSONL file; a bad line or
    record is an error naming file:line."""
    for lineno, rec in read_jsonl_numbered(path):
        problem = _raw_problem(rec)
        if problem:
            raise GocoderError(f"{path}:{lineno}: not a raw PR record: {problem}")
        yield lineno, rec


def _raw_problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    for key in ("id", "repo", "title"):
        if not isinstance(rec.get(key), str):
            return f"field {key!r} must be a string"
    if not isinstance(rec.get("body") or "", str):
        return "field 'body' must be a string or null"
    files = rec.get("files_changed")
    if not isinstance(files, list):
        return "field 'files_changed' must be a list"
    for i, f in enumerate(files):
        if not isinstance(f, dict) or not all(
            isinstance(f.get(k), str) for k in ("path", "before", "after")
        ):
            return f"files_changed[{i}] needs string path, before and after"
    return None


def _with_doc(src: bytes, change: DeclChange) -> str:
    """A declaration's after text with the // comment lines right above it; a spec cut from a
    grouped `var (...)` gets its keyword so that the solution parses on its own."""
    doc: list[str] = []
    end = src.rfind(b"\n", 0, change.pos)  # the end of the line above the declaration
    while end > 0:
        start = src.rfind(b"\n", 0, end) + 1
        line = src[start:end].decode("utf-8", "replace").strip()
        if not line.startswith("//"):
            break
        doc.insert(0, line)
        end = start - 1
    text = change.after
    if not text.startswith(("func", "type", "var", "const")):
        text = f"{_KEYWORD.get(change.kind, 'type')} {text}"
    return "\n".join([*doc, text])


def changes_of(files: list[dict[str, Any]], checked: dict[tuple[int, str], Any]):
    """(the declaration changes of a record's Go files, each file's
    syntax verdict after), or why not."""
    changes: list[DeclChange] = []
    syntax: dict[str, bool] = {}
    for j, f in enumerate(files):
        rb, ra = checked.get((j, "before")), checked.get((j, "after"))
        if any(r is not None and (r.timed_out or r.error) for r in (rb, ra)):
            return "check-failed"
        changes += decl_changes(
            f["path"], f["before"], f["after"], rb.decls if rb else (), ra.decls if ra else ()
        )
        syntax[f["path"]] = ra.ok if ra is not None else True
    return (changes, syntax) if changes else "no-declaration-change"


def build(rec: dict[str, Any], checked: dict[tuple[int, str], Any], shares: Sequence[float],
          max_bytes: int = 0, model: IntentModel | None = None) -> tuple[list[Record], str | None]:
    """The hierarchical records of rec and why not as one: ([record], None); (parts, "split") when
    the plan and solution run past max_bytes and the parts, one per file, fit; ([], reason) when
    skipped ("over-budget" when no file's part fits either)."""
    files = [f for f in rec["files_changed"] if f["path"].endswith(".go")]
    got = changes_of(files, checked)
    if isinstance(got, str):
        return [], got
    changes, syntax = got
    renamed = sum(f.get("status") == "renamed" for f in files)
    # A synthetic record is a planted bug: its fix is a FIX whatever the phrasing says.
    overall = (
        "FIX"
        if rec.get("bug_kind")
        else classify(rec["title"], rec.get("body") or "", changes, renamed, model)
    )
    whole = _record(rec, files, changes, overall, all(syntax.values()), shares, rec["id"])
    if not max_bytes or plan_bytes(whole) <= max_bytes:
        return [whole], None
    parts = []
    for path in dict.fromkeys(c.file for c in changes):
        mine = [c for c in changes if c.file == path]
        # a part of comment edits alone teaches nothing new
        if any(c.change != "touched" for c in mine):
            part = _record(rec, files, mine, overall, syntax[path], shares, f"{rec['id']}@{path}")
            if plan_bytes(part) <= max_bytes:
                parts.append(part)
    return parts, ("split" if parts else "over-budget")


def _record(
    rec: dict[str, Any],
    files: list[dict[str, Any]],
    changes: list[DeclChange],
    overall: str,
    syntax: bool,
    shares: Sequence[float],
    rid: str,
) -> Record:
    """The hierarchical record of some of rec's changes; its
    context is the file they change most."""
    title, body = rec["title"], rec.get("body") or ""
    steps = plan_steps(title, body, changes, overall)
    weight = Counter(c.file for c in changes if c.change != "touched") or Counter(
        c.file for c in changes
    )
    main = next(f for f in files if f["path"] == weight.most_common(1)[0][0])
    after = {f["path"]: f["after"].encode("utf-8", "surrogatepass") for f in files}
    seen: set[tuple[str, int]] = set()
    code = []
    for c in changes:
        if c.change in ("added", "modified") and (c.file, c.pos) not in seen:
            seen.add((c.file, c.pos))
            code.append(_with_doc(after[c.file], c))
    return Record(
        id=rid, split=record_split(rec, shares), source=rec.get("source"), repo=rec["repo"],
        pr_number=rec.get("pr_number"), sha=rec.get("sha"),
        problem=Problem(description=title, details=body),
        context=Context(file=main["path"], before=main["before"]),
        plan=Plan(intent=overall, steps=tuple(Step(**s) for s in steps)),
        solution=Solution(code="\n\n".join(code), validation=Validation(syntax=syntax, tests=None)),
        bug_kind=rec.get("bug_kind") or None,
    )


def check_batch(recs: list[dict[str, Any]], checker, cache: dict[str, Any] | None = None,
                cache_size: int = 4096) -> list[dict[tuple[int, str], Any]]:
    """gocheck's verdicts (with declarations) on every Go file before and after, one round trip.

    cache (text -> verdict) spans batches: a file's "before" is mostly the "after" of an earlier
    change to it, so on a real history about half the texts were checked already.
    """
    cache = {} if cache is None else cache
    where, todo = [], {}
    for i, rec in enumerate(recs):
        files = [f for f in rec["files_changed"] if f["path"].endswith(".go")]
        for j, f in enumerate(files):
            for side in ("before", "after"):
                if f[side]:  # "" where the file did not exist: no declarations, nothing to check
                    where.append((i, j, f[side], side))
                    if f[side] not in cache:
                        todo[f[side]] = None
    srcs = list(todo)
    # code_hash: gocheck tells modified from touched declarations, on every core, by their tokens.
    verdicts = (
        checker.check_many(srcs, kind="auto", docs=True, gofmt=False, code_hash=True)
        if srcs
        else []
    )
    for src, res in zip(srcs, verdicts, strict=True):
        cache[src] = res
    out: list[dict[tuple[int, str], Any]] = [{} for _ in recs]
    for i, j, src, side in where:
        out[i][(j, side)] = cache[src]
    while len(cache) > cache_size:  # dicts keep insertion order: drop the oldest
        del cache[next(iter(cache))]
    return out


@dataclass
class AnnotateResult:
    out_dir: Path
    written: Counter[str] = field(default_factory=Counter)  # by split
    resumed: int = 0  # records a previous run wrote or skipped
    duplicates: int = 0  # ids seen twice in the input
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    # records over the budget split by file, parts
    split: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)  # also printed on the console

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "written": dict(self.written),
                "resumed": self.resumed, "duplicates": self.duplicates,
                "skipped": dict(self.skipped), "split": dict(self.split),
                "warnings": self.warnings}  # fmt: skip


def _count_lines(path: Path) -> int:
    """Lines of a JSONL file, for the progress bar (blank lines counted too: close enough)."""
    n = last = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n, last = n + chunk.count(b"\n"), chunk[-1]
    return n + (last not in (0, 10))  # a last line without its newline


def annotate(
    cfg: AnnotateConfig,
    input: Path,
    out_dir: Path | None = None,
    *,
    shares: Sequence[float] | str = (0.9, 0.05, 0.05),
    vcfg: ValidateConfig | None = None,
    console: Console | None = None,
) -> AnnotateResult:
    """Annotate every raw record under input into OUT/{train,valid,test}.jsonl, split by package
    on the shares (splits.shares); rerun to resume."""
    from gocoder.check.validate import get_checker
    from gocoder.records import JsonlWriter

    shares = parse_shares(shares)
    files = jsonl_inputs(input)
    out_dir = Path(out_dir or cfg.out_dir)
    res = AnnotateResult(out_dir=out_dir)
    console = console or Console(stderr=True, soft_wrap=True)
    total = sum(_count_lines(p) for p in files)
    if total == 0:  # else: three empty splits and a warning, as if records had been annotated
        raise GocoderError(f"{input}: no records (empty input)")
    writers = {s: JsonlWriter(out_dir / f"{s}.jsonl") for s in SPLITS}
    skipped = JsonlWriter(out_dir / "skipped.done")
    before = set(skipped.seen).union(*(w.seen for w in writers.values()))
    done = set(before)
    checker = get_checker(vcfg)
    model = load_model(cfg.intent_model)
    progress = Progress(TextColumn("annotate"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)  # fmt: skip
    batch: list[dict[str, Any]] = []
    queued: set[str] = set()  # ids in batch or in the batch being checked
    verdicts: dict[str, Any] = {}
    # gocheck checks one batch while this thread builds the one before (on spf13/cobra's 353 PRs,
    # annotate's median time went from 1.1 s to 1.0 s: bench/collect.py).
    checking = ThreadPoolExecutor(1, thread_name_prefix="annotate-check")
    pending: list[tuple[list[dict[str, Any]], Future]] = []

    def write(recs: list[dict[str, Any]], verdicts_of: Future) -> None:
        for rec, checked in zip(recs, verdicts_of.result(), strict=True):
            outs, why = build(rec, checked, shares, cfg.max_plan_bytes, model)
            for out in outs:
                if writers[out.split].write(out.to_dict()):
                    res.written[out.split] += 1
            if why == "split":
                res.split["records"] += 1
                res.split["parts"] += len(outs)
            elif why:
                res.skipped[why] += 1
            # after the parts: a kill in between redoes the record, and
            # its parts are not written twice
            if why:
                skipped.write({"id": rec["id"], "reason": why})
            done.add(rec["id"])
            queued.discard(rec["id"])
            progress.advance(task)

    def flush(last: bool = False) -> None:
        if batch:
            recs = list(batch)
            pending.append((recs, checking.submit(check_batch, recs, checker, verdicts)))
            batch.clear()
        while len(pending) > (0 if last else 1):
            write(*pending.pop(0))

    try:
        with progress:
            task = progress.add_task("annotate", total=total)
            try:
                for path in files:
                    for _, rec in read_raw(path):
                        if rec["id"] in done or rec["id"] in queued:
                            res.resumed += rec["id"] in before
                            res.duplicates += rec["id"] not in before
                            progress.advance(task)
                            continue
                        batch.append(rec)
                        queued.add(rec["id"])
                        if len(batch) >= cfg.batch:
                            flush()
            finally:
                # what was read before an error or an interrupt is still written whole
                flush(last=True)
    finally:
        checking.shutdown(cancel_futures=True)
        for w in (*writers.values(), skipped):
            w.close()
    # every input read: each split exists, if empty (a writer makes its file lazily)
    for w in writers.values():
        w.path.parent.mkdir(parents=True, exist_ok=True)
        w.path.touch()
    # A split is a hash of a package's path: with one or two packages whole splits stay empty, and
    # the next steps (validation loss, gocoder eval) would then measure nothing without a word.
    for name, share in zip(SPLITS, shares, strict=True):
        if share > 0 and not writers[name].seen:
            res.warnings.append(
                f"{out_dir / name}.jsonl is empty: records are split by Go package, "
                "and no package annotated "
                f"so far fell into {name}; annotate records of more packages (gocoder "
                "collect --repo ...), "
                f"or give {name} a larger share (splits.shares) with --split"
            )
            console.print(
                f"warning: {res.warnings[-1]}",
                style="yellow",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    return res
