"""A model's code as a change to a Go file: put in, gofmt'd, judged by the
package's tests, shown as a diff.

`gocoder generate --context FILE` writes code for a PR description; this module makes that code a
change to FILE: each top-level declaration of the code replaces the file's declaration of the same
name (and receiver) or is appended, imports the code adds go into the file, the standard library's
imports are fixed as goimports fixes them (gocoder/check/validate.py fix_imports), and gofmt lays
the result out. With `--tests PATH` the package's tests run in the sandbox
(gocoder/check/sandbox.py) on each candidate: the loop reads the first compiler error or the failing
tests' output, and the verdict names the tests that pass.
The diff has git's a/ b/ headers, so `git apply` takes it.
"""

from __future__ import annotations

import difflib
import functools
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.check.sandbox import Limits, SandboxResult, run_go
from gocoder.text.gosource import funcs, imports

_TESTING_T = re.compile(r"\(\s*\w+\s+\*testing\.T\s*\)")  # a test's parameters, from their "("
_FAILED = re.compile(r"^\s*--- FAIL: (Test\w*)", re.M)


def apply_code(src: str, code: str) -> str:
    """src with code's declarations put in: same kind of name
    replaced in place, new ones appended."""
    from gocoder.check.validate import get_checker

    chk = get_checker()
    have, new = chk.check(src, kind="file"), chk.check(code, kind="auto")
    if not have.ok:
        first = have.errors[0]
        raise GocoderError(f"line {first.line}: the context file does not parse: {first.msg}")
    if not new.ok or not new.decls:
        raise GocoderError("the code holds no Go declarations to put into the file")
    raw, craw = src.encode(), code.encode()
    where = {(d.recv, d.name): d for d in have.decls}
    edits, tail = [], []  # edits: (start, end, text) in src's bytes
    for d in new.decls:
        text = craw[d.start : d.end]
        old = where.get((d.recv, d.name))
        if old is not None:
            edits.append((old.start, old.end, text))
        else:
            tail.append(text)
    for start, end, text in sorted(edits, reverse=True):
        raw = raw[:start] + text + raw[end:]
    out = raw.decode().rstrip("\n") + "\n" + "".join("\n" + t.decode() + "\n" for t in tail)
    have = {(i.alias, i.path) for i in imports(src)}
    missing = [i.spec() for i in imports(code) if (i.alias, i.path) not in have]
    specs = "".join(f"\t{s}\n" for s in missing)
    block = re.search(r"^import \(\n", out, re.M)
    if missing and block:  # into the file's import block, where gofmt sorts them
        out = out[: block.end()] + specs + out[block.end() :]
    elif missing:  # after the package clause: gofmt keeps a second import declaration as it is
        m = re.search(r"^package \w+[^\n]*\n", out, re.M)
        at = m.end() if m else 0
        out = out[:at] + "\nimport (\n" + specs + ")\n" + out[at:]
    return out


