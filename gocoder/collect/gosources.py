"""Where the corpus's Go files come from: the Go distribution and Debian's `golang-*-dev` packages.

A source is a list of package names plus `open(name)`, a context manager that yields the package's
Go source folder and its license. The corpus build (gocoder/collect/corpus.py) reads every
source the same way, so tests feed it a folder of fake unpacked packages
(`UnpackedSource`) instead of Debian.

Debian packages are fetched with `apt-get download` (no root needed, nothing installed) into a cache
folder, a batch at a time, through a scratch folder so that an interrupted download never leaves a
truncated .deb behind; a rerun fetches only what is missing. Each .deb is unpacked with `dpkg-deb
-x` into a temporary folder that is deleted as soon as the package has been read, so disk and memory
stay flat. A Debian -dev package keeps its Go code under /usr/share/gocode/src and its license in
the machine-readable /usr/share/doc/PKG/copyright, whose first `License:` field we keep.

Besides the machine's own apt sources, any Debian suite can be read (`AptSuite`: trixie, sid,
...): apt runs on a sources list, package lists and cache of its own under the cache folder, so
nothing of the system's apt changes. A suite's packages are named `PKG@SUITE` in the corpus, so
that two suites' versions of one package are two packages to the build (the older suite first:
dedup keeps its copies); the split (gocoder/splits.py) goes by each file's import path, so both
versions land on the same side.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gocoder import GocoderError

GO_PACKAGE = "go"  # the package name of the Go distribution's own files
GO_LICENSE = "BSD-3-Clause"
GOCODE = Path("usr/share/gocode/src")
FETCH_BATCH = 50  # packages per apt-get call: few process starts, little lost to one bad name
_LICENSE = re.compile(r"^License:[ \t]*(\S[^\n]*)", re.M)


def debian_license(copyright_file: Path) -> str:
    """The first `License:` field of a Debian copyright file (the
    source's main license), or "unknown"."""
    try:
        text = copyright_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "unknown"
    m = _LICENSE.search(text)
    return m.group(1).strip() if m else "unknown"


class GoRootSource:
    """The Go distribution's GOROOT/src: one package, "go", under the BSD-3-Clause license."""

    def __init__(self, goroot_src: Path | None = None):
        if goroot_src is None:
            from gocoder.check.toolchain import find_go  # only the build needs Go, never tokenize

            go, env = find_go()
            out = subprocess.run(
                [go, "env", "GOROOT"], capture_output=True, text=True, env=env, timeout=60
            )
            goroot_src = Path(out.stdout.strip()) / "src"
        if not goroot_src.is_dir():
            raise GocoderError(f"{goroot_src}: the Go distribution's source folder is missing")
        self.root = goroot_src

    def packages(self) -> list[str]:
        return [GO_PACKAGE]

    @contextmanager
    def open(self, name: str) -> Iterator[tuple[Path, str]]:
        yield self.root, GO_LICENSE


class UnpackedSource:
    """A folder of unpacked .debs, one subfolder per package
    (PKG/usr/share/gocode/src, PKG/usr/share/doc)."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise GocoderError(f"{root}: not a folder of unpacked packages")
        self.root = root

    def packages(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    @contextmanager
    def open(self, name: str) -> Iterator[tuple[Path, str]]:
        yield read_unpacked(self.root / name, name)


def read_unpacked(tree: Path, name: str) -> tuple[Path, str]:
    return tree / GOCODE, debian_license(tree / "usr/share/doc" / name / "copyright")


SUITE_MARK = "@"  # PKG@SUITE: a package of a suite other than the system's


def package_of(name: str) -> str:
    """The package a corpus package name stands for: PKG for PKG@SUITE (a version from another
    suite), the name itself otherwise. Tokenize's cap and the tokenizer's cap go by it."""
    return name.split(SUITE_MARK, 1)[0]


class AptSuite:
    """apt on one Debian suite of its own: a private sources list, lists and cache under
    `root` (`update()` fetches the suite's package index, ~10 MB). `opts` go before any
    apt-get / apt-cache subcommand."""

    def __init__(self, suite: str, root: Path, mirror: str = "http://deb.debian.org/debian",
                 keyring: str = "/usr/share/keyrings/debian-archive-keyring.gpg"):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", suite):
            raise GocoderError(
                f"--debian-suite {suite!r}: not a Debian suite name (such as trixie or sid)"
            )
        self.suite, self.root = suite, root / f"apt-{suite}"
        self.sources = f"deb [signed-by={keyring}] {mirror} {suite} main\n"
        r = self.root
        self.opts = [
            f"-o=Dir::Etc::SourceList={r / 'sources.list'}",
            f"-o=Dir::Etc::SourceParts={r / 'parts'}",
            f"-o=Dir::State::Lists={r / 'lists'}",
            f"-o=Dir::Cache={r / 'cache'}",
            "-o=Debug::NoLocking=1",
        ]

    def update(self) -> None:
        for d in ("parts", "lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "sources.list").write_text(self.sources, encoding="utf-8")
        _run(["apt-get", *self.opts, "-q", "update"], f"apt-get update ({self.suite})")


def list_debian_packages(selection: str, apt: AptSuite | None = None) -> list[str]:
    """"all": every `golang-*-dev` package apt knows (the system's sources, or `apt`'s suite);
    else a file of names, one a line, # comments."""
    if selection == "all":
        opts = apt.opts if apt else []
        out = _run(
            ["apt-cache", *opts, "search", "--names-only", r"^golang-.*-dev$"], "apt-cache search"
        )
        names = sorted({line.split(" ", 1)[0] for line in out.splitlines() if line.strip()})
        if not names:
            raise GocoderError(
                "--debian all: apt knows no golang-*-dev package (run apt-get update first)"
            )
        return names
    path = Path(selection)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise GocoderError(f"--debian {path}: cannot read the package list: {e.strerror}") from None
    names = [ln.split("#", 1)[0].strip() for ln in lines]
    for lineno, n in enumerate(names, 1):
        if n and not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", n):
            raise GocoderError(f"--debian {path}:{lineno}: {n!r} is not a Debian package name")
    return sorted({n for n in names if n})


class DebianSource:
    """Debian packages as .debs in cache/debs (cache/debs-SUITE for `apt`'s suite),
    fetched by `fetch()` and unpacked one at a time by `open()`. With a suite,
    `packages()` names them PKG@SUITE."""

    def __init__(self, names: list[str], cache: Path, apt: AptSuite | None = None):
        self.names, self.apt = names, apt
        self.debs = cache / (f"debs-{apt.suite}" if apt else "debs")
        self.scratch = cache / "unpack"
        self.failed: list[str] = []

    def deb(self, name: str) -> Path | None:
        # names hold no "_": this glob is exact
        found = sorted(self.debs.glob(f"{package_of(name)}_*.deb"))
        return found[-1] if found else None

    def packages(self) -> list[str]:
        mark = f"{SUITE_MARK}{self.apt.suite}" if self.apt else ""
        return [n + mark for n in self.names if self.deb(n) is not None]

    def fetch(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Download every missing .deb; returns the names apt could not fetch (virtual or gone)."""
        self.debs.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.scratch, ignore_errors=True)  # what a killed run left unpacked
        todo = [n for n in self.names if self.deb(n) is None]
        partial = self.debs / "partial"
        for i in range(0, len(todo), FETCH_BATCH):
            batch = todo[i:i + FETCH_BATCH]
            if not self._download(batch, partial):  # one bad name fails the batch: retry one by one
                for name in batch:
                    if not self._download([name], partial):
                        self.failed.append(name)
            if progress:
                progress(min(i + FETCH_BATCH, len(todo)), len(todo))
        shutil.rmtree(partial, ignore_errors=True)
        return self.failed

    def _download(self, names: list[str], partial: Path) -> bool:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            opts = self.apt.opts if self.apt else []
            r = subprocess.run(
                ["apt-get", *opts, "download", "-q", *names],
                cwd=partial,
                capture_output=True,
                text=True,
            )
        except OSError as e:
            raise GocoderError(
                f"apt-get: cannot run: {e.strerror} (the Debian source needs apt)"
            ) from None
        if r.returncode != 0:
            return False
        # only whole files reach the cache: a rerun trusts what is there
        for f in partial.glob("*.deb"):
            f.replace(self.debs / f.name)
        return True

    @contextmanager
    def open(self, name: str) -> Iterator[tuple[Path, str]]:
        deb = self.deb(name)
        if deb is None:
            raise GocoderError(f"{name}: not downloaded to {self.debs}")
        self.scratch.mkdir(parents=True, exist_ok=True)
        base = package_of(name)
        with tempfile.TemporaryDirectory(dir=self.scratch, prefix=base + ".") as tmp:
            _run(["dpkg-deb", "-x", str(deb), tmp], f"dpkg-deb -x {deb}")
            yield read_unpacked(Path(tmp), base)


def _run(cmd: list[str], what: str) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise GocoderError(f"{what}: cannot run {cmd[0]}: {e.strerror}") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise GocoderError(f"{what}: {last}")
    return r.stdout
