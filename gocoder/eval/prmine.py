"""`gocoder prbench build`: a benchmark of real changes, mined from git clones the model never saw.

A problem is one commit (or merged PR) of a repository, mined by gocoder's own collect
(gocoder/collect/gitlog.py) and annotate (gocoder/collect/annotate.py) code: the description is the
commit's title and body, the context the file it changes at the parent commit, and the answer the
top-level declarations the change added or modified there. docs/PRBENCH.md names the repositories,
the rule that picked them (`eligible`) and the problems, and the one command that rebuilds the set;
gocoder/eval/prbench.py answers and scores them.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.record import Record

# Titles that name no change a description could ask for: releases, dependency and tooling chores.
_CHORE = re.compile(
    r"^(bump|release|v?\d+\.\d+|update (go\.mod|deps|dependencies|ci|readme)|go mod|gofmt|lint|"
    r"merge|revert|ci[:\s]|docs?[:\s]|typo|readme)",
    re.I,
)
# the shipped model writes 256 tokens an answer (~900 bytes); twice that at most
MAX_ANSWER_BYTES = 2000
MAX_FILE_BYTES = 30_000


def git(repo: Path, *args: str) -> str:
    """The output of `git ARGS` on a clone (or a bare repository); a failure names the clone."""
    p = subprocess.run(
        ["git", "--git-dir", str(git_dir(repo)), *args], capture_output=True, text=True
    )
    if p.returncode != 0:
        raise GocoderError(f"{repo}: git {' '.join(args[:2])}: {p.stderr.strip().splitlines()[:1]}")
    return p.stdout


def git_dir(repo: Path) -> Path:
    """The git directory of a clone, or the bare repository itself."""
    return repo / ".git" if (repo / ".git").exists() else repo


def show(repo: Path, sha: str, path: str) -> str:
    """The file at sha ("" where it does not exist)."""
    r = subprocess.run(
        ["git", "--git-dir", str(git_dir(repo)), "show", f"{sha}:{path}"], capture_output=True
    )
    return r.stdout.decode("utf-8", errors="replace") if r.returncode == 0 else ""


def eligible(hrec: Record, raw: dict[str, Any]) -> str:
    """Why a mined change is not a problem ("" when it is): see
    docs/PRBENCH.md, the selection rule."""
    title = hrec.problem.description
    go = [f for f in raw["files_changed"] if f["path"].endswith(".go")]
    src = [f for f in go if not f["path"].endswith("_test.go")]
    if _CHORE.match(title) or len(title.split()) < 3:
        return "chore-or-short-title"
    if len(src) != 1 or src[0]["status"] != "modified":
        return "not-one-modified-file"  # the answer must go into one existing file
    if src[0]["path"] != hrec.context.file or "/vendor/" in f"/{src[0]['path']}":
        return "context-elsewhere"
    code = hrec.code
    if (
        not code.strip()
        or len(code.encode()) > MAX_ANSWER_BYTES
        or len(src[0]["before"]) > MAX_FILE_BYTES
    ):
        return "too-long"
    if hrec.solution is None or not hrec.solution.validation.syntax:
        return "after-does-not-parse"
    return ""


def mine(repo: Path, label: str) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Every eligible change of a clone's first-parent history (merges,
    squash merges and plain commits)."""
    from gocoder.check.validate import get_checker
    from gocoder.collect.annotate import build, check_batch
    from gocoder.collect.gitlog import GitSource
    from gocoder.config import CollectConfig

    src, why = GitSource(repo, CollectConfig(), all_commits=True), Counter()
    out = []
    try:
        for sha, payload in src.units(why):
            if payload is None:
                continue
            raws, skips = src.work(payload)
            why.update(skips)
            for raw in raws:
                # the answer is the change to the package's code: its
                # tests' changes are left out of it
                raw = {
                    **raw,
                    "files_changed": [
                        f for f in raw["files_changed"] if not f["path"].endswith("_test.go")
                    ],
                }
                if not raw["files_changed"]:
                    why["tests-only"] += 1
                    continue
                recs, reason = build(raw, check_batch([raw], get_checker())[0], (1.0, 0.0, 0.0))
                if reason or len(recs) != 1:
                    why[reason or "split"] += 1
                    continue
                if r := eligible(recs[0], raw):
                    why[r] += 1
                    continue
                h = recs[0]
                parent = payload[0].parents[0] if payload[0].parents else ""
                if not parent:
                    why["root-commit"] += 1
                    continue
                after = next(
                    f["after"] for f in raw["files_changed"] if f["path"] == h.context.file
                )
                out.append(
                    {
                        "id": f"{label}@{sha[:12]}",
                        "repo": label,
                        "sha": sha,
                        "parent": parent,
                        "path": h.context.file,
                        "description": h.problem.description,
                        "details": h.problem.details,
                        "before": h.context.before,
                        "answer": h.code,
                        "after": after,
                    }
                )
    finally:
        src.close()
    return out, why


def build_prbench(repos: Sequence[Path], out: Path, per_repo: int = 40,
                  log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Mine each clone (labelled by its folder name), keep at most per_repo problems of each
    (the first by a hash of their id: a fixed pick that does not depend on the other
    repositories), and write them, in the order of that hash, to out with a manifest (out +
    .manifest.json: each clone's HEAD and the counts)."""
    if len(repos) < 1:
        raise GocoderError("prbench build: name at least one clone (--repo DIR, repeated)")
    problems, manifest = [], {"repos": {}, "per_repo": per_repo}
    for repo in repos:
        if not git_dir(repo).exists():
            raise GocoderError(f"--repo {repo}: not a git clone")
        label = repo.resolve().name.removesuffix(".git")
        got, why = mine(repo, label)
        got.sort(key=lambda p: hashlib.sha256(p["id"].encode()).hexdigest())
        kept = got[:per_repo]
        problems += kept
        manifest["repos"][label] = {
            "head": git(repo, "rev-parse", "HEAD").strip(),
            "eligible": len(got),
            "kept": len(kept),
            "skipped": dict(why),
        }
        log(f"{label}: {len(got)} eligible, {len(kept)} kept; skipped {dict(why)}")
    # one order across repositories, by the same hash: --limit N takes a sample of every one
    problems.sort(key=lambda p: hashlib.sha256(p["id"].encode()).hexdigest())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(p) + "\n" for p in problems))
    Path(f"{out}.manifest.json").write_text(
        json.dumps({**manifest, "problems": len(problems)}, indent=1) + "\n"
    )
    return {"problems": len(problems), **manifest}
