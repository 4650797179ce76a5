"""gocoder collect --repo and the engine: records, skips, dedup, resume, decontamination, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest
from conftest import SUM_V1, SUM_V2, UTIL, RepoBuilder, fast_import_repo

from gocoder import GocoderError
from gocoder.collect.decontam import code_hashes, functions, load_blocklist, write_blocklist
from gocoder.collect.runner import collect
from gocoder.config import CollectConfig
from gocoder.records import read_jsonl

CFG = CollectConfig()


def _collect(repo: Path, out: Path, **kw):
    res = collect(CFG, repo=repo, out=out, **kw)
    return res, {r["title"]: r for r in read_jsonl(out)}


def test_repo_records(go_repo: Path, tmp_path: Path) -> None:
    res, recs = _collect(go_repo, tmp_path / "o.jsonl")
    assert list(recs) == [  # mainline order, oldest first; plain commits and non-Go PRs left out
        "Add a Sum helper", "Rename util, drop old", "Document empty input in Sum", "Add Max",
        "Introduce config loading", "Add stats",
    ]
    pr1 = recs["Add a Sum helper"]  # GitHub merge: title and body from the message body
    assert (pr1["pr_number"], pr1["body"], pr1["source"]) == (1, "It sums ints.\nFast.", "git")
    assert pr1["files_changed"] == [{"path": "sum.go", "status": "added", "before": "", "after": SUM_V1}]
    assert pr1["repo"] == str(go_repo.resolve()) and len(pr1["sha"]) == 40
    assert pr1["merged_at"].startswith("2023-11-14T")
    squash = recs["Rename util, drop old"]
    assert (squash["pr_number"], squash["body"]) == (2, "Old code goes.")
    by_path = {f["path"]: f for f in squash["files_changed"]}
    assert by_path["helpers.go"] == {"path": "helpers.go", "status": "renamed", "before": UTIL, "after": UTIL}
    assert by_path["old.go"]["status"] == "deleted" and by_path["old.go"]["after"] == ""
    fix = recs["Document empty input in Sum"]  # default merge of one commit: that commit's message
    assert (fix["pr_number"], fix["body"]) == (None, "The zero case was unclear.")
    assert fix["files_changed"] == [{"path": "sum.go", "status": "modified", "before": SUM_V1, "after": SUM_V2}]
    multi = recs["Add Max"]  # default merge of two commits: first subject, every message in the body
    assert multi["body"] == "Add Max\n\nAdd Min\n\nMirror of Max."
    assert [f["path"] for f in multi["files_changed"]] == ["max.go", "min.go"]
    assert recs["Introduce config loading"]["body"] == "Reads settings from a struct."
    stats = recs["Add stats"]
    assert [f["path"] for f in stats["files_changed"]] == ["stats.go"]
    assert res.skipped["binary"] == 1 and res.skipped["generated"] == 1 and res.skipped["vendored"] == 1
    assert res.skipped["plain-commit"] == 3 and res.skipped["no-go-change"] == 1
    assert res.skipped["non-go"] == 2 and (res.written, res.duplicates) == (6, 0)


def test_all_commits_and_workers_keep_order(go_repo: Path, tmp_path: Path) -> None:
    _, one = _collect(go_repo, tmp_path / "a.jsonl", all_commits=True, workers=1)
    _, four = _collect(go_repo, tmp_path / "b.jsonl", all_commits=True, workers=4)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert "Tweak main" in one and "Initial commit" in one and one["Tweak main"]["pr_number"] is None
    assert list(one) == list(four)


def test_same_change_same_id_and_dedup(go_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    _collect(go_repo, out)
    first = out.read_bytes()
    (tmp_path / "o.jsonl.done").unlink()  # forget progress: every record is seen again
    res, _ = _collect(go_repo, out)
    assert (res.written, res.duplicates) == (0, 6) and out.read_bytes() == first


def test_resume_after_torn_tail(go_repo: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl"
    _collect(go_repo, full)
    lines = full.read_bytes().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_bytes(b"".join(lines[:2]) + lines[2][:50])  # killed while writing record 3
    res, _ = _collect(go_repo, part)
    assert part.read_bytes() == full.read_bytes() and res.written == 4
    full.unlink()  # deleting the output starts over, whatever OUT.done says
    res, _ = _collect(go_repo, full)
    assert full.read_bytes() == part.read_bytes() and res.written == 6


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun(tmp_path: Path) -> None:
    repo = fast_import_repo(tmp_path / "big", 3000)
    ref = tmp_path / "ref.jsonl"
    collect(CFG, repo=repo, out=ref)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-c", "from gocoder.cli import main; main()", "collect", "--repo", str(repo),
           "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > 20_000:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "collect finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = out.read_bytes()
    assert 0 < len(killed) < len(ref.read_bytes())
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == ref.read_bytes()
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == 3000


def test_decontaminate(go_repo: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    # A benchmark whose entry point is Max: its signature is blocked, in any layout.
    row = {"task_id": "T/1", "entry_point": "Max",
           "prompt": "package main\n// Max of two.\nfunc Max (a, b int) int {\n",
           "test": "\nfunc main() {\n\tif Max(1, 2) != 2 { panic(1) }\n}\n", "canonical_solution": None}
    bench.write_text(json.dumps(row) + "\n")
    blocklist = tmp_path / "block.txt"
    assert write_blocklist(bench, blocklist) == 2  # Max's header, the harness main
    assert load_blocklist(blocklist) == load_blocklist(bench)
    res, recs = _collect(go_repo, tmp_path / "o.jsonl", decontaminate=blocklist)
    assert "Add Max" not in recs and len(recs) == 5 and res.skipped["contaminated"] == 1
    assert code_hashes("package x\nfunc Max(a, b int) int { return a }") & load_blocklist(bench)


def test_decontam_splits_functions_past_type_braces_and_func_types() -> None:
    # the splitter once ended a header at `interface{}`'s brace (68 of MBXP's 1878 sources) and read
    # `type F func(int) error` as a function that swallowed the next one
    src = "type F func(int) error\n\nfunc f(x struct{ A string `a:\"{\"`}) interface{} {\n\treturn '}'\n}\n"
    assert list(functions(src)) == [
        ('func f ( x struct { A string `a:"{"` } ) interface { }',
         'func f ( x struct { A string `a:"{"` } ) interface { } { return \'}\' }'),
    ]
    assert list(functions("func open(a int) int {\n\tif a {")) == [("func open ( a int ) int", None)]
    # lists written with the old splitter (../shared/bench/heldout.blocklist) still match: its hashes are
    # kept beside the right ones
    from gocoder.records import content_hash
    src = "func f() interface{} {\n\treturn nil\n}\n"
    old = "func f ( ) interface"
    assert {content_hash("header", old), content_hash("func", old + " { }")} <= code_hashes(src)
    assert content_hash("header", "func f ( ) interface { }") in code_hashes(src)


@pytest.mark.parametrize(
    "text, where",
    [("zz\n", ":1: expected a 16-digit hex hash"), ("# ok\n0123456789abcdef\nnope\n", ":3:")],
)
def test_bad_blocklist(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "b.txt"
    p.write_text(text)
    with pytest.raises(GocoderError, match=f"b.txt{where}"):
        load_blocklist(p)


def test_bad_benchmark_jsonl(go_repo: Path, tmp_path: Path) -> None:
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"prompt": "func f() {}"}\n{oops\n')
    with pytest.raises(GocoderError, match=r"bench.jsonl:2: malformed JSON"):
        collect(CFG, repo=go_repo, out=tmp_path / "o.jsonl", decontaminate=bench)


def test_bad_repos(tmp_path: Path, go_repo: Path) -> None:
    out = tmp_path / "o.jsonl"
    with pytest.raises(GocoderError, match=r"nope: no such repository"):
        collect(CFG, repo=tmp_path / "nope", out=out)
    (tmp_path / "plain").mkdir()
    with pytest.raises(GocoderError, match=r"plain: not a git repository"):
        collect(CFG, repo=tmp_path / "plain", out=out)
    shallow = tmp_path / "shallow"
    git.Repo.clone_from(f"file://{go_repo}", shallow, depth=1)
    with pytest.raises(GocoderError, match=r"shallow: shallow clone"):
        collect(CFG, repo=shallow, out=out)
    nogo = RepoBuilder(tmp_path / "nogo")
    nogo.commit("docs", {"README.md": "hi\n"})
    with pytest.raises(GocoderError, match=r"nogo: no Go files"):
        collect(CFG, repo=nogo.path, out=out)
    empty = RepoBuilder(tmp_path / "empty")
    with pytest.raises(GocoderError, match=r"empty: no commit 'HEAD'"):
        collect(CFG, repo=empty.path, out=out)
    with pytest.raises(GocoderError, match=r"exactly one of --repo, --github, --go-src"):
        collect(CFG, repo=go_repo, github="a/b", out=out)
    assert not out.exists()


def test_missing_blob_is_a_one_line_error(tmp_path: Path) -> None:
    """A snapshot lacking a blob that rename detection must read: git's own reason, no traceback."""
    b = RepoBuilder(tmp_path / "holes")
    body = "package p\n\n" + "".join(f"func F{i}() int {{ return {i} }}\n" for i in range(40))
    b.commit("add a", {"a.go": body})
    b.mv("a.go", "b.go")
    b.commit("Rename a to b (#2)", {"b.go": body + "func G() {}\n"})
    sha = b.repo.git.rev_parse("HEAD~1:a.go")
    (b.path / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    with pytest.raises(GocoderError, match=rf"holes: git log failed: fatal: unable to read {sha}"):
        collect(CFG, repo=b.path, out=tmp_path / "o.jsonl")


def test_missing_before_text_is_a_one_line_error(tmp_path: Path) -> None:
    """A modified file whose old blob is gone: cat-file says so, collect names the repository and object."""
    b = RepoBuilder(tmp_path / "holes")
    b.commit("add a", {"a.go": "package p\n\nfunc F() int { return 1 }\n"})
    b.commit("Change F (#3)", {"a.go": "package p\n\nfunc F() int { return 2 }\n"})
    sha = b.repo.git.rev_parse("HEAD~1:a.go")
    (b.path / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    with pytest.raises(GocoderError, match=rf"holes: git object {sha}: missing"):
        collect(CFG, repo=b.path, out=tmp_path / "o.jsonl")


def test_corrupt_output_is_an_error_and_kept(go_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    _collect(go_repo, out)
    lines = out.read_bytes().splitlines(keepends=True)
    broken = lines[0] + b"{not json}\n" + b"".join(lines[1:])
    out.write_bytes(broken)
    with pytest.raises(GocoderError, match=r"o.jsonl:2: malformed JSON"):
        _collect(go_repo, out)
    assert out.read_bytes() == broken


def test_cli_error_is_one_line_exit_2(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from gocoder.cli import main; main()", "collect", "--repo", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert f"{tmp_path}: not a git repository" in r.stderr


def test_cli_summary_json(go_repo: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "from gocoder.cli import main; main()", "collect", "--repo", str(go_repo),
           "-o", str(tmp_path / "o.jsonl"), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["written"] == 6 and summary["skipped"]["binary"] == 1


ADD = "func Add(a, b int) int {\n\treturn a + b\n}"
GET = "func (t *T) Get() int { return t.v }"


def test_go_src_documented_funcs(tmp_path: Path) -> None:
    root = tmp_path / "src"
    files = {
        "pkg/a.go": f"package a\n\n// Add returns the sum of a and b. It never fails.\n{ADD}\n\n"
                    f"// T holds v.\ntype T struct{{ v int }}\n\n// Get returns the value.\n{GET}\n\nfunc x() {{}}\n",
        "pkg2/a.go": f"package b\n\n// Add returns the sum of a and b. It never fails.\n{ADD}\n",  # a copy
        "pkg/a_gen.go": "// Code generated by hand. DO NOT EDIT.\n\npackage a\n\n// G is generated.\nfunc G() {}\n",
        "pkg/testdata/t.go": "package t\n\n// T is test data.\nfunc T() {}\n",
        "vendor/v/v.go": "package v\n\n// V is vendored.\nfunc V() {}\n",
        "_hidden/h.go": "package h\n\n// H is ignored like the go tool does.\nfunc H() {}\n",
        "pkg/broken.go": "package a\n\n// Broken does not parse.\nfunc Broken( {\n",
        "pkg/README": "not Go\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "pkg/latin1.go").write_bytes(b"package a\n\n// Caf\xe9 is Latin-1.\nfunc Cafe() {}\n")
    out = tmp_path / "o.jsonl"
    res = collect(CFG, go_src=root, out=out, workers=2)
    recs = list(read_jsonl(out))
    assert [r["title"] for r in recs] == ["Add returns the sum of a and b.", "Get returns the value."]
    add, get = recs
    # the body states the signature as the benchmarks' problems do (problem_record's "Signature: ...")
    assert add["body"] == "Add returns the sum of a and b. It never fails.\n\nSignature: func Add(a, b int) int"
    assert add["files_changed"] == [{"path": "pkg/a.go", "status": "added", "before": "", "after": ADD}]
    assert get["files_changed"][0]["after"] == GET
    assert (add["source"], add["repo"], add["pr_number"]) == ("go-src", f"{root.resolve()}/pkg", None)
    assert res.duplicates == 1  # pkg2's Add is the same record
    assert {k: res.skipped[k] for k in ("undocumented", "generated", "testdata", "vendored", "parse-error",
                                        "not-utf8")} == dict.fromkeys(
        ("undocumented", "generated", "testdata", "vendored", "parse-error", "not-utf8"), 1)
    (tmp_path / "nogo").mkdir()
    (tmp_path / "nogo" / "README").write_text("hi\n")
    with pytest.raises(GocoderError, match=r"--go-src .*nogo: no \.go files"):
        collect(CFG, go_src=tmp_path / "nogo", out=out)
    with pytest.raises(GocoderError, match=r"--go-src .*missing: not a folder"):
        collect(CFG, go_src=tmp_path / "missing", out=out)


@pytest.mark.parametrize(
    "message, parents, expected",
    [
        ("Merge branch 'x' into 'main'\n\nAdd thing\n\nDetails.\n\nSee merge request grp/proj!34",
         2, ("Add thing", "Details.", 34)),  # GitLab
        ("Merge branch 'x'\n\nConflicts:\n\tfoo.go\n", 2, ("Merge branch 'x'", "", None)),  # nothing merged in
        ("Release v2 (#9)\n\nNotes.", 2, ("Release v2", "Notes.", 9)),  # custom merge naming its PR
        ("Fix thing (#7)\n\nWhy.", 1, ("Fix thing", "Why.", 7)),  # squash merge
        ("Fix thing\n\nWhy.", 1, (None, "", None)),  # plain commit
    ],
)
def test_pr_messages(go_repo: Path, message: str, parents: int, expected: tuple) -> None:
    from gocoder.collect.gitlog import Commit, GitSource

    src = GitSource(go_repo, CFG)
    try:
        commit = Commit("f" * 40, ["a" * 40] * parents, "2024-01-01T00:00:00Z", message, [])
        assert src._message(commit) == expected
    finally:
        src.close()
