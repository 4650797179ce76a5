"""The best Go of a corpus under a byte budget: what travels to a GPU machine in one transfer.

A training run that must fit one transfer (64 MiB beside the code) takes a few hundred MB of the
corpus's ~780 MB. Which part is a choice, measured in BENCHMARKS.md ("Go golf: data")
against a random sample of the same size. The score of a file, from its syntax tree
(tree-sitter-go, error-tolerant):

- documented: the share of its top-level functions, methods and types with a doc comment (the Go of
  people who explain it, and the shape of a benchmark prompt: a comment, then a function);
- logic: control flow (if, for, switch, return) per 100 lines, capped: algorithms, not declarations;
- plumbing, subtracted: the share of lines that are struct fields with tags or composite-literal
  entries (generated-looking API clients and tables);
- a test file counts half (tests teach usage, but a benchmark asks for the function).

Files are taken best first, at most `per_package` bytes of one package (so that no SDK fills the
budget), until the budget; the held-out splits are never selected from (they stay the score's), and
a sample of them of `valid_mb` travels beside for scoring.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tree_sitter as ts
import tree_sitter_go as tsg

from gocoder import GocoderError
from gocoder.collect.gosources import package_of
from gocoder.collect.textparts import PartWriter, read_parts

GO = ts.Language(tsg.language())
_DECL = frozenset({"function_declaration", "method_declaration", "type_declaration"})
_FLOW = frozenset(
    {
        "if_statement",
        "for_statement",
        "expression_switch_statement",
        "type_switch_statement",
        "return_statement",
    }
)
_PLUMB = frozenset({"field_declaration", "keyed_element", "literal_element"})


def score(text: str, path: str = "") -> float:
    """A quality score of one Go file (higher is better; see the module docstring)."""
    src = text.encode("utf-8")
    tree = ts.Parser(GO).parse(src)
    root = tree.root_node
    decls = documented = 0
    prev = None
    for node in root.children:
        if node.type in _DECL:
            decls += 1
            documented += (
                prev is not None
                and prev.type == "comment"
                and prev.end_point[0] + 1 >= node.start_point[0]
            )
        prev = node
    flow = 0
    plumb: set[int] = set()  # the lines that hold a struct field or a composite-literal entry
    stack = [root]
    while stack:
        n = stack.pop()
        t = n.type
        if t in _FLOW:
            flow += 1
        elif t in _PLUMB:
            plumb.add(n.start_point[0])
        stack.extend(n.children)
    lines = max(1, src.count(b"\n"))
    s = (
        (documented / decls if decls else 0.0)
        + 0.5 * min(1.0, flow / lines * 100 / 10)
        - len(plumb) / lines
    )
    return s * (0.5 if path.endswith("_test.go") else 1.0) if s > 0 else s


def select(
    text_dir: Path,
    out: Path,
    budget_mb: float,
    how: str = "quality",
    valid_mb: float = 8.0,
    per_package_mb: float = 8.0,
    seed: int = 0,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Write OUT (text parts, as `gocoder corpus build` writes) with the train files
    that fit budget_mb of text, best first (how="quality") or drawn at random
    (how="random"), and the first valid_mb of the held-out splits; returns the
    selection's summary (also OUT/selection.json)."""
    if how not in ("quality", "random"):
        raise GocoderError(f"--how {how!r}: expected quality or random")
    if budget_mb <= 0:
        raise GocoderError(f"--mb {budget_mb}: expected a budget in MB > 0")
    rng = random.Random(seed)
    cands: list[tuple[float, int, int, str]] = []  # (key, index, bytes, package)
    held: list[dict[str, Any]] = []
    held_bytes = 0
    n = 0
    for i, rec in enumerate(read_parts(text_dir)):
        n = i + 1
        size = len(rec["text"].encode("utf-8"))
        if rec["split"] != "train":  # the test split stays home; valid is what golf scores
            if rec["split"] == "valid" and held_bytes < valid_mb * 1e6:
                held.append(rec)
                held_bytes += size
            continue
        key = -score(rec["text"], rec.get("path", "")) if how == "quality" else rng.random()
        cands.append((key, i, size, package_of(rec.get("package", "?"))))  # PKG@SUITE
        if progress and n % 5000 == 0:
            progress("score", n)
    if not cands:
        raise GocoderError(f"{text_dir}: no train-split file to select from")
    cands.sort()
    chosen: set[int] = set()
    per_pkg: Counter[str] = Counter()
    total = 0
    for _, i, size, pkg in cands:
        if total + size > budget_mb * 1e6:
            continue
        if per_pkg[pkg] + size > per_package_mb * 1e6:
            continue
        chosen.add(i)
        per_pkg[pkg] += size
        total += size
    # xz -9 is the slow part: two processes
    with PartWriter(out / "text", 24 << 20, workers=2) as w:
        for i, rec in enumerate(read_parts(text_dir)):
            if i in chosen:
                w.write(rec)
        for rec in held:
            w.write(rec)
    summary = {
        "how": how,
        "budget_mb": budget_mb,
        "seed": seed,
        "files_seen": n,
        "train_files": len(chosen),
        "train_bytes": total,
        "held_out_files": len(held),
        "held_out_bytes": held_bytes,
        "packages": len(per_pkg),
        "per_package_mb": per_package_mb,
    }
    (out / "selection.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary
