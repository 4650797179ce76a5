"""Run untrusted Go: build as the caller (the compiler is trusted), run the binary locked down.

A run is a fresh module in a temporary folder (go.mod `module sandbox`, GOPROXY=off, GOTOOLCHAIN=local,
CGO_ENABLED=0, GOPATH inside the folder; the build cache is shared under gocoder's cache dir because
only the go tool writes it). `go build` (mode "run") or `go test -c` (mode "test") makes a binary,
which then runs:
- in its own session (so its process group can be killed whole), with a wall-time limit;
- with rlimits: CPU seconds, address space, file size, open files, no core files, processes;
- as root: in a new network namespace (only a downed loopback: no packet leaves) and as an unprivileged
  uid/gid from a per-run pool (61000 + slot, claimed with a file lock), so RLIMIT_NPROC bites and
  home and the rest of the disk are not writable; at the end every process of that uid is killed by a
  forked child that takes the uid and sends kill(-1, SIGKILL), so a setsid() escape dies too;
- not root: as the caller, in a user+network namespace where the kernel allows it; the flags of the
  result say which isolation was active, and `notes` says what was missing.
Output is read up to a byte limit, past which the run is killed and reported as output_limit.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gocoder import GocoderError
from gocoder.toolchain import cache_dir, find_go

STATUSES = ("ok", "fail", "build_error", "timeout", "cpu_limit", "memory_limit", "output_limit", "killed")
UID_BASE, UID_SLOTS = 61000, 64
_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000
TESTIFY_DIR = Path(__file__).resolve().parent / "gotestify"  # our assert-compatible testify subset
# Go's runtime reserves ~650 MB of address space before main (measured: 600 MB fails, 700 MB runs).
MIN_MEMORY_MB = 768
_OOM_MARKS = ("out of memory", "failed to reserve", "cannot allocate memory")  # Go runtime's fatal errors


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0  # wall time of the run (the build has build_s)
    cpu_s: int = 10  # RLIMIT_CPU; the hard limit is one second more (SIGKILL)
    memory_mb: int = 2048  # RLIMIT_AS, at least MIN_MEMORY_MB
    output_bytes: int = 1 << 20  # stdout + stderr kept; more kills the run (output_limit)
    file_mb: int = 16  # RLIMIT_FSIZE
    open_files: int = 64  # RLIMIT_NOFILE
    procs: int = 64  # RLIMIT_NPROC of the pool uid: counts threads, and a Go program has ~5-10
    build_s: float = 120.0  # wall time of the build
    isolate: bool = True  # False: skip the uid drop and namespaces even as root (debugging only)


@dataclass
class SandboxResult:
    status: str  # one of STATUSES
    exit_code: int | None = None  # None when killed by a signal or never run
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    build_output: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    build_s: float = 0.0
    uid_dropped: bool = False
    netns: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def netns_flags() -> int | None:
    """The unshare() flags that give this process's children a network namespace here, or None."""
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWNET | _CLONE_NEWUSER
    libc = _libc()

    def pre() -> None:
        if libc.unshare(flags) != 0:
            os._exit(99)

    try:
        rc = subprocess.run(["/bin/true"], preexec_fn=pre, timeout=10).returncode
    except (OSError, subprocess.SubprocessError):
        return None
    return flags if rc == 0 else None


def go_version() -> str:
    go, env = find_go()
    out = subprocess.run([go, "env", "GOVERSION"], env=env, capture_output=True, text=True).stdout.strip()
    return out.removeprefix("go").split("-")[0].split(" ")[0] or "1.22"


_GO_VERSION: list[str] = []


def _go_mod(files: dict[str, str]) -> str:
    if not _GO_VERSION:
        _GO_VERSION.append(go_version())
    mod = f"module sandbox\n\ngo {_GO_VERSION[0]}\n"
    if any("github.com/stretchr/testify" in src for src in files.values()):
        # HumanEval-X / HumanEvalPack tests import testify: resolve it to our offline module.
        mod += f"\nrequire github.com/stretchr/testify v1.8.4\n\nreplace github.com/stretchr/testify => {TESTIFY_DIR}\n"
    return mod


