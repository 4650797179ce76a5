"""Run untrusted Go: build as the caller (the compiler is trusted), run the binary locked down.

A run is a fresh module in a temporary folder (go.mod `module sandbox`, GOPROXY=off,
GOTOOLCHAIN=local, CGO_ENABLED=0, GOPATH inside the folder; the build cache is shared under
gocoder's cache dir because only the go tool writes it). `go build` (mode "run") or `go test -c`
(mode "test") makes a static binary, built outside the sandbox as the caller; only that binary runs
inside, and it needs nothing from the host but its own file. It runs:
- with rlimits: CPU seconds, address space, file size, open files, no core files, processes;
- as root: as an unprivileged uid from a per-run pool (61000 + slot, claimed with a file lock), so
  RLIMIT_NPROC bites and nothing of the caller's is writable; at the end every process of that uid
  is killed by a forked child that takes the uid and sends kill(-1, SIGKILL);
- in a new IPC namespace whose shared-memory limits (shmmax, shmall) are set to tmpfs_mb, so SysV
  segments are capped while the program runs and vanish with it;
- isolation "bwrap" (bubblewrap, root or not: a user namespace): new user, PID, network, UTS
  and mount namespaces; the root is read-only (/usr and /proc, /proc/sys read-only; a fresh
  /dev); private, size-limited tmpfs on /tmp (the working folder and HOME), /var/tmp, /dev/shm
  and /run/lock are all it can write; when the program ends, its PID namespace ends and takes
  every process it started along;
- isolation "root" (no bubblewrap, root): the same done in-process (network, IPC and mount
  namespaces, the tmpfs mounts over the host's folders, seen by this run only), without a PID
  namespace: the kill of the pool uid ends what the program started;
- where the cgroup v2 memory controller is delegated to gocoder's cgroup, in a child cgroup whose
  memory.max counts the heap, shared memory and tmpfs pages together.
With neither bubblewrap nor root, run_go refuses (Limits.isolate=False
runs bare, for debugging only).
The confinement itself (namespaces, mounts, uid pool, cgroup) is gocoder/check/confine.py.
Output is read up to a byte limit, past which the run is killed and reported as output_limit.
"""

from __future__ import annotations

import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gocoder import GocoderError
from gocoder.check.confine import (
    HOME,
    MIN_MEMORY_MB,
    TMPFS_DIRS,
    UID_BASE,
    UID_SLOTS,
    WORK,
    Limits,
    Slot,
    bwrap_argv,
    enter,
    isolation,
    kill_uid,
    memory_cgroup,
    pids_of,
    release_cgroup,
)
from gocoder.check.toolchain import cache_dir, find_go

__all__ = ["HOME", "MIN_MEMORY_MB", "STATUSES", "TMPFS_DIRS", "UID_BASE", "UID_SLOTS", "WORK",
           "Limits", "SandboxResult", "cache_dir", "isolation", "run_go",
           "run_package_tests"]  # fmt: skip

STATUSES = (
    "ok",
    "fail",
    "build_error",
    "timeout",
    "cpu_limit",
    "memory_limit",
    "output_limit",
    "killed",
)
TESTIFY_DIR = Path(__file__).resolve().parent / "gotestify"  # our assert-compatible testify subset
# Go runtime's fatal errors
_OOM_MARKS = ("out of memory", "failed to reserve", "cannot allocate memory")


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
    # "bwrap", "root" (in-process namespaces) or "none" (Limits.isolate=False)
    isolation: str = "none"
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "ok"


def go_version() -> str:
    go, env = find_go()
    out = subprocess.run(
        [go, "env", "GOVERSION"], env=env, capture_output=True, text=True
    ).stdout.strip()
    return out.removeprefix("go").split("-")[0].split(" ")[0] or "1.22"


_GO_VERSION: list[str] = []


def _go_mod(files: dict[str, str]) -> str:
    if not _GO_VERSION:
        _GO_VERSION.append(go_version())
    mod = f"module sandbox\n\ngo {_GO_VERSION[0]}\n"
    if any("github.com/stretchr/testify" in src for src in files.values()):
        # HumanEval-X / HumanEvalPack tests import testify: resolve it to our offline module.
        mod += (
            "\nrequire github.com/stretchr/testify v1.8.4\n\nreplace "
            f"github.com/stretchr/testify => {TESTIFY_DIR}\n"
        )
    return mod


