"""Decontamination: drop collected records whose Go code matches a blocklist of hashes.

A benchmark problem must never reach training data. We hash Go functions after a normalization
that forgets layout and comments (a token stream joined by single spaces), so a reformatted or
re-commented copy still matches. Two kinds of hash go into one blocklist:

- the whole function (header and body), for benchmark code that exists in full (MBXP's test
  harness functions `deepCompare` and `main`, or a canonical solution where one ships);
- the header alone (`func name(params) results`) of a benchmark's entry point: MBXP ships no Go
  reference solutions, so a training function with the problem's exact signature is the best
  evidence of a copied solution. Only entry points are hashed this way, never `main`.

The blocklist file is text, one hex hash a line, `#` comments allowed; `write_blocklist` builds one
from a benchmark JSONL (MBXP's fields: prompt, test, entry_point, canonical_solution).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.records import content_hash, read_jsonl
from gocoder.text.gosource import COMMENT, LITERAL, func_body, funcs, skip_balanced

# Go's tokens without comments and whitespace, literals whole
# (gocoder/text/gosource.py's lexical layer); a word keeps its dots (`strings.Split` is
# one token): the blocklists written so far hash that way
_TOKEN = re.compile(
    f"(?P<skip>\\s+|{COMMENT})|(?P<str>{LITERAL})|(?P<word>[\\w.]+)|(?P<op>.)", re.S
)


def tokens(src: str) -> list[str]:
    """Go source as a list of tokens without comments or whitespace."""
    return [m.group() for m in _TOKEN.finditer(src) if m.lastgroup != "skip"]


def functions(src: str) -> Iterator[tuple[str, str | None]]:
    """(normalized header, normalized whole function or None if
    unterminated) of each top-level func."""
    for f in funcs(src):
        at, end = func_body(src, f)
        # no body: the header is the signature, to the end of the line its parameters close on
        if at < 0:
            stop = src.find("\n", skip_balanced(src, f.params, "()"))
            yield " ".join(tokens(src[f.start : stop if stop >= 0 else len(src)])), None
            continue
        yield (
            " ".join(tokens(src[f.start : at - 1])),
            (" ".join(tokens(src[f.start : end])) if end > 0 else None),
        )


# The splitter every blocklist so far was written with (../shared/bench/heldout.blocklist
# included): it cuts a header at the first `{` outside parentheses, so `func F() interface{} {`
# hashes as `func F ( ) interface` and its "whole function" as that header's `{ }`. Its hashes are
# kept beside the right ones (a superset only drops more), so that lists written before
# gocoder/text/gosource.py still match what they named.
_OPEN = {"{": "}", "(": ")", "[": "]"}
_CLOSE = set(_OPEN.values())


def _functions_v1(src: str) -> Iterator[tuple[str, str | None]]:
    """functions() as blocklists before gosource hashed them (kept for those lists; see above)."""
    toks = tokens(src)
    depth, i, n = 0, 0, len(toks)
    while i < n:
        if depth == 0 and toks[i] == "func":
            j, d = i + 1, 0
            while j < n and not (toks[j] == "{" and d == 0):
                d += toks[j] in ("(", "[")
                d -= toks[j] in (")", "]")
                j += 1
            k, d = j, 0
            while k < n:
                d += toks[k] in _OPEN
                d -= toks[k] in _CLOSE
                k += 1
                if d == 0:
                    break
            yield " ".join(toks[i:j]), (" ".join(toks[i:k]) if d == 0 and j < n else None)
            i = k
            continue
        depth += toks[i] in _OPEN
        depth -= toks[i] in _CLOSE
        depth = max(depth, 0)
        i += 1


def code_hashes(src: str) -> set[str]:
    """Every hash a piece of Go code could match in a blocklist: each function and each header."""
    out: set[str] = set()
    for header, whole in {*functions(src), *_functions_v1(src)}:
        out.add(content_hash("header", header))
        if whole is not None:
            out.add(content_hash("func", whole))
    return out


def is_contaminated(rec: dict[str, Any], blocklist: set[str]) -> bool:
    """True if any function in the record's after code matches the blocklist."""
    return any(code_hashes(f["after"]) & blocklist for f in rec["files_changed"] if f.get("after"))


def benchmark_hashes(path: str | Path) -> set[str]:
    """The blocklist hashes of a benchmark JSONL (MBXP / HumanEval-X style rows)."""
    out: set[str] = set()
    for rec in read_jsonl(path):
        entry = rec.get("entry_point")
        prompt, test = rec.get("prompt") or "", rec.get("test") or ""
        solution = rec.get("canonical_solution") or ""
        # Without a solution the prompt's entry point is left open: split it from the test so that
        # the open body does not swallow the harness functions.
        pairs = [*functions(prompt + solution), *functions(test)]
        pairs += [*_functions_v1(prompt + solution), *_functions_v1(test)]
        for header, whole in dict.fromkeys(pairs):
            is_entry = (
                bool(entry) and re.match(rf"func {re.escape(entry)} [(\[]", header) is not None
            )
            if whole is not None and not (is_entry and not solution):
                out.add(content_hash("func", whole))
            if is_entry:
                out.add(content_hash("header", header))
    if not out:
        raise GocoderError(f"{path}: no Go functions found; expected rows with prompt/test fields")
    return out


def load_blocklist(path: str | Path) -> set[str]:
    """A blocklist file (one hex hash a line), or a benchmark .jsonl
    whose hashes are computed here."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return benchmark_hashes(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise GocoderError(f"{path}: cannot read blocklist: {e.strerror}") from None
    except UnicodeDecodeError:
        raise GocoderError(f"{path}: blocklist is not UTF-8") from None
    out = set()
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[0-9a-f]{16}", line):
            raise GocoderError(f"{path}:{lineno}: expected a 16-digit hex hash, got {line[:40]!r}")
        out.add(line)
    return out


def write_blocklist(bench: str | Path, out: str | Path, extra: Iterable[str] = ()) -> int:
    """Write the blocklist of a benchmark JSONL to out (sorted, one
    hash a line); returns the count."""
    hashes = sorted(benchmark_hashes(bench) | set(extra))
    out = Path(out)
    if out.is_dir():
        raise GocoderError(f"{out}: is a folder; -o names the blocklist file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(
        f"# gocoder blocklist from {Path(bench).name}\n" + "".join(h + "\n" for h in hashes)
    )
    tmp.replace(out)
    return len(hashes)
