"""Run untrusted Go: build as the caller (the compiler is trusted), run the binary locked down.

A run is a fresh module in a temporary folder (go.mod `module sandbox`, GOPROXY=off, GOTOOLCHAIN=local,
CGO_ENABLED=0, GOPATH inside the folder; the build cache is shared under gocoder's cache dir because
only the go tool writes it). `go build` (mode "run") or `go test -c` (mode "test") makes a static
binary, built outside the sandbox as the caller; only that binary runs inside, and it needs nothing
from the host but its own file. It runs:
- with rlimits: CPU seconds, address space, file size, open files, no core files, processes;
- as root: as an unprivileged uid from a per-run pool (61000 + slot, claimed with a file lock), so
  RLIMIT_NPROC bites and nothing of the caller's is writable; at the end every process of that uid is
  killed by a forked child that takes the uid and sends kill(-1, SIGKILL);
- in a new IPC namespace whose shared-memory limits (shmmax, shmall) are set to tmpfs_mb, so SysV
  segments are capped while the program runs and vanish with it;
- isolation "bwrap" (bubblewrap, root or not: a user namespace): new user, PID, network, UTS and mount
  namespaces; the root is read-only (/usr and /proc, /proc/sys read-only; a fresh /dev); private,
  size-limited tmpfs on /tmp (the working folder and HOME), /var/tmp, /dev/shm and /run/lock are all it
  can write; when the program ends, its PID namespace ends and takes every process it started along;
- isolation "root" (no bubblewrap, root): the same done in-process (network, IPC and mount namespaces,
  the tmpfs mounts over the host's folders, seen by this run only), without a PID namespace: the kill
  of the pool uid ends what the program started;
- where the cgroup v2 memory controller is delegated to gocoder's cgroup, in a child cgroup whose
  memory.max counts the heap, shared memory and tmpfs pages together.
With neither bubblewrap nor root, run_go refuses (Limits.isolate=False runs bare, for debugging only).
Output is read up to a byte limit, past which the run is killed and reported as output_limit.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import itertools
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
_PROBE_UID = UID_BASE + UID_SLOTS  # outside the pool: the isolation probe runs as it, and leaves nothing
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET, _CLONE_NEWUSER = 0x00020000, 0x08000000, 0x40000000, 0x10000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 4, 38
TMPFS_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # the world-writable folders: private tmpfs each
WORK, HOME = "/tmp/run", "/tmp/home"  # the program's working folder and HOME, inside its private /tmp
PROG = "/sandbox/prog"  # where bubblewrap shows the binary
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
    tmpfs_mb: int = 64  # size of each private tmpfs, and the SysV shared memory allowed (shmall)
    build_s: float = 120.0  # wall time of the build
    isolate: bool = True  # False: run bare, no uid drop or namespaces even where possible (debugging only)


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
    isolation: str = "none"  # "bwrap", "root" (in-process namespaces) or "none" (Limits.isolate=False)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def isolation() -> tuple[str | None, str]:
    """How untrusted code is isolated here: ("bwrap", ""), ("root", why bubblewrap is not used) or (None, why
    neither works). bubblewrap is tried for real, as the pool uids run it, since a kernel or a container can
    forbid the user namespaces it needs."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        why = "bubblewrap is not installed (apt-get install bubblewrap)"
    else:
        uid = _PROBE_UID if os.geteuid() == 0 else None
        try:
            p = subprocess.run(_bwrap_argv(bwrap, Path("/bin/true"), Limits()), capture_output=True, timeout=30,
                               preexec_fn=functools.partial(_enter, "bwrap", uid, Limits(), [], None))  # fmt: skip
            if p.returncode == 0:
                return "bwrap", ""
            why = f"bubblewrap fails here: {p.stderr.decode(errors='replace').strip()[:200] or p.returncode}"
        except (OSError, subprocess.SubprocessError) as e:
            why = f"bubblewrap fails here: {e}"
    if os.geteuid() == 0:
        return "root", why
    return None, why + "; and without root there is no other way to isolate it"


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


