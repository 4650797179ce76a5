"""gocoder/eval/prbench.py's tests score: a commit's own Test functions, run in the sandbox on the answer."""

from __future__ import annotations

import json

import pytest
from conftest import RepoBuilder

from gocoder.check import sandbox
from gocoder.eval import prbench
from gocoder.eval.prbench import (
    build_prbench,
    changed_tests,
    head_module,
    run_tests,
    score_tests,
    summarize,
    tree_at,
)

GOMOD = "module example.com/calc\n\ngo 1.22\n"
V1 = "package calc\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn a + b\n}\n"
NEG = "\n// Neg is -a.\nfunc Neg(a int) int {\n\treturn -a\n}\n"
SUB = "\n// Sub subtracts b from a.\nfunc Sub(a, b int) int {\n\treturn a + b\n}\n"  # wrong, and its test says so
T_ADD = "func TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"Add\")\n\t}\n}\n"
T_NEG = "func TestNeg(t *testing.T) {\n\tif Neg(2) != -2 {\n\t\tt.Fatal(\"Neg\")\n\t}\n}\n"
T_SUB = "func TestSub(t *testing.T) {\n\tif Sub(3, 1) != 2 {\n\t\tt.Fatal(\"Sub\")\n\t}\n}\n"
# a test of the package the commit did not touch, which fails: it must not count against the answer
T_OFF = "func TestNetwork(t *testing.T) {\n\tt.Fatal(\"needs the network\")\n}\n"
HEAD = "package calc\n\nimport \"testing\"\n\n"

needs_sandbox = pytest.mark.skipif(sandbox.isolation()[0] is None, reason="no sandbox isolation here")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    b = RepoBuilder(tmp_path_factory.mktemp("clones") / "calc")
    tests = HEAD + T_ADD + "\n" + T_OFF
    b.commit("Initial commit", {"go.mod": GOMOD, "calc.go": V1, "calc_test.go": tests})
    b.commit("Add Neg for the negation of an int", {"calc.go": V1 + NEG, "calc_test.go": tests + "\n" + T_NEG})
    b.commit("Add Sub to subtract two ints", {"calc.go": V1 + NEG + SUB,
                                              "calc_test.go": tests + "\n" + T_NEG + "\n" + T_SUB})
    b.commit("Add a Zero constant for callers", {"calc.go": V1 + NEG + SUB + "\n// Zero is 0.\nconst Zero = 0\n"})
    return b.path


@pytest.fixture(scope="module")
def problems(clone, tmp_path_factory):
    out = tmp_path_factory.mktemp("pr") / "pr.jsonl"
    build_prbench([clone], out)
    return {json.loads(ln)["description"].split()[1]: json.loads(ln) for ln in out.read_text().splitlines()}


def test_changed_tests_are_the_commits_new_or_edited_test_functions(clone, problems):
    assert changed_tests(clone, problems["Neg"]) == ["TestNeg"]
    assert changed_tests(clone, problems["Sub"]) == ["TestSub"]  # TestNetwork is untouched: never run
    assert changed_tests(clone, problems["a"]) == []
    assert head_module(clone) == "example.com/calc"


@needs_sandbox
@pytest.mark.slow  # four builds of a test binary: a few seconds each with a warm cache
def test_a_right_answer_passes_the_commits_tests_and_a_wrong_one_fails(clone, problems, tmp_path):
    p = problems["Neg"]
    right = score_tests(p, "func Neg(a int) int {\n\treturn 0 - a\n}\n", clone, tmp_path / "trees")
    assert right == {"tests": "ok", "test_funcs": ["TestNeg"], "tests_pass": True, "reference_tests_pass": True,
                     "tests_fail_before": True}  # the parent's file has no Neg: its tests do not build
    wrong = score_tests(p, "func Neg(a int) int {\n\treturn a\n}\n", clone, tmp_path / "trees")
    assert wrong["tests"] == "ok" and not wrong["tests_pass"] and wrong["reference_tests_pass"]
    assert not score_tests(p, "func Neg(a int) string {\n\treturn \"\"\n}\n", clone, tmp_path / "trees")["tests_pass"]


@needs_sandbox
def test_tests_that_fail_at_the_commit_do_not_apply_and_other_commits_have_none(clone, problems, tmp_path):
    assert score_tests(problems["Sub"], SUB, clone, tmp_path / "trees") == {"tests": "at-commit-fail",
                                                                           "test_funcs": ["TestSub"]}
    assert score_tests(problems["a"], "", clone, tmp_path / "trees") == {"tests": "no-test-change"}


@needs_sandbox
@pytest.mark.slow
def test_a_tree_from_before_go_mod_gets_the_module_path_given(clone, problems, tmp_path):
    p = problems["Neg"]
    tree = tree_at(clone, p["sha"], tmp_path / "trees")
    (tree / "go.mod").unlink()
    assert run_tests(tree, "calc.go", p["after"], ["TestNeg"]) == "no-go-mod"
    assert run_tests(tree, "calc.go", p["after"], ["TestNeg"], "example.com/calc") == "ok"
    assert run_tests(tree, "calc.go", p["after"], ["TestNetwork"], "example.com/calc") == "fail"
    assert run_tests(tree, "calc.go", p["before"], ["TestNeg"], "example.com/calc") == "build_error"


def test_summary_rates_tests_over_the_problems_they_apply_to():
    base = {"parses": True, "typechecks": True, "baseline_typechecks": True, "reference_typechecks": True,
            "edit_similarity": 0.5, "exact": False, "related": 0}
    rows = [{**base, "id": "a@1", "tests": "ok", "tests_pass": True, "reference_tests_pass": True,
             "tests_fail_before": True},
            {**base, "id": "a@2", "tests": "ok", "tests_pass": False, "reference_tests_pass": True,
             "tests_fail_before": False},
            {**base, "id": "b@3", "tests": "no-test-change"}, {**base, "id": "b@4", "tests": "at-commit-fail"},
            {**base, "id": "b@5"}]  # a row of a run without tests
    s = summarize(rows, False, 1.0)
    assert s["tests_problems"] == 2 and s["tests_pass"] == 0.5 and s["reference_tests_pass"] == 1.0
    assert s["tests_fail_before"] == 0.5
    assert s["tests_skipped"] == {"no-test-change": 1, "at-commit-fail": 1, "not-run": 1}
    assert summarize(rows[2:], False, 1.0)["tests_pass"] is None


def test_a_one_line_test_function_is_its_own():
    """gofmt keeps `func TestA(t *testing.T) { run(t) }` on one line: a change to the Test after it is that
    Test's, not TestA's (a `^func ...^}` regex read them as one, up to the next line-leading brace)."""
    src = HEAD + "func TestA(t *testing.T) { run(t) }\n\n" + T_ADD + "\nfunc (s suite) TestM(t *testing.T) {}\n"
    got = prbench._test_funcs(src)
    assert got == {"TestA": "func TestA(t *testing.T) { run(t) }", "TestAdd": T_ADD.rstrip("\n")}
