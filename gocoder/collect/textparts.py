"""The corpus's text parts, and `gocoder corpus tokenize`, which turns them into pretraining tokens.

Text parts are what travels to the GPU machine: OUT/text/part-00000.jsonl.xz, ... (stdlib lzma,
preset 6), each at most 24 MiB, one JSON record a line: {"id", "package", "license", "path",
"split", "text"}. Tokenizing runs there (16 cores, no Go, no datasketch), so this module needs only
the tokenizer and numpy.

Tokens: per split (the records' own, gocoder/splits.py), OUT/tokens/{train,valid,test}/tokens.bin
holds the documents back to back, each one's ids followed by the tokenizer's eos id; uint16 if the
vocabulary fits, else uint32. meta.json says the kind ("pretrain"), tokenizer hash, vocab size,
dtype, eos id and per-split documents and tokens.
"""

from __future__ import annotations

import json
import lzma
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError, fsio
from gocoder.collect.gosources import package_of
from gocoder.splits import SPLITS

PART_GLOB = "part-*.jsonl.xz"
# xz emits LZMA2 chunks of at most 64 KiB compressed, so it holds back less than
# that (60 KB measured at the end of GOROOT/src/net): a part is closed while its
# emitted size leaves this much room.
SLACK = 1 << 20


class PartWriter:
    """Writes records to part-NNNNN.jsonl.xz files of at most `limit` bytes each, in write order.

    Records go to plain chunk files of `chunk_bytes`, which `workers` processes compress at once
    (xz at preset 6 compresses ~1.3 MB/s of Go on this machine: one core would take 10 minutes for
    the corpus). A chunk that compresses past the limit is cut into several parts; at the end the
    pieces are renamed part-00000, part-00001, ... in chunk order, so the output is deterministic.
    """

    def __init__(self, folder: Path, limit: int, chunk_bytes: int = 96 << 20, workers: int = 1):
        if limit < 256 << 10:
            raise GocoderError(f"part limit {limit} bytes: must be at least 256 KiB")
        self.folder, self.limit, self.chunk_bytes, self.count = folder, limit, chunk_bytes, 0
        folder.mkdir(parents=True)
        self._pool = get_context("fork").Pool(workers) if workers > 1 else None
        self._jobs: list[Any] = []
        self._chunk: Any = None
        self._size = 0

    def write(self, rec: dict[str, Any]) -> None:
        if self._chunk is None:
            self._chunk = open(
                self.folder / f"chunk-{len(self._jobs):05d}.jsonl", "wb", buffering=0
            )
            self._size = 0
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        # the writers' one way to the disk (a full one is an OSError here)
        fsio.write_all(self._chunk, line)
        self._size += len(line)
        if self._size >= self.chunk_bytes:
            self._submit()

    def _submit(self) -> None:
        self._chunk.close()
        args = (Path(self._chunk.name), self.limit)
        self._chunk = None
        if self._pool is None:
            self._jobs.append(compress_chunk(*args))
        else:
            self._jobs.append(self._pool.apply_async(compress_chunk, args))

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if exc[0] is not None:
                return
            if self._chunk is not None:
                self._submit()
            for job in self._jobs:
                for piece in job if isinstance(job, list) else job.get():
                    piece.rename(self.folder / f"part-{self.count:05d}.jsonl.xz")
                    self.count += 1
        finally:
            if self._pool is not None:
                self._pool.terminate()


