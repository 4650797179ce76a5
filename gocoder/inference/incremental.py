"""Go parsed while it is being written: tree-sitter-go, in process and error-tolerant, is fed a
candidate's code at every line the model ends, so that a candidate whose code has gone wrong stops
there instead of running on to its token budget before gocheck sees it.

Each parse reuses the last tree (the new text extends the old: one edit at the end, then an
incremental parse). An error is unrecoverable once the parser has moved past it: a top-level
node that holds an error (ERROR or MISSING) with a later top-level declaration that parses
cleanly. A valid prefix never has one (tests/test_incremental.py checks every line prefix of
real Go files), so a correct candidate is never cut; an error in the unfinished tail is left
alone, since more text may still close it.

The stopped candidate is unfinished code: the loop then repairs it from gocheck's
diagnostic in its next round (gocoder/inference/generate.py), a round that starts at the
error rather than a budget later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tree_sitter as ts
import tree_sitter_go as tsg

from gocoder.text.gosource import line_depths

GO = ts.Language(tsg.language())
_DECLS = frozenset(
    {
        "function_declaration",
        "method_declaration",
        "type_declaration",
        "var_declaration",
        "const_declaration",
        "import_declaration",
        "package_clause",
    }
)


def _point(b: bytes) -> ts.Point:
    """The (row, column in bytes) where b ends."""
    return ts.Point(b.count(b"\n"), len(b) - (b.rfind(b"\n") + 1))


def _first_error(node: Any) -> Any:
    """The first ERROR or MISSING node under node (pre-order), or None."""
    if node.is_error or node.is_missing:
        return node
    for c in node.children:
        if c.has_error:
            return _first_error(c)
    return None


def final_error(root: Any, src: bytes) -> tuple[int, int] | None:
    """(line, column), 1-based, of the first error the parser has moved past, or None. While a block
    comment or a raw string may still be open, nothing is final: what follows could be inside it
    (an odd backtick in a string literal only makes this more cautious)."""
    if src.count(b"`") % 2 or src.rfind(b"/*") > src.rfind(b"*/"):
        return None
    kids = root.children
    for i, k in enumerate(kids):
        if k.has_error and any(
            later.type in _DECLS and not later.has_error for later in kids[i + 1 :]
        ):
            e = _first_error(k) or k
            return e.start_point[0] + 1, e.start_point[1] + 1
    return None


class GoWatch:
    """One candidate's code as it grows: feed it the whole code so far, each time."""

    def __init__(self) -> None:
        self.parser = ts.Parser(GO)
        self.tree: Any = None
        self.src = b""

    def feed(self, code: str) -> tuple[int, int] | None:
        """Parse code (usually the last text plus what was written since);
        the first final error, or None."""
        new = code.encode()
        if self.tree is not None and new.startswith(self.src):
            end = len(self.src)
            self.tree.edit(
                start_byte=end,
                old_end_byte=end,
                new_end_byte=len(new),
                start_point=_point(self.src),
                old_end_point=_point(self.src),
                new_end_point=_point(new),
            )
            self.tree = self.parser.parse(new, self.tree)
        else:  # the text changed before its end (an escape completed): parse it afresh
            self.tree = self.parser.parse(new)
        self.src = new
        return final_error(self.tree.root_node, new)


class Watcher:
    """The engine's on_token hook over many rows: collects each row's ids and, at every id
    that ends a line, parses the row's code so far (code_of: ids -> the code written, or
    None before it starts); returns True to stop a row at its first final error, whose
    (line, column) is kept in `stopped`."""

    def __init__(self, code_of: Callable[[list[int]], str | None], line_ids: set[int]):
        self.code_of, self.line_ids = code_of, line_ids
        self.ids: dict[int, list[int]] = {}
        self.watch: dict[int, GoWatch] = {}
        self.stopped: dict[int, tuple[int, int]] = {}

    def __call__(self, row: int, tok: int) -> bool:
        ids = self.ids.setdefault(row, [])
        ids.append(tok)
        if tok not in self.line_ids or row in self.stopped:
            return False
        code = self.code_of(ids)
        if code is None:
            return False
        err = self.watch.setdefault(row, GoWatch()).feed(code)
        if err is not None:
            self.stopped[row] = err
        return err is not None


def close_function(code: str, tries: int = 64) -> str:
    """A function that does not parse (cut by a token budget, or broken before its end) closed at
    the last line where its body is between statements: the longest such line prefix with "}"
    added that tree-sitter parses without an error. A function that already parses, or has no
    such line, is returned as it is."""
    parser = ts.Parser(GO)

    def parses(src: str) -> bool:
        return not parser.parse(("package main\n\n" + src).encode()).root_node.has_error

    if parses(code):
        return code
    lines = code.splitlines(keepends=True)
    ends = [i for i, d in enumerate(line_depths(code)) if d == (1, 0)]
    for i in reversed(ends[-tries:]):
        cand = "".join(lines[: i + 1]).rstrip("\n") + "\n}\n"
        if parses(cand):
            return cand
    return code
