"""The tagged training text: a hierarchical record to text and back, lossless.

Grammar (tags are single tokens from tokenizer/special_tokens.json; T(x) is x with every copy of a
tag escaped, L(x) is a one-line field: backslash and newline C-escaped, then T):

    text     = prompt plan code validate
    prompt   = "<PROBLEM>" L(description) "\\n" T(details) "</PROBLEM>"
               "<CONTEXT>" { related } "<FILE>" L(file) "\\n" T(before)
               "</FILE>" "</CONTEXT>" [refine]
    related  = "<FILE>" L(file) "\\n" T(code) "</FILE>"      (context.related: retrieved
    declarations) refine   = "<REFINE>" "<CODE>" T(previous code) "</CODE>"
               "<VALIDATE>" verdicts T(first diagnostic) "</VALIDATE>"
    plan     = "<PLAN>" { "<STEP>" "<INTENT:I>" ["<TARGET:k>" L(name) "\\n"] T(description) }
    "</PLAN>" code     = "<CODE>" T(code) "</CODE>" validate = "<VALIDATE>" verdicts "</VALIDATE>"
    verdicts = ["<SYNTAX_OK>" | "<SYNTAX_ERR>"] ["<TEST_PASS>" | "<TEST_FAIL>"]   (absent = null)

Escaping rule: a tag is "<" + BODY (e.g. "</CODE>" has BODY "/CODE>"). In field text every
"<" + k backslashes + BODY (k >= 0) becomes "<" + (k+1) backslashes + BODY, and parse removes one
backslash from each "<" + (k>=1) backslashes + BODY. Escaped text never holds a tag, so a Go file
containing "</CODE>" round-trips and never yields the `</CODE>` token id. A struct target is written
as `<TARGET:type>` (the vocabulary has no struct kind), so it parses back as "type:NAME".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.record import Record, Refine, Validation

SPECIAL_TOKENS = Path(__file__).resolve().parents[2] / "tokenizer" / "special_tokens.json"
SYMBOL_GROUPS = ("structure", "intents", "targets", "validation")
# The tags the grammar above is written in; load_vocab checks the JSON holds every one of them.
_GRAMMAR = ("<PROBLEM>", "</PROBLEM>", "<CONTEXT>", "</CONTEXT>", "<FILE>", "</FILE>", "<PLAN>",
            "</PLAN>", "<STEP>", "<CODE>", "</CODE>", "<VALIDATE>", "</VALIDATE>", "<REFINE>",
            "<SYNTAX_OK>", "<SYNTAX_ERR>", "<TEST_PASS>", "<TEST_FAIL>")


@dataclass(frozen=True)
class Vocab:
    control: dict[str, str]  # pad/unk/bos/eos -> piece
    symbols: tuple[str, ...]  # the user-defined symbols, in id order
    intents: tuple[str, ...]  # "FIX", ...
    target_kinds: tuple[str, ...]  # "func", ...
    tag_re: re.Pattern[str]  # a raw tag
    esc_re: re.Pattern[str]  # "<" + k>=0 backslashes + BODY
    unesc_re: re.Pattern[str]  # "<" + k>=1 backslashes + BODY


@functools.cache
def load_vocab(path: str | Path = SPECIAL_TOKENS) -> Vocab:
    """The special tokens of special_tokens.json, checked so that escaping is a bijection."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise GocoderError(f"{path}: cannot read special tokens: {e}") from None
    symbols = tuple(t for g in SYMBOL_GROUPS for t in data.get(g, []))
    for t in symbols:
        # One "<" at the start and one ">" at the end: then no BODY is a prefix of another and
        # matches never overlap, which the escaping rule relies on.
        if not (isinstance(t, str) and re.fullmatch(r"<[^<>\\\s]+>", t)):
            raise GocoderError(
                f"{path}: special token {t!r} must look like <NAME> (no spaces, <, > or \\)"
            )
    if len(set(symbols)) != len(symbols):
        raise GocoderError(f"{path}: duplicate special tokens")
    missing = [t for t in _GRAMMAR if t not in symbols]
    if missing or set(data.get("control", {})) != {"pad", "unk", "bos", "eos"}:
        raise GocoderError(f"{path}: missing special tokens {missing or 'control pad/unk/bos/eos'}")
    bodies = "|".join(re.escape(t[1:]) for t in symbols)
    return Vocab(
        control=dict(data["control"]),
        symbols=symbols,
        intents=tuple(t[len("<INTENT:"):-1] for t in data["intents"]),
        target_kinds=tuple(t[len("<TARGET:"):-1] for t in data["targets"]),
        tag_re=re.compile(f"<(?:{bodies})"),
        esc_re=re.compile(f"<(\\\\*(?:{bodies}))"),
        unesc_re=re.compile(f"<\\\\(\\\\*(?:{bodies}))"),
    )


