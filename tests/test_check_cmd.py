"""`gocoder check` end to end: walking, exit codes, and the four output formats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gocoder.check.files import Finding, Report, render


def gocoder(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gocoder", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "good.go").write_text('package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("é")\n}\n')
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.go").write_text("package pkg\n\nfunc f( {\n}\n")
    (tmp_path / "pkg" / "unused.go").write_text("package pkg\n\nfunc g() {\n\tx := 1\n}\n")
    for skipped in ("vendor", "testdata", ".hidden"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "broken.go").write_text("package broken\nfunc (\n")
    (tmp_path / "notes.txt").write_text("not go")
    return tmp_path


def test_clean_file_exits_0(tree):
    p = gocoder("check", "good.go", cwd=tree)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "1 file checked, 0 findings" in p.stderr


def test_findings_exit_1_in_text_form(tree):
    p = gocoder("check", ".", cwd=tree)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[0].startswith("pkg/bad.go:3:9: ")
    assert all(line.startswith("pkg/bad.go:") for line in lines)  # vendor/, testdata/, .hidden skipped
    assert "3 files checked" in p.stderr


def test_first_error_of_each_line_unless_all_errors(tree):
    # go/parser reports a cascade at the end of this file: several errors on its last line
    (tree / "cascade.go").write_text("package p\n\nfunc f() {\n\tx := []int{1, 2\n\tfor {\n")
    few = gocoder("check", "cascade.go", cwd=tree).stdout.splitlines()
    every = gocoder("check", "cascade.go", "--all-errors", cwd=tree).stdout.splitlines()
    lines = [ln.split(":")[1] for ln in few]
    assert len(lines) == len(set(lines)) and len(few) < len(every)
    assert few[0] == every[0]


def test_all_walks_skipped_folders(tree):
    p = gocoder("check", ".", "--all", "--format", "json", cwd=tree)
    paths = {f["path"] for f in json.loads(p.stdout)["findings"]}
    assert {"vendor/broken.go", "testdata/broken.go", ".hidden/broken.go"} <= paths


def test_typecheck_reports_type_errors_per_package(tree):
    p = gocoder("check", "pkg/unused.go", "good.go", "--typecheck", "--format", "json", cwd=tree)
    doc = json.loads(p.stdout)
    assert p.returncode == 1 and not doc["ok"]
    assert [(f["path"], f["line"], f["rule"]) for f in doc["findings"]] == [("pkg/unused.go", 4, "typecheck")]


def test_github_annotations(tree):
    p = gocoder("check", "pkg/bad.go", "--format", "github", cwd=tree)
    assert p.stdout.splitlines()[0].startswith("::error file=pkg/bad.go,line=3,col=9,title=gocoder syntax::")


def test_github_escapes_properties_and_messages():
    report = Report(files=["a,b:c.go"], findings=[Finding("a,b:c.go", 1, 2, "syntax", "50% bad\nnext")])
    assert render(report, "github") == "::error file=a%2Cb%3Ac.go,line=1,col=2,title=gocoder syntax::50%25 bad%0Anext\n"


def test_sarif_is_2_1_0_with_character_columns():
    src = 'package main\n\nvar s = "日本" +\n'.encode()
    report = Report(files=["x.go"], findings=[Finding("x.go", 3, 17, "syntax", "expected operand")],
                    sources={"x.go": src})  # fmt: skip
    doc = json.loads(render(report, "sarif"))
    assert doc["version"] == "2.1.0" and doc["runs"][0]["columnKind"] == "unicodeCodePoints"
    result = doc["runs"][0]["results"][0]
    assert result["ruleId"] == "syntax" and result["level"] == "error"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 13}  # two 3-byte characters before it


def test_gofmt_findings_on_request(tree):
    (tree / "ugly.go").write_text("package main\nfunc main(){}\n")
    assert gocoder("check", "ugly.go", cwd=tree).returncode == 0
    p = gocoder("check", "ugly.go", "--gofmt", cwd=tree)
    assert p.returncode == 1 and "not gofmt-ed" in p.stdout


def test_fragments_with_kind_auto(tree):
    (tree / "frag.go").write_text("func f() int {\n\treturn 1\n}\n")
    assert gocoder("check", "frag.go", cwd=tree).returncode == 1  # no package clause
    assert gocoder("check", "frag.go", "--kind", "auto", cwd=tree).returncode == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["check", "missing.go"], "missing.go: no such file or folder"),
        (["check", ".", "--format", "xml"], "--format 'xml'"),
        (["check", ".", "--set", "validate.servers=x"], "validate.servers"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tree, args, needle):
    p = gocoder(*args, cwd=tree)
    assert p.returncode == 2
    assert needle in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_typecheck_of_fragments_with_kind_auto(tree):
    # models write code without a package clause: --typecheck must still type-check it
    (tree / "frag.go").write_text("func f() int {\n\treturn \"one\"\n}\n")
    p = gocoder("check", "frag.go", "--kind", "auto", "--typecheck", cwd=tree)
    assert p.returncode == 1 and p.stdout.startswith("frag.go:2:9: cannot use \"one\""), p.stdout


def test_one_finding_per_type_error(tree):
    (tree / "dup.go").write_text("package main\n\nfunc F() {}\n\nfunc F() {}\n\nfunc main() {}\n")
    p = gocoder("check", "dup.go", "--typecheck", cwd=tree)
    assert p.stdout.splitlines() == ["dup.go:5:6: F redeclared in this block (other declaration of F at 3:6)"]


def test_typecheck_resolves_imports_from_the_files_module(tmp_path):
    mod = tmp_path / "mod"
    (mod / "sub").mkdir(parents=True)
    (mod / "go.mod").write_text("module example.com/m\n\ngo 1.21\n")
    (mod / "sub" / "sub.go").write_text("package sub\n\nfunc Twice(n int) int { return 2 * n }\n")
    (mod / "main.go").write_text('package main\n\nimport "example.com/m/sub"\n\nfunc main() { _ = sub.Twice(1) }\n')
    for cwd in (tmp_path, mod):  # from outside the module and from inside it
        p = gocoder("check", str(mod), "--typecheck", cwd=cwd)
        assert p.returncode == 0 and p.stdout == "", (cwd, p.stdout)


def test_asks_gocheck_only_for_what_it_prints(tree):
    """Declaration lists are never printed, so they are never asked for (they cost a third of the time)."""
    from gocoder.check.files import check_paths
    from gocoder.check.validate import get_checker

    asked = []

    class Spy:
        cfg = get_checker().cfg

        def check_many(self, srcs, **opts):
            asked.append(opts)
            return get_checker().check_many(srcs, **opts)

    check_paths([tree / "good.go"], Spy(), gofmt=True)
    assert asked == [{"kind": "file", "gofmt": True, "decls": False}]