def compress_chunk(chunk: Path, limit: int) -> list[Path]:
    """Compress a chunk of lines into pieces of at most `limit` bytes; the chunk is removed."""
    slack = min(SLACK, limit // 4)  # small parts (tests) keep a room above 64 KiB down to 256 KiB
    pieces: list[Path] = []
    f: Any = None
    comp: Any = None
    emitted = 0
    with open(chunk, "rb") as lines:
        for line in lines:
            if f is not None and emitted + len(line) + slack > limit:
                _close(f, comp, limit)
                f = None
            if f is None:
                pieces.append(chunk.with_name(f"{chunk.stem}.{len(pieces):03d}.xz"))
                f = open(pieces[-1], "wb")
                comp, emitted = lzma.LZMACompressor(preset=6), 0
            data = comp.compress(line)
            emitted += len(data)
            f.write(data)
    if f is not None:
        _close(f, comp, limit)
    chunk.unlink()
    return pieces


def _close(f: Any, comp: Any, limit: int) -> None:
    f.write(comp.flush())
    size = f.tell()
    f.close()
    if size > limit:
        raise GocoderError(f"{f.name}: {size} bytes, over the part limit {limit}")


def read_parts(folder: Path, parts: list[Path] | None = None) -> Iterator[dict[str, Any]]:
    """Every record of every part in folder (or of the given parts), in part order."""
    parts = parts if parts is not None else sorted(folder.glob(PART_GLOB))
    if not parts:
        raise GocoderError(f"{folder}: no {PART_GLOB} files")
    for part in parts:
        try:
            with lzma.open(part, "rt", encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    try:
                        rec = json.loads(line)
                        rec["text"], rec["split"]  # noqa: B018 -- both fields are required
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise GocoderError(f"{part}:{lineno}: not a corpus record") from None
                    yield rec
        except (lzma.LZMAError, EOFError) as e:
            raise GocoderError(f"{part}: corrupt or truncated xz: {e}") from None


def tokenize(
    text_dir: Path,
    tok: Any,
    out: Path,
    workers: int = -1,
    batch_bytes: int = 8 << 20,
    progress: Callable[[int], None] | None = None,
    max_package_tokens: int = 0,
) -> dict[str, Any]:
    """Encode every part into OUT/{train,valid,test}/tokens.bin and OUT/meta.json (see the module
    docstring): a file goes to its record's split, so held-out packages never reach train.

    max_package_tokens > 0 caps what one package gives the train split: its files past the
    cap (in the parts' order, so the cut is the same on every run) are left out and
    counted in meta.json's "capped".
    One Debian package (an SDK of generated-looking clients) is 16% of the corpus's tokens;
    uncapped, the model would spend a sixth of its training on one project's boilerplate."""
    dtype = np.uint16 if tok.vocab_size <= 65536 else np.uint32
    eos = tok.eos_id
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    files = {}
    for s in SPLITS:
        (tmp / s).mkdir(parents=True)
        files[s] = open(tmp / s / "tokens.bin", "wb")
    counts = {s: Counter() for s in SPLITS}
    sources: dict[str, Counter[str]] = {}
    capped: Counter[str] = Counter()
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        # One encode_batch call over ~8 MB keeps all cores busy while memory stays flat.
        for rec, ids in zip(
            batch, tok.encode_batch([r["text"] for r in batch], threads=workers), strict=True
        ):
            # PKG@SUITE: a package's versions share its cap
            pkg = package_of(rec.get("package", "?"))
            if (max_package_tokens and rec["split"] == "train"
                    and sources.get(pkg, Counter())["tokens"] + len(ids) + 1 > max_package_tokens):
                capped[pkg] += 1
                continue
            files[rec["split"]].write(np.asarray([*ids, eos], dtype=dtype).tobytes())
            counts[rec["split"]].update(docs=1, tokens=len(ids) + 1)
            sources.setdefault(pkg, Counter()).update(docs=1, tokens=len(ids) + 1)
        if progress:
            progress(len(batch))
        batch.clear()

    try:
        size = 0
        for rec in read_parts(text_dir):
            if rec["split"] not in SPLITS:
                raise GocoderError(
                    f"{text_dir}: record {rec.get('id')}: split {rec['split']!r} is not one of "
                    f"{'/'.join(SPLITS)}"
                )
            batch.append(rec)
            size += len(rec["text"])
            if size >= batch_bytes:
                flush()
                size = 0
        if batch:
            flush()
    finally:
        for f in files.values():
            f.close()
    meta = {
        "kind": "pretrain",
        "tokenizer_hash": tok.hash,
        "vocab_size": tok.vocab_size,
        "dtype": np.dtype(dtype).name,
        "eos_id": eos,
        "splits": {s: {"docs": counts[s]["docs"], "tokens": counts[s]["tokens"]} for s in SPLITS},
        "sources": {k: dict(v) for k, v in sorted(sources.items())},
        "max_package_tokens": max_package_tokens,
        "capped": dict(sorted(capped.items())),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return meta