def _confinement(limits: Limits) -> tuple[str, str]:
    """How a run under limits is confined (isolation()'s answer; "none" with limits.isolate off):
    limits Go's runtime cannot start under, or a machine that confines nothing, are refused."""
    if limits.memory_mb < MIN_MEMORY_MB:
        raise GocoderError(
            f"memory_mb={limits.memory_mb}: Go's runtime needs {MIN_MEMORY_MB} MB of address space"
        )
    how, why = isolation() if limits.isolate else ("none", "")
    if how is None:
        raise GocoderError(f"sandbox: refusing to run untrusted code: {why}")
    return how, why


def _private_dir() -> Path:
    """A fresh folder for one build and run (the caller removes it): the run's uid may pass
    through it to its binary, never list or read the rest."""
    tmp = Path(tempfile.mkdtemp(prefix="gocoder-sb-"))
    try:
        os.chmod(tmp, 0o711)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


# B008: Limits is frozen, so the shared default is safe
def run_go(
    files: dict[str, str], *, mode: str = "run", limits: Limits = Limits()  # noqa: B008
) -> SandboxResult:
    """Build files (name -> source) as one package, then run it ("run") or
    its tests ("test") locked down.

    Example: run_go({"main.go": "package main\\nfunc main() {}\\n"}).status == "ok"
    """
    if mode not in ("run", "test"):
        raise ValueError(f"mode {mode!r}: expected run or test")
    how, why = _confinement(limits)
    tmp = _private_dir()
    try:
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
        return _run_built(binary, tmp, limits, how, why, build_out, build_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_package_tests(module: Path, pkg: str, *, args: Sequence[str] = (),
                      limits: Limits = Limits()) -> SandboxResult:  # noqa: B008 (frozen)
    """`go test -c` of the package module/pkg ("." for the module's root package) as
    the caller, offline, then its test binary run locked down as run_go runs one, with
    args (e.g. "-test.run=^TestX$"); it starts in an empty private folder, so tests
    that read files beside their package fail. module is a folder the caller owns: the
    go tool may write its go.mod and go.sum.

    Example:
    run_package_tests(Path("/tmp/copy-of-module"), "pool").status in ("ok", "fail", "build_error")
    """
    how, why = _confinement(limits)
    tmp = _private_dir()
    try:
        binary = tmp / "bin" / "prog"
        binary.parent.mkdir(mode=0o711)
        target = "." if pkg in ("", ".") else f"./{pkg}"
        ok, build_out, build_s = _build(module, binary, tmp, "test", limits, target=target)
        if not ok:
            return SandboxResult("build_error", build_output=build_out, build_s=build_s)
        return _run_built(binary, tmp, limits, how, why, build_out, build_s, tuple(args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_built(binary: Path, tmp: Path, limits: Limits, how: str, why: str, build_out: str,
               build_s: float, args: tuple[str, ...] = ()) -> SandboxResult:
    """Run a built binary (with args) the way `how` isolates it, as a pool uid where root."""
    if how == "none" or os.geteuid() != 0:
        res = _run(binary, tmp, limits, how, uid=None, args=args)
    else:
        with Slot() as uid:
            kill_uid(uid)  # leftovers of a crashed earlier run on this slot
            try:
                res = _run(binary, tmp, limits, how, uid=uid, args=args)
            finally:
                if kill_uid(uid):
                    res.notes.append(f"processes of uid {uid} survived SIGKILL")
    if why:
        res.notes.append(why)
    res.build_output, res.build_s = build_out, build_s
    return res


def _build(src: Path, binary: Path, tmp: Path, mode: str, limits: Limits,
           target: str = ".") -> tuple[bool, str, float]:
    go, env = find_go()
    gopath = tmp / "gopath"
    keep = ("PATH", "GOROOT", "LANG")
    env = {k: v for k, v in env.items() if k in keep}
    env.update(HOME=str(tmp / "buildhome"), GOPATH=str(gopath),
               GOMODCACHE=str(gopath / "pkg" / "mod"), GOCACHE=str(cache_dir() / "gobuild"),
               GOPROXY="off", GOFLAGS="-mod=mod", GOTOOLCHAIN="local", CGO_ENABLED="0",
               GOWORK="off", GOTELEMETRY="off", GOSUMDB="off")  # fmt: skip
    # -vet=off: the harnesses judge behaviour; a vet finding is not a wrong answer.
    cmd = ([go, "build", "-o", str(binary), target] if mode == "run"
           else [go, "test", "-c", "-vet=off", "-o", str(binary), target])  # fmt: skip
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


def _run(binary: Path, tmp: Path, limits: Limits, how: str, uid: int | None,
         args: tuple[str, ...] = ()) -> SandboxResult:
    notes: list[str] = []
    rl = [(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
          (resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2),
          (resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2),
          (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
          (resource.RLIMIT_CORE, (0, 0))]  # fmt: skip
    if uid is not None:
        rl.append((resource.RLIMIT_NPROC, (limits.procs,) * 2))
    elif how == "bwrap":
        # as the caller: its own processes count too, so the cap is on top of those
        n = len(pids_of(os.getuid())) + limits.procs
        rl.append((resource.RLIMIT_NPROC, (n, n)))
    else:
        notes.append(
            "not isolated (Limits.isolate=False): network, files and processes are the caller's"
        )
    cgroup = memory_cgroup(limits) if how != "none" and os.geteuid() == 0 else None
    if how != "none" and cgroup is None:
        notes.append(
            "no cgroup v2 memory controller: shared memory is capped by tmpfs sizes and shmall only"
        )
    env = {"PATH": "/usr/bin:/bin", "HOME": HOME, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    if how == "bwrap":
        argv, pass_fds = bwrap_argv(shutil.which("bwrap") or "bwrap", binary, limits), ()
    elif how == "root":
        # The binary's folder is under /tmp, which the tmpfs hides: exec
        # it through an fd opened before.
        fd = os.open(binary, os.O_RDONLY)
        argv, pass_fds = [f"/proc/self/fd/{fd}"], (fd,)
    else:
        work = tmp / "run"
        work.mkdir(mode=0o700)
        env.update(HOME=str(work), TMPDIR=str(work))
        argv, pass_fds = [str(binary)], ()
    argv = argv + list(args)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=tmp / "run" if how == "none" else "/", env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, pass_fds=pass_fds,
                                preexec_fn=functools.partial(enter, how, uid, limits, rl, cgroup),
                                start_new_session=True)  # fmt: skip
    finally:
        for fd in pass_fds:
            os.close(fd)
    bufs, reason, waited = _collect(proc, uid, limits, t0)
    wall = time.monotonic() - t0
    st, ru = waited
    code = os.waitstatus_to_exitcode(st)
    proc.returncode = code
    if how == "bwrap" and code > 128:  # bubblewrap exits 128 + N when the program died of signal N
        code = -(code - 128)
    sig = -code if code < 0 else None
    stdout, stderr = (bytes(b).decode(errors="replace") for b in bufs)
    cpu = ru.ru_utime + ru.ru_stime
    oom = release_cgroup(cgroup, notes) if cgroup is not None else False
    if reason:
        status = reason
    elif sig in (signal.SIGKILL, signal.SIGXCPU) and cpu >= limits.cpu_s - 0.5:
        status = "cpu_limit"
    elif oom or (code != 0 and any(m in stderr for m in _OOM_MARKS)):
        status = "memory_limit"
    elif code == 0:
        status = "ok"
    else:
        status = "killed" if sig is not None else "fail"
    return SandboxResult(status, None if sig else code, sig, stdout, stderr, wall_s=wall, cpu_s=cpu,
                         uid_dropped=uid is not None, netns=how != "none", isolation=how,
                         notes=notes)  # fmt: skip


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:  # already gone
        pass


def _collect(proc: subprocess.Popen, uid: int | None, limits: Limits, t0: float):
    """Read stdout/stderr until the process is reaped and the pipes close;
    enforce wall and output limits."""
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
                # Whatever the binary started may still hold the
                # pipes: the group and the uid go now.
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