def escape(text: str) -> str:
    """Field text -> text holding no tag (see the module docstring)."""
    return load_vocab().esc_re.sub(r"<\\\1", text) if "<" in text else text


def unescape(text: str) -> str:
    """The inverse of escape: what the model wrote between two tags -> the field's text."""
    return load_vocab().unesc_re.sub(r"<\1", text) if "<\\" in text else text


def _line(text: str) -> str:
    return escape(text.replace("\\", "\\\\").replace("\n", "\\n"))


def _unline(raw: str, where: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1) == "n":
            return "\n"
        if m.group(1) == "\\":
            return "\\"
        raise GocoderError(
            f"serialized text, char {where}: bad escape {m.group(0)!r} in a one-line field"
        )

    text = unescape(raw)
    return re.sub(r"\\(.|$)", one, text) if "\\" in text else text


def _validation(v: Validation, diagnostic: str = "") -> str:
    syn = "" if v.syntax is None else "<SYNTAX_OK>" if v.syntax else "<SYNTAX_ERR>"
    tst = "" if v.tests is None else "<TEST_PASS>" if v.tests else "<TEST_FAIL>"
    return f"<VALIDATE>{syn}{tst}{escape(diagnostic)}</VALIDATE>"


def _target(rec: Record, i: int, target: str) -> tuple[str, str]:
    kind, sep, name = target.partition(":")
    kind = "type" if kind == "struct" else kind  # the vocabulary's kinds: a struct is a type
    if not sep or kind not in load_vocab().target_kinds:
        raise GocoderError(
            f"record {rec.id}: plan.steps[{i}].target {target!r} must be KIND:NAME "
            f"with KIND one of {', '.join(load_vocab().target_kinds)}, struct"
        )
    return kind, name


def _verdicts(v: Validation) -> dict[str, bool | None]:
    return {"syntax": v.syntax, "tests": v.tests}


def serialized_fields(rec: Record | Mapping[str, Any]) -> dict[str, Any]:
    """The part of a record that serialize writes, as parse gives it back (struct -> type)."""
    r = Record.of(rec)
    segments(r)  # the same checks, and the same errors, as serialize
    assert r.solution is not None  # segments checked it
    steps = [{"intent": s.intent, "target": ":".join(_target(r, i, s.target)) if s.target else "",
              "description": s.description} for i, s in enumerate(r.steps)]
    out: dict[str, Any] = {
        "problem": {"description": r.problem.description, "details": r.problem.details},
        "context": {"file": r.context.file, "before": r.context.before},
        "plan": {"steps": steps},
        "solution": {"code": r.solution.code, "validation": _verdicts(r.solution.validation)},
    }
    if r.context.related:
        out["context"]["related"] = [{"file": x.file, "code": x.code} for x in r.context.related]
    if r.refine is not None:
        out["refine"] = {"code": r.refine.code, "diagnostic": r.refine.diagnostic,
                         "validation": _verdicts(r.refine.validation)}
    return out


