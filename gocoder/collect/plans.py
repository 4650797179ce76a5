"""Plans of a change: its intent and its targets (a declaration-level diff).

Pure functions over a raw PR record and gocheck's declaration lists; gocoder/collect/annotate.py
streams records through them. The parts:
- intent_of: FIX, ADD, REFACTOR, OPTIMIZE, UPDATE or REMOVE from the title and body (conventional
  commit prefixes, the first verb, "fixes #N", bug words) and from the diff (only additions, only
  removals, renames);
- decl_changes: which top-level declarations a file's change adds, removes, modifies or only
  touches (comments, doc or layout changed, code the same), from gocheck's byte spans;
(gocoder/collect/steps.py writes one step per target from these.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gocoder.text.gosource import COMMENT, LITERAL

INTENTS = ("FIX", "ADD", "REFACTOR", "OPTIMIZE", "UPDATE", "REMOVE", "PRESERVE")

# Conventional-commit types (conventionalcommits.org, Angular's list, and common extras).
PREFIX_INTENT = {
    "fix": "FIX", "bugfix": "FIX", "hotfix": "FIX", "feat": "ADD", "feature": "ADD",
    "refactor": "REFACTOR", "style": "REFACTOR", "perf": "OPTIMIZE", "revert": "REMOVE",
    "chore": "UPDATE", "docs": "UPDATE", "doc": "UPDATE", "build": "UPDATE", "ci": "UPDATE",
    "test": "UPDATE", "tests": "UPDATE", "deps": "UPDATE",
}  # fmt: skip
PREFIX_RE = re.compile(r"^\s*([A-Za-z]+)(\([^)]*\))?!?:\s*")

# The first verb of a subject says most (CommitPackFT keeps subjects by their imperative verb).
VERBS = {
    "FIX": "fix fixes fixed fixing correct corrects corrected resolve resolves resolved "
           "repair prevent "
           "prevents avoid avoids patch handle handles guard workaround ensure "
           "ensures restore restores "
           "bugfix hotfix recover catch",
    "ADD": "add adds added adding implement implements implemented introduce introduces "
           "support supports "
           "create creates new allow allows enable enables provide provides expose "
           "exposes init initial "
           "feat feature generate",
    "REFACTOR": "refactor refactors refactored rename renames renamed move moves moved extract "
                "extracts "
                "simplify simplifies clean cleanup cleans reorganize restructure "
                "rewrite rewrites tidy "
                "unify split replace replaces migrate migrates format lint polish decouple",
    "OPTIMIZE": "optimize optimizes optimise optimized speed speedup accelerate perf reduce "
                "reduces "
                "faster cache caches preallocate",
    "UPDATE": "update updates updated upgrade upgrades bump bumps change changes changed set "
              "modify "
              "tweak adjust improve improves enhance enhances release doc docs document comment "
              "chore upgrade sync",
    "REMOVE": "remove removes removed delete deletes deleted drop drops dropped revert reverts "
              "reverted "
              "deprecate deprecates strip disable disables unexport",
}  # fmt: skip
VERB_INTENT = {w: intent for intent, words in VERBS.items() for w in words.split()}
# Words anywhere in the subject that outrank a generic verb: a bug, speed, or style.
FIX_WORDS = re.compile(r"\b(bugs?|panics?|crash(es)?|nil pointer|npe|deadlock|races?|leaks?|"
                       r"incorrect(ly)?|"
                       r"wrong|errors?|err|fails?|failed|failure|broken|invalid|issues?|problems?|"
                       r"exceptions?|overflow|missing|lacks?|misuse|mistakes?|can't|cannot|"
                       r"unexpected|"
                       r"correct(ly)?|properly)\b", re.I)  # fmt: skip
PERF_WORDS = re.compile(r"\b(optimi[sz](e|es|ed|ing|ation)|performance|prealloc\w*|allocations?|"
                        r"faster|"
                        r"speed up|zero-copy|memory usage)\b", re.I)  # fmt: skip
STYLE_WORDS = re.compile(r"\b(style|format(ting)?|lint(er)?|golangci-lint|gofmt|goimports|naming|"
                         r"clean ?up|deprecated)\b", re.I)  # fmt: skip
# Tests and versions: changes that add no behaviour, whatever verb ("add tests", "upgrade to v2").
TEST_WORDS = re.compile(r"\b(tests?|unit tests?|test cases?|coverage|benchmarks?)\b", re.I)
VERSION_WORDS = re.compile(r"\b(version|v?\d+\.\d+(\.\d+)?|deps|dependenc(y|ies)|go\.mod)\b", re.I)
ISSUE_RE = re.compile(r"\b(fix(es|ed)?|close[sd]?|resolve[sd]?)\s+(\S+/\S+)?#\d+", re.I)


def strip_prefix(title: str) -> str:
    """The subject without a conventional-commit prefix (`fix(http): x` -> `x`)."""
    return PREFIX_RE.sub("", title, count=1)


def text_intent(title: str, body: str = "") -> str | None:
    """The intent the words give, or None when they say nothing."""
    m = PREFIX_RE.match(title)
    if m and m.group(1).lower() in PREFIX_INTENT:
        return PREFIX_INTENT[m.group(1).lower()]
    subject = strip_prefix(title)
    subject = re.sub(r"^[\w./-]+:\s*", "", subject)  # a component prefix: "transport/http: add x"
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", subject.lower())
    verb = VERB_INTENT.get(words[0]) if words else None
    if PERF_WORDS.search(subject) and verb not in ("FIX", "REMOVE"):
        return "OPTIMIZE"
    if FIX_WORDS.search(subject) and (
        verb in (None, "UPDATE", "REFACTOR") or re.search(r"\bmissing\b", subject)
    ):
        return "FIX"  # "update x to stop the panic", "add missing check"
    if STYLE_WORDS.search(subject) and verb in (None, "UPDATE"):
        return "REFACTOR"
    if (TEST_WORDS.search(subject) or VERSION_WORDS.search(subject)) and verb in (
        None,
        "ADD",
        "UPDATE",
    ):
        return "UPDATE"
    if verb is None:  # a verb after a leading noun: "HTTP server support x", "docs update"
        verb = next((VERB_INTENT[w] for w in words[1:4] if w in VERB_INTENT), None)
    if verb is None and (ISSUE_RE.search(title) or ISSUE_RE.search(body or "")):
        return "FIX"
    return verb


def diff_intent(changes: list[DeclChange], renamed_files: int = 0) -> str | None:
    """The intent the diff alone gives: only additions, only removals, renames; else None."""
    kinds = {c.change for c in changes if c.change != "touched"}
    if renamed_files or _renames(changes):
        return "REFACTOR"
    if kinds == {"added"}:
        return "ADD"
    if kinds == {"removed"}:
        return "REMOVE"
    return None


def _aside(path: str) -> bool:
    """A test file, or a file of an example program."""
    return path.endswith("_test.go") or any(d in ("example", "examples", "_example", "_examples")
                                            for d in path.split("/")[:-1])  # fmt: skip


def intent_of(title: str, body: str, changes: list[DeclChange], renamed_files: int = 0) -> str:
    """The change's intent: the words when they speak, sharpened or replaced by the diff."""
    by_text = text_intent(title, body)
    by_diff = diff_intent(changes, renamed_files)
    if changes and all(c.change == "touched" for c in changes):
        return "UPDATE"  # comments or layout only: no behaviour changes, whatever the words say
    if changes and by_text in (None, "ADD", "UPDATE") and all(_aside(c.file) for c in changes):
        return "UPDATE"  # tests or examples only: documentation of the behaviour, not behaviour
    if by_text is None:
        # No words: the diff's shape; new exported API reads as a feature; else FIX, the
        # commonest reason to change code that exists.
        if by_diff:
            return by_diff
        api = [
            c
            for c in changes
            if c.change == "added"
            and c.kind in ("func", "method", "type", "struct", "interface")
            and c.name.split(".")[-1][:1].isupper()
            and not c.file.endswith("_test.go")
        ]
        return "ADD" if api else "FIX"
    # A generic verb ("update x") over a diff that only adds or only removes: the diff is sharper.
    if by_text == "UPDATE" and by_diff in ("ADD", "REMOVE"):
        return by_diff
    return by_text


