"""`gocoder collect`: raw PR records (docs/FORMATS.md) from a git
clone, GitHub, or a Go source tree.

Every source is a stream of units (a commit, a PR, a Go file), each keyed, and a `work` function
that turns one unit into records. The engine here runs `work` on a thread pool (the heavy parts,
git's cat-file and HTTP, run outside the GIL), writes the results in input order, drops duplicate
ids (the id is a content hash), drops records that match a decontamination blocklist, and counts
what it skipped by reason.

Resume: after a unit's records are on disk its key goes to a sidecar `OUT.done` (JSONL). A rerun
skips done units; JsonlWriter drops records written by a unit whose key was not yet marked. Since
results are written in input order, a killed run holds a prefix of the full output, and the rerun
appends the rest: the same file, each record once.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from gocoder import GocoderError
from gocoder.collect.decontam import is_contaminated, load_blocklist
from gocoder.config import CollectConfig, ValidateConfig
from gocoder.progress import Progress
from gocoder.records import JsonlWriter


class Source(Protocol):
    """What the engine needs from a source."""

    name: str  # the record's source field, also the default output file's prefix
    repo: str  # the record's repo field

    def total(self) -> int | None: ...  # units, for the progress bar (None: unknown)

    def units(self, skips: Counter[str]) -> Iterator[tuple[str, Any]]:
        """(key, payload) in a stable order; payload None = nothing
        to do (reason counted in skips)."""
        ...

    def work(self, payload: Any) -> tuple[list[dict[str, Any]], Counter[str]]: ...

    def close(self) -> None: ...


@dataclass
class CollectResult:
    out: Path
    written: int = 0  # new records appended this run
    duplicates: int = 0  # records whose id was already in the output
    units: int = 0  # commits / PRs / files processed this run
    resumed: int = 0  # units skipped because a previous run finished them
    skipped: Counter[str] = field(default_factory=Counter)  # by reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "written": self.written,
            "duplicates": self.duplicates,
            "units": self.units,
            "resumed": self.resumed,
            "skipped": dict(sorted(self.skipped.items())),
        }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "repo"


def open_source(cfg: CollectConfig, *, repo: Path | None, github: str | None, go_src: Path | None,
                all_commits: bool, vcfg: ValidateConfig | None = None) -> Source:
    """The one source named by the options (exactly one of repo, github, go_src)."""
    given = [
        n
        for n, v in (("--repo", repo), ("--github", github), ("--go-src", go_src))
        if v is not None
    ]
    if len(given) != 1:
        raise GocoderError(
            f"give exactly one of --repo, --github, --go-src (got {', '.join(given) or 'none'})"
        )
    if repo is not None:
        from gocoder.collect.gitlog import GitSource

        return GitSource(repo, cfg, all_commits=all_commits)
    if github is not None:
        from gocoder.collect.github import GitHubSource

        return GitHubSource(github, cfg)
    from gocoder.collect.gosrc import GoSrcSource

    return GoSrcSource(go_src, cfg, vcfg)  # type: ignore[arg-type]


def collect(
    cfg: CollectConfig,
    *,
    repo: Path | None = None,
    github: str | None = None,
    go_src: Path | None = None,
    out: Path | None = None,
    all_commits: bool = False,
    workers: int | None = None,
    decontaminate: Path | None = None,
    console: Console | None = None,
    vcfg: ValidateConfig | None = None,
) -> CollectResult:
    """Collect raw PR records from one source into out (default data/raw/SOURCE-REPO.jsonl)."""
    blocklist = load_blocklist(decontaminate) if decontaminate else set()
    workers = cfg.workers if workers is None else workers
    if workers < 1:
        raise GocoderError(f"--workers {workers}: must be at least 1")
    src = open_source(
        cfg, repo=repo, github=github, go_src=go_src, all_commits=all_commits, vcfg=vcfg
    )
    try:
        out = Path(out) if out else Path(cfg.out_dir) / f"{src.name}-{slug(src.repo)}.jsonl"
        return run(src, out, workers, blocklist, console or Console(stderr=True, soft_wrap=True))
    finally:
        src.close()


def run(
    src: Source, out: Path, workers: int, blocklist: set[str], console: Console
) -> CollectResult:
    """The engine: ordered parallel work, append-only output, resumable by unit key."""
    res = CollectResult(out=out)
    work = _filtered(src.work, blocklist)
    progress = Progress(
        TextColumn(f"collect {src.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[written]} records"), console=console,
    )
    done_path = out.with_name(out.name + ".done")
    if not out.exists() and done_path.exists():
        done_path.unlink()  # the output was deleted: its progress notes describe nothing any more
    with (
        JsonlWriter(out) as writer,
        JsonlWriter(done_path) as done,
        ThreadPoolExecutor(workers) as pool,
        progress,
    ):
        task = progress.add_task(f"collect {src.name}", total=src.total(), written=0)
        window: deque[tuple[str, Future[tuple[list[dict[str, Any]], Counter[str]]]]] = deque()

        def finish_one() -> None:
            key, fut = window.popleft()
            recs, skips = fut.result()
            for rec in recs:
                if writer.write(rec):
                    res.written += 1
                else:
                    res.duplicates += 1
            res.skipped.update(skips)
            done.write({"id": key})  # after its records: a kill in between only repeats this unit
            res.units += 1
            progress.update(task, advance=1, written=res.written)

        try:
            for key, payload in src.units(res.skipped):
                if key in done.seen:
                    res.resumed += 1
                    progress.advance(task)
                elif payload is None:
                    progress.advance(task)
                else:
                    window.append((key, pool.submit(work, payload)))
                    # A bounded window keeps memory flat and the pool busy while order is kept.
                    while len(window) > 4 * workers or (window and window[0][1].done()):
                        finish_one()
            while window:
                finish_one()
        except BaseException:
            for _, fut in window:  # what is on disk stays whole; queued work is dropped
                fut.cancel()
            raise
    return res


def _filtered(
    work: Callable[[Any], tuple[list[dict[str, Any]], Counter[str]]], blocklist: set[str]
):
    if not blocklist:
        return work

    def filtered(payload: Any) -> tuple[list[dict[str, Any]], Counter[str]]:
        recs, skips = work(payload)
        kept = [r for r in recs if not is_contaminated(r, blocklist)]
        skips["contaminated"] += len(recs) - len(kept)
        return kept, skips

    return filtered
