"""`gocoder collect --go-src`: one record per documented function or method of a Go source tree.

The doc comment is the description (its first sentence the title, the whole comment the body) and
the declaration is the solution: an "added" file whose before is empty and whose after is the
declaration's own text (doc comment excluded: it is the problem, not the answer). Declarations and
their docs come from gocheck (go/parser), so anything Go itself cannot parse is skipped and counted.
Like the go tool, the walk skips testdata, vendor, and folders starting with "." or "_".
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.config import CollectConfig, ValidateConfig
from gocoder.records import decode_go, make_record, skip_path
from gocoder.text.gosource import body_open

_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)", re.S)


def first_sentence(doc: str) -> str:
    """Go's convention: the doc's first sentence (or its first paragraph, if no sentence ends)."""
    para = doc.strip().split("\n\n", 1)[0]
    m = _SENTENCE.match(para)
    return " ".join((m.group(1) if m else para).split())


def _tree_label(root: Path) -> str:
    """GOROOT/src/... inside the Go distribution's own tree (the same on
    every machine), else the path."""
    try:
        goroot = subprocess.run(
            ["go", "env", "GOROOT"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        goroot = ""
    src = (Path(goroot.strip()) / "src").resolve() if goroot.strip() else None
    if src is not None and root.is_relative_to(src):
        return Path("GOROOT/src", root.relative_to(src)).as_posix()
    return str(root)


def with_signature(doc: str, decl: str) -> str:
    """The body of a documented function's record: its doc, then "Signature: func ..." as the
    benchmarks' problems state it (gocoder/eval/benchmarks.py problem_record): the model
    learns to keep a given signature."""
    at = body_open(decl)
    sig = " ".join(decl[: at - 1].split()) if at > 0 else ""
    return f"{doc.rstrip()}\n\nSignature: {sig}" if sig else doc


class GoSrcSource:
    name = "go-src"

    def __init__(self, root: Path, cfg: CollectConfig, vcfg: ValidateConfig | None = None):
        root = Path(root)
        if not root.is_dir():
            raise GocoderError(f"--go-src {root}: not a folder")
        self.root, self.cfg = root.resolve(), cfg
        self.label = _tree_label(self.root)
        self.repo = self.label
        self._files: list[str] | None = None
        if not any(f.endswith(".go") for f in self._walk()):
            raise GocoderError(f"--go-src {root}: no .go files")
        from gocoder.check.validate import get_checker  # builds gocheck on first use

        self.checker = get_checker(vcfg)  # vcfg counts only if this process has no checker yet

    def _walk(self) -> list[str]:
        if self._files is None:
            files = []
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
                rel = Path(dirpath).relative_to(self.root).as_posix()
                files += [f if rel == "." else f"{rel}/{f}" for f in sorted(filenames)]
            self._files = files
        return self._files

    def total(self) -> int:
        return len(self._walk())

    def units(self, skips: Counter[str]) -> Iterator[tuple[str, Any]]:
        for rel in self._walk():
            reason = skip_path(rel)
            if reason:
                if reason != "non-go":  # other files in a source tree are not news
                    skips[reason] += 1
                yield rel, None
            else:
                yield rel, rel

    def read(self, rel: str, skips: Counter[str]) -> tuple[bytes, str | None]:
        """A file's bytes and its text; text None (and the reason
        counted) when it is no Go to use."""
        try:
            data = (self.root / rel).read_bytes()
        except OSError:
            skips["unreadable"] += 1
            return b"", None
        text, reason = decode_go(data, self.cfg.max_file_bytes)
        if text is None:
            skips[reason or "unreadable"] += 1
        return data, text

    def work(self, rel: str) -> tuple[list[dict[str, Any]], Counter[str]]:
        skips: Counter[str] = Counter()
        data, text = self.read(rel, skips)
        if text is None:
            return [], skips
        res = self.checker.check(data, kind="file", docs=True, gofmt=False)
        if not res.ok:
            skips["timed-out" if res.timed_out else "parse-error"] += 1
            return [], skips
        pkg = str(Path(rel).parent.as_posix())
        repo = self.label if pkg == "." else f"{self.label}/{pkg}"
        recs = []
        for d in res.decls:
            if d.kind not in ("func", "method"):
                continue
            if not d.doc:
                skips["undocumented"] += 1
                continue
            decl = data[d.start : d.end].decode("utf-8")
            files = [{"path": rel, "status": "added", "before": "", "after": decl}]
            recs.append(
                make_record(
                    "go-src", repo, first_sentence(d.doc), with_signature(d.doc, decl), files
                )
            )
        return recs, skips

    def close(self) -> None:
        pass  # the checker is the process-wide pool; it outlives one collect
