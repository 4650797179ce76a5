"""JSONL records: reading with errors that name the file and line, and
appending that survives a kill.

A raw PR record (data/raw/*.jsonl):
    id, source, repo, pr_number, sha, merged_at, title, body,
    files_changed: [{path, status (added|modified|deleted|renamed), before, after}]
A hierarchical record (data/hierarchical/*.jsonl): see docs/FORMATS.md.
The helpers every collect source shares (which paths and files to skip, the record's shape) sit
here, below the sources and the engine that runs them
(gocoder/collect/runner.py), so neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gocoder import GocoderError, fsio
from gocoder.fsio import output_lock, write_error


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield each record of a JSONL file; a bad line is a GocoderError naming file and line."""
    for _, rec in read_jsonl_numbered(path):
        yield rec


def read_jsonl_numbered(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each record of a JSONL file; a bad line is a GocoderError naming
    file and line. Blank lines are skipped. A torn last line (no newline, cut off by a kill) is an
    error too, since dropping it silently would lose data; `JsonlWriter` repairs such a tail.
    """
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise GocoderError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise GocoderError(f"{path}:{lineno}: not UTF-8") from None
            except json.JSONDecodeError as e:
                raise GocoderError(
                    f"{path}:{lineno}: malformed JSON: {e.msg} (column {e.colno})"
                ) from None
            if not isinstance(rec, dict):
                raise GocoderError(
                    f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}"
                )
            yield lineno, rec


def jsonl_inputs(path: str | Path) -> list[Path]:
    """A .jsonl file, or every .jsonl file in a folder (sorted); none is an error."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise GocoderError(f"{path}: no .jsonl files")
        return files
    if path.exists():
        return [path]
    raise GocoderError(f"{path}: no such file or folder")


def iter_jsonl_inputs(path: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Records of a .jsonl file, or of every .jsonl file in a folder (sorted), with their file."""
    for f in jsonl_inputs(path):
        for rec in read_jsonl(f):
            yield f, rec


def content_hash(*parts: str) -> str:
    """A short stable hash of text, for record ids and dedup."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


class JsonlWriter:
    """Appends records to a JSONL file, each exactly once across kills and reruns.

    On open it drops a torn last line (a record half-written when the process was killed) and
    reads the ids already present, so a rerun skips them. Each record is one write of one line,
    flushed, so what is on disk is always whole records plus at most one torn tail.

    The file (and its folder) is created by the first write, not on open: a run that fails on bad
    input before writing a record leaves nothing behind. The first write also locks the file until
    close (fsio.output_lock): a second process appending to it fails in one line naming the first.
    A write that fails (a full disk) cuts its torn record off and names the file (fsio.write_error).
    """

    def __init__(self, path: str | Path, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.seen: set[str] = set()
        if self.path.is_dir():
            raise GocoderError(f"{self.path}: is a folder; expected a .jsonl file to append to")
        self._f: Any = None
        self._lock: Any = None
        self._read()
        self._size = self.path.stat().st_size if self.path.exists() else 0

    def _read(self) -> None:
        if self.path.exists():
            # a killed writer's tail, unless one is writing right now:
            if self._lock is None and self._torn():
                # the lock tells them apart (a live one holds it)
                with output_lock(self.path):
                    self._repair_tail()
            else:
                self._repair_tail()
            for lineno, rec in read_jsonl_numbered(self.path):
                if self.key not in rec:
                    raise GocoderError(
                        f"{self.path}:{lineno}: record without {self.key!r}; not a file this writes"
                    )
                self.seen.add(rec[self.key])

    def _open(self) -> None:
        """At the first write: lock the file (fsio.output_lock: a second writer fails in
        one line, records are never interleaved), re-read it if another process appended
        since it was opened, then open it."""
        self._lock = output_lock(self.path)
        try:
            if (self.path.stat().st_size if self.path.exists() else 0) != self._size:
                self._read()
            self._f = self.path.open("ab", buffering=0)
        except OSError as e:
            self._lock.release()
            raise write_error(e, self.path) from None
        except BaseException:
            self._lock.release()
            raise

    def _torn(self) -> bool:
        with self.path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def _repair_tail(self) -> None:
        with self.path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def write(self, rec: dict[str, Any]) -> bool:
        """Append rec unless its id was written before; True if written."""
        k = rec[self.key]
        if k in self.seen:
            return False
        if self._f is None:
            self._open()
            if k in self.seen:  # written by another process since this one read the file
                return False
        # ASCII escapes: CPython's ASCII encoder is about twice as fast on source text, and the
        # line stays valid UTF-8 even for a lone surrogate.
        line = (json.dumps(rec) + "\n").encode("ascii")
        end = self._f.tell()
        try:  # unbuffered: a failed write leaves no bytes queued to land later
            fsio.write_all(self._f, line)
        except OSError as e:  # a full disk: the torn record is cut off, the records before it stay
            try:
                os.ftruncate(self._f.fileno(), end)
            except OSError:
                pass  # the next open repairs the tail
            raise write_error(e, self.path) from None
        self.seen.add(k)
        return True

    def write_all(self, recs: Iterable[dict[str, Any]]) -> int:
        return sum(self.write(r) for r in recs)

    def close(self) -> None:
        if self._f is None:
            return
        try:
            os.fsync(self._f.fileno())
        except OSError as e:
            raise write_error(e, self.path) from None
        finally:
            self._f.close()
            self._f = None
            self._lock.release()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------- what every collect source shares

# The Go convention for generated files (https://go.dev/s/generatedcode), on any line.
_GENERATED = re.compile(rb"^// Code generated .* DO NOT EDIT\.\r?$", re.M)


def skip_path(path: str) -> str | None:
    """Why a path is skipped before its contents are read, or None to keep it."""
    if not path.endswith(".go"):
        return "non-go"
    dirs = path.split("/")[:-1]
    if "vendor" in dirs or "third_party" in dirs:
        return "vendored"
    if "testdata" in dirs:
        return "testdata"  # Go's tools ignore it; it is often broken on purpose
    return None


def decode_go(data: bytes, max_bytes: int) -> tuple[str | None, str | None]:
    """(text, None) for a Go file worth keeping, else (None, the reason it is skipped)."""
    if len(data) > max_bytes:
        return None, "oversized"
    if b"\0" in data:
        return None, "binary"
    # the substring test is ~50x faster
    if b"// Code generated " in data and _GENERATED.search(data):
        return None, "generated"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, "not-utf8"


def make_record(
    source: str, repo: str, title: str, body: str, files: list[dict[str, str]], *,
    pr_number: int | None = None, sha: str | None = None, merged_at: str | None = None,
) -> dict[str, Any]:
    """A raw PR record. The id hashes the change itself (text and code, not where it was found),
    so the same change seen twice, e.g. cherry-picked onto two branches, is kept once."""
    rid = content_hash(title, body, *(f"{f['status']}\0{f['before']}\0{f['after']}" for f in files))
    return {
        "id": rid, "source": source, "repo": repo, "pr_number": pr_number, "sha": sha,
        "merged_at": merged_at, "title": title, "body": body, "files_changed": files,
    }

