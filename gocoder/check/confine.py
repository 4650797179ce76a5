"""How the sandbox confines a program (gocoder/check/sandbox.py runs it): the isolation
this machine allows, the uid pool, bubblewrap's command line, the child's way in before
exec, and the cgroup v2 memory cap.

Two isolations, picked by isolation(): "bwrap" (bubblewrap, root or not, through user namespaces)
and "root" (the same namespaces made in-process, without a PID namespace); neither: run_go refuses.
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import itertools
import os
import resource
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from gocoder.check.toolchain import cache_dir

UID_BASE, UID_SLOTS = 61000, 64
# outside the pool: the isolation probe runs as it, and leaves nothing
_PROBE_UID = UID_BASE + UID_SLOTS
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET, _CLONE_NEWUSER = (
    0x00020000,
    0x08000000,
    0x40000000,
    0x10000000,
)
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 4, 38
# the world-writable folders: private tmpfs each
TMPFS_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
# the program's working folder and HOME, inside its private /tmp
WORK, HOME = "/tmp/run", "/tmp/home"
PROG = "/sandbox/prog"  # where bubblewrap shows the binary
# Go's runtime reserves ~650 MB of address space before main (measured: 600 MB fails, 700 MB runs).
MIN_MEMORY_MB = 768
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
    # False: run bare, no uid drop or namespaces even where possible (debugging only)
    isolate: bool = True


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@functools.cache
def isolation() -> tuple[str | None, str]:
    """How untrusted code is isolated here: ("bwrap", ""), ("root", why bubblewrap is not used)
    or (None, why neither works). bubblewrap is tried for real, as the pool uids run it, since a
    kernel or a container can forbid the user namespaces it needs."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        why = "bubblewrap is not installed (apt-get install bubblewrap)"
    else:
        uid = _PROBE_UID if os.geteuid() == 0 else None
        try:
            p = subprocess.run(
                bwrap_argv(bwrap, Path("/bin/true"), Limits()),
                capture_output=True,
                timeout=30,
                preexec_fn=functools.partial(enter, "bwrap", uid, Limits(), [], None),
            )
            if p.returncode == 0:
                return "bwrap", ""
            why = (
                "bubblewrap fails here: "
                f"{p.stderr.decode(errors='replace').strip()[:200] or p.returncode}"
            )
        except (OSError, subprocess.SubprocessError) as e:
            why = f"bubblewrap fails here: {e}"
    if os.geteuid() == 0:
        return "root", why
    return None, why + "; and without root there is no other way to isolate it"