def _prompt(r: Record) -> str:
    """The prompt segment: the problem, the context (context.related, declarations retrieved by
    gocoder/inference/retrieve.py, as <FILE> blocks before the file being changed) and, when r has a
    refine block, that block."""
    out = (
        f"<PROBLEM>{_line(r.problem.description)}\n{escape(r.problem.details)}</PROBLEM><CONTEXT>"
        + "".join(f"<FILE>{_line(x.file)}\n{escape(x.code)}</FILE>" for x in r.context.related)
        + f"<FILE>{_line(r.context.file)}\n{escape(r.context.before)}</FILE></CONTEXT>"
    )
    if r.refine is not None:
        out += (f"<REFINE><CODE>{escape(r.refine.code)}</CODE>"
                f"{_validation(r.refine.validation, r.refine.diagnostic)}")
    return out


def segments(rec: Record | Mapping[str, Any], solution: bool = True) -> dict[str, str]:
    """{prompt, plan, code, validate}: their concatenation in this order is serialize(rec).

    prompt holds the problem, the context and, when rec has a `refine` field, the refine block.
    With solution=False code and validate are "" (a generation prefix:
    the model writes `<CODE>` next).
    """
    r = Record.of(rec)
    if r.plan is None:
        raise GocoderError(f"record {r.id}: missing field 'plan.steps'")
    plan = ["<PLAN>"]
    for i, s in enumerate(r.plan.steps):
        if s.intent not in load_vocab().intents:
            raise GocoderError(f"record {r.id}: plan.steps[{i}].intent {s.intent!r} must be one of "
                               f"{', '.join(load_vocab().intents)}")
        plan.append(f"<STEP><INTENT:{s.intent}>")
        if s.target:
            kind, name = _target(r, i, s.target)
            plan.append(f"<TARGET:{kind}>{_line(name)}\n")
        plan.append(escape(s.description))
    plan.append("</PLAN>")
    out = {"prompt": _prompt(r), "plan": "".join(plan), "code": "", "validate": ""}
    if solution:
        if r.solution is None:
            raise GocoderError(f"record {r.id}: missing field 'solution.code'")
        out["code"] = f"<CODE>{escape(r.solution.code)}</CODE>"
        out["validate"] = _validation(r.solution.validation)
    return out


def serialize(rec: Record | Mapping[str, Any]) -> str:
    """The record's training text (see the grammar in the module docstring)."""
    return "".join(segments(rec).values())


# ------------------------------------------------ the contract between training and inference
# The shards (gocoder/training/data.py) and the generation loop (gocoder/inference/generate.py) both
# build their repair records, diagnostics and prompts here, so the text a model is trained on is the
# text it is prompted with (tests/test_serialize.py pins it on gocheck's real verdicts).

def format_diagnostic(d: Any) -> str:
    """'line:col: msg' for a gocheck Diagnostic (or anything with line/col/msg); a str as is."""
    return d if isinstance(d, str) else f"{d.line}:{d.col}: {d.msg}"


def repair_record(rec: Record | Mapping[str, Any], code: str, diagnostic: Any = "", *,
                  syntax: bool | None = False, tests: bool | None = None) -> Record:
    """rec with a refine block: the previous code and its first diagnostic only (the ones after
    it are mostly cascades of the first), with the verdicts gocheck and the tests gave it."""
    refine = Refine(code=code, diagnostic=format_diagnostic(diagnostic),
                    validation=Validation(syntax=syntax, tests=tests))
    return dataclasses.replace(Record.of(rec), refine=refine)


def prompt(rec: Record | Mapping[str, Any]) -> str:
    """The prompt region of rec (with its refine block, if any): what
    the model writes a plan after."""
    return _prompt(Record.of(rec))


