"""The sandbox runs hostile Go and reports what it did; each run ends within its limits.

Every test builds a real Go program (about half a second with a warm build cache); the hostile
ones wait for a limit and are marked slow.
"""

from __future__ import annotations

import os
import time

import pytest

from gocoder import GocoderError
from gocoder.sandbox import UID_BASE, UID_SLOTS, Limits, _pids_of, run_go

ROOT = os.geteuid() == 0
FAST = Limits(wall_s=3.0, cpu_s=5)


def main(body: str, imports: str = "") -> dict[str, str]:
    imp = f"import ({imports})\n" if imports else ""
    return {"main.go": f"package main\n\n{imp}\nfunc main() {{\n{body}\n}}\n"}


def pool_pids() -> list[int]:
    return [p for uid in range(UID_BASE, UID_BASE + UID_SLOTS) for p in _pids_of(uid)]


def test_passing_and_failing_programs():
    ok = run_go(main('fmt.Println("hello")', '"fmt"'), limits=FAST)
    assert ok.status == "ok" and ok.passed and ok.stdout == "hello\n" and ok.exit_code == 0
    assert ok.netns == ok.uid_dropped == ROOT  # isolated as root; plainly run (and saying so) otherwise
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


@pytest.mark.skipif(not ROOT, reason="the network namespace and uid drop need root here")
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


@pytest.mark.skipif(not ROOT, reason="the uid drop needs root here")
def test_writing_home_is_denied():
    target = "/root/gocoder-sandbox-probe.txt"
    body = f'if err := os.WriteFile("{target}", []byte("x"), 0o644); err != nil {{\n\tprintln(err.Error())\n\tos.Exit(1)\n}}'  # noqa: E501
    res = run_go(main(body, '"os"'), limits=FAST)
    assert res.uid_dropped and res.status == "fail" and "permission denied" in res.stderr
    assert not os.path.exists(target)
    # its own HOME and TMPDIR are writable
    own = run_go(main('if err := os.WriteFile(os.Getenv("HOME")+"/f", nil, 0o600); err != nil { os.Exit(1) }',
                      '"os"'), limits=FAST)  # fmt: skip
    assert own.status == "ok"


@pytest.mark.slow
def test_infinite_loop_times_out():
    t0 = time.monotonic()
    res = run_go(main("for {\n}"), limits=Limits(wall_s=2.0, cpu_s=30))
    assert res.status == "timeout" and 2.0 <= res.wall_s < 4.0
    assert time.monotonic() - t0 < 15


@pytest.mark.slow
def test_cpu_limit_kills_a_spinning_program():
    res = run_go(main("for {\n}"), limits=Limits(wall_s=20.0, cpu_s=1))
    assert res.status == "cpu_limit" and res.signal == 9 and res.wall_s < 10


@pytest.mark.slow
def test_ten_gigabyte_allocation_hits_the_memory_limit():
    res = run_go(main("b := make([]byte, 10<<30)\nb[len(b)-1] = 1\nprintln(len(b))"), limits=FAST)
    assert res.status == "memory_limit" and "out of memory" in res.stderr, res


@pytest.mark.slow
def test_huge_print_hits_the_output_limit():
    res = run_go(main('for {\n\tfmt.Println("spam spam spam spam")\n}', '"fmt"'),
                 limits=Limits(wall_s=10.0, output_bytes=100_000))  # fmt: skip
    assert res.status == "output_limit" and len(res.stdout) == 100_000 and res.wall_s < 5


@pytest.mark.slow
@pytest.mark.skipif(not ROOT, reason="RLIMIT_NPROC and the kill of the uid need the uid drop")
def test_fork_bomb_ends_within_limits_and_leaves_no_process():
    # Every copy re-executes itself in a new session (a setsid escape from the process group) forever.
    body = """for {
	cmd := exec.Command(os.Args[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	_ = cmd.Start()
}"""
    t0 = time.monotonic()
    res = run_go(main(body, '"os"; "os/exec"; "syscall"'), limits=Limits(wall_s=3.0, cpu_s=10, procs=32))
    assert res.status in ("timeout", "fail", "killed", "cpu_limit"), res
    assert time.monotonic() - t0 < 20
    assert pool_pids() == []


@pytest.mark.slow
@pytest.mark.skipif(not ROOT, reason="the kill of the uid needs the uid drop")
def test_escaped_daemon_is_killed_and_its_tmp_files_removed():
    # The parent exits at once; its child sleeps in a new session and wrote a file into /tmp.
    body = """if len(os.Args) > 1 {
	os.WriteFile("/tmp/gocoder-escape-probe", []byte("x"), 0o644)
	time.Sleep(time.Hour)
}
cmd := exec.Command(os.Args[0], "child")
cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
if err := cmd.Start(); err != nil {
	panic(err)
}
time.Sleep(300 * time.Millisecond)"""
    res = run_go(main(body, '"os"; "os/exec"; "syscall"; "time"'), limits=FAST)
    assert res.status == "ok" and res.wall_s < 2.5, res
    assert pool_pids() == [] and not os.path.exists("/tmp/gocoder-escape-probe")
