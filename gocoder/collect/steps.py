"""The steps of a plan: one per changed declaration, described in the change's own words.

A step's description is what changes in its target, in words the change itself gives: the clause
of the commit message that names the target (the title's, a body sentence or bullet), and the
identifiers and calls the declaration gains or loses (or, when none, its first edited tokens; for
a new or removed declaration, its signature). On go-chi/chi's history 87% of the old descriptions
were templates ("Update func realIP") that said nothing beyond the intent and target. A target
names its file (`func:main@cmd/app/main.go`): a plan touching two `main`s says which is which.
"""

from __future__ import annotations

import difflib
import re

from gocoder.collect.plans import DeclChange, code_key, strip_prefix
from gocoder.record import Record
from gocoder.text.gosource import LITERAL, body_open

_NOISE = re.compile(
    r"<!--[\s\S]*?-->|^[ \t]*#+ .*$|^[ \t]*[-*] \[[ xX]\].*$|^(Signed-off-by|Co-authored-by):.*$",
    re.M,
)
_LITERAL = re.compile(LITERAL)
_CALL = re.compile(r"\b([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\(")
_IDENT = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")  # qualified: `http.StatusOK`
_EDIT_TOKEN = re.compile(f"{LITERAL}|\\w+|[^\\w\\s\"'`]+")
# Words that every Go declaration has: naming them says nothing about this change.
_GO_WORDS = set("break case chan const continue default defer else fallthrough for func go goto if "
                "import "
                "interface map package range return select struct switch type var "
                "nil true false iota "
                "string int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64 "
                "uintptr byte rune bool "
                "float32 float64 error any len cap make new append copy delete panic recover close"
                .split())  # fmt: skip
MAX_NAMES = 4  # identifiers or calls named per list: the step stays one line
MAX_DESC = 300  # characters of a description (a body sentence can run long)
_VERB = {"FIX": "Fix", "ADD": "Add", "REFACTOR": "Refactor", "OPTIMIZE": "Optimize",
         "UPDATE": "Update", "REMOVE": "Remove", "PRESERVE": "Keep the behaviour of"}  # fmt: skip


def sentences(body: str) -> list[str]:
    """The body's sentences and bullet items, PR-template noise (headings, checkboxes) dropped."""
    text = _NOISE.sub("\n", body or "")
    out = []
    for para in re.split(r"\n\s*\n|\n\s*[-*+] |\n\s*\d+\. ", text):
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", " ".join(para.split())):
            s = s.strip(" -*+")
            if len(s) > 8 and re.search(r"[A-Za-z]{3}", s):
                out.append(s)
    return out


def clauses(title: str, body: str) -> list[str]:
    """The commit message's clauses: the title (prefix and a trailing "(#123)" dropped), its parts
    ("x, and y"), then the body's sentences."""
    subject = re.sub(r"\s*\(#\d+\)\s*$", "", strip_prefix(title)).strip()
    parts = [
        p.strip()
        for p in re.split(r";\s+|,\s+(?:and\s+)?|\s+and\s+", subject)
        if len(p.strip()) > 8
    ]
    return [c for c in [subject, *(parts if len(parts) > 1 else [])] if c] + sentences(body)


def _names(c: DeclChange) -> list[str]:
    """The words by which a message names a target: `Server.Handle`, `Handle`."""
    name = c.name.split("#")[0]
    return [name, name.split(".")[-1]] if "." in name else [name]


def _says(clause: str, c: DeclChange) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(n)}\b", clause) for n in _names(c))


def _code(text: str) -> str:
    """Code without comments, layout or literal contents: what calls
    and identifiers are read from."""
    return _LITERAL.sub('""', code_key(text))


def _listed(names: list[str]) -> str:
    more = len(names) - MAX_NAMES
    return ", ".join(names[:MAX_NAMES]) + (f" and {more} more" if more > 0 else "")


def _signature(text: str) -> str:
    """The first line of a declaration without its body: `func (s *Server) Close() error`."""
    line = next(
        (ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("//")), ""
    )
    if line.lstrip().startswith("func"):
        at = body_open(line.lstrip())  # past an interface{} or struct{} in the signature
        line = line.lstrip()[: at - 1] if at > 0 else line
    elif line.lstrip().startswith("type"):
        line = line.split("{")[0]
    return line.strip()[:120]


def _joined(tokens: list[str]) -> str:
    """Tokens as Go is written: a space between two words or a closing bracket and a word, and
    around assignment and comparison operators (`x += int(n)`, not `x += int ( n`)."""
    out = ""
    for t in tokens:
        word = t[:1].isalnum() or t[:1] in "_\"'`"
        if out and (
            (word and (out[-1].isalnum() or out[-1] in "_\"'`)}"))
            or t in _SPACED
            or out.endswith(_SPACED)
        ):
            out += " "
        out += t
    return out


_SPACED = ("=", ":=", "+=", "-=", "==", "!=", "<=", ">=", "&&", "||", "{")


