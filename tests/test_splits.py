"""Splits (gocoder/splits.py): one key a Go package for every source, and no held-out package in training.

The leak test builds the corpus and the records from one source tree of many packages through the CLI
(the same commands a user runs, so it also runs against code older than gocoder/splits.py) and checks
that no valid or test package of either reaches the training split of either (issue 26).
"""

from __future__ import annotations

import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest

import gocoder as gocoder_pkg

REPO = Path(gocoder_pkg.__file__).resolve().parents[1]  # the code under test (PYTHONPATH's), not this file's tree
N_PACKAGES = 60  # at the default shares (0.9, 0.05, 0.05) these names put 3 packages in valid and 1 in test


def source_tree(root: Path) -> Path:
    """An unpacked Debian package of N_PACKAGES Go packages, each a documented function of its own."""
    src = root / "golang-example-lib-dev" / "usr/share/gocode/src"
    for i in range(N_PACKAGES):
        d = src / f"example.com/lib/p{i:02d}"
        d.mkdir(parents=True)
        (d / "f.go").write_text(f"package p{i:02d}\n\n// Scale{i} multiplies x by {i + 2} and adds {i}.\n"
                                f"func Scale{i}(x int) int {{\n\treturn x*{i + 2} + {i}\n}}\n")
    doc = root / "golang-example-lib-dev" / "usr/share/doc/golang-example-lib-dev"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: MIT\n")
    return src


def gocoder(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", "gocoder", *args], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr


def test_no_held_out_package_reaches_a_training_split(tmp_path):
    src = source_tree(tmp_path / "pkgs")
    gocoder("corpus", "build", "--no-go", "--debian", "none", "--unpacked", str(tmp_path / "pkgs"), "--workers", "1",
            "-o", str(tmp_path / "corpus"))
    gocoder("collect", "--go-src", str(src), "-o", str(tmp_path / "raw.jsonl"))
    gocoder("annotate", "-i", str(tmp_path / "raw.jsonl"), "-o", str(tmp_path / "h"), "--split", "0.9,0.05,0.05")
    corpus: dict[str, set[str]] = {}  # split -> Go package folders
    corpus_train_text = ""
    for part in sorted((tmp_path / "corpus/text").glob("part-*.jsonl.xz")):
        for line in lzma.open(part, "rt", encoding="utf-8"):
            r = json.loads(line)
            corpus.setdefault("train" if r["split"] == "train" else "held-out", set()).add(r["path"].rsplit("/", 1)[0])
            corpus_train_text += r["text"] if r["split"] == "train" else ""
    records: dict[str, set[str]] = {}
    held_out_code = []
    for split in ("train", "valid", "test"):
        for line in (tmp_path / "h" / f"{split}.jsonl").read_text().splitlines():
            r = json.loads(line)
            records.setdefault("train" if split == "train" else "held-out", set()).add(
                r["context"]["file"].rsplit("/", 1)[0])
            if split != "train":
                held_out_code.append(r["solution"]["code"])
    assert sum(map(len, corpus.values())) == sum(map(len, records.values())) == N_PACKAGES
    assert records.get("held-out"), "the tree must have held-out packages to test"
    assert not records["held-out"] & corpus["train"], "held-out records' packages are in the corpus's train split"
    assert not corpus.get("held-out", set()) & records["train"], "held-out corpus packages are in records' train"
    assert not [c for c in held_out_code if c in corpus_train_text]  # their code, not only their names
    assert records == corpus


def test_every_source_keys_a_package_by_its_go_path():
    """GOROOT's go/scanner is one key whether the corpus reads its file or collect reads its function."""
    from gocoder.splits import file_key, record_keys

    assert file_key("go/scanner/scanner.go") == "go/scanner" == record_keys(
        {"source": "go-src", "repo": "GOROOT/src/go/scanner", "files_changed": [{"path": "scanner/scanner.go"}]})[0]
    assert record_keys({"source": "synth", "repo": "GOROOT/src/html"}) == ["html"]
    assert file_key("github.com/pkg/errors/errors.go") == "github.com/pkg/errors"  # a Debian gocode path
    # a tree other than GOROOT is a source root: its packages are keyed by their path under it
    assert record_keys({"source": "go-src", "repo": "/x/src/example.com/a",
                        "files_changed": [{"path": "example.com/a/a.go"}]}) == ["example.com/a"]
    # a repository's files by REPO/DIR; a GitHub repository by the import path its Debian package has
    assert record_keys({"source": "git", "repo": "pkg/errors", "files_changed": [
        {"path": "errors.go"}, {"path": "internal/x/x.go"}]}) == ["github.com/pkg/errors",
                                                                   "github.com/pkg/errors/internal/x"]
    assert record_keys({"source": "git", "repo": "/home/me/proj", "files_changed": [{"path": "a/b.go"}]}) == [
        "/home/me/proj/a"]
    # a hierarchical record (annotate's output) keys by its main file
    assert record_keys({"source": "git", "repo": "o/n", "context": {"file": "x/y.go"}}) == ["github.com/o/n/x"]


def test_split_of_places_a_hash_on_the_shares():
    from gocoder.splits import SPLITS, split_of

    counts = [sum(split_of(f"example.com/p{i}", (0.9, 0.05, 0.05)) == s for i in range(4000)) for s in SPLITS]
    assert 3500 < counts[0] < 3700 and 100 < counts[1] < 300 and 100 < counts[2] < 300
    assert {split_of(f"p{i}", (0, 0, 1)) for i in range(50)} == {"test"}
    assert {split_of(f"p{i}", (1, 0, 0)) for i in range(50)} == {"train"}


def test_bad_shares_name_the_option():
    from gocoder import GocoderError
    from gocoder.splits import parse_shares

    assert parse_shares("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    with pytest.raises(GocoderError, match=r"^--split '0.9,0.2,0.1': expected shares"):
        parse_shares("0.9,0.2,0.1", "--split")


def test_no_second_split_function():
    """One home: no stage computes a split of its own (issue 26 was two split functions with two keys)."""
    import re

    for p in sorted((REPO / "gocoder").rglob("*.py")):
        if p.name != "splits.py":
            assert not re.search(r"^def split_of\b|hashlib\.sha256\([^)]*(repo|package)", p.read_text(), re.M), p
