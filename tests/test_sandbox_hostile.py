"""Hostile Go programs through the sandbox, exactly as `gocoder bench` runs a completion (scoring.score).

Each program returns to main's check only if its attack worked, so a pass (status "ok") is an escape. After every run
nothing may be left: no process of a pool uid, no file in the host's /tmp, /var/tmp, /dev/shm or
/run/lock, no SysV segment. Both isolations run where they can ("bwrap", and "root", the in-process
fallback, as root); test_as_a_non_root_user reruns the suite under an unprivileged uid.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import gocoder.check.sandbox as sb
from gocoder.check.confine import TMPFS_DIRS, UID_BASE, Limits, pids_of
from gocoder.eval.benchmarks import Problem
from gocoder.eval.benchrun import score

ROOT = os.geteuid() == 0
REAL = sb.isolation()
LIMITS = Limits(wall_s=1.5, cpu_s=5, procs=32, tmpfs_mb=32)
OUTSIDE = Path("/var/cache") / "gocoder-hostile"  # world-writable, outside every tmpfs of the sandbox
MB = 1 << 20


def _problem(name: str, imports: str) -> Problem:
    """An MBXP-shaped problem: the completion is the body of Attack, which the harness's main calls."""
    head = f"package main\n\nimport ({imports})\n\n" if imports else "package main\n\n"
    # MBXP-shaped: main's check runs after Attack returns (the harness passes no program whose checks never ran)
    test = ("\nfunc deepCompare(a, b interface{}) bool { return a == b }\n\nfunc main() {\n\tAttack()\n"
            "\tif !deepCompare(1, 1) {\n\t\tpanic(1)\n\t}\n}\n")
    return Problem(id=name, format="mbxp", prompt=head + "func Attack() {\n", entry_point="Attack",
                   description="", test=test)


def _attacks(port: int) -> dict[str, tuple[str, str]]:
    """name -> (program, imports); each prints what it got and returns (so that main's check runs and the
    program passes) only if it escaped; otherwise it exits non-zero or is stopped."""
    return {
        "dial_out": (f"""if c, err := net.DialTimeout("tcp", "127.0.0.1:{port}", time.Second); err == nil {{
	c.Close()
	return
}}
if c, err := net.DialTimeout("tcp", "1.1.1.1:53", time.Second); err == nil {{
	c.Close()
	return
}}
os.Exit(1)""", '"net"; "os"; "time"'),
        "write_outside": (f"""for _, p := range []string{{"{OUTSIDE}/probe", "/gocoder-probe", "/usr/gocoder-probe", "/etc/gocoder-probe"}} {{
	if os.WriteFile(p, []byte("x"), 0o644) == nil {{
		return
	}}
}}
os.Exit(1)""", '"os"'),  # noqa: E501
        "run_lock": ("""if os.WriteFile("/run/lock/gocoder-probe", []byte("x"), 0o644) != nil {
	os.Exit(2)
}
os.Exit(1)""", '"os"'),
        "spin": ("for {\n}", ""),
        "fork_bomb": ("""for {
	cmd := exec.Command(os.Args[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	_ = cmd.Start()
}""", '"os"; "os/exec"; "syscall"'),
        "big_allocation": ("b := make([]byte, 10<<30)\nb[len(b)-1] = 1\nreturn", ""),
        # SysV: segments of 8 MB (never attached, so RLIMIT_AS does not see them) until the kernel says no.
        "sysv_shm": ("""total := 0
for i := 0; i < 1000; i++ {
	_, _, errno := syscall.Syscall(syscall.SYS_SHMGET, 0, 8<<20, 01000|0600)
	if errno != 0 {
		break
	}
	total += 8 << 20
}
fmt.Println("sysv bytes", total)
if total > 64<<20 {
	return
}
os.Exit(1)""", '"fmt"; "os"; "syscall"'),
        # POSIX shared memory is files in /dev/shm (shm_open): fill it, file after file, until it is full.
        "posix_shm": ("""total := 0
buf := make([]byte, 4<<20)
for i := 0; i < 100; i++ {
	f, err := os.Create(fmt.Sprintf("/dev/shm/gocoder-probe-%d", i))
	if err != nil {
		break
	}
	n, _ := f.Write(buf)
	f.Close()
	total += n
	if n < len(buf) {
		break
	}
}
fmt.Println("dev/shm bytes", total)
if total > 64<<20 {
	return
}
os.Exit(1)""", '"fmt"; "os"'),
        "detached_child": ("""if len(os.Args) > 1 {
	os.WriteFile("/tmp/gocoder-probe", []byte("x"), 0o644)
	os.WriteFile("/var/tmp/gocoder-probe", []byte("x"), 0o644)
	time.Sleep(time.Hour)
}
cmd := exec.Command(os.Args[0], "child")
cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
if err := cmd.Start(); err != nil {
	panic(err)
}
time.Sleep(300 * time.Millisecond)
os.Exit(1)""", '"os"; "os/exec"; "syscall"; "time"'),
        "endless_output": ('for {\n\tfmt.Println("spam spam spam spam")\n}', '"fmt"'),
    }


EXPECTED = {"dial_out": {"fail"}, "write_outside": {"fail"}, "run_lock": {"fail"}, "spin": {"timeout", "cpu_limit"},
            "fork_bomb": {"timeout", "fail", "killed", "cpu_limit"}, "big_allocation": {"memory_limit"},
            "sysv_shm": {"fail"}, "posix_shm": {"fail"}, "detached_child": {"fail"},
            "endless_output": {"output_limit"}}  # fmt: skip


