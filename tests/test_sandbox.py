"""The sandbox runs hostile Go and reports what it did; each run ends within its limits.

Every test builds a real Go program (about half a second with a warm build cache); the hostile
programs, each against both isolations and as root and not, are in test_sandbox_hostile.py.
"""

from __future__ import annotations

import os
import shutil

import pytest

import gocoder.check.confine as confine
import gocoder.check.sandbox as sandbox
from gocoder import GocoderError
from gocoder.check.sandbox import Limits, run_go

ROOT = os.geteuid() == 0
FAST = Limits(wall_s=3.0, cpu_s=5)


def main(body: str, imports: str = "") -> dict[str, str]:
    imp = f"import ({imports})\n" if imports else ""
    return {"main.go": f"package main\n\n{imp}\nfunc main() {{\n{body}\n}}\n"}


def test_passing_and_failing_programs():
    ok = run_go(main('fmt.Println("hello")', '"fmt"'), limits=FAST)
    assert ok.status == "ok" and ok.passed and ok.stdout == "hello\n" and ok.exit_code == 0
    assert ok.netns and ok.uid_dropped == ROOT and ok.isolation == sandbox.isolation()[0]
    bad = run_go(main('panic("wrong answer")'), limits=FAST)
    assert bad.status == "fail" and bad.exit_code == 2 and "wrong answer" in bad.stderr


def test_build_error_is_reported_with_positions():
    res = run_go(main("x := 1"), limits=FAST)
    assert res.status == "build_error" and "main.go:5:1: declared and not used: x" in res.build_output


def test_go_test_mode_pass_and_fail():
    src = "package main\n\nfunc Add(a, b int) int { return a + b }\n"
    test = 'package main\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(2, 2) != 4 {\n\t\tt.Fatal("bad")\n\t}\n}\n'  # noqa: E501
    assert run_go({"add.go": src, "add_test.go": test}, mode="test", limits=FAST).status == "ok"
    res = run_go({"add.go": src.replace("a + b", "a - b"), "add_test.go": test}, mode="test", limits=FAST)
    assert res.status == "fail" and "--- FAIL: TestAdd" in res.stdout


def test_bad_requests_are_errors():
    with pytest.raises(ValueError):
        run_go(main(""), mode="exec")
    with pytest.raises(GocoderError, match="memory_mb=100"):
        run_go(main(""), limits=Limits(memory_mb=100))


def test_dial_out_fails_fast_without_leaving_the_namespace():
    body = """conn, err := net.DialTimeout("tcp", "10.255.255.1:80", 5*time.Second)
if err != nil {
	fmt.Println("dial:", err)
	os.Exit(1)
}
conn.Close()
fmt.Println("connected")"""
    res = run_go(main(body, '"fmt"; "net"; "os"; "time"'), limits=FAST)
    assert res.netns and res.status == "fail", res
    assert "network is unreachable" in res.stdout and res.wall_s < 2.0


def test_only_its_own_folders_are_writable():
    # the host's home is not there to write; its working folder, HOME and TMPDIR (a private tmpfs) are
    body = 'if err := os.WriteFile("/root/gocoder-sandbox-probe.txt", []byte("x"), 0o644); err != nil {\n\tprintln(err.Error())\n\tos.Exit(1)\n}'  # noqa: E501
    res = run_go(main(body, '"os"'), limits=FAST)
    assert res.status == "fail" and not os.path.exists("/root/gocoder-sandbox-probe.txt")
    own = """for _, p := range []string{"f", os.Getenv("HOME") + "/f", os.Getenv("TMPDIR") + "/f"} {
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		os.Exit(1)
	}
}"""
    assert run_go(main(own, '"os"'), limits=FAST).status == "ok"


@pytest.mark.slow
def test_cpu_limit_kills_a_spinning_program():
    res = run_go(main("for {\n}"), limits=Limits(wall_s=20.0, cpu_s=1))
    assert res.status == "cpu_limit" and res.signal == 9 and res.wall_s < 10


def test_refuses_untrusted_code_without_isolation(monkeypatch):
    monkeypatch.setattr(sandbox, "isolation", lambda: (None, "bubblewrap is not installed"))
    with pytest.raises(GocoderError, match="sandbox: refusing to run untrusted code: bubblewrap is not installed"):
        run_go(main(""), limits=FAST)
    assert run_go(main(""), limits=Limits(isolate=False)).status == "ok"  # the debugging escape hatch


def test_the_isolation_probe_knows_this_machine():
    how, why = sandbox.isolation()
    assert how in ("bwrap", "root") if ROOT else how in ("bwrap", None)
    assert (how == "bwrap") == (shutil.which("bwrap") is not None and not why)


def test_memory_cgroup_where_the_controller_is_delegated(tmp_path):
    # A stand-in for a delegated cgroup v2 folder: the files the kernel would offer.
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids\n")
    lim = Limits(memory_mb=1024, tmpfs_mb=16)
    d = confine.memory_cgroup(lim, tmp_path)
    assert d is not None and d.parent == tmp_path
    assert int((d / "memory.max").read_text()) == (1024 + 4 * 16) << 20  # heap, shm and every tmpfs together
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not confine.oom_killed(d)
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert confine.oom_killed(d)
    for f in d.iterdir():  # the kernel's files vanish with the folder; a stand-in's must go first
        f.unlink()
    notes: list[str] = []
    assert confine.release_cgroup(d, notes) is False and not d.exists() and notes == []
    (tmp_path / "cgroup.subtree_control").write_text("cpu pids\n")  # not delegated: no cgroup, no error
    assert confine.memory_cgroup(lim, tmp_path) is None
