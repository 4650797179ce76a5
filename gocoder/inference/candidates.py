"""A candidate, its energy and the loop's state: the base both the refinement loop
(gocoder/inference/generate.py) and the tree search (gocoder/inference/search.py) stand on, so that
neither imports the other's module back.

A candidate is one generated plan + code with gocheck's verdict, the tests' verdict when tests were
given, and the controller's decision; energy orders candidates by those measurements.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gocoder.inference.engine import Decision, Sampling
from gocoder.model.model import DONE
from gocoder.record import Record
from gocoder.text.serialize import repair_record


@dataclass
class TestResult:
    __test__ = False  # not a pytest class
    passed: bool
    output: str  # failing test output, truncated


@dataclass
class Candidate:
    code: str
    plan: list[dict]
    syntax_ok: bool
    type_ok: bool | None
    tests: TestResult | None
    decision: Decision | None
    text: str  # the raw generated text
    finished: bool = True  # the model closed </CODE> before its budget
    errors: int = 0  # syntax (or, when those are none, type) errors gocheck found
    diagnostic: str = ""  # the first one as "line:col: msg", or the failing test output
    verdict: list[float] = field(default_factory=list)  # gocoder.check.validate.verdict_features

    @property
    def passed(self) -> bool:
        """Parses, type-checks when asked, and passes the tests when given."""
        return (
            self.syntax_ok
            and self.type_ok is not False
            and (self.tests is None or self.tests.passed)
        )

    @property
    def done_prob(self) -> float:
        return self.decision.probs[DONE] if self.decision is not None else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        dec = self.decision
        d["decision"] = None if dec is None else {"probs": list(dec.probs), "halt": dec.halt}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        d = dict(d)
        d["tests"] = TestResult(**d["tests"]) if d.get("tests") else None
        dec = d.get("decision")
        d["decision"] = Decision(probs=tuple(dec["probs"]), halt=dec["halt"]) if dec else None
        return cls(**d)


def energy(c: Candidate) -> float:
    """The validator's verdict as one number, lower is better: passing 0 < failing
    tests 1 < type errors 2 (+1 with failing tests) < syntax errors 4 + errors/10 < no
    code at all 6; minus half the controller's done probability, which orders
    candidates inside a class and never across one."""
    # an empty answer is never better than code with errors: those can be repaired
    if not c.code.strip():
        return 6.0 - 0.5 * c.done_prob
    e = 0.0 if c.syntax_ok else 4.0 + min(c.errors, 10) / 10
    e += 2.0 if c.syntax_ok and c.type_ok is False else 0.0
    e += 1.0 if c.tests is not None and not c.tests.passed else 0.0
    return e - 0.5 * c.done_prob


@dataclass
class LoopState:
    rec: Record
    iteration: int = 0
    candidates: list[Candidate] = field(default_factory=list)
    best: int | None = None  # index into candidates
    current: int | None = None  # the candidate the next round repairs (the last round's best)
    trace: list[dict] = field(default_factory=list)
    # the code passed, or the controller said done on code that parses, type-checks and passes
    done: bool = False
    premature: int = 0  # "done" said on code that does not parse or fails its tests, overridden


class Sampler(Protocol):
    """What the loop and the tree search ask of a Generator (gocoder/inference/generate.py), which
    imports them: n candidates for a record, each checked, tested and judged."""

    def sample(
        self,
        rec: Record,
        n: int = 1,
        sampling: Sampling | None = None,
        *,
        typecheck: bool = False,
        tests: Callable[[str], TestResult] | None = None,
    ) -> list[Candidate]: ...


def init_state(rec: Record) -> LoopState:
    return LoopState(rec=rec)


def refine_record(rec: Record, prev: Candidate) -> Record:
    """rec with the previous code and its first diagnostic as the refine
    block (the shards' repair rows)."""
    return repair_record(rec, prev.code, prev.diagnostic, syntax=prev.syntax_ok,
                         tests=None if prev.tests is None else prev.tests.passed)
