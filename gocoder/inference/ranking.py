"""The rankings of retrieval: a Go declaration's index terms, and an Index of declarations that
ranks them for a query by BM25, by the model's embeddings, or by both fused.

A declaration's terms are the identifiers of its name, doc comment and signature, split at
camelCase and snake_case boundaries and lowercased, beside the whole identifier (`ReadAll` gives
readall, read, all). BM25 (Robertson and Zaragoza 2009; k1 = 1.2, b = 0.75) ranks declarations for
a query by them.
The model's embeddings of a declaration's doc comment and signature (`embed_text`; the vectors are
gocoder/inference/embed.py's) rank by cosine with the query's, and "hybrid" fuses the two rankings
by reciprocal rank (Cormack et al. 2009). The index file these rank, built, cached and updated per
file, is gocoder/inference/retrieve.py's.
"""

from __future__ import annotations

import base64
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError
from gocoder.text.gosource import body_open

K1, B = 1.2, 0.75
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


def embed_text(kind: str, doc: str, code: str) -> str:
    """What the model reads of a declaration: its doc comment and its signature, as Go text."""
    return comment(doc) + signature(code, kind)
