"""Import fixing (gocheck's op imports) where it is used: bench's answer programs and generate's output."""

from __future__ import annotations

import dataclasses

from gocoder.check.sandbox import Limits
from gocoder.eval.benchmarks import Problem
from gocoder.eval.benchrun import excluded_why, score

LIM = Limits(wall_s=10.0)
# an MBXP-shaped problem: the prompt imports fmt, which the answer never uses, and the answer uses strings,
# which nothing imports: right but for its imports, as 79 + 33 of the shipped model's MBXP failures were
PROMPT = 'package main\n\nimport (\n\t"fmt"\n)\n\n// Shout upper-cases s.\nfunc Shout(s string) string {\n'
DEEP = "\nfunc deepCompare(a, b interface{}) bool { return a == b }\n"
TEST = DEEP + ('\nfunc main() {\n\tactual_1 := Shout("ab")\n\texpected_1 := "AB"\n'
               '\tif !deepCompare(actual_1, expected_1) {\n\t\tpanic("wrong")\n\t}\n}\n')
ANSWER = "\treturn strings.ToUpper(s)\n}\n"


def problem(fix: bool) -> Problem:
    return Problem(id="t/1", format="mbxp", prompt=PROMPT, entry_point="Shout", description="Shout",
                   test=TEST, fix_imports=fix)


def test_an_answer_right_but_for_its_imports_builds_and_passes_after_fixing():
    raw = score(problem(False), ANSWER, LIM)
    assert raw.status == "build_error" and "strings" in raw.build_output
    fixed = problem(True)
    (src,) = fixed.program(ANSWER).values()
    assert '"strings"' in src and '"fmt"' not in src
    assert src.endswith(TEST)  # the harness's own lines are untouched (no gofmt), so positions still map
    assert score(fixed, ANSWER, LIM).status == "ok"
    assert score(fixed, ANSWER, LIM, typecheck_first=True).status == "ok"


def test_fixing_keeps_the_broken_harness_rule_working():
    broken = dataclasses.replace(problem(True), test=DEEP + "\nfunc main() {\n\tvar x int = nil\n"
                                 "\tif !deepCompare(x, 0) {\n\t\tpanic(1)\n\t}\n}\n")
    assert excluded_why(broken, LIM).startswith("its test never compiles")
    assert excluded_why(problem(True), LIM) == ""


BEFORE = ('package sum\n\nimport "sort"\n\n// Top is the largest.\n'
          'func Top(xs []int) int {\n\tsort.Ints(xs)\n\treturn xs[len(xs)-1]\n}\n')


def test_a_change_put_into_a_file_gets_its_imports_fixed():
    from gocoder.inference.patch import put_in

    after = put_in(BEFORE, "func Top(xs []int) int {\n  return slices.Max(xs)\n}\n")
    assert '"slices"' in after and '"sort"' not in after and "\treturn slices.Max(xs)" in after


def test_generate_hands_over_its_code_with_imports_fixed(monkeypatch):
    import gocoder.inference.generate as g
    from gocoder.config import GenerateConfig

    raw = 'import "fmt"\n\nfunc Up(s string) string {\n  return strings.ToUpper(s)\n}\n'
    monkeypatch.setattr(g.Generator, "load", classmethod(lambda cls, *a, **k: None))
    monkeypatch.setattr(g, "solve", lambda *a, **k: g.Result(raw, [], 1, True, None, None, True, []))
    res = g.generate_for_pr(GenerateConfig(), "Upper-case a string")
    assert res.code == 'import "strings"\n\nfunc Up(s string) string {\n\treturn strings.ToUpper(s)\n}\n'
