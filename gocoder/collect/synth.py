"""`gocoder synth`: synthetic fixes, bugs planted in real Go functions by gocheck.

gocheck's `mutate` op (go/gocheck/mutate.go) does the work on the Go AST with go/types: operator
misuse, off-by-one, variable misuse, missing nil or error check, missing logic, excess logic and
value misuse (HumanEvalFix's kinds, OctoPack, less function misuse). It keeps a mutant only if it
parses, differs from the original and adds no type error, and picks mutants deterministically from
the seed and the function's name. Each mutant is one raw record (docs/FORMATS.md, source "synth"):
the buggy function as before, the original as after, a title and body naming the bug kind and the
function in one of several phrasings, and the bug kind.

The walk, the skip rules, resume, dedup, decontamination and the progress bar are those of
`gocoder collect --go-src`: a SynthSource is a GoSrcSource whose unit of work plants bugs.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from gocoder import GocoderError
from gocoder.collect.decontam import load_blocklist
from gocoder.collect.gosrc import GoSrcSource
from gocoder.collect.runner import CollectResult, run
from gocoder.config import CollectConfig, SynthConfig
from gocoder.records import make_record

BUG_KINDS = ("operator_misuse", "off_by_one", "variable_misuse", "missing_check",
             "missing_logic", "excess_logic", "value_misuse")  # fmt: skip

# Titles name the bug kind and the function ({f}); several per kind so that a model learns the
# bug, not one sentence. {check} is "nil check" or "error check", read from the removed condition.
TITLES: dict[str, tuple[str, ...]] = {
    "operator_misuse": ("Fix wrong operator in {f}", "{f}: use the correct operator",
                        "Fix operator misuse in {f}", "{f} applies the wrong operator"),
    "off_by_one": ("Fix off-by-one error in {f}", "{f}: fix an off-by-one bug",
                   "Fix boundary condition in {f}", "{f} is off by one"),
    "variable_misuse": ("Fix variable misuse in {f}", "{f} uses the wrong variable",
                        "{f}: use the right variable", "Fix mixed-up variables in {f}"),
    "missing_check": ("Add missing {check} to {f}", "{f}: restore the {check}",
                      "Fix missing {check} in {f}", "{f} lacks a {check}"),
    "missing_logic": ("Fix missing logic in {f}", "{f}: restore a dropped step",
                      "{f} is missing part of its logic", "Fix incomplete logic in {f}"),
    "excess_logic": ("Remove excess logic from {f}", "{f}: drop a superfluous step",
                     "Fix extra logic in {f}", "{f} does more than it should"),
    "value_misuse": ("Fix wrong value in {f}", "{f} uses the wrong constant",
                     "Fix value misuse in {f}", "{f}: correct a misused value"),
}
# Bodies say what goes wrong in general terms and where; the exact edit stays in bug_detail.
BODIES: dict[str, tuple[str, ...]] = {
    "operator_misuse": (
        "An operator in {f} ({path}) is the wrong one, so it computes the wrong result.",
        "{f} in {path} mixes up an operator.",
    ),
    "off_by_one": (
        "A bound or index in {f} ({path}) is off by one.",
        "{f} in {path} goes one step too far or stops one step short.",
    ),
    "variable_misuse": (
        "{f} ({path}) reads or writes one variable where it means another of the same type.",
        "In {f} ({path}) a variable is used in place of the right one.",
    ),
    "missing_check": (
        "{f} ({path}) no longer guards against a nil value or an error before going on.",
        "The {check} in {f} ({path}) is missing.",
    ),
    "missing_logic": (
        "{f} ({path}) skips a step that the original performs.",
        "Part of the logic of {f} in {path} has gone missing.",
    ),
    "excess_logic": (
        "{f} ({path}) does something extra that it should not.",
        "{f} in {path} has a superfluous condition or statement.",
    ),
    "value_misuse": (
        "{f} ({path}) uses a wrong literal value.",
        "A constant in {f} ({path}) has the wrong value.",
    ),
}


def describe(kind: str, func: str, path: str, detail: str, key: str) -> tuple[str, str]:
    """(title, body) for a mutant; the phrasing is picked by a hash of key, so it is stable."""
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    check = "error check" if "err" in detail else "nil check"
    fields = {"f": func, "path": path, "check": check}
    return rng.choice(TITLES[kind]).format(**fields), rng.choice(BODIES[kind]).format(**fields)


class SynthSource(GoSrcSource):
    """A Go source tree whose units are files and whose records are planted bugs."""

    name = "synth"

    def __init__(self, root: Path, cfg: CollectConfig, synth: SynthConfig):
        bad = sorted(set(synth.kinds) - set(BUG_KINDS))
        if bad:
            raise GocoderError(
                f"synth.kinds: unknown bug kind {bad[0]!r}; known: {', '.join(BUG_KINDS)}"
            )
        if synth.per_func < 1:
            raise GocoderError(f"--per-func {synth.per_func}: must be at least 1")
        super().__init__(root, cfg)
        self.synth = synth

    def units(self, skips: Counter[str]):
        # The key holds the settings: a rerun with another seed or count is new work, not a resume.
        s = self.synth
        tag = f"{s.seed}:{s.per_func}:{','.join(s.kinds)}"
        for key, payload in super().units(skips):
            if payload is not None and key.endswith("_test.go"):
                skips["test-file"] += 1  # test functions make poor bug reports
                payload = None
            yield f"{key}@{tag}", payload

    def work(self, rel: str) -> tuple[list[dict[str, Any]], Counter[str]]:
        skips: Counter[str] = Counter()
        data, text = self.read(rel, skips)
        if text is None:
            return [], skips
        req = {"op": "mutate", "src": text, "seed": self.synth.seed,
               "per_func": self.synth.per_func, "bug_kinds": list(self.synth.kinds)}  # fmt: skip
        resp = self.checker.request(req, timeout_s=self.synth.timeout_s)
        if resp.get("timed_out"):
            skips["timed-out"] += 1
            return [], skips
        if resp.get("error"):
            skips["parse-error" if "does not parse" in resp["error"] else "mutate-error"] += 1
            return [], skips
        pkg = Path(rel).parent.as_posix()
        repo = self.label if pkg == "." else f"{self.label}/{pkg}"
        recs = []
        for m in resp.get("mutants") or ():
            title, body = describe(
                m["kind"], m["func"], rel, m["detail"], f"{self.synth.seed}\0{m['before']}"
            )
            files = [
                {"path": rel, "status": "modified", "before": m["before"], "after": m["after"]}
            ]
            rec = make_record("synth", repo, title, body, files)
            rec["bug_kind"], rec["bug_detail"] = m["kind"], m["detail"]
            recs.append(rec)
        if not recs:
            skips["no-mutant"] += 1
        return recs, skips


def synth(
    cfg: CollectConfig, scfg: SynthConfig, go_src: Path, out: Path, *, workers: int | None = None,
    decontaminate: Path | None = None, console: Console | None = None,
) -> CollectResult:
    """Plant bugs in the functions of every Go file under go_src; append the records to out."""
    workers = cfg.workers if workers is None else workers  # 0 is an error below, not the default
    if workers < 1:
        raise GocoderError(f"--workers {workers}: must be at least 1")
    blocklist = load_blocklist(decontaminate) if decontaminate else set()
    src = SynthSource(Path(go_src), cfg, scfg)
    try:
        return run(
            src, Path(out), workers, blocklist, console or Console(stderr=True, soft_wrap=True)
        )
    finally:
        src.close()