@functools.cache
def _gofmt() -> str:
    from gocoder.check.toolchain import find_go

    go, env = find_go()
    root = subprocess.run(
        [go, "env", "GOROOT"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    exe = Path(root) / "bin" / "gofmt"
    if not exe.is_file():
        raise GocoderError(f"{exe}: no gofmt next to the Go toolchain")
    return str(exe)


def put_in(before: str, code: str, name: str = "the file") -> str:
    """The file before with code's declarations put in, its standard-library imports fixed as
    goimports would (one the answer no longer uses goes, one it needs comes), gofmt'd."""
    from gocoder.check.validate import fix_imports

    return gofmt(fix_imports(apply_code(before, code)), name)


def gofmt(src: str, name: str = "the file") -> str:
    """src as gofmt lays it out; a source gofmt rejects is an error naming its first line."""
    p = subprocess.run([_gofmt()], input=src, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise GocoderError(
            f"{name}: gofmt: {p.stderr.strip().splitlines()[0] if p.stderr.strip() else 'failed'}"
        )
    return p.stdout


def unified_diff(path: str, old: str, new: str) -> str:
    """A unified diff of old -> new with git's a/ b/ headers ("" when they are equal)."""
    lines = list(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                      f"a/{path}", f"b/{path}"))  # fmt: skip
    return "".join(
        ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines
    )


@dataclass
class TestVerdict:
    __test__ = False  # not a pytest class
    status: str  # the sandbox's status: ok, build_error, fail, timeout, ...
    passed: list[str] = field(default_factory=list)  # test functions that passed
    failed: list[str] = field(default_factory=list)
    output: str = ""  # the first compiler error with its line, or the failing tests' output


class PackageTests:
    """The tests of the package holding FILE, run in the sandbox on FILE's new text."""

    def __init__(self, context: Path, tests: Path, limits: Limits | None = None):
        pkg = tests if tests.is_dir() else tests.parent
        if not tests.exists():
            raise GocoderError(f"--tests {tests}: no such file or folder")
        if pkg.resolve() != context.resolve().parent:
            raise GocoderError(
                f"--tests {tests}: not the package of --context {context} (its folder)"
            )
        self.name = context.name
        self.files = {p.name: p.read_text(encoding="utf-8") for p in sorted(pkg.glob("*.go"))}
        self.tests = sorted(
            {
                f.name
                for n, s in self.files.items()
                if n.endswith("_test.go")
                for f in funcs(s)
                if f.name.startswith("Test") and not f.recv and _TESTING_T.match(s, f.params)
            }
        )
        if not self.tests:
            raise GocoderError(
                f"--tests {tests}: no Test functions in the package's _test.go files"
            )
        self.limits = limits or Limits(wall_s=60.0, cpu_s=60)

    def run(self, text: str) -> TestVerdict:
        res: SandboxResult = run_go(
            {**self.files, self.name: text}, mode="test", limits=self.limits
        )
        if res.status == "build_error":
            first = next(
                (ln for ln in res.build_output.splitlines() if re.match(r"^\S*\.go:\d+", ln)), ""
            )
            return TestVerdict(
                res.status,
                [],
                list(self.tests),
                "compile error: " + (first or res.build_output[:500]),
            )
        out = res.stdout + res.stderr
        failed = sorted(set(_FAILED.findall(out)))
        if res.passed:
            return TestVerdict(res.status, list(self.tests), [], "")
        # a panic or a timeout stops the binary: which tests would have passed is not known
        passed = [t for t in self.tests if t not in failed] if failed else []
        return TestVerdict(res.status, passed, failed or list(self.tests), out.strip()[-2000:])


def tests_callback(before: str, tests: PackageTests, name: str) -> Callable[[str], Any]:
    """The loop's test callback: the code put into the file and the package's tests run on it."""
    from gocoder.inference.generate import TestResult

    def run(code: str) -> TestResult:
        try:
            text = put_in(before, code, name)
        except GocoderError as e:
            return TestResult(passed=False, output=str(e))
        v = tests.run(text)
        return TestResult(passed=v.status == "ok", output=v.output)

    return run


@dataclass
class Change:
    result: Any  # gocoder.inference.generate.Result: the loop's answer
    path: Path
    before: str
    after: str  # the file with the answer put in, gofmt'd ("" when the answer could not go in)
    diff: str
    error: str = ""  # why the answer could not go into the file
    tests: TestVerdict | None = None


def generate_change(cfg: Any, pr_desc: str, context: Path, tests: Path | None = None,
                    checkpoint: str | Path | None = None, repo: Path | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    retrieval: Any = None) -> Change:  # fmt: skip
    """`gocoder generate --context FILE [--tests PATH]`: the loop's answer as a change to FILE."""
    from gocoder.inference.generate import generate_for_pr

    try:
        before = context.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GocoderError(
            f"{context}: cannot read the context file: {getattr(e, 'strerror', None) or e}"
        ) from None
    pkg = PackageTests(context, tests) if tests is not None else None
    judge = tests_callback(before, pkg, str(context)) if pkg is not None else None
    res = generate_for_pr(
        cfg,
        pr_desc,
        context,
        checkpoint,
        tests=judge,
        repo=repo,
        progress=progress,
        retrieval=retrieval,
    )
    try:
        after = put_in(before, res.code, str(context))
    except GocoderError as e:
        return Change(res, context, before, "", "", str(e))
    return Change(res, context, before, after, unified_diff(context.as_posix(), before, after), "",
                  pkg.run(after) if pkg is not None else None)  # fmt: skip