def _first_edit(before: str, after: str) -> str:
    """The first run of tokens the change replaces, inserts or deletes: `return 1` -> `return 2`."""
    a, b = _EDIT_TOKEN.findall(code_key(before)), _EDIT_TOKEN.findall(code_key(after))
    # difflib is quadratic at worst; such a change has names to list
    if len(a) * len(b) > 4_000_000:
        return ""
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = _joined(a[i1:i2])[:60], _joined(b[j1:j2])[:60]
        if tag == "replace":
            return f"{old} -> {new}"
        if tag == "insert":
            return f"adds {new}"
        if tag == "delete":
            return f"drops {old}"
    return ""


def diff_words(c: DeclChange) -> str:
    """What the change does to one declaration, in its own identifiers and calls."""
    if c.change == "added":
        return f"new {_signature(c.after)}"
    if c.change == "removed":
        return f"drops {_signature(c.before)}"
    if c.change == "touched":
        old = {ln.strip() for ln in c.before.splitlines()}
        new = [
            ln.strip().lstrip("/ ")
            for ln in c.after.splitlines()
            if ln.strip() not in old and "//" in ln
        ]
        return f"comment: {new[0][:100]}" if new and new[0] else "doc comment or layout only"
    before, after = _code(c.before), _code(c.after)
    # A method in an interface or a func-typed field is no call: types are told by the names alone.
    funcs = c.kind in ("func", "method")
    calls_b, calls_a = (_CALL.findall(before), _CALL.findall(after)) if funcs else ([], [])
    gone = set(calls_b) - set(calls_a) - _GO_WORDS
    new = set(calls_a) - set(calls_b) - _GO_WORDS
    parts = []
    if new:
        parts.append("calls " + _listed([x for x in dict.fromkeys(calls_a) if x in new]))
    if gone:
        parts.append("no longer calls " + _listed([x for x in dict.fromkeys(calls_b) if x in gone]))
    if not parts:
        ids_b, ids_a = _IDENT.findall(before), _IDENT.findall(after)
        used = [x for x in dict.fromkeys(ids_a) if x not in set(ids_b) and x not in _GO_WORDS]
        dropped = [x for x in dict.fromkeys(ids_b) if x not in set(ids_a) and x not in _GO_WORDS]
        if used:
            parts.append(("uses " if funcs else "adds ") + _listed(used))
        if dropped:
            parts.append("drops " + _listed(dropped))
    if _signature(c.before) != _signature(c.after) and c.kind in ("func", "method"):
        parts.insert(0, f"now {_signature(c.after)}")
    return "; ".join(parts) or _first_edit(c.before, c.after)


def step_intent(change: str, overall: str) -> str:
    if change == "touched":
        return "PRESERVE"  # only comments or layout moved: the behaviour must stay as it is
    if change == "added":
        return "REFACTOR" if overall == "REFACTOR" else "ADD"
    if change == "removed":
        return "REFACTOR" if overall == "REFACTOR" else "REMOVE"
    return overall if overall in ("FIX", "REFACTOR", "OPTIMIZE", "UPDATE") else "UPDATE"


def target_of(c: DeclChange) -> str:
    """`kind:name@file`: a Go name never holds "@", so the name ends at the first one."""
    return f"{c.kind}:{c.name.split('#')[0]}@{c.file}"


def plan_steps(
    title: str, body: str, changes: list[DeclChange], overall: str
) -> list[dict[str, str]]:
    """One step per target, in file order, code-changing ones before touched ones. Each step
    takes the first clause of the message that names it; the title goes to the first
    code-changing step when it names none. The plan's intent is the intent of at least one step:
    a feature that only edits existing functions has its first edit be the ADD."""
    said = clauses(title, body)
    rank = {"modified": 0, "added": 0, "removed": 0, "touched": 1}
    ordered = sorted(changes, key=lambda c: rank[c.change])
    named = [next((s for s in said if _says(s, c)), None) for c in ordered]
    lead = next((i for i, c in enumerate(ordered) if c.change != "touched"), 0)
    if said and said[0] not in named and ordered:
        named[lead] = named[lead] or said[0]
    steps = []
    for c, clause in zip(ordered, named, strict=True):
        words = diff_words(c)
        intent = step_intent(c.change, overall)
        desc = "; ".join(x for x in (clause[:MAX_DESC].rstrip(".") if clause else "", words) if x)
        steps.append({"intent": intent, "target": target_of(c),
                      "description": desc
                      or f"{_VERB[intent]} {c.kind} {c.name.split('#')[0]}"})  # fmt: skip
    if steps and overall != "PRESERVE" and all(s["intent"] != overall for s in steps):
        steps[lead]["intent"] = overall
    return steps


def plan_bytes(rec: Record) -> int:
    """UTF-8 bytes of what the model writes for a record: its steps and its solution. The prompt is
    not counted: training cuts its middle to fit (data.cut_example), the plan and code it cannot."""
    steps = sum(len(s.target) + len(s.description) + 2 for s in rec.steps)
    return steps + len(rec.code.encode("utf-8", "surrogatepass"))
