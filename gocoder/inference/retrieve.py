"""Retrieval of a repository's declarations as context: a BM25 index over top-level Go declarations.

A small model copies well from context and recalls poorly (RepoCoder, Zhang et al. 2023; ReACC, Lu et
al. 2022: retrieved repository code raises completion accuracy at every model size), so `gocoder
generate --repo PATH` puts the declarations of PATH that best match the PR description into the prompt
beside the file being changed, and `gocoder bench --retrieve INDEX` does the same for benchmark prompts.

The index (`gocoder index PATH`) holds one document per top-level declaration as gocheck lists them
(gocoder/check/validate.py: kind, name, receiver, byte span, doc comment): its terms are the identifiers of its
name, doc comment and signature, split at camelCase and snake_case boundaries and lowercased, beside the
whole identifier (`ReadAll` gives readall, read, all). BM25 (Robertson and Zaragoza 2009; k1 = 1.2,
b = 0.75) ranks them for a query. The index is a JSON file in the cache (~/.cache/gocoder/index), keyed by
each file's path, size and mtime: a rerun re-reads only the files that changed, appeared or went away.

The retrieved declarations enter the record as `context.related` ([{file, code}]), which
gocoder/text/serialize.py writes as `<FILE>` blocks before the target file: the text a model would be trained
on with neighbours is the text it is prompted with (STYLE.md 17).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.record import Record, Related
from gocoder.text.gosource import body_open

INDEX_VERSION = 1
K1, B = 1.2, 0.75
SKIP_DIRS = {"vendor", "testdata", "node_modules", ".git", ".gocoder"}
SIGNATURE_BYTES = 400  # of a func: its head up to the body's brace; of a type, var or const: its start
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# words a description is made of that name no declaration: left out of queries and documents alike
STOP = frozenset("a an and are as at be by for from if in into is it its of on or that the this to with "
                 "add fix use make when which func return var const type".split())


def split_ident(name: str) -> list[str]:
    """An identifier's index terms: its parts at camelCase, digit and snake_case boundaries, lowercased,
    and the whole identifier when it has several parts (`parseHTTPResponse` gives parse, http, response,
    parsehttpresponse)."""
    parts = [p.lower() for chunk in name.split("_") for p in _CAMEL.findall(chunk)]
    whole = name.lower().strip("_")
    if len(parts) > 1 and whole:
        parts.append(whole)
    return parts


def terms(text: str) -> list[str]:
    """The index terms of a text (identifiers and words alike), stop words left out."""
    return [t for m in _IDENT.findall(text) for t in split_ident(m) if t not in STOP and len(t) > 1]


def signature(text: str, kind: str) -> str:
    """A declaration's head: a func up to its body's brace, anything else its first SIGNATURE_BYTES."""
    if kind in ("func", "method"):
        at = body_open(text)  # just after the body's brace
        return text[: at - 1 if 0 < at <= SIGNATURE_BYTES else SIGNATURE_BYTES]
    return text[:SIGNATURE_BYTES]


@dataclass
class Hit:
    path: str  # relative to the index's root
    kind: str
    name: str
    recv: str
    start: int  # byte span of the declaration in the file (doc comment excluded)
    end: int
    doc: str
    score: float

    def code(self, root: Path, whole: bool = True) -> str:
        """The declaration as Go text with its doc comment; whole=False: its signature only, for one too long
        for the prompt (a func without its body, which Go's grammar allows: the model copies what it reads,
        and an elided `{ ... }` came back verbatim in 4 of 40 MBXP answers)."""
        raw = (root / self.path).read_bytes()[self.start : self.end].decode("utf-8", "replace")
        if not whole:
            raw = signature(raw, self.kind).rstrip()
        doc = "".join(f"// {ln}".rstrip() + "\n" for ln in self.doc.rstrip("\n").split("\n")) if self.doc else ""
        return doc + raw


@dataclass
class Index:
    """Declarations of the Go files under root, and a BM25 ranking of them."""

    root: Path
    # relative path -> {mtime_ns, size, decls: [[kind, name, recv, start, end, doc, terms]]}
    files: dict[str, dict[str, Any]]
    _docs: list[tuple[str, list]] = field(default_factory=list, repr=False)
    _post: dict[str, list[tuple[int, int]]] = field(default_factory=dict, repr=False)
    _len: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._docs = [(path, d) for path in sorted(self.files) for d in self.files[path]["decls"]]

    def _postings(self) -> None:
        """The inverted index, built on the first search (updating an index needs none: on the Go
        tree's 174,000 declarations it is most of a rerun's time)."""
        post: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, (_, d) in enumerate(self._docs):
            toks = d[6].split()
            self._len.append(len(toks))
            for t, n in Counter(toks).items():
                post[t].append((i, n))
        self._post = dict(post)
        self._avg = sum(self._len) / max(1, len(self._len))

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        """The k declarations BM25 ranks best for query, best first; none from the files in exclude."""
        if len(self._len) != len(self._docs):
            self._postings()
        skip, n = set(exclude), len(self._docs)
        scores: dict[int, float] = defaultdict(float)
        for t in set(terms(query)):
            post = self._post.get(t)
            if not post:
                continue
            idf = math.log(1 + (n - len(post) + 0.5) / (len(post) + 0.5))
            for i, tf in post:
                norm = tf + K1 * (1 - B + B * self._len[i] / self._avg)
                scores[i] += idf * tf * (K1 + 1) / norm
        out = []
        for i, s in sorted(scores.items(), key=lambda x: (-x[1], x[0])):
            path, d = self._docs[i]
            if path in skip:
                continue
            out.append(Hit(path, d[0], d[1], d[2], d[3], d[4], d[5], round(s, 4)))
            if len(out) == k:
                break
        return out


@dataclass
class IndexStats:
    files: int = 0
    decls: int = 0
    reread: list[str] = field(default_factory=list)  # files (re)read this run: new or changed
    removed: list[str] = field(default_factory=list)  # files gone since the last run
    seconds: float = 0.0
    path: str = ""  # the index file


def index_path(root: Path) -> Path:
    """Where the index of root is cached: one JSON file per absolute root under the gocoder cache."""
    from gocoder.check.toolchain import cache_dir

    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "index" / f"{root.resolve().name or 'root'}-{key}.json"


def go_files(root: Path) -> dict[str, os.stat_result]:
    """Relative path -> stat of each .go file under root, tests, vendor/, testdata/ and dot folders left out."""
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


def _decls_of(srcs: list[bytes], drop: Callable[[str], bool] | None = None) -> list[list[list[Any]]]:
    """Each file's declarations as index rows: [kind, name, recv, start, end, doc, terms]; drop(text) True
    leaves a declaration out."""
    from gocoder.check.validate import get_checker

    out = []
    for src, res in zip(srcs, get_checker().check_many(srcs, kind="file", docs=True, gofmt=False), strict=True):
        rows = []
        for d in res.decls:
            text = src[d.start : d.end].decode("utf-8", "replace")
            if drop is not None and drop(text):
                continue
            words = terms(f"{d.recv} {d.name}") * 2 + terms(d.doc) + terms(signature(text, d.kind))
            rows.append([d.kind, d.name, d.recv, d.start, d.end, d.doc, " ".join(words)])
        out.append(rows)
    return out


def build_index(root: str | Path, out: str | Path | None = None,
                progress: Callable[[int, int], None] | None = None, chunk: int = 256,
                save_every_s: float = 30.0, drop: Callable[[str], bool] | None = None,
                drop_key: str = "") -> tuple[Index, IndexStats]:
    """Index the Go files under root, re-reading only those whose size or mtime changed since the cached
    index (out, default index_path(root)) was written; the index is saved every save_every_s seconds and
    at the end, so an interrupted run keeps most of what it read. drop(text) True leaves a declaration
    out (a decontamination list: the CLI's --decontaminate); drop_key names it, and an index cached
    under another key is rebuilt whole."""
    root = Path(root)
    if not root.is_dir():
        raise GocoderError(f"{root}: not a folder to index")
    t0 = time.perf_counter()
    dest = Path(out) if out is not None else index_path(root)
    old = load_files(dest, root, drop_key) if dest.exists() else {}
    now = go_files(root)
    stats = IndexStats(path=str(dest), removed=sorted(set(old) - set(now)))
    files = {p: old[p] for p in now if p in old and (old[p]["mtime_ns"], old[p]["size"]) == (now[p].st_mtime_ns,
                                                                                            now[p].st_size)}
    todo = sorted(set(now) - set(files))
    saved = time.monotonic()
    for i in range(0, len(todo), chunk):
        part = todo[i : i + chunk]
        srcs = []
        for p in part:
            try:
                srcs.append((root / p).read_bytes())
            except OSError as e:
                raise GocoderError(f"{root / p}: cannot read: {e.strerror}") from None
        for p, rows in zip(part, _decls_of(srcs, drop), strict=True):
            files[p] = {"mtime_ns": now[p].st_mtime_ns, "size": now[p].st_size, "decls": rows}
        stats.reread += part
        if time.monotonic() - saved > save_every_s:  # a whole save of the Go tree's index takes ~1 s
            _save(dest, root, files, drop_key)
            saved = time.monotonic()
        if progress is not None:
            progress(min(i + chunk, len(todo)), len(todo))
    if todo or stats.removed or not dest.exists():
        _save(dest, root, files, drop_key)
    idx = Index(root, files)
    stats.files, stats.decls, stats.seconds = len(files), len(idx), round(time.perf_counter() - t0, 2)
    return idx, stats


def _save(dest: Path, root: Path, files: dict[str, Any], drop_key: str = "") -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"version": INDEX_VERSION, "root": str(root.resolve()), "drop_key": drop_key,
                               "files": files}))
    os.replace(tmp, dest)


def load_files(path: Path, root: Path | None = None, drop_key: str | None = None) -> dict[str, Any]:
    """The files of a saved index (of root, when given: an index of another folder is an error; {} when
    drop_key is given and is not the index's: its declarations were filtered by another list)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GocoderError(f"{path}: not a gocoder index ({e})") from None
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION or not isinstance(data.get("files"), dict):
        return {}  # another version's index: rebuilt
    if root is not None and data.get("root") != str(root.resolve()):
        raise GocoderError(f"{path}: the index of {data.get('root')}, not of {root}")
    if drop_key is not None and data.get("drop_key", "") != drop_key:
        return {}
    return data["files"]


def open_index(where: str | Path, progress: Callable[[int, int], None] | None = None) -> Index:
    """An index from a folder (built or brought up to date) or from a saved index file (as it is)."""
    p = Path(where)
    if p.is_dir():
        return build_index(p, progress=progress)[0]
    if not p.is_file():
        raise GocoderError(f"{p}: neither a folder to index nor an index file")
    data = json.loads(p.read_text(encoding="utf-8")) if p.suffix == ".json" else {}
    if not data.get("root"):
        raise GocoderError(f"{p}: not a gocoder index (no root)")
    return Index(Path(data["root"]), load_files(p))


def with_related(rec: Record, idx: Index, fits: Callable[[Record], bool], *,
                 query: str | None = None, k: int = 8, exclude: Iterable[str] = ()) -> Record:
    """rec with context.related: the best of idx's k hits for its problem that fit, in rank order; a hit
    too long is tried as its signature. fits(rec) says whether a record's prompt is within the budget."""
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
