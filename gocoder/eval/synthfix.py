"""The synth-fix benchmark: bugs planted by `gocoder synth` in Go packages training never saw,
scored by the packages' own tests (`gocoder bench --format synth-fix`).

Problems come from GOROOT/src packages in the test split (gocoder/splits.py, keyed by the package
path `PKG` of the record's repo `GOROOT/src/PKG`: the split annotate's records and the corpus's
files take too), so neither a training shard nor the pretraining corpus holds their code. `build`
keeps a planted bug only if the package's tests pass on the original file and fail on the buggy one,
run in the sandbox as a module of its own: the package's files are copied, and its external tests
(`package P_test`) import the copy instead of the standard library's. Packages that import
`internal/...` or read a testdata folder cannot leave GOROOT and are skipped. A record names its
package and holds only the buggy file; the other files are read from the local GOROOT at load time,
which must be the Go version the file was built with. The model sees the title and body of the bug
report and the buggy file; its answer goes into the file as `gocoder generate --context` puts it
(gocoder/inference/patch.py). The loop may run the package's tests: they are the visible checks and
the hidden ones both, as a user's own tests are in the bug-fix flow.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.check.sandbox import Limits, go_version, run_go
from gocoder.records import read_jsonl_numbered
from gocoder.splits import record_split
from gocoder.text.gosource import funcs

PREFIX = "GOROOT/src/"


def goroot_src() -> Path:
    import subprocess

    from gocoder.check.toolchain import find_go

    go, env = find_go()
    return Path(subprocess.run([go, "env", "GOROOT"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip()) / "src"  # fmt: skip


@functools.cache
def package_files(pkg: str, src: Path | None = None) -> dict[str, str]:
    """The .go files of GOROOT/src/PKG as one sandbox module: external tests import the copy."""
    d = (src or goroot_src()) / pkg
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(d.glob("*.go"))}
    if not files:
        raise GocoderError(
            f"{d}: no Go files (is this GOROOT the one the benchmark was built with?)"
        )
    quoted = json.dumps(pkg)
    return {n: t.replace(f"\t{quoted}\n", '\t"sandbox"\n')
                .replace(f"import {quoted}\n", 'import "sandbox"\n')
            if n.endswith("_test.go") else t for n, t in files.items()}  # fmt: skip


def portable(pkg: str, src: Path) -> str:
    """Why GOROOT/src/PKG cannot run as a module of its own ("" when it can)."""
    d = src / pkg
    if (d / "testdata").exists():
        return "reads testdata"
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in d.glob("*.go")]
    if not any(p.name.endswith("_test.go") for p in d.glob("*.go")):
        return "no tests"
    # crypto/internal/... too
    if any(re.search(r'"(?:[\w.]+/)*(?:internal|vendor)/|"cmd/', t) for t in texts):
        return "imports internal packages"
    return ""


def load_record(r: dict[str, Any], src: Path | None = None) -> dict[str, Any]:
    """The fields a Problem needs from a synth-fix record (a missing field raises KeyError)."""
    if r["go_version"] != go_version():
        raise GocoderError(
            f"{r['task_id']}: built with Go {r['go_version']}, this toolchain is {go_version()}"
        )
    files = dict(package_files(r["package"], src))
    if r["path"] not in files:
        raise GocoderError(f"{r['task_id']}: {r['path']} is not in GOROOT/src/{r['package']}")
    return {"id": r["task_id"], "prompt": r["buggy"], "entry_point": r["func"],
            "description": r["title"], "details": r["body"], "files": tuple(sorted(files.items())),
            "path": r["path"]}  # fmt: skip


def build(synth: Path, out: Path, *, shares: tuple[float, float, float] = (0.9, 0.05, 0.05),
          per_package: int = 20, workers: int = 2, limits: Limits | None = None,
          src: Path | None = None) -> Counter[str]:  # fmt: skip
    """Problems from `gocoder synth` records of GOROOT/src: test-split
    packages, bugs the tests catch."""
    src, limits = src or goroot_src(), limits or Limits(wall_s=60.0, cpu_s=60)
    counts: Counter[str] = Counter()
    by_pkg: dict[str, list[dict[str, Any]]] = {}
    for _, r in read_jsonl_numbered(synth):
        repo = r.get("repo", "")
        if not repo.startswith(PREFIX) or record_split(r, shares) != "test":
            counts["not test split"] += 1
            continue
        by_pkg.setdefault(repo[len(PREFIX) :], []).append(r)
    rows = []
    for pkg, recs in sorted(by_pkg.items()):
        why = portable(pkg, src)
        if why:
            counts[f"package {why}"] += len(recs)
            continue
        files = dict(package_files(pkg, src))
        base = run_go(files, mode="test", limits=limits)
        if not base.passed:
            counts["package tests fail on the original"] += len(recs)
            continue

        def check(
            r: dict[str, Any], files: dict[str, str] = files, pkg: str = pkg
        ) -> dict[str, Any] | None:
            f = r["files_changed"][0]
            text = files.get(Path(f["path"]).name, "")
            if f["after"] not in text:
                return None
            buggy = text.replace(f["after"], f["before"], 1)
            res = run_go({**files, Path(f["path"]).name: buggy}, mode="test", limits=limits)
            if res.status != "fail":
                # the tests miss the bug (or it does not build: gocheck let a type error by)
                return None
            fn = funcs(f["after"])
            return {"task_id": f"{pkg}/{Path(f['path']).name}:{r['id']}", "package": pkg,
                    "path": Path(f["path"]).name, "func": fn[0].name if fn else "",
                    "title": r["title"], "body": r["body"], "bug_kind": r.get("bug_kind", ""),
                    "buggy": buggy, "go_version": go_version()}  # fmt: skip

        # at most 3x the quota is tried, in file order
        with ThreadPoolExecutor(max(1, workers)) as pool:
            caught = [x for x in pool.map(check, recs[: per_package * 3]) if x is not None]
        counts["kept"] += len(caught[:per_package])
        counts["tests miss the bug"] += min(len(recs), per_package * 3) - len(caught)
        rows += caught[:per_package]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return counts