def run_go(files: dict[str, str], *, mode: str = "run", limits: Limits = Limits()) -> SandboxResult:
    """Build files (name -> source) as one package, then run it ("run") or its tests ("test") locked down.

    Example: run_go({"main.go": "package main\\nfunc main() {}\\n"}).status == "ok"
    """
    if mode not in ("run", "test"):
        raise ValueError(f"mode {mode!r}: expected run or test")
    if limits.memory_mb < MIN_MEMORY_MB:
        raise GocoderError(f"memory_mb={limits.memory_mb}: Go's runtime needs {MIN_MEMORY_MB} MB of address space")
    how, why = isolation() if limits.isolate else ("none", "")
    if how is None:
        raise GocoderError(f"sandbox: refusing to run untrusted code: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="gocoder-sb-"))
    try:
        os.chmod(tmp, 0o711)  # the run's uid may pass through to its binary, never list or read the rest
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
        if how == "none" or os.geteuid() != 0:
            res = _run(binary, tmp, limits, how, uid=None)
        else:
            with _Slot() as uid:
                kill_uid(uid)  # leftovers of a crashed earlier run on this slot
                try:
                    res = _run(binary, tmp, limits, how, uid=uid)
                finally:
                    if kill_uid(uid):
                        res.notes.append(f"processes of uid {uid} survived SIGKILL")
        if why:
            res.notes.append(why)
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


def _bwrap_argv(bwrap: str, binary: Path, limits: Limits) -> list[str]:
    """bubblewrap's command line: new namespaces but IPC (_enter made that one, with its limits), a read-only
    root holding /usr, /proc and /dev, and a private size-limited tmpfs on each of TMPFS_DIRS."""
    argv = [bwrap, "--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent", "--new-session",
            "--as-pid-1",  # no reaper: the program is PID 1, its exit ends the namespace, and its CPU time reaches us
            "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for d in ("/bin", "/lib", "/lib64", "/sbin"):  # merged-/usr symlinks, or the folders themselves
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    argv += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    for d in TMPFS_DIRS:
        argv += ["--perms", "1777", "--size", str(limits.tmpfs_mb << 20), "--tmpfs", d]
    return argv + ["--dir", WORK, "--dir", HOME, "--ro-bind", str(binary), PROG, "--remount-ro", "/",
                   "--chdir", WORK, "--", PROG]  # fmt: skip


def _enter(how: str, uid: int | None, limits: Limits, rl: list, cgroup: Path | None) -> None:
    """The child's way in, after setsid and before exec (so: syscalls only, and the order matters)."""
    libc = _libc()

    def unshare(flags: int) -> None:
        if libc.unshare(flags) != 0:
            raise OSError(ctypes.get_errno(), f"unshare({flags:#x}) failed")

    def write(path: str, text: str) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def shm_limits() -> None:  # the new IPC namespace's own sysctls: SysV segments capped at tmpfs_mb in all
        size = limits.tmpfs_mb << 20
        for key, val in (("shmmax", size), ("shmall", size // resource.getpagesize()), ("shmmni", 16)):
            write(f"/proc/sys/kernel/{key}", str(val))

    if cgroup is not None:  # as root, before anything else: the program's memory counts there from the start
        write(str(cgroup / "cgroup.procs"), "0")
    if how == "root":
        unshare(_CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWNS)  # a new netns has only a downed loopback
        shm_limits()
        if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:  # our mounts stay ours
            raise OSError(ctypes.get_errno(), "making / private failed")
        with open("/proc/self/mountinfo", "rb") as f:
            mounts = [line.split(b" ")[4:6] for line in f.read().splitlines()]
        for point, opts in mounts:  # every mount read-only, in this namespace only; kept flags stay kept
            keep = sum(flag for name, flag in ((b"nosuid", _MS_NOSUID), (b"nodev", _MS_NODEV),
                                               (b"noexec", _MS_NOEXEC)) if name in opts.split(b","))  # fmt: skip
            ok = libc.mount(None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None) == 0
            if not ok and point == b"/":
                raise OSError(ctypes.get_errno(), "remounting / read-only failed")
        for d in TMPFS_DIRS:
            if os.path.isdir(d):
                opts = f"size={limits.tmpfs_mb}m,mode=1777".encode()
                if libc.mount(b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
                    raise OSError(ctypes.get_errno(), f"tmpfs on {d} failed")
        for d in (WORK, HOME):
            os.mkdir(d, 0o700)
            if uid is not None:
                os.chown(d, uid, uid)
    for res, lim in rl:
        resource.setrlimit(res, lim)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        libc.prctl(_PR_SET_DUMPABLE, 1, 0, 0, 0)  # setuid cleared it; /proc/self/uid_map needs it
    if how == "bwrap":
        # Our own user namespace (0 -> this uid) owns a new IPC namespace whose limits only it may set;
        # bwrap then nests the program's user namespace inside, as uid 1000 with no capabilities.
        real_uid, real_gid = os.getuid(), os.getgid()
        unshare(_CLONE_NEWUSER | _CLONE_NEWIPC)
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"0 {real_uid} 1")
        write("/proc/self/gid_map", f"0 {real_gid} 1")
        shm_limits()
    elif how == "root":
        os.chdir(WORK)
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # a set-uid program on the host gives it no root back


def _run(binary: Path, tmp: Path, limits: Limits, how: str, uid: int | None) -> SandboxResult:
    notes: list[str] = []
    rl = [(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 1)),
          (resource.RLIMIT_AS, (limits.memory_mb << 20,) * 2),
          (resource.RLIMIT_FSIZE, (limits.file_mb << 20,) * 2),
          (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
          (resource.RLIMIT_CORE, (0, 0))]  # fmt: skip
    if uid is not None:
        rl.append((resource.RLIMIT_NPROC, (limits.procs,) * 2))
    elif how == "bwrap":  # as the caller: its own processes count too, so the cap is on top of those
        n = len(_pids_of(os.getuid())) + limits.procs
        rl.append((resource.RLIMIT_NPROC, (n, n)))
    else:
        notes.append("not isolated (Limits.isolate=False): network, files and processes are the caller's")
    cgroup = _memory_cgroup(limits) if how != "none" and os.geteuid() == 0 else None
    if how != "none" and cgroup is None:
        notes.append("no cgroup v2 memory controller: shared memory is capped by tmpfs sizes and shmall only")
    env = {"PATH": "/usr/bin:/bin", "HOME": HOME, "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
    if how == "bwrap":
        argv, pass_fds = _bwrap_argv(shutil.which("bwrap") or "bwrap", binary, limits), ()
    elif how == "root":
        # The binary's folder is under /tmp, which the tmpfs hides: exec it through an fd opened before.
        fd = os.open(binary, os.O_RDONLY)
        argv, pass_fds = [f"/proc/self/fd/{fd}"], (fd,)
    else:
        work = tmp / "run"
        work.mkdir(mode=0o700)
        env.update(HOME=str(work), TMPDIR=str(work))
        argv, pass_fds = [str(binary)], ()
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, cwd=tmp / "run" if how == "none" else "/", env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds,
                                preexec_fn=functools.partial(_enter, how, uid, limits, rl, cgroup),
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
    oom = _release_cgroup(cgroup, notes) if cgroup is not None else False
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
                         uid_dropped=uid is not None, netns=how != "none", isolation=how, notes=notes)  # fmt: skip


_CGROUP_SEQ = itertools.count()


def _cgroup2_dir() -> Path | None:
    """This process's cgroup v2 folder, or None without a cgroup v2 mount."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        rel = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ")[:1] == ["cgroup2"]:
            return Path(left.split(" ")[4]) / rel.lstrip("/")
    return None


def _memory_cgroup(limits: Limits, parent: Path | None = None) -> Path | None:
    """A fresh child cgroup whose memory.max holds the address-space limit plus every tmpfs (no swap), or None
    where the memory controller is not enabled for gocoder's cgroup's children (cgroup v1, no delegation)."""
    parent = parent or _cgroup2_dir()
    try:
        if parent is None or "memory" not in (parent / "cgroup.subtree_control").read_text().split():
            return None
        d = parent / f"gocoder-sb-{os.getpid()}-{next(_CGROUP_SEQ)}"
        d.mkdir()
        (d / "memory.max").write_text(str((limits.memory_mb + len(TMPFS_DIRS) * limits.tmpfs_mb) << 20))
        if (d / "memory.swap.max").exists():
            (d / "memory.swap.max").write_text("0")
        return d
    except OSError:
        return None


def _oom_killed(d: Path) -> bool:
    """Whether the kernel's OOM killer struck inside cgroup d (memory.events: "oom_kill N")."""
    events = (d / "memory.events").read_text() if (d / "memory.events").exists() else ""
    return any(line.split()[:1] == ["oom_kill"] and line.split()[1:2] != ["0"] for line in events.splitlines())


def _release_cgroup(d: Path, notes: list[str]) -> bool:
    """Kill what is left in cgroup d and remove it; whether the kernel's OOM killer struck inside."""
    oom = _oom_killed(d)
    if (d / "cgroup.kill").exists():
        (d / "cgroup.kill").write_text("1")
    for _ in range(100):
        try:
            d.rmdir()
            break
        except OSError:
            time.sleep(0.02)
    else:
        notes.append(f"cgroup {d} could not be removed")
    return oom


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
