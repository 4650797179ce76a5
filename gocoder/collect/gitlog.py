"""`gocoder collect --repo`: one record per merged PR of a local git clone.

One streamed `git log --first-parent --diff-merges=first-parent --raw -z` walks the mainline: a
merge commit's diff is taken against its first parent, which is exactly what its PR changed. Whole
before/after texts come from `git cat-file --batch` (one persistent process per worker thread, asked
for all of a commit's blobs at once), so the history costs one git process per worker plus the log,
never one per commit.

A mainline commit becomes a record when it is a merge, or a squash merge whose subject ends in
"(#N)"; with all_commits, plain commits too. The title and body come from the PR's own message: a
GitHub merge ("Merge pull request #N from x/y") carries the PR title in its body; a default merge
message with no body ("Merge branch 'x'") takes the merged branch's commit messages.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from gocoder import GocoderError
from gocoder.config import CollectConfig
from gocoder.records import decode_go, make_record, skip_path

_PR_MERGE = re.compile(r"^Merge pull request #(\d+) from \S+")
_DEFAULT_MERGE = re.compile(r"^Merge (branch|branches|remote-tracking branch|commit|tag) ")
_SQUASH = re.compile(r"\s*\(#(\d+)\)\s*$")
_GITLAB_MR = re.compile(r"^See merge request \S+!(\d+)\s*$", re.M)
_CONFLICTS = re.compile(r"^#? ?Conflicts:\n(?:#?\t.*(?:\n|$))*", re.M)  # old git's merge notes
_STATUS = {
    "A": "added",
    "M": "modified",
    "T": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "added",
}
_KEEP_MODES = {"100644", "100755", "000000"}  # regular files (000000: the missing side)


@dataclass
class Change:
    status: str  # git's letter
    old_mode: str
    new_mode: str
    old_sha: str
    new_sha: str
    path: str


@dataclass
class Commit:
    sha: str
    parents: list[str]
    date: str
    message: str
    changes: list[Change]


def open_repo(path: Path) -> tuple[git.Repo, git.Git]:
    """The repository at path and a git that runs in its git dir, or a
    one-line GocoderError naming it.

    Commands run in the git dir itself: that works for clones and bare repositories alike (GitPython
    takes a bare repository without a config file for a work tree's .git)."""
    try:
        repo = git.Repo(path)
        g = git.Git(repo.git_dir)
        shallow = g.rev_parse("--is-shallow-repository").strip() == "true"
    except git.NoSuchPathError:
        raise GocoderError(f"{path}: no such repository (path does not exist)") from None
    except (git.InvalidGitRepositoryError, git.GitCommandError):
        raise GocoderError(f"{path}: not a git repository") from None
    if shallow:
        raise GocoderError(
            f"{path}: shallow clone; its merges lack parents (run git fetch --unshallow)"
        )
    return repo, g


class GitSource:
    name = "git"

    def __init__(self, path: Path, cfg: CollectConfig, all_commits: bool = False):
        self.path = Path(path)
        self.repo_obj, self.g = open_repo(self.path)
        self.cfg, self.all_commits = cfg, all_commits
        g = self.g
        try:
            self.head = g.rev_parse("--verify", "--quiet", cfg.rev + "^{commit}").strip()
        except git.GitCommandError:
            raise GocoderError(f"{path}: no commit {cfg.rev!r} (an empty repository?)") from None
        if not g.log("-1", "--format=%H", self.head, "--", "*.go").strip():
            raise GocoderError(f"{path}: no Go files in the history of {cfg.rev}")
        self.repo = _repo_label(self.repo_obj, self.path)
        self._local = threading.local()
        self._catfiles: list[Any] = []
        self._owner: dict[str, list[str]] | None = None  # merge -> commits it brought, oldest first

    def total(self) -> int:
        return int(self.g.rev_list("--first-parent", "--count", self.head))

    def units(self, skips: Counter[str]) -> Iterator[tuple[str, Any]]:
        for c in self._log():
            title, body, pr = self._message(c)
            if title is None:
                skips["plain-commit"] += 1
                yield c.sha, None
                continue
            changes = []
            for ch in c.changes:
                reason = skip_path(ch.path)
                if reason is None and not {ch.old_mode, ch.new_mode} <= _KEEP_MODES:
                    reason = "submodule" if "160000" in (ch.old_mode, ch.new_mode) else "symlink"
                if reason:
                    skips[reason] += 1
                else:
                    changes.append(ch)
            if not changes:
                skips["no-go-change"] += 1
            yield c.sha, (c, title, body, pr, changes) if changes else None

    def work(self, payload: Any) -> tuple[list[dict[str, Any]], Counter[str]]:
        c, title, body, pr, changes = payload
        skips: Counter[str] = Counter()
        files = []
        wanted = [sha for ch in changes for sha in (ch.old_sha, ch.new_sha) if set(sha) != {"0"}]
        blobs = dict(zip(wanted, self._blobs(wanted), strict=True))
        for ch in changes:
            texts = []
            for sha in (ch.old_sha, ch.new_sha):
                if set(sha) == {"0"}:  # the side where the file does not exist
                    texts.append("")
                    continue
                text, reason = decode_go(blobs[sha], self.cfg.max_file_bytes)
                if reason:
                    skips[reason] += 1
                    break
                texts.append(text)
            if len(texts) == 2:
                files.append({"path": ch.path, "status": _STATUS.get(ch.status[0], "modified"),
                              "before": texts[0], "after": texts[1]})
        if not files:
            skips["no-go-change"] += 1
            return [], skips
        rec = make_record(
            "git", self.repo, title, body, files, pr_number=pr, sha=c.sha, merged_at=c.date
        )
        return [rec], skips

    def close(self) -> None:
        # killed, not waited on: after an error it may still be writing answers
        for proc in self._catfiles:
            proc.proc.kill()
            proc.proc.wait()
        self.repo_obj.close()

    # -- reading git

    def _catfile(self) -> Any:
        """This thread's persistent `git cat-file --batch` (one per
        worker: a pipe is not shared)."""
        proc = getattr(self._local, "catfile", None)
        if proc is None:
            g = git.Git(self.repo_obj.git_dir)
            proc = self._local.catfile = g.cat_file(
                "--batch", as_process=True, istream=subprocess.PIPE
            )
            self._catfiles.append(proc)
        return proc

    def _blobs(self, shas: list[str]) -> list[bytes]:
        """The objects named by shas, in order. They are asked for in chunks that fit in a pipe and
        read back after each chunk: one round trip a commit, where one a blob kept the worker
        waiting on its wake-up (and the GIL) more than on git."""
        proc, out = self._catfile(), []
        for i in range(0, len(shas), 256):  # 256 x 41 bytes: far below a pipe's 64 KiB
            chunk = shas[i : i + 256]
            proc.stdin.write("".join(f"{sha}\n" for sha in chunk).encode())
            proc.stdin.flush()
            for sha in chunk:
                header = proc.stdout.readline().split()
                if len(header) != 3:  # "<sha> missing": a partial clone or a damaged repository
                    why = (
                        header[-1].decode(errors="replace")
                        if header
                        else "unreadable (git cat-file ended)"
                    )
                    raise GocoderError(f"{self.path}: git object {sha}: {why}")
                out.append(proc.stdout.read(int(header[2])))
                proc.stdout.read(1)  # the newline after each object
        return out

    def _log(self) -> Iterator[Commit]:
        """The mainline, oldest first, each commit with its raw diff against its first parent."""
        proc = self.g.log(
            "--first-parent", "--diff-merges=first-parent", "--raw", "-z", "--no-abbrev", "-M",
            "--reverse", "--no-color", "--no-ext-diff", "--format=%x1e%H%x1f%P%x1f%cI%x1f%B%x1f",
            self.head, as_process=True,
        )
        buf = b""
        try:
            while chunk := proc.stdout.read(1 << 16):
                buf += chunk
                *done, buf = buf.split(b"\x1e")
                for raw in done:
                    if raw:
                        yield _parse_commit(raw)
            if buf:
                yield _parse_commit(buf)
        finally:
            proc.stdout.close()
            try:
                proc.wait()
            except git.GitCommandError as e:
                # e.g. a snapshot missing blobs that rename detection reads
                # GitPython wraps git's stderr as "\n  stderr: '...'": keep git's own first line.
                err = [
                    ln.strip(" '") for ln in str(e.stderr or "").replace("stderr:", "").splitlines()
                ]
                msg = next((ln for ln in err if ln), f"exit status {e.status}")
                raise GocoderError(f"{self.path}: git log failed: {msg}") from None

    def _message(self, c: Commit) -> tuple[str | None, str, int | None]:
        """(title, body, pr number) of a commit that is a PR, or
        (None, "", None) for a plain commit."""
        subject, _, body = c.message.strip().partition("\n")
        body = body.strip()
        if len(c.parents) > 1:
            m = _PR_MERGE.match(subject)
            pr = int(m.group(1)) if m else None
            if m is None and (gm := _GITLAB_MR.search(body)):
                pr = int(gm.group(1))
                body = _GITLAB_MR.sub("", body).strip()
            if m or _DEFAULT_MERGE.match(subject):
                body = _CONFLICTS.sub("", body).strip()
                if body:  # the PR's title and description, written under the default subject
                    title, _, rest = body.partition("\n")
                    return title.strip(), rest.strip(), pr
                return (*self._branch_message(c), pr)
            if sq := _SQUASH.search(subject):  # a custom merge message naming its PR
                return subject[: sq.start()].strip(), body, int(sq.group(1))
            return subject.strip(), body, pr
        if m := _SQUASH.search(subject):
            return subject[: m.start()].strip(), body, int(m.group(1))
        return (subject.strip(), body, None) if self.all_commits else (None, "", None)

    def _branch_message(self, c: Commit) -> tuple[str, str]:
        """Title and body from the commits a default merge brought in: the first one's subject as
        the title, every message (oldest first) as the body."""
        if self._owner is None:
            self._owner = _merged_commits(self.g, self.head)
        raws = self._blobs(self._owner.get(c.sha, []))  # commit objects, read as blobs are
        msgs = [raw.decode("utf-8", "replace").partition("\n\n")[2].strip() for raw in raws]
        if not msgs:
            return c.message.strip().partition("\n")[0], ""
        title = msgs[0].partition("\n")[0].strip()
        body = msgs[0].partition("\n")[2].strip() if len(msgs) == 1 else "\n\n".join(msgs)
        return title, body


def _parse_commit(raw: bytes) -> Commit:
    sha, parents, date, rest = raw.split(b"\x1f", 3)
    message, _, diff = rest.partition(b"\x1f\x00")
    fields = diff.lstrip(b"\n").split(b"\x00")
    changes, i = [], 0
    while i < len(fields):
        meta = fields[i].decode()
        if not meta.startswith(":"):
            i += 1
            continue
        old_mode, new_mode, old_sha, new_sha, status = meta[1:].split()
        npaths = 2 if status[0] in "RC" else 1
        path = fields[i + npaths].decode("utf-8", "surrogateescape")
        changes.append(Change(status, old_mode, new_mode, old_sha, new_sha, path))
        i += 1 + npaths
    return Commit(sha.decode(), parents.decode().split(), date.decode(),
                  message.decode("utf-8", "replace"), changes)


def _merged_commits(g: git.Git, head: str) -> dict[str, list[str]]:
    """For each mainline merge, the commits it brought in (reachable from its other parents and not
    from its first parent), oldest first. Mainline commits are visited oldest first, so everything
    reachable from a first parent already has an owner: the walk is exact and O(commits)."""
    order = g.rev_list("--parents", "--topo-order", head).splitlines()
    parents = {ln[:40]: ln.split()[1:] for ln in order}
    pos = {ln[:40]: i for i, ln in enumerate(order)}  # larger = older
    mainline = []
    sha: str | None = head
    while sha:
        mainline.append(sha)
        sha = parents[sha][0] if parents[sha] else None
    owned: set[str] = set()
    out: dict[str, list[str]] = {}
    for m in reversed(mainline):
        owned.add(m)
        stack, brought = list(parents[m][1:]), []
        while stack:
            s = stack.pop()
            if s in owned:
                continue
            owned.add(s)
            brought.append(s)
            stack.extend(parents.get(s, []))
        if brought:
            out[m] = sorted(brought, key=lambda s: -pos[s])
    return out


def _repo_label(repo: git.Repo, path: Path) -> str:
    """OWNER/NAME when origin is on GitHub (as --github names it),
    else the clone's absolute path."""
    try:
        url = repo.remotes.origin.url
    except (AttributeError, ValueError):
        url = ""
    m = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url)
    return f"{m.group(1)}/{m.group(2)}" if m else str(path.resolve())