@dataclass(frozen=True)
class DeclChange:
    """One top-level declaration that a file's change affects."""

    file: str
    kind: str  # func, method, type, interface, struct, var, const
    name: str
    change: str  # added, removed, modified, touched (comments, doc or layout only)
    before: str  # the declaration's text ("" when added)
    after: str  # "" when removed
    pos: int  # byte offset in after (in before when removed): steps follow the file's order


_TOKEN = re.compile(f"{LITERAL}|{COMMENT}|\\w+|\\S", re.S)


_WORDS = re.compile(r"\w+|\W+")
_STR_OR_COMMENT = re.compile(f"{LITERAL}|{COMMENT}", re.S)


# A space next to punctuation separates nothing. Two literal-replacement passes rather than one
# sub with a group template: CPython expands templates in Python, once per match.
_SPACE_BEFORE = re.compile(r" (?=[^\w ])")
_SPACE_AFTER = re.compile(r"(?<=[^\w ]) ")


def code_tokens(text: str) -> list[str]:
    """Go tokens without comments or layout: two texts with the same tokens do the same thing."""
    return [t for t in _TOKEN.findall(text) if not t.startswith(("//", "/*"))]


def code_key(text: str) -> str:
    """The text without comments and without layout outside string literals: equal keys, equal
    code (as code_tokens, several times faster: the work is per literal, not per token)."""
    out, code, pos = [], "", 0
    for m in _STR_OR_COMMENT.finditer(text):
        code += text[pos : m.start()]
        pos = m.end()
        if m.group().startswith(("//", "/*")):
            code += " "  # a comment separates like a space
            continue
        out += [_layout(code), m.group()]
        code = ""
    return "".join([*out, _layout(code + text[pos:])])


