"""The hierarchical record (docs/FORMATS.md): a frozen dataclass per JSON object, one constructor.

gocoder/records.py reads and appends JSONL lines of any kind; this module says what a hierarchical
record is. Whatever builds one (annotate, the benchmarks' problem records, `gocoder generate`, the
PR benchmark, retrieval, the serializer's repair records) builds a `Record`; whatever reads one
from JSON calls `Record.from_dict(d, where="FILE:LINE")`, which checks its shape and names the
file, line, record and field of the first thing wrong. `Record.of` takes either, so a caller
holding a dict still goes through that one check.

`to_dict()` gives back the JSON a record was read from, key for key and in its order (a record
built here: the order annotate writes), with keys this module does not know kept where they were,
so a file read and written again does not change (tests/test_record.py; all 48,299 records of an
annotated GOROOT). A field set after reading (retrieval's `context.related`, a `refine` block)
goes after the keys that were read, as `dict(rec, refine=...)` put it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gocoder import GocoderError
from gocoder.records import jsonl_inputs, read_jsonl_numbered


class _Check:
    """Reads a record's JSON; every error names where (FILE:LINE), the record's id and the field."""

    def __init__(self, d: Mapping[str, Any], where: str):
        self.where = where
        rid = d.get("id")
        self.rid = rid if isinstance(rid, str) else "?"

    def fail(self, msg: str) -> GocoderError:
        return GocoderError(f"{self.where + ': ' if self.where else ''}record {self.rid}: {msg}")

    def obj(self, d: Any, key: Any, path: str) -> Mapping[str, Any]:
        """d[key] (a key of an object, an index of a list), which must be an object."""
        if isinstance(d, Mapping) and key not in d:
            raise self.fail(f"missing field {path!r}")
        v = d[key]
        if not isinstance(v, Mapping):
            raise self.fail(f"field {path!r} must be an object, got {v!r:.40}")
        return v

    def get(self, d: Mapping[str, Any], path: str, key: str, types: tuple[type, ...],
            default: Any = ...) -> Any:
        """d[key] (field path.key), of one of types (None among them: null allowed); default when
        absent, or a missing field."""
        where = f"{path}.{key}" if path else key
        if key not in d:
            if default is ...:
                raise self.fail(f"missing field {where!r}")
            return default
        v = d[key]
        nullable = type(None) in types
        kinds = tuple(t for t in types if t is not type(None))
        typed = isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool))  # True: an int
        if not (typed or (v is None and nullable)):
            want = " or ".join(_WANT[t] for t in kinds) + (" or null" if nullable else "")
            raise self.fail(f"field {where!r} must be {want}, got {v!r:.40}")
        return v


_WANT = {str: "a string", int: "an integer", bool: "true, false", list: "a list"}
_STR, _OPT = (str,), (str, type(None))


@dataclass(frozen=True, kw_only=True)
class _Node:
    """A JSON object: its known keys are FIELDS (attribute name = JSON key), the others are kept in
    `extra`; `order` is the key order it was read in (empty when built here)."""

    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)
    order: tuple[str, ...] = field(default=(), repr=False, compare=False)

    FIELDS: ClassVar[tuple[str, ...]] = ()
    ABSENT_IF_NONE: ClassVar[frozenset[str]] = frozenset()  # object fields: None is "no key"

    def _shown(self, key: str, value: Any) -> bool:
        """Whether a field that was not read from JSON is written."""
        return value is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: keys in the order read, then new fields (FIELDS order), new extras."""
        vals = {k: getattr(self, k) for k in self.FIELDS}
        out: dict[str, Any] = {}
        for k in self.order:
            if k in vals:
                if vals[k] is not None or k not in self.ABSENT_IF_NONE:
                    out[k] = _json(vals[k])
            elif k in self.extra:
                out[k] = self.extra[k]
        for k, v in vals.items():
            if k not in self.order and self._shown(k, v):
                out[k] = _json(v)
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        return out

    @classmethod
    def _kept(cls, d: Mapping[str, Any]) -> dict[str, Any]:
        """extra and order of the object d, for the constructor."""
        return {"extra": {k: v for k, v in d.items() if k not in cls.FIELDS}, "order": tuple(d)}


