"""The synth-fix benchmark: planted bugs kept when the package's tests catch them, scored by those tests."""

from __future__ import annotations

import json

import pytest

import gocoder.eval.synthfix as synthfix
from gocoder import GocoderError
from gocoder.check.sandbox import Limits
from gocoder.eval.benchmarks import completion_from_code, load_problems, problem_record
from gocoder.eval.benchrun import _visible_runner, score

SUM = ("package mysum\n\n// Sum adds the numbers.\nfunc Sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs {\n"
       "\t\tt += x\n\t}\n\treturn t\n}\n\n// Neg negates x.\nfunc Neg(x int) int {\n\treturn -x\n}\n")  # fmt: skip
EXT_TEST = ('package mysum_test\n\nimport (\n\t"mysum"\n\t"testing"\n)\n\nfunc TestSum(t *testing.T) {\n'
            '\tif mysum.Sum([]int{1, 2}) != 3 {\n\t\tt.Fatal("Sum")\n\t}\n}\n')  # fmt: skip
SUM_FN = SUM[SUM.index("// Sum") : SUM.index("\n\n// Neg")]
NEG_FN = "// Neg negates x.\nfunc Neg(x int) int {\n\treturn -x\n}"


def synth_rec(i, before, after):
    return {"id": f"r{i}", "source": "synth", "repo": "GOROOT/src/mysum", "title": "Fix wrong operator in Sum",
            "body": "An operator in Sum (sum.go) is the wrong one.", "bug_kind": "operator_misuse",
            "files_changed": [{"path": "sum.go", "status": "modified", "before": before, "after": after}]}  # fmt: skip


@pytest.mark.slow
def test_build_keeps_bugs_the_tests_catch_and_bench_scores_them(tmp_path, monkeypatch):
    src = tmp_path / "src"
    (src / "mysum").mkdir(parents=True)
    (src / "mysum" / "sum.go").write_text(SUM)
    (src / "mysum" / "sum_test.go").write_text(EXT_TEST)  # an external test: it must import the copy
    recs = [synth_rec(0, SUM_FN.replace("t += x", "t -= x"), SUM_FN),
            synth_rec(1, NEG_FN.replace("-x", "x"), NEG_FN)]  # Neg has no test: the bug goes unseen
    (tmp_path / "synth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "fix.jsonl"
    counts = synthfix.build(tmp_path / "synth.jsonl", out, shares=(0.0, 0.0, 1.0), src=src,
                            limits=Limits(wall_s=30.0))  # fmt: skip
    assert counts == {"kept": 1, "tests miss the bug": 1}
    # the train split holds no problem: the same records with all repositories in train
    assert synthfix.build(tmp_path / "synth.jsonl", tmp_path / "none.jsonl", shares=(1.0, 0.0, 0.0),
                          src=src) == {"not test split": 2}  # fmt: skip
    monkeypatch.setattr(synthfix, "goroot_src", lambda: src)
    (p,) = load_problems(out, "synth-fix")
    assert p.entry_point == "Sum" and "t -= x" in p.prompt and p.visible() == p
    rec = problem_record(p)
    assert rec.to_dict()["context"] == {"file": "sum.go", "before": p.prompt}
    assert rec.problem.description == "Fix wrong operator in Sum"
    lim = Limits(wall_s=30.0)
    fixed = completion_from_code(p, "func Sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs { t += x }; return t }")
    assert "// Sum adds the numbers." in fixed and score(p, fixed, lim).passed
    assert score(p, completion_from_code(p, "not go at all"), lim).status == "fail"  # the buggy file as it is
    run = _visible_runner(p, lim, True)  # the loop runs the package's tests, and reads which one failed
    assert run(SUM_FN).passed and "--- FAIL: TestSum" in run(SUM_FN.replace("t += x", "t -= x")).output
    bad = json.loads(out.read_text())
    bad["go_version"] = "0.1"
    out.write_text(json.dumps(bad) + "\n")
    with pytest.raises(GocoderError, match="built with Go 0.1"):
        load_problems(out, "synth-fix")


def test_the_cli_builds_with_the_configs_split(tmp_path):
    """`gocoder synthfix` (once bench/synth_fix.py) reads [splits] shares: all in train keeps no problem."""
    from typer.testing import CliRunner

    from gocoder.cli import app

    recs = [synth_rec(0, SUM_FN.replace("t += x", "t -= x"), SUM_FN), synth_rec(1, NEG_FN, NEG_FN)]
    (tmp_path / "synth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    args = ["synthfix", "--synth", str(tmp_path / "synth.jsonl"), "--out", str(tmp_path / "fix.jsonl"), "--json",
            "--set", "splits.shares=[1.0, 0.0, 0.0]"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"not test split": 2}
    assert (tmp_path / "fix.jsonl").read_text() == ""