def _code_differs(a: str, b: str) -> bool:
    """Whether two texts differ in code, not only in comments or layout (code_key's question)."""
    if not any("//" in t or "/*" in t for t in (a, b)) and "".join(a.split()) != "".join(b.split()):
        return True  # no comment: every byte but spaces is code or literal text (3 in 4 changes)
    return code_key(a) != code_key(b)


def _layout(code: str) -> str:
    """Code outside literals with a space only where it separates two words (`return x`)."""
    return _SPACE_AFTER.sub("", _SPACE_BEFORE.sub("", " ".join(code.split()))).strip()


_GROUP = {"struct": "type", "interface": "type"}  # a type that became a struct is the same type


def _index(src: bytes, decls) -> dict[tuple[str, str], tuple]:
    """(kind group, name) -> (decl, text bytes, doc). A repeated key (several `init`) gets #2, #3.
    Texts stay bytes: most declarations are unchanged, and comparing bytes needs no decoding."""
    out: dict[tuple[str, str], tuple] = {}
    for d in decls:
        group = _GROUP.get(d.kind, d.kind)
        key = (group, d.name)
        if key in out:
            n = 2
            while (group, f"{d.name}#{n}") in out:
                n += 1
            key = (group, f"{d.name}#{n}")
        out[key] = (d, src[d.start : d.end], d.doc)
    return out


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def decl_changes(path: str, before: str, after: str, before_decls, after_decls) -> list[DeclChange]:
    """The declarations of one file that its change adds, removes, modifies or touches."""
    if before == after:
        return []
    b = _index(before.encode("utf-8", "surrogatepass"), before_decls)
    a = _index(after.encode("utf-8", "surrogatepass"), after_decls)
    out = []
    for key, (d, raw, doc) in a.items():
        name = key[1]  # "init#2" for a repeated name: steps drop the suffix
        if key not in b:
            out.append(DeclChange(path, d.kind, name, "added", "", _text(raw), d.start))
            continue
        bd, braw, bdoc = b[key]
        if braw == raw and bdoc == doc:
            continue
        btext, text = _text(braw), _text(raw)
        bcode, code = bd.code, d.code  # gocheck's token hashes, when it was asked for them
        change = (
            "modified"
            if (bcode != code if bcode and code else _code_differs(btext, text))
            else "touched"
        )
        out.append(DeclChange(path, d.kind, name, change, btext, text, d.start))
    for key, (d, raw, _) in b.items():
        if key not in a:
            out.append(DeclChange(path, d.kind, key[1], "removed", _text(raw), "", d.start))
    return out


def _renames(changes: list[DeclChange]) -> bool:
    """A declaration removed and one added whose code is the same but for the name."""
    removed = [c for c in changes if c.change == "removed"]
    if not removed:
        return False

    # the code with every word equal to its name dropped
    def nameless(c: DeclChange, text: str) -> str:
        name = c.name.split(".")[-1].split("#")[0]
        return "".join(w for w in _WORDS.findall(code_key(text)) if w != name)

    added = {nameless(c, c.after) for c in changes if c.change == "added"}
    return bool(added) and any(nameless(c, c.before) in added for c in removed)
