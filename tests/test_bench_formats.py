"""The harness on every format it supports, from fixtures written for these tests (tests/data/bench/formats/:
small original problems in each format's shape, never fetched): a right answer passes and a wrong one fails,
with typecheck_first on and off; a problem's exclusion is decided from the problem alone; a program whose
test runs no test or no check does not pass (issue 26)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import gocoder.eval.synthfix as synthfix
from gocoder.check.sandbox import Limits, go_version
from gocoder.config import BenchConfig
from gocoder.eval.benchmarks import FORMATS, Answer, load_problems
from gocoder.eval.benchrun import NO_CHECK, excluded_why, run_benchmark, score, summarize

pytestmark = pytest.mark.slow  # ~40 builds: about 30 s on two busy cores
FIX = Path(__file__).parent / "data" / "bench" / "formats"
ANSWERS = json.loads((FIX / "answers.json").read_text())
LIM = Limits(wall_s=20.0)


@pytest.fixture
def problems(tmp_path, monkeypatch):
    """format -> its one fixture problem; synth-fix's package is read from the fixture's own src folder."""
    monkeypatch.setattr(synthfix, "goroot_src", lambda: FIX / "src")
    out = {}
    for fmt in FORMATS:
        f = tmp_path / f"{fmt}.jsonl"
        f.write_text((FIX / f"{fmt}.jsonl").read_text().replace("GO_VERSION", go_version()))
        (out[fmt],) = load_problems(f, fmt)
    return out


@pytest.mark.parametrize("tc", [True, False], ids=["typecheck_first", "build_only"])
def test_right_answers_pass_and_wrong_ones_fail_in_every_format(problems, tmp_path, tc):
    assert set(ANSWERS) == set(FORMATS)
    comps = {p.id: [ANSWERS[fmt]["right"], ANSWERS[fmt]["wrong"]] for fmt, p in problems.items()}
    s = run_benchmark(list(problems.values()), BenchConfig(typecheck_first=tc, workers=2), out=tmp_path / "o",
                      completions=comps, limits=LIM)
    assert s["excluded"] == [] and s["scored"] == len(FORMATS)
    rows = {json.loads(ln)["id"]: json.loads(ln) for ln in (tmp_path / "o/results.jsonl").read_text().splitlines()}
    for fmt, p in problems.items():
        right, wrong = rows[p.id]["given"]["samples"]
        assert right["status"] == "ok", (fmt, right.get("output"))
        assert wrong["status"] != "ok", fmt
    assert s["given"]["passed"] == len(FORMATS) and s["given"]["parsed"] == s["given"]["parsed_raw"] == 2 * len(FORMATS)


def test_exclusion_is_decided_from_the_problem_not_from_an_answer(problems):
    """HumanEval-X imports math for the test only when the answer uses it: a zero-value body leaves the test
    uncompilable, the reference does not, so the problem is scored, and an answer that leaves math out fails."""
    p = problems["humaneval-x"]
    assert excluded_why(p, LIM) == ""
    assert "never compiles" in excluded_why(dataclasses.replace(p, reference=""), LIM)  # the old rule's verdict
    assert score(p, ANSWERS["humaneval-x"]["wrong"], LIM).status == "build_error"
    # a test that never compiles, whatever the answer, is excluded, in any format
    broken = dataclasses.replace(problems["multipl-e"], test=problems["multipl-e"].test.replace(
        "func Test", "var broken int = nil\n\nfunc Test", 1))
    assert "its test never compiles" in excluded_why(broken, LIM)


def test_a_test_that_runs_no_test_does_not_pass(problems):
    # no Test function (the prompt's imports used, so it builds): the test binary exits 0 having run no test
    p = dataclasses.replace(problems["multipl-e"], test="func helper(t *testing.T) { t.Log(fmt.Sprint(1)) }\n")
    res = score(p, ANSWERS["multipl-e"]["right"], LIM)
    assert res.status == "fail" and NO_CHECK in res.stderr


def test_a_main_that_runs_no_check_does_not_pass(problems):
    p = problems["mbxp"]
    none = dataclasses.replace(p, test=p.test[: p.test.index("func main() {")] + "func main() {\n}\n")
    res = score(none, ANSWERS["mbxp"]["right"], LIM)
    assert res.status == "fail" and "calls no deepCompare" in res.stderr
    # an answer that exits 0 before main's checks end ran none of them to the end
    early = dataclasses.replace(p, prompt=p.prompt.replace('"reflect"\n', '"reflect"\n\t"os"\n'))
    res = score(early, "\tos.Exit(0)\n\treturn 0\n}\n", LIM)
    assert res.status == "fail" and "exited before" in res.stderr
    assert score(early, "\t_ = os.Args\n" + ANSWERS["mbxp"]["right"], LIM).passed  # the mark is not output


def test_summary_reports_raw_and_closed_parse_rates_apart():
    rows = [{"id": "a", "given": {"n": 2, "c": 0, "samples": [{"status": "fail", "parses": True, "parses_raw": False},
                                                                {"status": "fail", "parses": True}]}}]
    s = summarize(rows, BenchConfig(), {}, 1.0, 1)
    assert s["given"]["parsed"] == 2 and s["given"]["parsed_raw"] == 1
    a = Answer("closed", "raw")
    assert a == "closed" and a.raw == "raw"
