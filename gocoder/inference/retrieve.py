"""Retrieval of a repository's declarations as context: a BM25 index over top-level Go declarations.

A small model copies well from context and recalls poorly (RepoCoder, Zhang et al. 2023;
ReACC, Lu et al. 2022: retrieved repository code raises completion accuracy at every model
size), so `gocoder generate --repo PATH` puts the declarations of PATH that best match the PR
description into the prompt beside the file being changed, and `gocoder bench --retrieve
INDEX` does the same for benchmark prompts.

The index (`gocoder index PATH`) holds one document per top-level declaration as gocheck lists them
(gocoder/check/validate.py: kind, name, receiver, byte span, doc comment): its terms are the
identifiers of its name, doc comment and signature, split at camelCase and snake_case boundaries and
lowercased, beside the whole identifier (`ReadAll` gives readall, read, all). BM25 (Robertson and
Zaragoza 2009; k1 = 1.2, b = 0.75) ranks them for a query. The index is a JSON file in the cache
(~/.cache/gocoder/index), keyed by each file's path, size and mtime: a rerun re-reads only the files
that changed, appeared or went away.

The model's own embeddings are the other ranking (`[retrieve] method = "embed"`, or "hybrid":
reciprocal rank fusion of the two, Cormack et al. 2009): each declaration's doc comment and
signature, and the query, are read by the model (gocoder/inference/embed.py: its final hidden states
or its token embeddings, mean-pooled, L2-normalized) and ranked by cosine. The vectors are stored
with each file's entry (float16), so they follow the same per-file update: a changed file's
declarations are parsed and embedded again, the others' are kept; an index embedded by another model
or pooling is embedded again whole.
BENCHMARKS.md (PR benchmark, retrieval recall) measures the rankings against each other.

The retrieved declarations enter the record as `context.related` ([{file, code}]), which
gocoder/text/serialize.py writes as `<FILE>` blocks before the target file: the text a model would
be trained on with neighbours is the text it is prompted with (STYLE.md 17).
"""

from __future__ import annotations

import base64
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

import numpy as np

from gocoder import GocoderError
from gocoder.inference.embed import EMBED_TOKENS, Embedder  # noqa: F401 (EMBED_TOKENS: re-exported)
from gocoder.record import Record, Related
from gocoder.text.gosource import body_open

INDEX_VERSION = 1
K1, B = 1.2, 0.75
SKIP_DIRS = {"vendor", "testdata", "node_modules", ".git", ".gocoder"}
# of a func: its head up to the body's brace; of a type, var or const: its start
SIGNATURE_BYTES = 400
METHODS = ("bm25", "embed", "hybrid")
RRF_K = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
# words a description is made of that name no declaration: left out of queries and documents alike
STOP = frozenset(
    "a an and are as at be by for from if in into is it its of on or that the this to with "
    "add fix use make when which func return var const type".split()
)


def split_ident(name: str) -> list[str]:
    """An identifier's index terms: its parts at camelCase, digit and snake_case boundaries,
    lowercased, and the whole identifier when it has several parts (`parseHTTPResponse` gives
    parse, http, response, parsehttpresponse)."""
    parts = [p.lower() for chunk in name.split("_") for p in _CAMEL.findall(chunk)]
    whole = name.lower().strip("_")
    if len(parts) > 1 and whole:
        parts.append(whole)
    return parts


def terms(text: str) -> list[str]:
    """The index terms of a text (identifiers and words alike), stop words left out."""
    return [t for m in _IDENT.findall(text) for t in split_ident(m) if t not in STOP and len(t) > 1]


def signature(text: str, kind: str) -> str:
    """A declaration's head: a func up to its body's brace, anything
    else its first SIGNATURE_BYTES."""
    if kind in ("func", "method"):
        at = body_open(text)  # just after the body's brace
        return text[: at - 1 if 0 < at <= SIGNATURE_BYTES else SIGNATURE_BYTES]
    return text[:SIGNATURE_BYTES]


def comment(doc: str) -> str:
    """A doc comment's text as the `//` lines it came from."""
    return "".join(f"// {ln}".rstrip() + "\n" for ln in doc.rstrip("\n").split("\n")) if doc else ""


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
        """The declaration as Go text with its doc comment; whole=False: its signature
        only, for one too long for the prompt (a func without its body, which Go's
        grammar allows: the model copies what it reads, and an elided `{ ... }` came back
        verbatim in 4 of 40 MBXP answers)."""
        raw = (root / self.path).read_bytes()[self.start : self.end].decode("utf-8", "replace")
        if not whole:
            raw = signature(raw, self.kind).rstrip()
        return comment(self.doc) + raw