class Slot:
    """A uid from the pool, claimed with a file lock so concurrent runs (threads
    or processes) never share one."""

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
    """SIGKILL every process of uid (from a forked child that becomes uid); how
    many still live after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while pids_of(uid):
        if time.monotonic() > deadline:
            return len(pids_of(uid))
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


def pids_of(uid: int) -> list[int]:
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


def bwrap_argv(bwrap: str, binary: Path, limits: Limits) -> list[str]:
    """bubblewrap's command line: new namespaces but IPC (enter made that one, with
    its limits), a read-only root holding /usr, /proc and /dev, and a private
    size-limited tmpfs on each of TMPFS_DIRS."""
    argv = [bwrap, "--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid",
            "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox",
            "--die-with-parent", "--new-session",
            # no reaper: the program is PID 1, its exit ends the
            # namespace, and its CPU time reaches us
            "--as-pid-1",
            "--ro-bind", "/usr", "/usr"]  # fmt: skip
    for d in ("/bin", "/lib", "/lib64", "/sbin"):  # merged-/usr symlinks, or the folders themselves
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    argv += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    for d in TMPFS_DIRS:
        argv += ["--perms", "1777", "--size", str(limits.tmpfs_mb << 20), "--tmpfs", d]
    return argv + ["--dir", WORK, "--dir", HOME, "--ro-bind", str(binary), PROG, "--remount-ro",
                   "/", "--chdir", WORK, "--", PROG]  # fmt: skip


def enter(how: str, uid: int | None, limits: Limits, rl: list, cgroup: Path | None) -> None:
    """The child's way in, after setsid and before exec (so:
    syscalls only, and the order matters)."""
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

    # the new IPC namespace's own sysctls: SysV segments capped at tmpfs_mb in all
    def shm_limits() -> None:
        size = limits.tmpfs_mb << 20
        for key, val in (
            ("shmmax", size),
            ("shmall", size // resource.getpagesize()),
            ("shmmni", 16),
        ):
            write(f"/proc/sys/kernel/{key}", str(val))

    # as root, before anything else: the program's memory counts there from the start
    if cgroup is not None:
        write(str(cgroup / "cgroup.procs"), "0")
    if how == "root":
        # a new netns has only a downed loopback
        unshare(_CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWNS)
        shm_limits()
        if libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:  # our mounts stay ours
            raise OSError(ctypes.get_errno(), "making / private failed")
        with open("/proc/self/mountinfo", "rb") as f:
            mounts = [line.split(b" ")[4:6] for line in f.read().splitlines()]
        # every mount read-only, in this namespace only; kept flags stay kept
        for point, opts in mounts:
            keep = sum(flag for name, flag in ((b"nosuid", _MS_NOSUID), (b"nodev", _MS_NODEV),
                                               (b"noexec", _MS_NOEXEC))
                       if name in opts.split(b","))  # fmt: skip
            ok = (
                libc.mount(None, point, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None) == 0
            )
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
        # Our own user namespace (0 -> this uid) owns a new IPC namespace whose limits
        # only it may set; bwrap then nests the program's user namespace inside, as
        # uid 1000 with no capabilities.
        real_uid, real_gid = os.getuid(), os.getgid()
        unshare(_CLONE_NEWUSER | _CLONE_NEWIPC)
        write("/proc/self/setgroups", "deny")
        write("/proc/self/uid_map", f"0 {real_uid} 1")
        write("/proc/self/gid_map", f"0 {real_gid} 1")
        shm_limits()
    elif how == "root":
        os.chdir(WORK)
        # a set-uid program on the host gives it no root back
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


_CGROUP_SEQ = itertools.count()


def cgroup2_dir() -> Path | None:
    """This process's cgroup v2 folder, or None without a cgroup v2 mount."""
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        rel = next(
            line[3:]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
    except (OSError, StopIteration):
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ")[:1] == ["cgroup2"]:
            return Path(left.split(" ")[4]) / rel.lstrip("/")
    return None


def memory_cgroup(limits: Limits, parent: Path | None = None) -> Path | None:
    """A fresh child cgroup whose memory.max holds the address-space limit plus every tmpfs
    (no swap), or None where the memory controller is not enabled for gocoder's cgroup's
    children (cgroup v1, no delegation)."""
    parent = parent or cgroup2_dir()
    try:
        if (
            parent is None
            or "memory" not in (parent / "cgroup.subtree_control").read_text().split()
        ):
            return None
        d = parent / f"gocoder-sb-{os.getpid()}-{next(_CGROUP_SEQ)}"
        d.mkdir()
        (d / "memory.max").write_text(
            str((limits.memory_mb + len(TMPFS_DIRS) * limits.tmpfs_mb) << 20)
        )
        if (d / "memory.swap.max").exists():
            (d / "memory.swap.max").write_text("0")
        return d
    except OSError:
        return None


def oom_killed(d: Path) -> bool:
    """Whether the kernel's OOM killer struck inside cgroup d (memory.events: "oom_kill N")."""
    events = (d / "memory.events").read_text() if (d / "memory.events").exists() else ""
    return any(
        line.split()[:1] == ["oom_kill"] and line.split()[1:2] != ["0"]
        for line in events.splitlines()
    )


def release_cgroup(d: Path, notes: list[str]) -> bool:
    """Kill what is left in cgroup d and remove it; whether the
    kernel's OOM killer struck inside."""
    oom = oom_killed(d)
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
