"""`gocoder corpus`: whole Go files from the Go distribution and Debian,
filtered, deduplicated, in parts.

Three steps, each resumable:
1. fetch: Debian .debs into CACHE/debs (gocoder/collect/gosources.py); a
   rerun fetches only what is missing.
2. scan, one package at a time (in parallel): read its Go files, drop vendored copies, testdata/,
   files over 300 KB, binary, minified and generated files and any file holding a blocklisted
   function (gocoder/collect/decontam.py's hashes, all blocklists at once), and compute a MinHash of
   each kept file. The result lands in CACHE/scan-KEY/PKG.jsonl.gz and, last, PKG.json (its counts):
   a package with a PKG.json is done and a rerun skips it (KEY hashes the filters and blocklists).
3. write, over all scanned packages in a fixed order (the Go distribution first, then Debian's by
   name; files by path): drop exact duplicates (sha256 of the text) and near duplicates (MinHash-LSH
   from `datasketch` on 5-token shingles, Jaccard >= 0.85, as BigCode's near-dedup), the first copy
   wins; then write OUT/text/part-NNNNN.jsonl.xz parts of at most 24 MiB and OUT/summary.json.
   This step is cheap beside the others and is redone whole, into a temporary folder.

The split is by Go package, gocoder/splits.py's, as annotate's records and the fix benchmark are: a
file's key is its folder under the source's root (GOROOT/src's `go/scanner`, a Debian package's
import path under /usr/share/gocode/src), placed on the shares of `splits.shares`; each record says
"train", "valid" or "test" (held-out = valid + test), and summary.json records the shares. A Go
package is never in two splits, and a package held out of the records is held out of the corpus too
(issue 26: the whole Go distribution was once one key, which hashed into train).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import shutil
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError
from gocoder.collect.decontam import code_hashes
from gocoder.collect.gosources import GO_PACKAGE
from gocoder.collect.textparts import PartWriter
from gocoder.fsio import atomic_write, need, output_lock, replace_dir, write_error
from gocoder.records import decode_go, skip_path
from gocoder.splits import SPLITS, file_key, parse_shares, split_of

MAX_BYTES = 300 * 1024
MAX_LINE, MAX_MEAN_LINE = 1000, 100  # minified or data: no hand-written Go looks like this
# share of bytes that are not control characters (tab and newlines count as text)
MIN_PRINTABLE = 0.98
NUM_PERM, THRESHOLD, SHINGLE = 128, 0.85, 5
SCHEME = "affine32"  # datasketch 2's unbiased 32-bit scheme; our shingle hashes are 32-bit
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"
_WORD = re.compile(r"\w+|[^\w\s]")
# Summary order: the filters as a file meets them, so "before/after
# each filter" reads top to bottom.
REASONS = ("vendored", "testdata", "oversized", "binary", "not-utf8", "generated", "minified",
           "contaminated", "duplicate", "near-duplicate")
Progress = Callable[[str, int, int], None]


def datasketch():
    """datasketch, an optional dependency (the `corpus` extra, README
    "Corpus"): imported only by a build."""
    return need("datasketch", "gocoder corpus (its near-dedup)")


def classify(rel: str, data: bytes) -> tuple[str | None, str | None]:
    """(text, None) for a Go file to keep, (None, reason) to drop
    it, (None, None) if it is not Go."""
    reason = skip_path(rel)
    if reason:
        return None, None if reason == "non-go" else reason
    text, reason = decode_go(data, MAX_BYTES)
    if text is None:
        return None, reason
    if data and len(data.translate(None, _CONTROL)) / len(data) < MIN_PRINTABLE:
        return None, "binary"
    lines = text.split("\n")
    if max(map(len, lines)) > MAX_LINE or len(text) / len(lines) > MAX_MEAN_LINE:
        return None, "minified"
    return text, None


class Sketcher:
    """MinHash signatures of 5-token shingles; the permutations are drawn once, not once a file."""

    def __init__(self):
        self.ds = datasketch()
        self.perms = self.ds.MinHash(num_perm=NUM_PERM, seed=1, scheme=SCHEME).permutations

    @staticmethod
    def shingles(text: str) -> np.ndarray:
        """32-bit hashes of every 5-token window; a function of the text
        alone, so equal in every process."""
        toks = np.fromiter(map(zlib.crc32, map(str.encode, _WORD.findall(text))), dtype=np.uint64)
        if len(toks) < SHINGLE:
            toks = np.pad(toks, (0, SHINGLE - len(toks)))
        h = np.zeros(len(toks) - SHINGLE + 1, dtype=np.uint64)
        for k in range(SHINGLE):  # a polynomial hash of each window, vectorized; wraps mod 2**64
            h = h * np.uint64(1_000_003) + toks[k:len(toks) - SHINGLE + 1 + k]
        return np.unique(h >> np.uint64(32) ^ (h & np.uint64(0xFFFFFFFF)))

    def signature(self, text: str) -> str:
        m = self.ds.MinHash(
            num_perm=NUM_PERM, seed=1, hashfunc=int, permutations=self.perms, scheme=SCHEME
        )
        sh = self.shingles(text)
        for i in range(0, len(sh), 20_000):  # chunks keep the (shingles x perms) matrix small
            m.update_batch(sh[i:i + 20_000].tolist())
        return base64.b64encode(m.hashvalues.astype(np.uint32).tobytes()).decode()


_W: dict[str, Any] = {}  # a scan worker's state: the source, the blocklist, the sketcher


def _init_worker(source: Any, blocklist: set[str], scan_dir: Path) -> None:
    _W.update(source=source, blocklist=blocklist, scan_dir=scan_dir, sketcher=Sketcher())


def scan_package(name: str) -> str:
    """Filter one package's files into SCAN/name.jsonl.gz and its counts into SCAN/name.json."""
    scan_dir: Path = _W["scan_dir"]
    dropped: Counter[str] = Counter()
    dropped_bytes: Counter[str] = Counter()
    kept = [0, 0]
    tmp = scan_dir / f"{name}.jsonl.gz.tmp"
    with (
        _W["source"].open(name) as (root, license),
        gzip.open(tmp, "wt", compresslevel=1, encoding="utf-8") as f,
    ):
        for rel, path in walk(root):
            # a copy of a file met elsewhere, or a path into the host's own /usr
            if path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue  # a dangling symlink in a package: nothing to read
            text, reason = classify(rel, data)
            if text is not None and code_hashes(text) & _W["blocklist"]:
                text, reason = None, "contaminated"
            if text is None:
                if reason:
                    dropped[reason] += 1
                    dropped_bytes[reason] += len(data)
                continue
            kept[0] += 1
            kept[1] += len(data)
            f.write(
                json.dumps({"path": rel, "text": text, "sig": _W["sketcher"].signature(text)})
                + "\n"
            )
    tmp.replace(scan_dir / f"{name}.jsonl.gz")
    stats = {"package": name, "license": license, "kept": kept,
             "dropped": {r: [dropped[r], dropped_bytes[r]] for r in dropped}}
    (scan_dir / f"{name}.json.tmp").write_text(json.dumps(stats))
    # last: marks the package done
    (scan_dir / f"{name}.json.tmp").replace(scan_dir / f"{name}.json")
    return name


