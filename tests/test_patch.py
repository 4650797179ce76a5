"""`gocoder generate --context FILE [--tests PATH]`: the answer as a change to FILE, judged by its tests."""

from __future__ import annotations

import json
import subprocess

import pytest
from typer.testing import CliRunner

import gocoder.inference.generate as generate
from gocoder import GocoderError
from gocoder.inference.generate import Result
from gocoder.inference.patch import PackageTests, apply_code, gofmt, unified_diff

SUM = ("package sum\n\nimport \"fmt\"\n\n// Sum adds the numbers.\nfunc Sum(xs []int) int {\n\tt := 0\n"
       "\tfor i := 1; i < len(xs); i++ {\n\t\tt += xs[i]\n\t}\n\treturn t\n}\n\nvar _ = fmt.Sprint\n")  # fmt: skip
FIXED = "func Sum(xs []int) int {\n  t := 0\n  for _, x := range xs { t += x }\n  return t\n}\n"
TESTS = ("package sum\n\nimport \"testing\"\n\nfunc TestSum(t *testing.T) {\n\tif Sum([]int{1, 2}) != 3 {\n"
         "\t\tt.Fatal(\"Sum([1 2]) != 3\")\n\t}\n}\n\nfunc TestEmpty(t *testing.T) {\n\tif Sum(nil) != 0 {\n"
         "\t\tt.Fatal(\"Sum(nil) != 0\")\n\t}\n}\n")  # fmt: skip


def git_repo(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True)
    return tmp_path


def test_code_goes_into_the_file_gofmtd():
    new = gofmt(apply_code(SUM, FIXED + "\nfunc Mean(xs []int) float64 {\n\treturn math.NaN()\n}\n"))
    assert "// Sum adds the numbers.\nfunc Sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs {\n" in new
    assert new.count("func Sum(") == 1 and new.endswith("func Mean(xs []int) float64 {\n\treturn math.NaN()\n}\n")
    up = 'package sum\n\nimport "strings"\n\nfunc Up(s string) string {\n\treturn strings.ToUpper(s)\n}\n'
    withimp = apply_code(SUM, up)
    assert 'import "strings"' not in withimp and '\t"strings"\n' in withimp  # into the file's imports
    with pytest.raises(GocoderError, match="no Go declarations"):
        apply_code(SUM, "return 1")
    with pytest.raises(GocoderError, match="line 1: the context file does not parse"):
        apply_code("package (", FIXED)


def test_diff_applies_with_git_apply(tmp_path):
    repo = git_repo(tmp_path, {"sum.go": SUM.rstrip("\n")})  # no newline at the end: git's marker
    old = (repo / "sum.go").read_text()
    new = gofmt(apply_code(old, FIXED))
    (repo / "fix.patch").write_text(unified_diff("sum.go", old, new))
    subprocess.run(["git", "apply", "--check", "fix.patch"], cwd=repo, check=True)
    subprocess.run(["git", "apply", "fix.patch"], cwd=repo, check=True)
    assert (repo / "sum.go").read_text() == new and unified_diff("sum.go", new, new) == ""


def fake_loop(code, calls=None, repos=None):
    def run(cfg, pr_desc, context=None, checkpoint=None, tests=None, repo=None, progress=None, retrieval=None):
        if repos is not None:
            repos.append(repo)
        if calls is not None:
            calls.append([tests(c).passed for c in (SUM, FIXED)] if tests else None)
        return Result(code, [], 1, True, None, None, True, [])

    return run


def test_generate_cli_prints_a_diff_git_applies_or_writes_the_file(tmp_path, monkeypatch):
    from gocoder.cli import app

    repo = git_repo(tmp_path, {"sum.go": SUM})
    monkeypatch.chdir(repo)
    repos = []
    monkeypatch.setattr(generate, "generate_for_pr", fake_loop(FIXED, repos=repos))
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Fix off-by-one in Sum", "--context", "sum.go"])
    assert r.exit_code == 0, r.output
    assert repos == [repo.resolve()]  # retrieval from the git repository holding --context, by default
    CliRunner().invoke(app, ["generate", "--pr-desc", "Fix Sum", "--context", "sum.go", "--no-repo"])
    assert repos[-1] is None
    assert r.stdout.startswith("--- a/sum.go\n+++ b/sum.go\n") and "-\tfor i := 1;" in r.stdout
    (repo / "fix.patch").write_text(r.stdout)
    subprocess.run(["git", "apply", "fix.patch"], cwd=repo, check=True)
    assert "range xs" in (repo / "sum.go").read_text()
    (repo / "sum.go").write_text(SUM)
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Fix Sum", "--context", "sum.go", "--write"])
    assert r.exit_code == 0 and r.stdout == "" and (repo / "sum.go").read_text() == gofmt(apply_code(SUM, FIXED))
    monkeypatch.setattr(generate, "generate_for_pr", fake_loop("return 1"))
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Fix Sum", "--context", "sum.go", "--json"])
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["diff"] == "" and "no Go declarations" in out["error"]
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Fix Sum", "--tests", "."])
    assert r.exit_code != 0 and "need --context" in str(r.exception)


@pytest.mark.slow
def test_package_tests_judge_the_candidates_and_name_what_passes(tmp_path, monkeypatch):
    from gocoder.cli import app

    git_repo(tmp_path, {"sum.go": SUM, "sum_test.go": TESTS})
    pkg = PackageTests(tmp_path / "sum.go", tmp_path)
    assert pkg.tests == ["TestEmpty", "TestSum"]
    bad = pkg.run(SUM)
    assert bad.status == "fail" and bad.failed == ["TestSum"] and bad.passed == ["TestEmpty"]
    assert "Sum([1 2]) != 3" in bad.output
    broken = pkg.run(SUM.replace("return t", "return u"))
    assert broken.status == "build_error" and broken.output.startswith("compile error: ./sum.go:11:")
    calls = []
    monkeypatch.setattr(generate, "generate_for_pr", fake_loop(FIXED, calls))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Fix Sum", "--context", "sum.go", "--tests", "."])
    assert r.exit_code == 0, r.output
    assert calls == [[False, True]]  # the loop's callback: the buggy file fails, the fix passes
    assert "tests: 2 of 2 pass (ok); passing: TestEmpty, TestSum" in r.stderr
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "x", "--context", "sum.go", "--tests", "/nonexistent"])
    assert r.exit_code != 0 and "no such file or folder" in str(r.exception)