@dataclass
class Index:
    """Declarations of the Go files under root, ranked for a query by BM25, by the
    model's embeddings (embedder: an Embedder, whose vectors the files carry) or
    by both fused (method: METHODS)."""

    root: Path
    # relative path -> {mtime_ns, size, decls: [[kind, name, recv, start, end, doc, terms]], vecs?:
    # base64 of float16 [len(decls), dim]}
    files: dict[str, dict[str, Any]]
    method: str = "bm25"
    embedder: Any = None
    _docs: list[tuple[str, list]] = field(default_factory=list, repr=False)
    _post: dict[str, list[tuple[int, int]]] = field(default_factory=dict, repr=False)
    _len: list[int] = field(default_factory=list, repr=False)
    _vecs: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise GocoderError(f"retrieve.method {self.method!r}: one of {', '.join(METHODS)}")
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

    def search(
        self, query: str, k: int = 10, exclude: Iterable[str] = (), method: str | None = None
    ) -> list[Hit]:
        """The k declarations ranked best for query (by method, default the index's own), best
        first; none from the files in exclude."""
        method = method or self.method
        if method == "bm25":
            ranked = self.bm25(query)
        elif method == "embed":
            ranked = self.cosine(query)
        elif method == "hybrid":
            ranked = fuse([self.bm25(query), self.cosine(query)])
        else:
            raise GocoderError(f"retrieve.method {method!r}: one of {', '.join(METHODS)}")
        skip, out = set(exclude), []
        for i, s in ranked:
            path, d = self._docs[i]
            if path in skip:
                continue
            out.append(Hit(path, d[0], d[1], d[2], d[3], d[4], d[5], round(s, 4)))
            if len(out) == k:
                break
        return out

    def bm25(self, query: str) -> list[tuple[int, float]]:
        """(declaration number, BM25 score) of every declaration sharing
        a term with query, best first."""
        if len(self._len) != len(self._docs):
            self._postings()
        n = len(self._docs)
        scores: dict[int, float] = defaultdict(float)
        for t in set(terms(query)):
            post = self._post.get(t)
            if not post:
                continue
            idf = math.log(1 + (n - len(post) + 0.5) / (len(post) + 0.5))
            for i, tf in post:
                norm = tf + K1 * (1 - B + B * self._len[i] / self._avg)
                scores[i] += idf * tf * (K1 + 1) / norm
        return sorted(scores.items(), key=lambda x: (-x[1], x[0]))

    def vectors(self) -> np.ndarray:
        """The declarations' vectors [len(self), dim] (float32, unit
        length), as the files carry them."""
        if self._vecs is None:
            missing = [
                p
                for p in sorted(self.files)
                if self.files[p]["decls"] and "vecs" not in self.files[p]
            ]
            if missing:
                raise GocoderError(
                    f"{self.root}: {len(missing)} files of the index have no embeddings "
                    f"(first {missing[0]}): index it with retrieve.method embed or hybrid"
                )
            parts = [unpack(self.files[p]["vecs"], len(self.files[p]["decls"]))
                     for p in sorted(self.files) if self.files[p]["decls"]]
            self._vecs = (
                np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 1), np.float32)
            )
        return self._vecs

    def cosine(self, query: str) -> list[tuple[int, float]]:
        """(declaration number, cosine with the query's vector) of every declaration, best first."""
        if self.embedder is None:
            raise GocoderError(
                f"retrieve.method {self.method}: the index of {self.root} has no model to embed "
                "the query with"
            )
        vecs = self.vectors()
        if not len(vecs):
            return []
        sims = vecs @ self.embedder.embed([query])[0]
        order = np.argsort(-sims, kind="stable")
        return [(int(i), float(sims[i])) for i in order]


def fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each item's sum of 1 / (RRF_K + rank)
    over the rankings, best first."""
    score: dict[int, float] = defaultdict(float)
    for ranked in rankings:
        for r, (i, _) in enumerate(ranked):
            score[i] += 1 / (RRF_K + r + 1)
    return sorted(score.items(), key=lambda x: (-x[1], x[0]))


def pack(vecs: np.ndarray) -> str:
    """Vectors [n, dim] as the index stores them: base64 of float16."""
    return base64.b64encode(np.ascontiguousarray(vecs, np.float16).tobytes()).decode("ascii")


def unpack(text: str, n: int) -> np.ndarray:
    """pack's vectors back, [n, dim] float16."""
    flat = np.frombuffer(base64.b64decode(text), np.float16)
    return flat.reshape(n, -1) if n else flat.reshape(0, 1)


# ---------------------------------------------------------------------------------- the model's
# vectors

def embed_text(kind: str, doc: str, code: str) -> str:
    """What the model reads of a declaration: its doc comment and its signature, as Go text."""
    return comment(doc) + signature(code, kind)


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
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(
        json.dumps(
            {
                "version": INDEX_VERSION,
                "root": str(root.resolve()),
                "drop_key": drop_key,
                "embed_key": embed_key,
                "files": files,
            }
        )
    )
    os.replace(tmp, dest)


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
