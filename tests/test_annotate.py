"""gocoder annotate: raw records to hierarchical plans; splits; resume; bad input; a real git history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RepoBuilder
from rich.console import Console

from gocoder import GocoderError
from gocoder.check.validate import get_checker
from gocoder.collect.annotate import annotate
from gocoder.collect.runner import collect
from gocoder.config import AnnotateConfig, CollectConfig
from gocoder.records import content_hash, read_jsonl
from gocoder.splits import SPLITS, parse_shares, record_split, split_of
from gocoder.text.serialize import parse, serialize, serialized_fields

QUIET = Console(stderr=True, quiet=True)
V1 = "package srv\n\n// Server serves.\ntype Server struct{}\n\nfunc (s *Server) Handle() int {\n\treturn 1\n}\n"
V2 = (V1.replace("return 1", "return 2") + "\n// Close stops it.\nfunc (s *Server) Close() error { return nil }\n"
      + "\nvar (\n\t// Max is the most.\n\tMax = 3\n)\n")  # fmt: skip


def raw(title: str, before: str, after: str, repo: str = "r", body: str = "", path: str = "srv/srv.go", **kw):
    files = [{"path": path, "status": "modified" if before and after else "added" if after else "deleted",
              "before": before, "after": after}]  # fmt: skip
    return {"id": content_hash(title, body, before, after, repo), "source": "git", "repo": repo, "pr_number": 1,
            "sha": None, "merged_at": None, "title": title, "body": body, "files_changed": files, **kw}  # fmt: skip


def write(path: Path, recs: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def run(inp: Path, out: Path, split: str | None = None, **kw):
    return annotate(AnnotateConfig(**kw), inp, out, shares=split or (0.9, 0.05, 0.05), console=QUIET)


def all_out(out: Path) -> dict[str, dict]:
    # a run stopped by bad input has only the splits it wrote to (a writer makes its file with its first record)
    return {r["id"]: r for s in SPLITS if (out / f"{s}.jsonl").exists() for r in read_jsonl(out / f"{s}.jsonl")}


def test_record_shape(tmp_path: Path) -> None:
    rec = raw("fix(srv): Handle returns 2", V1, V2, body="Handle must return 2. Close is new.")
    res = run(write(tmp_path / "in.jsonl", [rec]), tmp_path / "h", split="1,0,0")
    (out,) = all_out(tmp_path / "h").values()
    assert res.written == {"train": 1} and out["split"] == "train" and out["id"] == rec["id"]
    assert out["problem"] == {"description": rec["title"], "details": rec["body"]}
    assert out["context"] == {"file": "srv/srv.go", "before": V1}
    assert out["plan"]["intent"] == "FIX"
    assert out["plan"]["steps"] == [
        {"intent": "FIX", "target": "method:Server.Handle@srv/srv.go", "description": "Handle returns 2; 1 -> 2"},
        {"intent": "ADD", "target": "method:Server.Close@srv/srv.go",
         "description": "Close is new; new func (s *Server) Close() error"},
        {"intent": "ADD", "target": "var:Max@srv/srv.go", "description": "new Max = 3"},
    ]  # fmt: skip
    code = out["solution"]["code"]
    assert "// Close stops it.\nfunc (s *Server) Close()" in code and "// Max is the most.\nvar Max = 3" in code
    assert get_checker().check(code, kind="decls").ok  # the solution parses on its own
    assert parse(serialize(out)) == serialized_fields(out)  # kind:name@file survives the training text
    assert out["solution"]["validation"] == {"syntax": True, "tests": None}


def test_syntax_verdict_skips_and_sources(tmp_path: Path) -> None:
    broken = raw("fix: half done", V1, V1.replace("return 1", "return (1"))
    nothing = raw("chore: imports", V1, V1.replace("package srv\n", "package srv\n\nimport _ \"fmt\"\n"))
    gosrc = raw("Sum adds numbers.", "", "func Sum(a, b int) int { return a + b }", source="go-src")
    synth = raw("Sum is off by one", "func Sum(n int) int { return n }", "func Sum(n int) int { return n + 1 }",
                bug_kind="off_by_one")  # fmt: skip
    res = run(write(tmp_path / "in.jsonl", [broken, nothing, gosrc, synth]), tmp_path / "h")
    out = all_out(tmp_path / "h")
    assert out[broken["id"]]["solution"]["validation"]["syntax"] is False
    assert res.skipped == {"no-declaration-change": 1} and nothing["id"] not in out
    assert out[gosrc["id"]]["plan"]["steps"][0]["target"] == "func:Sum@srv/srv.go"
    assert out[gosrc["id"]]["plan"]["intent"] == "ADD"
    assert out[synth["id"]]["plan"]["intent"] == "FIX" and out[synth["id"]]["bug_kind"] == "off_by_one"


def test_splits_by_package(tmp_path: Path) -> None:
    recs = [raw(f"fix {i}", V1, V1.replace("return 1", f"return {i + 2}"), repo=f"repo{i % 40}") for i in range(200)]
    run(write(tmp_path / "in.jsonl", recs), tmp_path / "h", split="0.5,0.25,0.25")
    out = all_out(tmp_path / "h")
    assert len(out) == 200
    where: dict[str, set[str]] = {}
    for r in out.values():
        where.setdefault(r["repo"], set()).add(r["split"])
    assert all(len(s) == 1 for s in where.values())  # no package (here one a repository) in two splits
    assert {s for (s,) in where.values()} == set(SPLITS)
    # Deterministic, and independent of the other packages in the input: the key is REPO/DIR.
    assert all(r["split"] == split_of(f"{r['repo']}/srv", (0.5, 0.25, 0.25)) for r in out.values())
    counts = [sum(split_of(f"owner/r{i}", (0.9, 0.05, 0.05)) == s for i in range(4000)) for s in SPLITS]
    assert 3500 < counts[0] < 3700 and 100 < counts[1] < 300 and 100 < counts[2] < 300
    assert {split_of(f"r{i}", (0, 0, 1)) for i in range(50)} == {"test"}


def test_empty_splits_are_a_warning_with_the_fix(tmp_path: Path) -> None:
    res = run(write(tmp_path / "in.jsonl", [raw("fix: x", V1, V2, repo="only")]), tmp_path / "h", split="0.9,0.05,0.05")
    full = split_of("only/srv", (0.9, 0.05, 0.05))
    empty = [s for s in SPLITS if s != full]
    assert [w.split(" is empty")[0] for w in res.warnings] == [str(tmp_path / "h" / f"{s}.jsonl") for s in empty]
    assert all("more packages" in w and "--split" in w for w in res.warnings)
    assert run(tmp_path / "in.jsonl", tmp_path / "h2", split="0,1,0").warnings == []  # a split with no share


@pytest.mark.parametrize("bad", ["0.9,0.1", "a,b,c", "0.5,0.5,0.5", "-0.1,0.6,0.5"])
def test_bad_split(bad: str) -> None:
    with pytest.raises(GocoderError, match="--split"):
        parse_shares(bad, "--split")


def test_a_record_of_several_packages_goes_to_the_most_held_out() -> None:
    """A change to a train package and a test package is a test record: held-out code never reaches train."""
    shares = (0.5, 0.25, 0.25)
    pkgs = {split_of(f"github.com/o/n/p{i}", shares): f"p{i}" for i in range(40)}
    rec = raw("fix both", V1, V2, repo="o/n", path=f"{pkgs['train']}/a.go")
    rec["files_changed"].append(dict(rec["files_changed"][0], path=f"{pkgs['test']}/b.go"))
    assert record_split(rec, shares) == "test"
    rec["files_changed"][1]["path"] = f"{pkgs['valid']}/b.go"
    assert record_split(rec, shares) == "valid"


def test_resume_and_torn_tail(tmp_path: Path) -> None:
    recs = [raw(f"fix {i}", V1, V1.replace("return 1", f"return {i + 2}"), repo=f"r{i}") for i in range(30)]
    inp = write(tmp_path / "in.jsonl", recs)
    run(inp, tmp_path / "a", batch=4)
    first = {s: (tmp_path / "a" / f"{s}.jsonl").read_bytes() for s in SPLITS}
    again = run(inp, tmp_path / "a", batch=4)
    assert sum(again.written.values()) == 0 and again.resumed == 30
    train = tmp_path / "a" / "train.jsonl"
    train.write_bytes(first["train"][:-15])  # killed in the middle of the last record
    again = run(inp, tmp_path / "a", batch=4)
    assert sum(again.written.values()) == 1
    assert {s: (tmp_path / "a" / f"{s}.jsonl").read_bytes() for s in SPLITS} == first


def test_bad_input_names_file_and_line_and_keeps_output(tmp_path: Path) -> None:
    good = [raw(f"fix {i}", V1, V1.replace("return 1", f"return {i + 2}")) for i in range(3)]
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(good[0]) + "\n\n" + json.dumps(good[1]) + "\n{oops\n" + json.dumps(good[2]) + "\n")
    with pytest.raises(GocoderError, match=r"in\.jsonl:4: malformed JSON"):
        run(inp, tmp_path / "h")
    assert len(all_out(tmp_path / "h")) == 2  # what came before the bad line is written, whole
    inp.write_bytes(json.dumps(good[0]).encode() + b"\n\xff\xfe\n")
    with pytest.raises(GocoderError, match=r"in\.jsonl:2: not UTF-8"):
        run(inp, tmp_path / "h2")
    write(inp, [{**good[0], "files_changed": [{"path": "a.go"}]}])
    with pytest.raises(GocoderError, match=r"in\.jsonl:1: not a raw PR record: files_changed\[0\]"):
        run(inp, tmp_path / "h3")
    with pytest.raises(GocoderError, match="no such file"):
        run(tmp_path / "missing", tmp_path / "h4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GocoderError, match="no .jsonl files"):
        run(tmp_path / "empty", tmp_path / "h5")


def test_git_history_end_to_end(tmp_path: Path) -> None:
    """collect --repo then annotate: squash merges, a rename, a deletion, binary and non-Go files."""
    b = RepoBuilder(tmp_path / "repo")
    b.commit("feat: add server (#1)", {"srv/srv.go": V1, "README.md": "hi\n"})
    b.commit("fix(srv): Handle returns 2 (#2)", {"srv/srv.go": V2, "logo.png": b"\x89PNG\0\0\x01"})
    b.mv("srv/srv.go", "srv/server.go")
    b.commit("refactor: rename srv.go (#3)", {"srv/server.go": V2.replace("struct{}", "struct{ n int }")})
    b.commit("chore: drop the server (#4)", {"srv/server.go": None, "srv/doc.go": "// Package srv.\npackage srv\n"})
    collect(CollectConfig(), repo=b.path, out=tmp_path / "raw" / "git.jsonl", console=QUIET)
    run(tmp_path / "raw", tmp_path / "h")
    out = sorted(all_out(tmp_path / "h").values(), key=lambda r: r["pr_number"])
    plans = [(r["pr_number"], r["plan"]["intent"], sorted(s["target"] for s in r["plan"]["steps"])) for r in out]
    a, b = "@srv/srv.go", "@srv/server.go"  # targets name their file; #3 renamed it
    assert plans == [
        (1, "ADD", ["method:Server.Handle" + a, "struct:Server" + a]),
        (2, "FIX", ["method:Server.Close" + a, "method:Server.Handle" + a, "var:Max" + a]),
        (3, "REFACTOR", ["struct:Server" + b]),
        (4, "REMOVE", ["method:Server.Close" + b, "method:Server.Handle" + b, "struct:Server" + b, "var:Max" + b]),
    ]
    assert out[3]["plan"]["steps"][0]["intent"] == "REMOVE"
    assert len({r["split"] for r in out}) == 1  # one repository, one split


def test_records_past_the_budget_are_split_by_file_or_dropped(tmp_path: Path) -> None:
    def big(name: str, n: int) -> str:  # a function of about 13*n bytes
        lines = "".join(f"\tx{i} := {i}\n" for i in range(n))
        return f"package srv\n\nfunc {name}() int {{\n{lines}\treturn 0\n}}\n"

    two = raw("feat: two files", "", big("A", 40), path="srv/a.go")
    two["files_changed"].append({"path": "srv/b.go", "status": "added", "before": "", "after": big("B", 40)})
    one = raw("feat: one huge file", "", big("C", 200), path="srv/c.go")
    small = raw("fix: small", V1, V2)
    inp = write(tmp_path / "in.jsonl", [two, one, small])
    res = run(inp, tmp_path / "h", split="1,0,0", max_plan_bytes=700)
    out = all_out(tmp_path / "h")
    assert res.split == {"records": 1, "parts": 2} and res.skipped == {"over-budget": 1}
    assert sorted(out) == sorted([f"{two['id']}@srv/a.go", f"{two['id']}@srv/b.go", small["id"]])
    part = out[f"{two['id']}@srv/b.go"]
    assert part["context"]["file"] == "srv/b.go" and [s["target"] for s in part["plan"]["steps"]] == ["func:B@srv/b.go"]
    assert "func B()" in part["solution"]["code"] and "func A()" not in part["solution"]["code"]
    again = run(inp, tmp_path / "h", split="1,0,0", max_plan_bytes=700)  # a rerun redoes none of them
    assert sum(again.written.values()) == 0 and again.resumed == 3
    assert sum(run(inp, tmp_path / "h2", max_plan_bytes=0).written.values()) == 3  # 0: no budget


def test_cli(tmp_path: Path) -> None:
    write(tmp_path / "in.jsonl", [raw("fix: x", V1, V2)])
    base = [sys.executable, "-m", "gocoder", "annotate", "--input", str(tmp_path / "in.jsonl"), "--out"]
    p = subprocess.run([*base, str(tmp_path / "h"), "--split", "0,1,0", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["written"] == {"valid": 1}
    p = subprocess.run([*base, str(tmp_path / "h3"), "--split", "0.5,0.5,0"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr.count("warning: ") == 1 and "is empty" in p.stderr
    # stderr is a pipe here: progress comes as plain lines, and the long warning stays one line
    lines = p.stderr.splitlines()
    assert any(ln.startswith("annotate: 1/1 (100%) in ") for ln in lines), p.stderr
    assert any(ln.startswith("warning: ") and ln.endswith("with --split") for ln in lines), p.stderr
    p = subprocess.run([*base, str(tmp_path / "h2"), "--split", "1,1"], capture_output=True, text=True)
    assert p.returncode == 2 and "--split" in p.stderr and p.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun(tmp_path: Path) -> None:
    """A real kill -9 at some point of a run, then a rerun: the same files as one clean run."""
    import os
    import signal
    import time

    recs = [raw(f"fix {i}", V1, V1.replace("return 1", f"return {i + 2}"), repo=f"r{i % 50}") for i in range(3000)]
    inp = write(tmp_path / "in.jsonl", recs)
    clean = tmp_path / "clean"
    run(inp, clean, batch=16)
    cmd = [sys.executable, "-m", "gocoder", "annotate", "--input", str(inp), "--out", str(tmp_path / "k"),
           "--set", "annotate.batch=16"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    train = tmp_path / "k" / "train.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not train.exists() or train.stat().st_size < 200_000):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the gocheck servers it started
    proc.wait()
    assert sum(1 for _ in train.open("rb")) < 2900, "the run finished before the kill: nothing was tested"
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    for s in SPLITS:
        assert (tmp_path / "k" / f"{s}.jsonl").read_bytes() == (clean / f"{s}.jsonl").read_bytes()
