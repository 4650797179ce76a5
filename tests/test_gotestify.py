"""gocoder/check/gotestify, the offline testify: it has what public Go benchmarks call, and a failing assertion
is reported at the test's line (that line goes into the repair prompt), not at a line of the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gocoder.check.sandbox import TESTIFY_DIR, Limits, run_go

DATA = Path(__file__).parent / "data" / "bench"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "bench"
# the assertions HumanEval-X, HumanEvalPack and testify-style Go suites call, as functions and through
# assert.New(t); `require` is not part of the subset: none of the benchmarks we score imports it
PUBLIC = {"Equal", "NotEqual", "True", "False", "Nil", "NotNil", "Len", "Contains", "ElementsMatch", "InDelta"}
# one failing call of each, with its arguments
FAILING = {"Equal": "1, 2", "NotEqual": "1, 1", "EqualValues": "1, 2", "True": "false", "False": "true",
           "Nil": "1", "NotNil": "nil", "Empty": "[]int{1}", "NotEmpty": "[]int{}", "Len": "[]int{1}, 2",
           "InDelta": "1.0, 2.0, 0.5", "ElementsMatch": "[]int{1}, []int{2}", "Contains": '"abc", "x"',
           "NotContains": '"abc", "b"', "Greater": "1, 2", "GreaterOrEqual": "1, 2", "Less": "2, 1",
           "LessOrEqual": "2, 1", "NoError": 'errors.New("e")', "Error": "nil"}


def exported(kind: str) -> set[str]:
    """Names of gotestify's assertions: package functions (kind "func") or Assertions methods ("method")."""
    text = "".join(p.read_text() for p in (TESTIFY_DIR / "assert").glob("*.go"))
    pat = r"^func ([A-Z]\w*)\(t TestingT" if kind == "func" else r"^func \(a \*Assertions\) ([A-Z]\w*)\("
    return set(re.findall(pat, text, re.M)) - {"New"}


def test_the_assertions_public_benchmarks_call_exist():
    called = set()
    for f in [*DATA.glob("*.jsonl"), *SHARED.glob("*.jsonl")]:
        for line in f.read_text(encoding="utf-8").splitlines():
            called |= set(re.findall(r"\bassert\.([A-Z]\w*)\(", json.loads(line).get("test", "")))
    called -= {"New"}
    assert "Equal" in called and "InDelta" in called  # the benchmark files were read
    assert PUBLIC | called <= exported("func") and PUBLIC | called <= exported("method")
    assert set(FAILING) == exported("func") == exported("method")  # the line test below covers every one


def test_a_failing_assertion_reports_the_tests_line():
    lines, calls = {}, []
    for name, args in sorted(FAILING.items()):
        calls.append(f"func Test{name}(t *testing.T) {{\n\tassert.{name}(t, {args})\n}}\n")
        calls.append(f"func TestNew{name}(t *testing.T) {{\n\ta := assert.New(t)\n\ta.{name}({args})\n}}\n")
    head = 'package main\n\nimport (\n\t"errors"\n\t"testing"\n\n\t"github.com/stretchr/testify/assert"\n)\n\n' \
           "var _ = errors.New\n\n"
    src = head + "\n".join(calls)
    for n, text in enumerate(src.splitlines(), 1):
        m = re.match(r"\t(?:assert|a)\.(\w+)\(", text)
        if m:
            lines.setdefault(m.group(1), []).append(n)
    res = run_go({"main.go": "package main\n\nfunc main() {}\n", "x_test.go": src}, mode="test",
                 limits=Limits(wall_s=60.0, cpu_s=60))
    assert res.status == "fail", res.build_output
    reported = [int(n) for n in re.findall(r"^\s+x_test\.go:(\d+): ", res.stdout, re.M)]
    assert "assertions.go" not in res.stdout and "forward.go" not in res.stdout
    assert sorted(reported) == sorted(n for ns in lines.values() for n in ns)
