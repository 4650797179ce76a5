"""Retrieved neighbours in training records: hierarchical records given
`context.related` as inference gives it.

Issue 28 asks whether training on retrieved declarations helps more than retrieval at inference only
(RETRO, Borgeaud et al. 2022: a model trained with its neighbours learns to use them). `gocoder
relate` adds to each record the declarations of its own Go package that retrieval finds for its
problem, by the function inference uses (gocoder/inference/retrieve.py with_related: BM25 over
the problem's description and details, a declaration too long tried as its signature) and
within the prompt inference fills, so the text a model is trained on is the text it is prompted
with (STYLE.md 17). Three rules:

- Its own package only: neighbours come from the folder of the record's file, which is its split key
  (gocoder/splits.py record_keys), so no held-out package's code enters a train record; a record
  whose key is not that folder is written as it is.
- Never the answer: the declarations the solution defines (its top-level names, methods as
  Recv.Name, and its plan's targets) are left out wherever they are in the package, in their
  own file and in a sibling file of another build tag (os's file_unix.go and file_windows.go
  define the same methods), which would hand the answer over nearly verbatim. Other
  declarations of the record's own file stay: a go-src record's context holds none of its file,
  and they are what a user's repository shows.
- The budget: a neighbour is kept while the prompt stays within what inference fills
  (serialize.prompt_budget(max_len, max_new), as Generator.with_related) and the
  whole example within max_len, so a neighbour never causes a cut of the example
  training reads (data.py cut_example).

One index of the tree (retrieve.build_index, cached and updated incrementally; GOROOT/src: 174,301
declarations in 4,065 files, 9 s to build), cut into one Index per package, built at the
package's first record. Output is appended record by record (records.JsonlWriter): a
killed run resumes where it stopped.
"""

from __future__ import annotations

import posixpath
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.inference.ranking import Hit, Index
from gocoder.inference.retrieve import build_index, with_related
from gocoder.record import Record
from gocoder.records import JsonlWriter, read_jsonl_numbered
from gocoder.splits import record_keys
from gocoder.text.serialize import prompt, prompt_budget, segments

CHUNK = 256  # records whose solutions gocheck reads in one call
CACHED_PACKAGES = 64  # package indexes kept: records come grouped by package, so a few suffice


@dataclass
class RelateStats:
    records: int = 0  # written this run
    related: int = 0  # of them, given one neighbour or more
    neighbours: int = 0  # neighbours in all
    resumed: int = 0  # written by an earlier run
    no_source: int = 0  # the record's package has no Go file under the root
    other_key: int = 0  # the record's split key is not its file's folder: left as it is
    over_budget: int = 0  # the prompt or the example is over the budget before any neighbour
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # input -> output

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "neighbours_mean": round(self.neighbours / max(1, self.records), 3),
            "neighbours_mean_related": round(self.neighbours / max(1, self.related), 3),
        }


class _Without:
    """An index of one package that never returns the declarations named in names (the answer's)."""

    def __init__(self, idx: Index, names: set[str], hidden: int):
        self.idx, self.names, self.hidden, self.root = idx, names, hidden, idx.root

    def search(self, query: str, k: int = 10, exclude: Iterable[str] = ()) -> list[Hit]:
        hits = self.idx.search(query, k=k + self.hidden, exclude=exclude)
        return [h for h in hits if h.name not in self.names][:k]


class PackageIndexes:
    """The index of a source tree, cut per package folder: index(pkg) holds the declarations of
    pkg's own files only (not of its subfolders, which are other packages with their own split)."""

    def __init__(self, root: Path, progress: Callable[[int, int], None] | None = None,
                 drop: Callable[[str], bool] | None = None, drop_key: str = ""):
        idx, self.stats = build_index(root, progress=progress, drop=drop, drop_key=drop_key)
        self.root = idx.root
        self.files: dict[str, dict[str, Any]] = defaultdict(dict)
        for path, entry in idx.files.items():
            self.files[posixpath.dirname(path)][path] = entry
        self._cache: OrderedDict[str, Index] = OrderedDict()

    def index(self, pkg: str) -> Index | None:
        if pkg not in self.files:
            return None
        if pkg not in self._cache:
            self._cache[pkg] = Index(self.root, self.files[pkg])
            if len(self._cache) > CACHED_PACKAGES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(pkg)
        return self._cache[pkg]

    def without(self, pkg: str, names: set[str]) -> _Without | None:
        """pkg's index with the declarations called names left out."""
        idx = self.index(pkg)
        if idx is None:
            return None
        hidden = sum(d[1] in names for entry in self.files[pkg].values() for d in entry["decls"])
        return _Without(idx, names, hidden)