class _Slot:
    """A uid from the pool, claimed with a file lock so concurrent runs (threads or processes) never share one."""

    def __enter__(self) -> int:
        d = cache_dir() / "sandbox"
        d.mkdir(parents=True, exist_ok=True)
        while True:
            for i in range(UID_SLOTS):
                f = open(d / f"slot-{i}.lock", "w")  # noqa: SIM115 - held until __exit__
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    continue
                self._f = f
                return UID_BASE + i
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._f.close()


def kill_uid(uid: int, timeout_s: float = 5.0) -> int:
    """SIGKILL every process of uid (from a forked child that becomes uid); how many still live after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while _pids_of(uid):
        if time.monotonic() > deadline:
            return len(_pids_of(uid))
        pid = os.fork()
        if pid == 0:  # child: only syscalls, then _exit
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal, except this one
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.01)  # SIGKILLed processes take a moment to exit
    return 0


def _pids_of(uid: int) -> list[int]:
    """Live processes owned by uid (zombies are dead: their parent, or init, reaps them)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                with open(f"/proc/{name}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                pids.append(int(name))
    return pids


def _sweep_shared_tmp(uid: int) -> None:
    """Remove what uid left in the world-writable folders (the only places outside its run dir it can write)."""
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid == uid:
                    shutil.rmtree(e.path) if e.is_dir(follow_symlinks=False) else os.unlink(e.path)
            except OSError:
                pass


def run_go(files: dict[str, str], *, mode: str = "run", limits: Limits = Limits()) -> SandboxResult:
    """Build files (name -> source) as one package, then run it ("run") or its tests ("test") locked down.

    Example: run_go({"main.go": "package main\\nfunc main() {}\\n"}).status == "ok"
    """
    if mode not in ("run", "test"):
        raise ValueError(f"mode {mode!r}: expected run or test")
    if limits.memory_mb < MIN_MEMORY_MB:
        raise GocoderError(f"memory_mb={limits.memory_mb}: Go's runtime needs {MIN_MEMORY_MB} MB of address space")
    tmp = Path(tempfile.mkdtemp(prefix="gocoder-sb-"))
    try:
        os.chmod(tmp, 0o711)  # the run's uid may pass through to its own folder, never list or read the rest
        src = tmp / "src"
        src.mkdir(mode=0o700)
        for name, text in {"go.mod": _go_mod(files), **files}.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"file name {name!r}: one package, plain names only")
            (src / name).write_text(text)
        binary = tmp / "bin" / "prog"
        binary.parent.mkdir(mode=0o711)
        ok, build_out, build_s = _build(src, binary, tmp, mode, limits)
        if not ok:
            return SandboxResult("build_error", build_output=build_out, build_s=build_s)
        if not (os.geteuid() == 0 and limits.isolate):
            res = _run(binary, tmp, limits, uid=None)
        else:
            with _Slot() as uid:
                kill_uid(uid)  # leftovers of a crashed earlier run on this slot
                try:
                    res = _run(binary, tmp, limits, uid=uid)
                finally:
                    if kill_uid(uid):
                        res.notes.append(f"processes of uid {uid} survived SIGKILL")
                    _sweep_shared_tmp(uid)
        res.build_output, res.build_s = build_out, build_s
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build(src: Path, binary: Path, tmp: Path, mode: str, limits: Limits) -> tuple[bool, str, float]:
    go, env = find_go()
    gopath = tmp / "gopath"
    keep = ("PATH", "GOROOT", "LANG")
    env = {k: v for k, v in env.items() if k in keep}
    env.update(HOME=str(tmp / "buildhome"), GOPATH=str(gopath), GOMODCACHE=str(gopath / "pkg" / "mod"),
               GOCACHE=str(cache_dir() / "gobuild"), GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local",
               CGO_ENABLED="0", GOWORK="off", GOTELEMETRY="off", GOSUMDB="off")  # fmt: skip
    # -vet=off: the harnesses judge behaviour; a vet finding is not a wrong answer.
    cmd = ([go, "build", "-o", str(binary), "."] if mode == "run"
           else [go, "test", "-c", "-vet=off", "-o", str(binary), "."])  # fmt: skip
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=src, env=env, capture_output=True, timeout=limits.build_s,
                           start_new_session=True)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"build timed out after {limits.build_s} s", time.monotonic() - t0
    out = (p.stdout + p.stderr).decode(errors="replace").replace(str(src) + "/", "")
    ok = p.returncode == 0 and binary.exists()
    if ok:
        os.chmod(binary, 0o755)
    return ok, out[: limits.output_bytes], time.monotonic() - t0