@pytest.fixture
def claimed(monkeypatch) -> list[int]:
    """The pool uids this test's runs claimed. Other sandbox runs on the machine (another pytest, a bench)
    hold the rest of the pool, and their processes come and go: counting them failed these tests at random."""
    uids: list[int] = []

    class Spy(sb.Slot):
        def __enter__(self) -> int:
            uids.append(super().__enter__())
            return uids[-1]

    monkeypatch.setattr(sb, "Slot", Spy)
    return uids


def _host_state(uids: list[int]) -> tuple:
    """What a run could leave behind on the host: processes of the pool uids it claimed, files in the shared
    folders, SysV segments."""
    pids = [p for uid in uids for p in pids_of(uid)]
    if not ROOT:  # the program ran as this uid: anything of it but this process is a leftover
        pids += [p for p in pids_of(os.getuid()) if p != os.getpid()]
    files = sorted(str(p) for d in (*TMPFS_DIRS, str(OUTSIDE)) for p in Path(d).glob("gocoder-probe*"))
    shm = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return pids, files, shm


@pytest.fixture(scope="module")
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    if ROOT:  # a non-root rerun (test_as_a_non_root_user) finds it made by its root parent
        OUTSIDE.mkdir(exist_ok=True)
        os.chmod(OUTSIDE, 0o1777)
    yield s.getsockname()[1]
    s.close()
    if ROOT:
        shutil.rmtree(OUTSIDE, ignore_errors=True)


@pytest.fixture(params=["bwrap", "root"])
def isolation(request, monkeypatch):
    if request.param == "bwrap" and REAL[0] != "bwrap":
        pytest.skip(f"no bubblewrap here: {REAL[1]}")
    if request.param == "root" and not ROOT:
        pytest.skip("the in-process fallback needs root")
    monkeypatch.setattr(sb, "isolation", lambda: (request.param, ""))
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("attack", list(EXPECTED))
def test_attack_is_contained_and_leaves_nothing(attack, isolation, listener, claimed):
    before = _host_state(claimed)
    body, imports = _attacks(listener)[attack]
    t0 = time.monotonic()
    res = score(_problem(attack, imports), body + "\n}\n", LIMITS)  # as gocoder bench scores a completion
    assert res.status in EXPECTED[attack], (res.status, res.stdout[-300:], res.stderr[-300:], res.notes)
    assert res.isolation == isolation and res.netns
    assert time.monotonic() - t0 < 15
    time.sleep(0.05)
    assert _host_state(claimed) == before, "the run left something behind"


@pytest.mark.skipif(not ROOT, reason="a process of another pool uid needs root to start")
def test_a_run_looks_at_its_own_uid_only(claimed):
    # Another run's process lives on under a slot held elsewhere: it is no leftover of this run (the count
    # over the whole pool that these tests once made saw it, and failed whenever a bench ran beside them).
    from gocoder.check.confine import Slot

    with Slot() as other:  # the class itself, not the spy: this claim is not the run's
        sleeper = subprocess.Popen(["sleep", "30"], user=other, group=other)
        try:
            before = _host_state(claimed)
            res = sb.run_go({"main.go": "package main\n\nfunc main() {}\n"}, limits=LIMITS)
            assert res.status == "ok" and pids_of(other) == [sleeper.pid]
            assert claimed and other not in claimed and _host_state(claimed) == before
        finally:
            sleeper.kill()
            sleeper.wait()


@pytest.mark.slow
@pytest.mark.skipif(not ROOT or REAL[0] != "bwrap", reason="needs root to become a user, and bubblewrap")
def test_as_a_non_root_user(listener):
    """The suite again, as an unprivileged uid with its own HOME (the Go build cache copied there)."""
    uid = UID_BASE - 1
    probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
                            "import pytest, gocoder, torch"],
                           capture_output=True, text=True, cwd=Path(__file__).parent.parent)  # fmt: skip
    if probe.returncode != 0:  # e.g. a Python installed under root's 0700 home, as on CI's machine
        pytest.skip(f"uid {uid} cannot run this Python with pytest and gocoder: {probe.stderr.strip()[-200:]}")
    top = Path(tempfile.mkdtemp(prefix="gocoder-nonroot-"))  # pytest's tmp_path is under a 0700 folder
    try:
        home = top / "home"
        cache = home / ".cache" / "gocoder"
        cache.mkdir(parents=True)
        if (sb.cache_dir() / "gobuild").is_dir():
            shutil.copytree(sb.cache_dir() / "gobuild", cache / "gobuild")
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(top)], check=True)
        os.chmod(top, 0o755)
        env = {**os.environ, "HOME": str(home), "GOCODER_CACHE": str(cache)}
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-m", "pytest",
               "-q", "-p", "no:cacheprovider", "--basetemp", str(top / "pt"), __file__, "-k", "not non_root"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                           cwd=Path(__file__).parent.parent)  # fmt: skip
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    # bubblewrap ran every attack; the in-process fallback (root only) was skipped
    # (the root-only tests skip: the fallback's attacks and the other-uid process)
    assert f"{len(EXPECTED)} passed," in p.stdout and "failed" not in p.stdout, p.stdout[-500:]
    assert pids_of(uid) == []