def answer_names(recs: list[dict[str, Any]]) -> list[set[str]]:
    """The top-level names each record's solution defines (methods as Recv.Name, as gocheck and
    the index name them), with its plan's targets (`method:Recv.Name@file` gives Recv.Name)."""
    from gocoder.check.validate import get_checker

    records = [Record.of(r) for r in recs]
    out = []
    for rec, res in zip(
        records,
        get_checker().check_many([r.code for r in records], kind="auto", gofmt=False),
        strict=True,
    ):
        names = {d.name for d in res.decls} | {s.target_name for s in rec.steps}
        out.append(names - {""})
    return out


def relate_one(rec: dict[str, Any], names: set[str], indexes: PackageIndexes, tok: Any, *, k: int,
               max_len: int, max_new: int, stats: RelateStats) -> dict[str, Any]:
    """rec with context.related: the best of its package's k declarations for its
    problem that fit, none of them the answer's (see the module docstring); rec as it is
    (without related) when none does."""
    context = {key: v for key, v in rec["context"].items() if key != "related"}
    rec = {**rec, "context": context}
    pkg = posixpath.dirname(context.get("file", ""))
    if record_keys(rec) != [pkg]:
        stats.other_key += 1
        return rec
    idx = indexes.without(pkg, names)
    if idx is None:
        stats.no_source += 1
        return rec
    seg = segments(rec)
    answer = sum(
        len(t) for t in tok.encode_batch([seg["plan"], seg["code"] + seg["validate"]], threads=1)
    )
    budget = min(prompt_budget(max_len, max_new), max_len - answer)

    def fits(r: Record) -> bool:
        return len(tok.encode(prompt(r))) <= budget

    if not fits(rec):
        stats.over_budget += 1
        return rec
    out = with_related(Record.of(rec), idx, fits, k=k).to_dict()
    related = out["context"].get("related", [])
    leaked = [r["file"] for r in related if posixpath.dirname(r["file"]) != pkg]
    if leaked:  # the split's guarantee: by construction never, checked on every record all the same
        raise GocoderError(
            f"record {rec.get('id', '?')}: neighbours from outside its package {pkg}: {leaked}"
        )
    return out


def relate(
    inp: str | Path,
    out: str | Path,
    root: str | Path,
    tok: Any,
    *,
    k: int = 8,
    max_len: int = 1024,
    max_new: int = 256,
    progress: Callable[[int, int], None] | None = None,
    index_progress: Callable[[int, int], None] | None = None,
    drop: Callable[[str], bool] | None = None,
    drop_key: str = "",
) -> RelateStats:
    """Write the records of inp (a .jsonl file, or a folder of them) to out (a file, or a folder
    of files of the same names) with retrieved neighbours from root (the source tree their
    context.file paths are relative to, GOROOT/src for the Go distribution's records). A rerun
    appends only the records not yet in out."""
    t0 = time.perf_counter()
    inp, out = Path(inp), Path(out)
    if inp.is_dir():
        pairs = [(f, out / f.name) for f in sorted(inp.glob("*.jsonl"))]
        if not pairs:
            raise GocoderError(f"{inp}: no .jsonl files")
    elif inp.is_file():
        if out.is_dir():
            raise GocoderError(
                f"{out}: is a folder; with a file as input, --out is the file to write"
            )
        pairs = [(inp, out)]
    else:
        raise GocoderError(f"{inp}: no such file or folder")
    if k < 1:
        raise GocoderError(f"--k {k}: expected 1 or more neighbours a record")
    indexes = PackageIndexes(Path(root), index_progress, drop, drop_key)
    total = sum(sum(1 for _ in f.open("rb")) for f, _ in pairs)
    stats, done = RelateStats(), 0
    for src, dest in pairs:
        stats.files[str(src)] = str(dest)
        with JsonlWriter(dest) as writer:
            for chunk in _chunks(_hierarchical(src), CHUNK):
                todo = [r for r in chunk if r.get("id") not in writer.seen]
                stats.resumed += len(chunk) - len(todo)
                for rec, names in zip(todo, answer_names(todo), strict=True):
                    new = relate_one(
                        rec, names, indexes, tok, k=k, max_len=max_len, max_new=max_new, stats=stats
                    )
                    writer.write(new)
                    n = len(new["context"].get("related", []))
                    stats.records += 1
                    stats.related += n > 0
                    stats.neighbours += n
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    stats.seconds = round(time.perf_counter() - t0, 1)
    return stats


def _hierarchical(path: Path) -> Iterable[dict[str, Any]]:
    """The records of path, each checked to be a hierarchical record (one line
    naming the file and line if not)."""
    for lineno, rec in read_jsonl_numbered(path):
        if (
            not all(isinstance(rec.get(f), dict) for f in ("problem", "context", "solution"))
            or "id" not in rec
        ):
            raise GocoderError(
                f"{path}:{lineno}: not a hierarchical record (needs id and problem, context and "
                "solution objects)"
            )
        yield rec


def _chunks(items: Iterable[dict[str, Any]], n: int) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for x in items:
        chunk.append(x)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