def _run(binary: Path, tmp: Path, limits: Limits, uid: int | None) -> SandboxResult:
    notes: list[str] = []
    work = tmp / "run"
    home, wtmp = work / "home", work / "tmp"
    for d in (work, home, wtmp):
        d.mkdir(mode=0o700)
        if uid is not None:
            os.chown(d, uid, uid)
    flags = netns_flags() if limits.isolate else None
    if flags is None:
        notes.append("no network namespace: network access is not blocked")
    if uid is None:
        notes.append("no uid drop (not root): runs as the caller, no RLIMIT_NPROC, only its process group is killed")
    rl = [(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
          (resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2),
          (resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2),
          (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
          (resource.RLIMIT_CORE, (0, 0))]  # fmt: skip
    if uid is not None:  # as the caller it would count the caller's own processes
        rl.append((resource.RLIMIT_NPROC, (limits.procs,) * 2))
    libc = _libc()

    def pre() -> None:  # in the child, after setsid, before exec; the order matters
        if flags is not None and libc.unshare(flags) != 0:  # needs root (or a user ns): before the uid drop
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")
        for res, lim in rl:
            resource.setrlimit(res, lim)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(wtmp), "LANG": "C.UTF-8"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(binary)], cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=pre, start_new_session=True)  # fmt: skip
    bufs, reason, waited = _collect(proc, uid, limits, t0)
    wall = time.monotonic() - t0
    st, ru = waited
    code = os.waitstatus_to_exitcode(st)
    proc.returncode = code
    sig = -code if code < 0 else None
    stdout, stderr = (bytes(b).decode(errors="replace") for b in bufs)
    cpu = ru.ru_utime + ru.ru_stime
    if reason:
        status = reason
    elif sig in (signal.SIGKILL, signal.SIGXCPU) and cpu >= limits.cpu_s - 0.5:
        status = "cpu_limit"
    elif code != 0 and any(m in stderr for m in _OOM_MARKS):
        status = "memory_limit"
    elif code == 0:
        status = "ok"
    else:
        status = "killed" if sig is not None else "fail"
    return SandboxResult(status, None if sig else code, sig, stdout, stderr, wall_s=wall, cpu_s=cpu,
                         uid_dropped=uid is not None, netns=flags is not None, notes=notes)  # fmt: skip


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # already gone
        pass


def _collect(proc: subprocess.Popen, uid: int | None, limits: Limits, t0: float):
    """Read stdout/stderr until the process is reaped and the pipes close; enforce wall and output limits."""
    sel = selectors.DefaultSelector()
    bufs = [bytearray(), bytearray()]
    for i, f in enumerate((proc.stdout, proc.stderr)):
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ, i)
    total, reason, waited, drain_until = 0, None, None, None
    while True:
        if waited is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                waited = (st, ru)
                # Whatever the binary started may still hold the pipes: the group and the uid go now.
                _kill_group(proc.pid)
                if uid is not None:
                    kill_uid(uid)
                drain_until = time.monotonic() + 1.0
        if waited is not None and (not sel.get_map() or time.monotonic() > drain_until):
            break
        if reason is None and time.monotonic() - t0 > limits.wall_s:
            reason = "timeout"
            _kill_group(proc.pid)
        for key, _ in sel.select(timeout=0.02):
            data = os.read(key.fd, 1 << 16)
            if not data:
                sel.unregister(key.fileobj)
                continue
            keep = max(0, limits.output_bytes - total)
            bufs[key.data].extend(data[:keep])
            total += len(data)
            if total > limits.output_bytes and reason is None:
                reason = "output_limit"
                _kill_group(proc.pid)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    return bufs, reason, waited