def prompt_budget(max_len: int, max_new: int) -> int:
    """Prompt tokens kept when max_new of a context of max_len positions are left for the
    answer (half the context at most): what inference fits a prompt to, and retrieval at
    training and inference alike fills a prompt up to (gocoder/inference/generate.py
    Generator.prompt_keep, gocoder/training/related.py)."""
    return max(8, max_len - min(max_new, max_len // 2))


def cut_points(n: int, keep: int) -> tuple[int, int]:
    """(head, tail): a prompt of n tokens cut to keep is prompt[:head] + prompt[tail:]. Its
    middle goes: the problem at the head and the refine block at the tail stay (the head gets
    keep // 2, at least one token when keep > 0). Uncut: (n, n)."""
    if n <= keep:
        return n, n
    head = min(keep, max(1, keep // 2))
    return head, n - (keep - head)


class _Reader:
    """A cursor over serialized text; every error names the character offset."""

    def __init__(self, text: str):
        self.text, self.pos, self.v = text, 0, load_vocab()

    def fail(self, want: str) -> GocoderError:
        return GocoderError(f"serialized text, char {self.pos}: expected {want}, "
                            f"found {self.text[self.pos:self.pos + 24]!r}")

    def take(self, tag: str) -> bool:
        if self.text.startswith(tag, self.pos):
            self.pos += len(tag)
            return True
        return False

    def expect(self, tag: str) -> None:
        if not self.take(tag):
            raise self.fail(repr(tag))

    def until_tag(self) -> str:
        """The escaped field text up to the next tag (left unread), unescaped."""
        m = self.v.tag_re.search(self.text, self.pos)
        if m is None:
            raise self.fail("a closing tag")
        raw, self.pos = self.text[self.pos:m.start()], m.start()
        return unescape(raw)

    def line(self) -> str:
        end = self.text.find("\n", self.pos)
        m = self.v.tag_re.search(self.text, self.pos, end if end >= 0 else len(self.text))
        if end < 0 or m is not None:
            raise self.fail("a one-line field ended by a newline")
        start, self.pos = self.pos, end + 1
        return _unline(self.text[start:end], start)

    def verdicts(self) -> dict[str, bool | None]:
        syntax = True if self.take("<SYNTAX_OK>") else False if self.take("<SYNTAX_ERR>") else None
        tests = True if self.take("<TEST_PASS>") else False if self.take("<TEST_FAIL>") else None
        return {"syntax": syntax, "tests": tests}

    def one_of(self, prefix: str, names: Sequence[str]) -> str | None:
        for n in names:
            if self.take(f"<{prefix}:{n}>"):
                return n
        return None


def parse(text: str) -> dict[str, Any]:
    """Serialized text -> the record's serialized fields:
    parse(serialize(r)) == serialized_fields(r).

    Strict: text that does not follow the grammar is a GocoderError naming the character offset.
    """
    r = _Reader(text)
    r.expect("<PROBLEM>")
    problem = {"description": r.line(), "details": r.until_tag()}
    r.expect("</PROBLEM>")
    r.expect("<CONTEXT>")
    files = []
    while r.take("<FILE>"):  # the related declarations, then the file being changed
        files.append((r.line(), r.until_tag()))
        r.expect("</FILE>")
    if not files:
        raise r.fail("'<FILE>'")
    context: dict[str, Any] = {"file": files[-1][0], "before": files[-1][1]}
    if len(files) > 1:
        context["related"] = [{"file": f, "code": c} for f, c in files[:-1]]
    r.expect("</CONTEXT>")
    refine = None
    if r.take("<REFINE>"):
        r.expect("<CODE>")
        prev = r.until_tag()
        r.expect("</CODE>")
        r.expect("<VALIDATE>")
        verdicts = r.verdicts()
        refine = {"code": prev, "diagnostic": r.until_tag(), "validation": verdicts}
        r.expect("</VALIDATE>")
    r.expect("<PLAN>")
    steps = []
    while r.take("<STEP>"):
        intent = r.one_of("INTENT", r.v.intents)
        if intent is None:
            raise r.fail("<INTENT:...>")
        kind = r.one_of("TARGET", r.v.target_kinds)
        target = f"{kind}:{r.line()}" if kind is not None else ""
        steps.append({"intent": intent, "target": target, "description": r.until_tag()})
    r.expect("</PLAN>")
    r.expect("<CODE>")
    code = r.until_tag()
    r.expect("</CODE>")
    r.expect("<VALIDATE>")
    validation = r.verdicts()
    r.expect("</VALIDATE>")
    if r.pos != len(text):
        raise r.fail("the end of the text")
    out: dict[str, Any] = {"problem": problem, "context": context, "plan": {"steps": steps},
                           "solution": {"code": code, "validation": validation}}
    if refine is not None:
        out["refine"] = refine
    return out