def walk(root: Path) -> Iterator[tuple[str, Path]]:
    """(path relative to root, path) of every file under root, sorted, without following links."""
    if not root.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = Path(dirpath).relative_to(root).as_posix()
        for fn in sorted(filenames):
            yield (fn if rel == "." else f"{rel}/{fn}"), Path(dirpath) / fn


def scan(source: Any, names: list[str], scan_dir: Path, blocklist: set[str], workers: int,
         progress: Progress | None = None) -> None:
    """Scan every package not scanned yet, `workers` at a time."""
    scan_dir.mkdir(parents=True, exist_ok=True)
    todo = [n for n in names if not (scan_dir / f"{n}.json").exists()]
    done = len(names) - len(todo)
    if progress:
        progress("scan", done, len(names))
    if workers <= 1 or len(todo) <= 1:
        _init_worker(source, blocklist, scan_dir)
        results: Iterator[str] = map(scan_package, todo)
        pool = None
    else:
        pool = get_context("fork").Pool(workers, _init_worker, (source, blocklist, scan_dir))
        results = pool.imap_unordered(scan_package, todo)
    try:
        for _ in results:
            done += 1
            if progress:
                progress("scan", done, len(names))
    finally:
        if pool is not None:
            pool.terminate()


def write(
    names: list[str],
    scan_dir: Path,
    out: Path,
    part_bytes: int,
    progress: Progress | None = None,
    tokenizer: Any = None,
    workers: int = 1,
    shares: tuple[float, ...] = (0.9, 0.05, 0.05),
) -> dict[str, Any]:
    """Dedup the scanned packages in order and write OUT/text parts and OUT/summary.json; each
    file's split is its Go package's (gocoder/splits.py)."""
    ds = datasketch()
    lsh = ds.MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    seen: set[str] = set()
    sigs: dict[str, np.ndarray] = {}
    files, nbytes = Counter[str](), Counter[str]()
    splits: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    go_packages: dict[str, set[str]] = {s: set() for s in SPLITS}
    licenses: Counter[str] = Counter()
    sample: list[str] = []
    tmp = out / "text.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with PartWriter(tmp, part_bytes, workers=workers) as parts:
        for i, name in enumerate(names):
            stats = json.loads((scan_dir / f"{name}.json").read_text())
            for reason, (n, b) in stats["dropped"].items():
                files[reason] += n
                nbytes[reason] += b
            with gzip.open(scan_dir / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    text, size = rec["text"], len(rec["text"].encode())
                    rid = hashlib.sha256(text.encode()).hexdigest()[:16]
                    reason = "duplicate" if rid in seen else None
                    seen.add(rid)
                    if reason is None:
                        sig = np.frombuffer(base64.b64decode(rec["sig"]), dtype=np.uint32)
                        m = ds.MinHash(num_perm=NUM_PERM, seed=1, hashvalues=sig, scheme=SCHEME)
                        # LSH gives candidates; the estimated Jaccard confirms one, so a chance
                        # collision of bands never drops a file.
                        if any(np.mean(sigs[k] == sig) >= THRESHOLD for k in lsh.query(m)):
                            reason = "near-duplicate"
                        else:
                            lsh.insert(rid, m)
                            sigs[rid] = sig
                    if reason:
                        files[reason] += 1
                        nbytes[reason] += size
                        continue
                    key = file_key(rec["path"])
                    split = split_of(key, shares)
                    parts.write(
                        {
                            "id": rid,
                            "package": name,
                            "license": stats["license"],
                            "path": rec["path"],
                            "split": split,
                            "text": text,
                        }
                    )
                    splits[split].update(files=1, bytes=size)
                    go_packages[split].add(key)
                    licenses[stats["license"]] += 1
                    if tokenizer is not None and len(seen) % 50 == 0:
                        sample.append(text)
            if progress:
                progress("write", i + 1, len(names))
    replace_dir(tmp, out / "text")  # the last build's text stays whole until this one's is
    # Go packages (import paths) with a kept file, not the corpus's Debian packages
    for s in SPLITS:
        splits[s]["packages"] = len(go_packages[s])
    kept_files = sum(s["files"] for s in splits.values())
    kept_bytes = sum(s["bytes"] for s in splits.values())
    summary = {
        "seen": {
            "files": kept_files + sum(files.values()),
            "bytes": kept_bytes + sum(nbytes.values()),
        },
        "dropped": {r: {"files": files[r], "bytes": nbytes[r]} for r in REASONS if files[r]},
        "kept": {"files": kept_files, "bytes": kept_bytes},
        "splits": {k: dict(v) for k, v in splits.items()},
        "shares": list(shares),
        "packages": len(names),
        "parts": parts.count,
        "licenses": dict(licenses.most_common(10)),
    }
    if sample:
        ids = tokenizer.encode_batch(sample)
        summary["bytes_per_token"] = round(
            sum(len(t.encode()) for t in sample) / sum(map(len, ids)), 3
        )
        summary["est_tokens"] = {
            "seen": round(summary["seen"]["bytes"] / summary["bytes_per_token"]),
            "kept": round(kept_bytes / summary["bytes_per_token"]),
        }
    return summary


def build(sources: list[Any], out: Path, cache: Path, blocklists: list[Path], *, workers: int = 2,
          part_mib: float = 24, progress: Progress | None = None, tokenizer: Any = None,
          shares: tuple[float, ...] = (0.9, 0.05, 0.05)) -> dict[str, Any]:
    """Fetch, scan and write the corpus (see the module docstring); split on shares (splits.shares);
    returns the summary."""
    from gocoder.collect.decontam import load_blocklist

    shares = parse_shares(shares)
    datasketch()  # fail before hours of work, not after
    t0 = time.monotonic()
    blocklist: set[str] = set()
    for b in blocklists:
        blocklist |= load_blocklist(b)
    # The scan cache is only valid for the filters and blocklist that
    # made it: key its folder by them.
    key = hashlib.sha256(
        json.dumps(
            [
                sorted(blocklist),
                MAX_BYTES,
                MAX_LINE,
                MAX_MEAN_LINE,
                MIN_PRINTABLE,
                NUM_PERM,
                SHINGLE,
            ]
        ).encode()
    ).hexdigest()[:12]
    # one build per output folder (its default cache included): two would
    # write the same temporary files
    with output_lock(out):
        scan_dir = cache / f"scan-{key}"
        names: list[str] = []
        failed: list[str] = []
        for src in sources:
            if hasattr(src, "fetch"):
                failed += src.fetch(lambda d, n: progress and progress("fetch", d, n))
            own = src.packages()
            clash = set(own) & set(names)
            if clash:
                raise GocoderError(f"package {sorted(clash)[0]!r} comes from two sources")
            scan(src, own, scan_dir, blocklist, workers, progress)
            names += own
        names.sort(key=lambda n: (n != GO_PACKAGE, n))
        try:
            summary = write(
                names, scan_dir, out, int(part_mib * 2**20), progress, tokenizer, workers, shares
            )
        except BaseException as e:
            # a full disk gets its space back; the last build's text stays whole
            shutil.rmtree(out / "text.tmp", ignore_errors=True)
            if isinstance(e, OSError):
                raise write_error(e, out / "text") from None
            raise
        summary.update(fetch_failed=failed, blocklist_hashes=len(blocklist),
                       seconds=round(time.monotonic() - t0, 1))
        atomic_write(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary
