"""Go source as text: the one home for the questions gocoder asks of Go code without parsing it.

Two parsers answer for code that parses: gocheck (Go's own go/parser, gocoder/check/validate.py)
gives a file's declarations with their spans and docs, and tree-sitter-go
(gocoder/inference/incremental.py) follows code while the model writes it. This module answers
what is asked of text that may not parse, or so often that a parser per question would cost too
much: a benchmark prompt that ends in an open signature, an answer its token budget cut, the
import lines of every corpus file.

Everything here stands on Go's lexical layer (https://go.dev/ref/spec#Lexical_elements): a comment,
an interpreted or raw string and a rune are read whole, so a brace, a quote or a `func` inside one
never counts. A literal or comment left open (cut code) runs as Go's scanner runs it: a quoted one
to the end of its line, a raw string or block comment to the end of the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

# regex fragments (for re.S patterns): each literal kind, a comment
RAW = r"`[^`]*`?"
INTERPRETED = r'"(?:\\[^\n]|[^"\\\n])*"?'
RUNE = r"'(?:\\[^\n]|[^'\\\n])*'?"
LITERAL = f"{RAW}|{INTERPRETED}|{RUNE}"
COMMENT = r"//[^\n]*|/\*.*?(?:\*/|\Z)"
IDENT = r"[^\W\d]\w*"

# the scanners' tokens: a comment or literal (matched whole, so skipped), a bracket; some add
# newlines, words, or a `func` that starts a line
_SKIP = f"{COMMENT}|{LITERAL}"
_BRACKETS = re.compile(f"{_SKIP}|[(){{}}\\[\\]]", re.S)
_LINES = re.compile(f"{_SKIP}|[(){{}}\\[\\]\n]", re.S)
_SIGNATURE = re.compile(f"{_SKIP}|[(){{}}\\[\\]\n]|{IDENT}", re.S)
_LIST = re.compile(f"{_SKIP}|[(){{}}\\[\\],]", re.S)
_TOP = re.compile(f"{_SKIP}|[(){{}}\\[\\]]|^[ \t]*(?P<func>func)\\b", re.S | re.M)
_OPENS, _CLOSES = frozenset("([{"), frozenset(")]}")
# a word or literal that ends a line ends a statement too (Go's semicolon rule): a signature that
# reaches the end of its line outside any bracket has no body
_ENDS_LINE = re.compile(r"[\w)\]}\"'`]")
# a top-level func's head from its keyword: the receiver's text (no parentheses
# inside: Go's receivers have none but a generic type's brackets) and the name, before
# its type parameters or parameters
_HEAD = re.compile(rf"func[ \t]*(?:\(([^()]*)\)[ \t]*)?({IDENT})[ \t]*(?=[\[(])")


def _close(s: str, i: int, pair: str) -> int | None:
    """Index just after the bracket that closes the one opening at
    s[i]; None when it never closes."""
    depth = 0
    for m in _BRACKETS.finditer(s, i):
        t = m.group()
        if t == pair[0]:
            depth += 1
        elif t == pair[1]:
            depth -= 1
            if depth <= 0:
                return m.end()
    return None


def skip_balanced(s: str, i: int, pair: str = "{}") -> int:
    """Index just after the bracket that closes the one opening at s[i] (pair: "{}", "()" or "[]");
    len(s) when it never closes. Brackets of the other kinds are not counted."""
    end = _close(s, i, pair)
    return len(s) if end is None else end


def body_open(fn: str) -> int:
    """Index just after the `{` that opens a function's body in fn (text that starts with the
    function's `func`): the braces of interface{...} and struct{...} types in the signature are
    skipped; -1 when the signature ends without a body (an assembly stub) or the text ends first."""
    depth, last, skip_to = 0, "", 0
    for m in _SIGNATURE.finditer(fn):
        if m.start() < skip_to:
            continue  # inside a type's braces
        t = m.group()
        if t == "\n":
            if depth == 0 and last and _ENDS_LINE.match(last[-1]):
                return -1
            continue
        if t.startswith(("//", "/*")):
            continue
        if t == "(" or t == "[":
            depth += 1
        elif t == ")" or t == "]":
            depth -= 1
        elif t == "{":
            if last in ("interface", "struct"):
                skip_to, t = skip_balanced(fn, m.start()), "}"
            elif depth == 0:
                return m.end()
        last = t
    return -1


def _at_depth(pattern: re.Pattern[str], src: str) -> Iterator[tuple[re.Match[str], int]]:
    """Each match of pattern in src but the brackets, with the bracket depth it
    stands at (a stray closer, in cut or broken code, does not take the depth
    below 0 and so hide what follows)."""
    depth = 0
    for m in pattern.finditer(src):
        t = m.group()
        if t in _OPENS:
            depth += 1
        elif t in _CLOSES:
            depth = max(depth - 1, 0)
        else:
            yield m, depth


def split_list(text: str) -> list[str]:
    """text split at its commas outside brackets and literals, each part stripped,
    empty ones dropped: "int, map[string]int, func(a, b int)" -> ["int",
    "map[string]int", "func(a, b int)"]."""
    parts, at = [], 0
    for m, depth in _at_depth(_LIST, text):
        if m.group() == "," and depth == 0:
            parts.append(text[at : m.start()])
            at = m.end()
    parts.append(text[at:])
    return [p.strip() for p in parts if p.strip()]


class Func(NamedTuple):
    """A top-level function or method, read from its head."""

    name: str
    recv: str  # the receiver as written inside its parentheses ("r *T[K]"), "" for a function
    start: int  # index of the `func` keyword
    params: int  # index of the "(" that opens the parameters (after any type parameters)


def funcs(src: str) -> list[Func]:
    """The top-level functions and methods of src, in order: a `func` that starts a
    line outside every bracket (not one inside a body, a literal or a comment, nor a
    func type as in `type F func()`)."""
    out = []
    for m, depth in _at_depth(_TOP, src):
        if m.lastgroup == "func" and depth == 0 and (h := _HEAD.match(src, m.start("func"))):
            at = h.end()
            if src[at] == "[":  # type parameters
                at = skip_balanced(src, at, "[]")
                at += len(src[at:]) - len(src[at:].lstrip(" \t"))
            if src.startswith("(", at):
                out.append(Func(h.group(2), (h.group(1) or "").strip(), h.start(), at))
    return out


def func_body(src: str, f: Func) -> tuple[int, int]:
    """(index just after the body's `{`, index just after its `}`) of f in src: (-1, -1) when f
    has no body, (open, -1) when the body never closes."""
    at = body_open(src[f.start :])
    if at < 0:
        return -1, -1
    end = _close(src, f.start + at - 1, "{}")
    return f.start + at, -1 if end is None else end


class Import(NamedTuple):
    """One import spec of a Go file."""

    # the name code uses: the alias, else the path's last element (by convention the package's)
    name: str
    path: str
    alias: str  # as written ("", "_", "." or a name)
    start: int  # the spec's span in the source (alias included)
    end: int

    def spec(self) -> str:
        """The spec as Go writes it: `"fmt"`, `str "strings"`."""
        return f'{self.alias + " " if self.alias else ""}"{self.path}"'


_TOKEN = re.compile(f"{COMMENT}|{LITERAL}|{IDENT}|\\S", re.S)


def imports(src: str) -> list[Import]:
    """The import specs of a Go file (or a fragment of one), grouped or not, in
    order. Go puts imports before every other declaration, so the scan stops at the
    first func, type, var or const."""
    out: list[Import] = []
    toks = (m for m in _TOKEN.finditer(src) if not m.group().startswith(("//", "/*")))
    grouped, alias, in_import = False, None, False
    for m in toks:
        t = m.group()
        if not in_import:
            if t == "import":
                in_import = True
            elif t in ("func", "type", "var", "const"):
                break
            continue
        if t == "(" and not grouped and alias is None:
            grouped = True
        elif t == ")" and grouped:
            grouped = in_import = False
        elif t[0] in "\"`":
            start = alias.start() if alias else m.start()
            path = t[1:-1] if len(t) > 1 and t[-1] == t[0] else t[1:]
            a = alias.group() if alias else ""
            out.append(Import(a or path.rsplit("/", 1)[-1], path, a, start, m.end()))
            alias, in_import = None, grouped
        elif t != ";":
            alias = m  # a name, "_" or "."
    return out


def line_depths(src: str) -> list[tuple[int, int]]:
    """(brace depth, paren + bracket depth) at the end of each line of src, or (-1, -1) where the
    line ends inside a raw string or a block comment."""
    out, brace, paren = [], 0, 0
    for m in _LINES.finditer(src):
        t = m.group()
        if t == "\n":
            out.append((brace, paren))
        elif t in "{}":
            brace += 1 if t == "{" else -1
        elif t in "()[]":
            paren += 1 if t in "([" else -1
        elif t[0] in "`/":
            out += [(-1, -1)] * t.count("\n")
    return out
