"""Splits: the one place that says whether a piece of Go is train, valid or test.

Every stage that splits asks this module, so a Go package is on one side everywhere: the corpus's
files (`gocoder corpus build`, and through their "split" field tokenize, functions and the
tokenizer), the hierarchical records (`gocoder annotate`, from collect's and synth's raw records)
and the fix benchmark (gocoder/eval/synthfix.py). Two split functions with two keys are how held-out
packages once reached the pretraining data (issue 26): GOROOT was one corpus package that hashed
into train while annotate split its packages one by one.

The key is a Go package path, for every source:
- a corpus file: its folder under the source's root, which is GOROOT/src for the Go distribution
  (`go/scanner`) and /usr/share/gocode/src for a Debian package
  (`github.com/pkg/errors`): the import path;
- a raw record of `collect --go-src` or `synth`: its package folder under the tree given (the
  tree is taken as a source root, as GOROOT/src or a GOPATH's src is; `GOROOT/src/PKG`
  wherever the Go distribution is);
- a raw record of `collect --repo` or `--github`: REPO/DIR of each changed file, where
  a GitHub repository OWNER/NAME is `github.com/OWNER/NAME`, the import path its
  Debian package (if any) has too.
The split of a key is a SHA-256 of it placed on the cumulative shares of (train, valid,
test): no package is in two splits, and a package's split never depends on what else is in
the input. A record that touches packages of several splits goes to the most held-out of them
(test, then valid): held-out code never reaches train. The shares are one config value,
`splits.shares`, read by every stage.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import Any

from gocoder import GocoderError

SPLITS = ("train", "valid", "test")
HELD_OUT = ("valid", "test")  # never trained on; valid is measured during training, test after
# how collect --go-src and synth name the Go distribution's tree (gosrc._tree_label)
GOROOT = "GOROOT/src"
# OWNER/NAME, as gitlog and github label a repository
_GITHUB = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def parse_shares(
    value: str | Sequence[float], what: str = "splits.shares"
) -> tuple[float, float, float]:
    """Three shares (train, valid, test), each >= 0, summing to 1: "0.9,0.05,0.05" or a sequence."""
    try:
        parts = [float(x) for x in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        parts = []
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise GocoderError(
            f"{what} {value!r}: expected shares train,valid,test that sum to 1, e.g. 0.9,0.05,0.05"
        )
    return parts[0], parts[1], parts[2]


def split_of(key: str, shares: Sequence[float]) -> str:
    """The split of a package key: a hash of it placed on the cumulative shares."""
    u = (
        int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big")
        / 2**64
    )
    cum = 0.0
    for name, share in zip(SPLITS, shares, strict=True):
        cum += share
        if u < cum:
            return name
    return next(n for n, s in reversed(list(zip(SPLITS, shares, strict=True))) if s > 0)


def file_key(path: str) -> str:
    """The key of a file under a source root (GOROOT/src, a gocode/src): its folder, the
    package's import path ("." for a file at the root)."""
    return posixpath.dirname(path.replace("\\", "/").strip("/")) or "."


def record_keys(rec: dict[str, Any]) -> list[str]:
    """The package keys of a raw or hierarchical record (its `source`,
    `repo` and changed files' paths)."""
    repo = str(rec.get("repo") or "")
    # go-src and synth: the package folder in the Go tree
    if repo == GOROOT or repo.startswith(GOROOT + "/"):
        return [repo[len(GOROOT) + 1:] or "."]
    # repo is TREE/PKG, and the files' paths are PKG/FILE
    if rec.get("source") in ("go-src", "synth"):
        paths = [f.get("path", "") for f in rec.get("files_changed") or ()] or [
            rec.get("context", {}).get("file", "")
        ]
        return sorted({file_key(p) for p in paths})
    base = f"github.com/{repo}" if _GITHUB.fullmatch(repo) else repo
    paths = [f.get("path", "") for f in rec.get("files_changed") or ()]
    if not paths and isinstance(rec.get("context"), dict):  # a hierarchical record: its main file
        paths = [rec["context"].get("file", "")]
    keys = {posixpath.join(base, file_key(p)) if file_key(p) != "." else base for p in paths}
    return sorted(keys) or [base]


def most_held_out(splits: Iterable[str]) -> str:
    """test over valid over train: where a record of packages of several splits goes."""
    got = set(splits)
    return next((s for s in reversed(SPLITS) if s in got), "train")


def record_split(rec: dict[str, Any], shares: Sequence[float]) -> str:
    """The split of a record: the most held-out split of its packages."""
    return most_held_out(split_of(k, shares) for k in record_keys(rec))
