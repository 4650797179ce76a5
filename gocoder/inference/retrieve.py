"""Retrieval of a repository's declarations as context: the index file of its top-level Go
declarations (`gocoder index`), kept up to date per file, and their way into a prompt.

A small model copies well from context and recalls poorly (RepoCoder, Zhang et al. 2023;
ReACC, Lu et al. 2022: retrieved repository code raises completion accuracy at every model
size), so `gocoder generate --repo PATH` puts the declarations of PATH that best match the PR
description into the prompt beside the file being changed, and `gocoder bench --retrieve
INDEX` does the same for benchmark prompts.

The index holds one document per top-level declaration as gocheck lists them
(gocoder/check/validate.py: kind, name, receiver, byte span, doc comment) with its terms, ranked by
gocoder/inference/ranking.py (BM25, the model's embeddings, or both fused). It is a JSON file in the
cache (~/.cache/gocoder/index), keyed by each file's path, size and mtime: a rerun re-reads only the
files that changed, appeared or went away. The embeddings (`[retrieve] method = "embed"` or
"hybrid") are stored with each file's entry (float16), so they follow the same per-file update: a
changed file's declarations are parsed and embedded again, the others' are kept; an index embedded
by another model or pooling is embedded again whole.
BENCHMARKS.md (PR benchmark, retrieval recall) measures the rankings against each other.

The retrieved declarations enter the record as `context.related` ([{file, code}]), which
gocoder/text/serialize.py writes as `<FILE>` blocks before the target file: the text a model would
be trained on with neighbours is the text it is prompted with (STYLE.md 17).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError
from gocoder.fsio import atomic_write
from gocoder.inference.embed import EMBED_TOKENS, Embedder  # noqa: F401 (EMBED_TOKENS: re-exported)
from gocoder.inference.ranking import (  # noqa: F401 (Hit, fuse, split_ident: re-exported)
    METHODS,
    Hit,
    Index,
    embed_text,
    fuse,
    pack,
    signature,
    split_ident,
    terms,
)
from gocoder.record import Record, Related

INDEX_VERSION = 1
SKIP_DIRS = {"vendor", "testdata", "node_modules", ".git", ".gocoder"}


@dataclass
class IndexStats:
    files: int = 0
    decls: int = 0
    reread: list[str] = field(default_factory=list)  # files (re)read this run: new or changed
    removed: list[str] = field(default_factory=list)  # files gone since the last run
    # files whose declarations were embedded this run
    embedded: list[str] = field(default_factory=list)
    seconds: float = 0.0
    embed_seconds: float = 0.0  # of seconds: embedding
    path: str = ""  # the index file


def index_path(root: Path) -> Path:
    """Where the index of root is cached: one JSON file per
    absolute root under the gocoder cache."""
    from gocoder.check.toolchain import cache_dir

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "index" / f"{root.resolve().name or 'root'}-{key}.json"


def go_files(root: Path) -> dict[str, os.stat_result]:
    """Relative path -> stat of each .go file under root, tests, vendor/,
    testdata/ and dot folders left out."""
    out = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for n in names:
            if n.endswith(".go") and not n.endswith("_test.go"):
                p = Path(dirpath) / n
                try:
                    out[p.relative_to(root).as_posix()] = p.stat()
                except OSError:
                    continue
    return out


def _decls_of(
    srcs: list[bytes], drop: Callable[[str], bool] | None = None
) -> list[list[list[Any]]]:
    """Each file's declarations as index rows: [kind, name, recv, start, end, doc, terms];
    drop(text) True leaves a declaration out."""
    from gocoder.check.validate import get_checker

    out = []
    for src, res in zip(
        srcs, get_checker().check_many(srcs, kind="file", docs=True, gofmt=False), strict=True
    ):
        rows = []
        for d in res.decls:
            text = src[d.start : d.end].decode("utf-8", "replace")
            if drop is not None and drop(text):
                continue
            words = terms(f"{d.recv} {d.name}") * 2 + terms(d.doc) + terms(signature(text, d.kind))
            rows.append([d.kind, d.name, d.recv, d.start, d.end, d.doc, " ".join(words)])
        out.append(rows)
    return out


def build_index(
    root: str | Path,
    out: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 256,
    save_every_s: float = 30.0,
    drop: Callable[[str], bool] | None = None,
    drop_key: str = "",
    embedder: Embedder | None = None,
    method: str | None = None,
    embed_progress: Callable[[int, int], None] | None = None,
) -> tuple[Index, IndexStats]:
    """Index the Go files under root, re-reading only those whose size or mtime changed since the
    cached index (out, default index_path(root)) was written; the index is saved every
    save_every_s seconds and at the end, so an interrupted run keeps most of what it read.
    drop(text) True leaves a declaration out (a decontamination list: the CLI's --decontaminate);
    drop_key names it, and an index cached under another key is rebuilt whole. embedder: also
    embed the declarations of every file that has no vectors yet (new, changed, or all of them
    when the index was embedded by another model or pooling). method: the Index's ranking
    (default: embed with an embedder, else bm25)."""
    root = Path(root)
    if not root.is_dir():
        raise GocoderError(f"{root}: not a folder to index")
    method = method or ("embed" if embedder is not None else "bm25")
    if method not in METHODS or (method != "bm25" and embedder is None):
        raise GocoderError(
            f"retrieve.method {method!r}: one of {', '.join(METHODS)}; embed and hybrid need the "
            "model to embed with"
        )
    t0 = time.perf_counter()
    dest = Path(out) if out is not None else index_path(root)
    data = _read(dest) if dest.exists() else {}
    embed_key = embedder.key if embedder is not None else data.get("embed_key", "")
    old = _files_of(data, dest, root, drop_key, embed_key) if data else {}
    now = go_files(root)
    stats = IndexStats(path=str(dest), removed=sorted(set(old) - set(now)))
    files = {
        p: old[p]
        for p in now
        if p in old and (old[p]["mtime_ns"], old[p]["size"]) == (now[p].st_mtime_ns, now[p].st_size)
    }
    todo = sorted(set(now) - set(files))
    saved = time.monotonic()
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        for p, rows in zip(part, _decls_of([_source(root, p) for p in part], drop), strict=True):
            files[p] = {"mtime_ns": now[p].st_mtime_ns, "size": now[p].st_size, "decls": rows}
        stats.reread += part
        # a whole save of the Go tree's index takes ~1 s
        if time.monotonic() - saved > save_every_s:
            _save(dest, root, files, drop_key, embed_key)
            saved = time.monotonic()
        if progress is not None:
            progress(min(i + chunk, len(todo)), len(todo))
    if embedder is not None:
        t1 = time.perf_counter()
        need = [p for p in sorted(files) if "vecs" not in files[p]]
        for i in range(0, len(need), chunk // 8 or 1):
            part = need[i : i + (chunk // 8 or 1)]
            texts, counts = [], []
            for p in part:
                src = _source(root, p)
                rows = files[p]["decls"]
                texts += [
                    embed_text(d[0], d[5], src[d[3] : d[4]].decode("utf-8", "replace"))
                    for d in rows
                ]
                counts.append(len(rows))
            vecs = embedder.embed(texts)
            for p, a, n in zip(part, np.cumsum([0, *counts[:-1]]), counts, strict=True):
                files[p]["vecs"] = pack(vecs[a : a + n])
            stats.embedded += part
            if time.monotonic() - saved > save_every_s:
                _save(dest, root, files, drop_key, embed_key)
                saved = time.monotonic()
            if embed_progress is not None:
                embed_progress(min(i + len(part), len(need)), len(need))
        stats.embed_seconds = round(time.perf_counter() - t1, 2)
    if todo or stats.removed or stats.embedded or not dest.exists():
        _save(dest, root, files, drop_key, embed_key)
    idx = Index(root, files, method=method, embedder=embedder)
    stats.files, stats.decls, stats.seconds = (
        len(files),
        len(idx),
        round(time.perf_counter() - t0, 2),
    )
    return idx, stats


def _source(root: Path, p: str) -> bytes:
    try:
        return (root / p).read_bytes()
    except OSError as e:
        raise GocoderError(f"{root / p}: cannot read: {e.strerror}") from None


def _save(
    dest: Path, root: Path, files: dict[str, Any], drop_key: str = "", embed_key: str = ""
) -> None:
    atomic_write(
        dest,
        json.dumps(
            {
                "version": INDEX_VERSION,
                "root": str(root.resolve()),
                "drop_key": drop_key,
                "embed_key": embed_key,
                "files": files,
            }
        ),
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GocoderError(f"{path}: not a gocoder index ({e})") from None
    return data if isinstance(data, dict) else {}


def _files_of(data: dict[str, Any], path: Path, root: Path | None, drop_key: str | None,
              embed_key: str | None) -> dict[str, Any]:
    if data.get("version") != INDEX_VERSION or not isinstance(data.get("files"), dict):
        return {}  # another version's index: rebuilt
    if root is not None and data.get("root") != str(root.resolve()):
        raise GocoderError(f"{path}: the index of {data.get('root')}, not of {root}")
    if drop_key is not None and data.get("drop_key", "") != drop_key:
        return {}
    files = data["files"]
    # another model's vectors: dropped
    if embed_key is not None and data.get("embed_key", "") != embed_key:
        files = {p: {k: v for k, v in f.items() if k != "vecs"} for p, f in files.items()}
    return files


def load_files(path: Path, root: Path | None = None, drop_key: str | None = None,
               embed_key: str | None = None) -> dict[str, Any]:
    """The files of a saved index (of root, when given: an index of another folder is an
    error; {} when drop_key is given and is not the index's: its declarations were
    filtered by another list; without their vectors when embed_key is given and is not the
    index's: another model embedded them)."""
    return _files_of(_read(path), path, root, drop_key, embed_key)


def embedder_for(retrieve: Any, gen: Any = None) -> Embedder | None:
    """The Embedder a [retrieve] config (gocoder/config.py RetrieveConfig; None: the default,
    bm25) ranks with: none for bm25, else gen's (the Generator that answers ranks too)."""
    if retrieve is None or retrieve.method == "bm25":
        return None
    if gen is None:
        raise GocoderError(f"retrieve.method {retrieve.method}: needs the model to embed with")
    return Embedder.of(gen, retrieve.pooling, retrieve.max_tokens)


def open_index(where: str | Path, progress: Callable[[int, int], None] | None = None, *,
               retrieve: Any = None, gen: Any = None) -> Index:
    """An index from a folder (built or brought up to date) or from a saved index file (as it is),
    ranking as the [retrieve] config says (None: bm25); "embed" and "hybrid" embed with gen's model
    (embedder_for): a folder's index gets its vectors, a saved file must hold them already."""
    method = retrieve.method if retrieve is not None else "bm25"
    emb = embedder_for(retrieve, gen)
    p = Path(where)
    if p.is_dir():
        return build_index(p, progress=progress, embedder=emb, method=method)[0]
    if not p.is_file():
        raise GocoderError(f"{p}: neither a folder to index nor an index file")
    data = _read(p) if p.suffix == ".json" else {}
    if not data.get("root"):
        raise GocoderError(f"{p}: not a gocoder index (no root)")
    if emb is not None and data.get("embed_key", "") != emb.key:
        raise GocoderError(
            f"{p}: not embedded by this model and pooling (retrieve.method {method} needs its "
            f"vectors): rerun gocoder index {data['root']} --out {p} --method {method}"
        )
    return Index(
        Path(data["root"]), _files_of(data, p, None, None, None), method=method, embedder=emb
    )


def with_related(rec: Record, idx: Index, fits: Callable[[Record], bool], *,
                 query: str | None = None, k: int = 8, exclude: Iterable[str] = ()) -> Record:
    """rec with context.related: the best of idx's k hits for its problem that fit, in
    rank order; a hit too long is tried as its signature. fits(rec) says whether a
    record's prompt is within the budget."""
    q = query if query is not None else f"{rec.problem.description}\n{rec.problem.details}"
    related: tuple[Related, ...] = ()
    for h in idx.search(q, k=k, exclude=exclude):
        for whole in (True, False):
            item = Related(file=h.path, code=h.code(idx.root, whole))
            if fits(_related(rec, (*related, item))):
                related = (*related, item)
                break
    return _related(rec, related) if related else rec


def _related(rec: Record, related: tuple[Related, ...]) -> Record:
    return dataclasses.replace(rec, context=dataclasses.replace(rec.context, related=related))


def repo_root(start: str | Path) -> Path | None:
    """The top of the git work tree holding start (a file or folder), or None outside one."""
    p = Path(start).resolve()
    for d in [p, *p.parents] if p.is_dir() else list(p.parents):
        if (d / ".git").exists():
            return d
    return None
