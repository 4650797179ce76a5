"""Benchmark formats, pass@k, and scoring in the sandbox (hand-written fixtures in tests/data/bench)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.check.sandbox import Limits
from gocoder.eval.benchmarks import (
    MBXP_EXCLUDED,
    completion_from_code,
    load_problems,
    problem_record,
    zero_completion,
)
from gocoder.eval.benchrun import mean_pass_at_k, pass_at_k, score
from gocoder.text.serialize import segments

DATA = Path(__file__).parent / "data" / "bench"
MBXP = Path(__file__).resolve().parents[2] / "shared" / "bench" / "mbxp_go.jsonl"
LIM = Limits(wall_s=5.0)
needs_mbxp = pytest.mark.skipif(not MBXP.exists(), reason="the shared MBXP file is not here")


def test_loaders_normalize_every_format():
    mb = load_problems(DATA / "mbxp.jsonl", "mbxp")
    assert [p.id for p in mb] == ["MBGP/9001", "MBGP/9002"] and mb[0].entry_point == "triple" and mb[0].mode == "run"
    mp = load_problems(DATA / "multiple.jsonl", "multipl-e")
    assert mp[0].entry_point == "add_one" and mp[0].mode == "test" and mp[0].description.startswith("Add one to x.")
    hx = load_problems(DATA / "humaneval_x.jsonl", "humaneval-x")
    assert hx[1].entry_point == "Upper" and "import" not in hx[1].prompt  # the harness moves imports to the setup
    hp = load_problems(DATA / "humanevalpack.jsonl", "humanevalpack", task="fix")
    assert hp[0].description == "Fix bugs in Clamp." and "if x < hi" in hp[0].buggy


def test_loader_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "b.jsonl"
    bad.write_text(json.dumps({"task_id": "MBGP/1", "entry_point": "f", "prompt": "func f() {\n"}) + "\n")
    with pytest.raises(GocoderError, match=r"b.jsonl:1: not a mbxp record: missing field 'test'"):
        load_problems(bad, "mbxp")
    with pytest.raises(GocoderError, match="--format 'apps'"):
        load_problems(bad, "apps")
    with pytest.raises(GocoderError, match="--task fix: only humanevalpack"):
        load_problems(DATA / "mbxp.jsonl", "mbxp", task="fix")


@needs_mbxp
def test_mbxp_file_has_its_eleven_excluded_harnesses():
    ps = load_problems(MBXP, "mbxp")
    assert len(ps) == 939 and {p.id for p in ps if p.excluded} == MBXP_EXCLUDED and len(MBXP_EXCLUDED) == 11


def test_pass_at_k_matches_hand_computations():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # 0.7
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(10, 0, 10) == 0.0 and pass_at_k(4, 3, 2) == 1.0
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)  # large n: no overflow, exact
    assert mean_pass_at_k([(2, 1), (2, 0)], (1, 2, 10)) == {"pass@1": 0.25, "pass@2": 0.5}
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_completion_from_code_takes_the_body_and_helpers():
    (p,) = [q for q in load_problems(DATA / "mbxp.jsonl", "mbxp") if q.entry_point == "first_word"]
    code = ("package main\n\nfunc helper(x interface{}) struct{ a int } { return struct{ a int }{} }\n\n"
            "func first_word(s string) string {\n\treturn split(s)[0]\n}\n\nfunc split(s string) []string {\n"
            "\treturn []string{s}\n}\n\nfunc main() {}\n")  # fmt: skip
    comp = completion_from_code(p, code)
    assert comp.startswith("\n\treturn split(s)[0]\n}\n") and "func split(s string)" in comp
    assert "func helper" in comp and "func main" not in comp
    assert completion_from_code(p, "return s") == "return s\n}\n"  # a bare body is closed
    assert completion_from_code(p, "\treturn s\n}") == "\treturn s\n}\n"  # already closed
    # one function under another name: its body answers the prompt's signature
    assert completion_from_code(p, "func firstWord(s string) string {\n\treturn s\n}") == "\n\treturn s\n}\n"
    # two functions, neither the entry point: the one no other calls answers, the other is its helper
    words = "func words(s string) []string {\n\treturn []string{s}\n}\n"
    two = words + "\nfunc fw(s string) string {\n\treturn words(s)[0]\n}\n"
    assert completion_from_code(p, two) == "\n\treturn words(s)[0]\n}\n\n" + words


def test_problem_record_serializes_for_both_tasks():
    p = load_problems(DATA / "humanevalpack.jsonl", "humanevalpack", task="fix")[0]
    rec = problem_record(p, "fix")
    assert rec.context.before.endswith("if x < hi {\n        return hi\n    }\n    return x\n}\n")
    assert "<PROBLEM>Fix bugs in Clamp." in segments(rec, solution=False)["prompt"]
    q = load_problems(DATA / "mbxp.jsonl", "mbxp")[0]
    rec = problem_record(q)
    assert rec.problem.description == "Write a function to triple a number."
    assert rec.problem.details == "Signature: func triple (n int) int"
    assert "func triple" not in rec.context.before
    with pytest.raises(GocoderError, match="needs a buggy solution"):
        problem_record(q, "fix")


@pytest.mark.slow
@needs_mbxp
def test_real_mbxp_problems_pass_and_fail_in_the_sandbox():
    ps = {p.id: p for p in load_problems(MBXP, "mbxp")}
    cases = {  # my own solutions to three real problems, and a wrong variant of each
        "MBGP/3": ("func is_not_prime(n int) bool {\n\tfor i := 2; i <= int(math.Sqrt(float64(n))); i++ {\n"
                   "\t\tif n%i == 0 {\n\t\t\treturn true\n\t\t}\n\t}\n\treturn false\n}\n",
                   "_ = math.Pi\nreturn n > 1"),
        "MBGP/17": ("func square_perimeter(a int) int {\n\treturn 4 * a\n}\n", "return a * a"),
        "MBGP/58": ("func opposite_Signs(x int, y int) bool {\n\treturn (x ^ y) < 0\n}\n", "return x < y"),
    }  # fmt: skip
    for tid, (good, bad) in cases.items():
        res = score(ps[tid], completion_from_code(ps[tid], good), LIM)
        assert res.status == "ok", (tid, res.build_output, res.stderr)
        wrong = score(ps[tid], completion_from_code(ps[tid], bad), LIM)  # a body: closed by completion_from_code
        assert wrong.status == "fail" and "failed to pass" in wrong.stderr, (tid, wrong)


@pytest.mark.slow
@needs_mbxp
def test_every_excluded_mbxp_harness_fails_to_compile():
    for p in load_problems(MBXP, "mbxp"):
        if p.excluded:
            assert score(p, zero_completion(p), LIM).status == "build_error", p.id


@pytest.mark.slow
def test_go_test_formats_with_the_offline_testify():
    hx = load_problems(DATA / "humaneval_x.jsonl", "humaneval-x")
    good = "    s := 0\n    for _, x := range xs {\n        s += x * x\n    }\n    return s\n}\n"
    assert score(hx[0], good, LIM).passed
    res = score(hx[0], "    return len(xs)\n}\n", LIM)
    assert res.status == "fail" and "Not equal" in res.stdout and "expected: 5" in res.stdout
    # the harness imports a helper package the completion uses but the setup lacks (strings here)
    body = good.replace("s := 0", 's := len(strings.TrimSpace(""))')
    assert score(hx[0], body, LIM).passed
    assert score(hx[1], "    return strings.ToUpper(s)\n}\n", LIM).passed
    hp = load_problems(DATA / "humanevalpack.jsonl", "humanevalpack", task="fix")
    raw = [json.loads(line) for line in (DATA / "humanevalpack.jsonl").read_text().splitlines()]
    for p, r in zip(hp, raw, strict=True):
        assert score(p, r["canonical_solution"], LIM).passed, p.id
        assert score(p, r["buggy_solution"], LIM).status == "fail", p.id
    mp = load_problems(DATA / "multiple.jsonl", "multipl-e")
    assert score(mp[0], "    return x + 1\n}\n", LIM).passed
    assert score(mp[1], "    return 0\n}\n", LIM).status == "fail"


@pytest.mark.slow
def test_bench_cli_scores_completions_and_resumes(tmp_path):
    from gocoder.cli import app

    comps = tmp_path / "c.jsonl"
    rows = [{"task_id": "MBGP/9001", "completion": "\treturn 3 * n\n}\n"},
            {"task_id": "MBGP/9001", "completion": "\treturn n\n}\n"},
            {"task_id": "MBGP/9002", "completion": "\treturn s[:2]\n}\n"},
            {"task_id": "MBGP/9002", "completion": "\treturn s +\n}\n"}]  # fmt: skip
    comps.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["bench", "--file", str(DATA / "mbxp.jsonl"), "--format", "mbxp", "--completions", str(comps),
            "--k", "1,2", "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["given"]["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0} and "greedy" not in s
    assert s["given"]["status_counts"] == {"build_error": 1, "ok": 2, "fail": 1}
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert again["given"] == s["given"] and again["seconds_per_problem"] is None  # nothing re-run
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2
    comps.write_text(json.dumps({"task_id": "MBGP/1", "completion": "}"}) + "\n")
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code != 0 and "task ids not in" in str(bad.exception)
