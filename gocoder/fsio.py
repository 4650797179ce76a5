"""Outputs that survive faults: atomic writes, one writer per output, and faults said in one line.

Every writer of the pipeline keeps one promise: what it wrote before a fault (a full disk,
a read-only folder, a kill, a second process) is still there and whole, and a rerun
completes. Three tools keep it:

- atomic_write / atomic_dir: a file or a folder is written under a temporary name, fsynced,
  then renamed over the old one (the rename-and-fsync checkpointing of torchtitan and
  Orbax): a reader sees the old version or the new one, never half of either. A failed
  write removes its temporary copy.
- output_lock: an exclusive flock on a lock file beside an output; a second process writing the
  same output fails at once with one line naming the holder, instead of interleaving records or
  tearing a checkpoint. The kernel drops the lock of a killed process, so a lock is never stale.
- write_error / missing_dependency: an OSError of a write (ENOSPC, EROFS, EACCES...) becomes a
  GocoderError naming the path, and a missing optional package one line
  with the install that brings it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gocoder import GocoderError

# The full install (README, "Quick start"): the CI install of `gocoder check` (pip
# install --no-deps) has none of these.
FULL = "pip install torch==2.13.0 && pip install gocoder (the full install, not --no-deps)"
INSTALLS = {
    "torch": FULL, "numpy": FULL, "sentencepiece": FULL, "safetensors": FULL, "git": FULL,
    "tree_sitter": FULL, "tree_sitter_go": FULL,
    "datasketch": "pip install 'gocoder[corpus]'",
    "matplotlib": "pip install 'gocoder[report]'",
}  # fmt: skip
PACKAGES = {"git": "gitpython", "tree_sitter": "tree-sitter", "tree_sitter_go": "tree-sitter-go"}

_WHY = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
        errno.EPERM: "permission denied", errno.EFBIG: "file too large"}  # fmt: skip


def write_error(e: OSError, path: str | Path) -> GocoderError:
    """The one line for an OSError met while writing the output path (named, not the temporary or
    lock file the error may be about): what failed; what was written before it is kept (every
    writer here appends whole records or renames whole files)."""
    why = _WHY.get(e.errno or 0, e.strerror or str(e))
    return GocoderError(
        f"{path}: cannot write: {why} (what was written before is kept; rerun once fixed)"
    )


def missing_dependency(e: ModuleNotFoundError, command: str = "this command") -> str | None:
    """One line for an optional package that is not installed, with the install that brings it;
    None when the module is not one gocoder depends on (a bug, whose traceback is wanted)."""
    top = (e.name or "").split(".")[0]
    if top not in INSTALLS:
        return None
    return f"{command} needs {PACKAGES.get(top, top)}, which is not installed here: {INSTALLS[top]}"


def need(module: str, command: str):
    """Import an optional module, or fail in one line saying which install brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise GocoderError(missing_dependency(e, command) or str(e)) from None


def write_all(f, data: bytes | memoryview) -> None:
    """Write all of data to the unbuffered binary file f (a short write is continued).
    Every writer here goes through this one function, so a test can fail it the way a full
    disk does (tests/test_faults.py)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


def write_file(path: Path, data: bytes) -> None:
    """path's bytes, written and fsynced (not atomic by itself: for the files of an atomic_dir)."""
    with open(path, "wb", buffering=0) as f:
        write_all(f, data)
        os.fsync(f.fileno())


def _mkdirs(folder: Path) -> list[Path]:
    """mkdir -p folder; the folders it created, outermost first (for _rmdirs)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return missing[::-1]


def _rmdirs(created: list[Path]) -> None:
    """Remove the folders _mkdirs created, innermost first, where they are still empty: a run
    that failed leaves no empty folder behind."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return


def _fsync(path: Path) -> None:
    """fsync a file, or a folder (its entries: a rename in it), by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write data to path whole or not at all: a temporary file in the
    same folder, fsynced, renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(tmp, data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(e, path) from None
    return path


def replace_dir(tmp: Path, final: Path) -> None:
    """Rename the finished folder tmp to final; an old final is moved aside first and
    removed last, so a kill at any point leaves final or its old version whole (never
    neither: the old one is in .NAME.old)."""
    for f in tmp.rglob("*"):
        if f.is_file():
            _fsync(f)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync(final.parent)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """A temporary folder to fill; on success it replaces final (replace_dir). On any failure it
    is removed (a full disk gets its space back) and an OSError becomes write_error naming final."""
    final = Path(final)
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    created: list[Path] = []
    try:
        created = _mkdirs(tmp)
        yield tmp
        replace_dir(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        _rmdirs(created[:-1])
        raise write_error(e, final) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _rmdirs(created[:-1])
        raise


def lock_path(target: str | Path) -> Path:
    """The lock file of an output, file or folder: .NAME.lock beside it (the same path
    before and after the output exists)."""
    t = Path(target)
    return t.with_name(f".{t.name}.lock")


class OutputLock:
    """An exclusive, non-blocking flock on lock_path(target), held until release(); the lock file
    holds the holder's pid, host and command line, and is removed on release."""

    def __init__(self, target: str | Path):
        self.target, self.path = Path(target), lock_path(target)
        self._fd: int | None = None
        self._created: list[Path] = []
        try:
            self._created = _mkdirs(self.path.parent)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = (
                        os.read(fd, 4096).decode("utf-8", "replace").strip()
                        or "a process starting up"
                    )
                    os.close(fd)
                    _rmdirs(self._created)
                    raise GocoderError(
                        f"{self.target}: in use by another gocoder process ({holder}); wait for "
                        f"it to finish or write elsewhere"
                    ) from None
                # the holder before us may have removed the file
                # between our open and our flock: retry
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(
                fd,
                f"pid {os.getpid()} on {socket.gethostname()}: "
                f"{' '.join(sys.argv)[:300]}\n".encode(),
            )
        except OSError as e:
            _rmdirs(self._created)
            raise write_error(e, self.target) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        # while still locked: a waiter that opened it retries on a fresh file
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        _rmdirs(self._created)  # the folders made for the lock, if the output left them empty

    def __del__(self) -> None:  # a writer dropped without close() still frees its output
        try:
            self.release()
        except Exception:
            pass

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def output_lock(target: str | Path) -> OutputLock:
    """Lock an output for this process (a context manager): see OutputLock."""
    return OutputLock(target)