def _json(v: Any) -> Any:
    if isinstance(v, _Node):
        return v.to_dict()
    if isinstance(v, tuple):
        return [_json(x) for x in v]
    return v


@dataclass(frozen=True, kw_only=True)
class Problem(_Node):
    """What the change must do: the PR's title (one line) and body."""

    description: str
    details: str = ""
    FIELDS: ClassVar[tuple[str, ...]] = ("description", "details")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Problem:
        return cls(description=c.get(d, path, "description", _STR),
                   details=c.get(d, path, "details", _STR, ""), **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Related(_Node):
    """A declaration retrieval found in the repository (gocoder/inference/retrieve.py)."""

    file: str
    code: str
    FIELDS: ClassVar[tuple[str, ...]] = ("file", "code")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Related:
        return cls(file=c.get(d, path, "file", _STR), code=c.get(d, path, "code", _STR),
                   **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Context(_Node):
    """The file being changed, its text before the change, and declarations retrieval added."""

    file: str = ""
    before: str = ""
    related: tuple[Related, ...] = ()
    FIELDS: ClassVar[tuple[str, ...]] = ("file", "before", "related")

    def _shown(self, key: str, value: Any) -> bool:
        return value != ()  # no related declarations, no key: such a record serializes as before

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Context:
        rel = c.get(d, path, "related", (list,), [])
        where = [f"{path}.related[{i}]" for i in range(len(rel))]
        return cls(file=c.get(d, path, "file", _STR, ""), before=c.get(d, path, "before", _STR, ""),
                   related=tuple(Related.read(c.obj(rel, i, w), c, w) for i, w in enumerate(where)),
                   **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Step(_Node):
    """A plan step: an intent (FIX, ADD, ...), a target `kind:name@file` ("" for none), words."""

    intent: str
    target: str = ""
    description: str = ""
    FIELDS: ClassVar[tuple[str, ...]] = ("intent", "target", "description")

    @property
    def target_name(self) -> str:
        """NAME of the target KIND:NAME@FILE (a method's Recv.Name); "" for none."""
        kind, sep, rest = self.target.partition(":")
        return rest.rsplit("@", 1)[0] if sep else ""

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Step:
        return cls(intent=c.get(d, path, "intent", _STR), target=c.get(d, path, "target", _STR, ""),
                   description=c.get(d, path, "description", _STR, ""), **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Plan(_Node):
    """The change's overall intent (annotate writes it; a problem record has none) and its steps."""

    steps: tuple[Step, ...] = ()
    intent: str | None = None
    FIELDS: ClassVar[tuple[str, ...]] = ("intent", "steps")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Plan:
        steps = c.get(d, path, "steps", (list,))
        where = [f"{path}.steps[{i}]" for i in range(len(steps))]
        return cls(intent=c.get(d, path, "intent", _OPT, None),
                   steps=tuple(Step.read(c.obj(steps, i, w), c, w) for i, w in enumerate(where)),
                   **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Validation(_Node):
    """Verdicts on code: it parses, its tests pass (None: not known)."""

    syntax: bool | None = None
    tests: bool | None = None
    FIELDS: ClassVar[tuple[str, ...]] = ("syntax", "tests")

    def _shown(self, key: str, value: Any) -> bool:
        return True  # null is a verdict too ("not checked")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Validation:
        return cls(syntax=c.get(d, path, "syntax", (bool, type(None)), None),
                   tests=c.get(d, path, "tests", (bool, type(None)), None), **cls._kept(d))


def _validation(d: Mapping[str, Any], c: _Check, path: str) -> Validation:
    if "validation" not in d:
        return Validation()
    return Validation.read(c.obj(d, "validation", f"{path}.validation"), c, f"{path}.validation")


@dataclass(frozen=True, kw_only=True)
class Solution(_Node):
    """The changed declarations after the change, and their verdicts."""

    code: str
    validation: Validation = Validation()
    FIELDS: ClassVar[tuple[str, ...]] = ("code", "validation")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Solution:
        return cls(code=c.get(d, path, "code", _STR), validation=_validation(d, c, path),
                   **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Refine(_Node):
    """A refine block (serialize.repair_record): the earlier code, its first diagnostic."""

    code: str
    diagnostic: str = ""
    validation: Validation = Validation()
    FIELDS: ClassVar[tuple[str, ...]] = ("code", "diagnostic", "validation")

    @classmethod
    def read(cls, d: Mapping[str, Any], c: _Check, path: str) -> Refine:
        return cls(code=c.get(d, path, "code", _STR),
                   diagnostic=c.get(d, path, "diagnostic", _STR, ""),
                   validation=_validation(d, c, path), **cls._kept(d))


@dataclass(frozen=True, kw_only=True)
class Record(_Node):
    """A hierarchical record. Provenance (split ... sha, bug_kind) is None where a record has none
    (a benchmark problem has no repo); a problem to solve has no plan steps and no solution."""

    id: str
    problem: Problem
    context: Context = Context()
    plan: Plan | None = None
    solution: Solution | None = None
    refine: Refine | None = None
    split: str | None = None
    source: str | None = None
    repo: str | None = None
    pr_number: int | None = None
    sha: str | None = None
    bug_kind: str | None = None  # synth records: the mutation planted

    FIELDS: ClassVar[tuple[str, ...]] = (
        "id", "split", "source", "repo", "pr_number", "sha", "problem", "context", "plan",
        "solution", "bug_kind", "refine")  # annotate writes them in this order
    ABSENT_IF_NONE: ClassVar[frozenset[str]] = frozenset({"plan", "solution", "refine"})

    def _shown(self, key: str, value: Any) -> bool:
        if key in ("pr_number", "sha"):  # a collected change's provenance: written with its repo
            return value is not None or self.repo is not None
        if key == "context":
            return value != Context()
        return value is not None

    @property
    def steps(self) -> tuple[Step, ...]:
        """The plan's steps (none without a plan)."""
        return self.plan.steps if self.plan is not None else ()

    @property
    def code(self) -> str:
        """The solution's code ("" without a solution)."""
        return self.solution.code if self.solution is not None else ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> Record:
        """The record of a JSON object; one of the wrong shape is a GocoderError naming where (e.g.
        "FILE:LINE"), the record's id and the field."""
        if not isinstance(d, Mapping):
            at = f"{where}: " if where else ""
            raise GocoderError(f"{at}expected a JSON object, got {type(d).__name__}")
        c = _Check(d, where)

        def part(key: str, kind: Any) -> Any:
            return kind.read(c.obj(d, key, key), c, key) if d.get(key) is not None else None

        return cls(
            id=c.get(d, "", "id", _STR), split=c.get(d, "", "split", _OPT, None),
            source=c.get(d, "", "source", _OPT, None), repo=c.get(d, "", "repo", _OPT, None),
            pr_number=c.get(d, "", "pr_number", (int, type(None)), None),
            sha=c.get(d, "", "sha", _OPT, None),
            bug_kind=c.get(d, "", "bug_kind", _OPT, None),
            problem=Problem.read(c.obj(d, "problem", "problem"), c, "problem"),
            context=part("context", Context) or Context(), plan=part("plan", Plan),
            solution=part("solution", Solution), refine=part("refine", Refine), **cls._kept(d),
        )

    @classmethod
    def of(cls, rec: Record | Mapping[str, Any], where: str = "") -> Record:
        """rec itself, or the Record of a dict (checked as from_dict checks it)."""
        return rec if isinstance(rec, Record) else cls.from_dict(rec, where)


def read_records(path: str | Path) -> Iterator[tuple[Path, Record]]:
    """The hierarchical records of a .jsonl file or of every .jsonl file in a folder (sorted), each
    with its file; a bad one is a GocoderError naming its file, line and field."""
    for f in jsonl_inputs(path):
        for lineno, d in read_jsonl_numbered(f):
            yield f, Record.from_dict(d, where=f"{f}:{lineno}")
