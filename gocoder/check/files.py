"""`gocoder check`: the CI syntax check of Go files, with text, JSON, GitHub and SARIF output.

Walks the paths it is given, checks every .go file with gocheck's server pool, optionally
type-checks each package (files of one folder and package name, standard-library imports
resolved), and renders the findings. Columns are Go's byte columns, except in SARIF, whose
consumers count characters (columnKind unicodeCodePoints).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gocoder import GocoderError, __version__
from gocoder.check.validate import Checker

SKIP_DIRS = {"vendor", "testdata"}
Format = Literal["text", "json", "github", "sarif"]


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    col: int
    rule: str  # syntax, typecheck, gofmt, checker
    msg: str


@dataclass
class Report:
    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    sources: dict[str, bytes] = field(default_factory=dict, repr=False)  # for character columns


def walk(paths: Iterable[str | Path], all_dirs: bool = False) -> Iterator[Path]:
    """The .go files under paths, sorted per folder; a file named explicitly is taken as it is.

    vendor/, testdata/ and hidden folders are skipped unless all_dirs.
    """
    for p in map(Path, paths):
        if p.is_file():
            yield p
        elif p.is_dir():
            found = 0
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(
                    d for d in dirs if all_dirs or not (d in SKIP_DIRS or d.startswith("."))
                )
                for f in sorted(files):
                    if f.endswith(".go"):
                        found += 1
                        yield Path(root) / f
            # a typo'd or empty folder would otherwise pass as "0 files checked, 0 findings"
            if not found:
                skipped = (
                    ""
                    if all_dirs
                    else " (vendor/, testdata/ and hidden folders skipped; --all walks them)"
                )
                raise GocoderError(f"{p}: no .go files{skipped}")
        else:
            raise GocoderError(f"{p}: no such file or folder")


def check_paths(
    paths: Iterable[str | Path],
    checker: Checker,
    typecheck: bool = False,
    gofmt: bool = False,
    kind: str = "file",
    all_dirs: bool = False,
    all_errors: bool = False,
) -> Report:
    """Check every .go file under paths; gofmt=True also reports files gofmt would change.

    Like the Go compiler, it reports the first syntax error of each line and at most 10 a file
    (the rest are mostly the parser's cascades) unless all_errors.
    """
    report = Report()
    files = list(walk(paths, all_dirs))
    srcs = []
    for f in files:
        try:
            srcs.append(f.read_bytes())
        except OSError as e:
            raise GocoderError(f"{f}: cannot read: {e.strerror}") from None
    # only what the report prints: declaration lists (on by default
    # for the data pipeline) cost ~1.5x
    results = checker.check_many(srcs, kind=kind, gofmt=gofmt, decls=False)
    cwd, folders = Path.cwd().resolve(), {}
    packages: dict[tuple[str, str], list[tuple[str, bytes]]] = defaultdict(list)
    # --kind auto: code without a package clause, checked alone
    fragments: list[tuple[str, bytes]] = []
    for f, src, r in zip(files, srcs, results, strict=True):
        name = _display(f, cwd, folders)
        report.files.append(name)
        report.sources[name] = src
        if r.error and not r.errors:
            report.findings.append(Finding(name, 1, 1, "checker", r.error))
        errors = r.errors if all_errors else _first_per_line(r.errors)
        report.findings += [Finding(name, e.line, e.col, "syntax", e.msg) for e in errors]
        if gofmt and r.gofmt is False:
            report.findings.append(Finding(name, 1, 1, "gofmt", "file is not gofmt-ed"))
        if typecheck and r.ok and r.kind == "file":
            packages[(str(f.parent), r.package)].append((name, src))
        elif typecheck and r.ok:
            fragments.append((name, src))
    if fragments:
        frag_results = checker.check_many(
            [s for _, s in fragments], kind=kind, gofmt=False, decls=False, typecheck=True
        )
        for (name, _), r in zip(fragments, frag_results, strict=True):
            report.findings += [
                Finding(name, e.line, e.col, "typecheck", e.msg) for e in r.type_errors
            ]
    for (folder, _pkg), members in sorted(packages.items()):
        resp = checker.request(
            {
                "op": "typecheck_package",
                "files": [{"name": n, "src": s.decode()} for n, s in members],
                "dir": module_root(Path(folder)),
            },
            timeout_s=checker.cfg.typecheck_timeout_s,
        )
        if resp.get("error"):
            report.findings.append(Finding(members[0][0], 1, 1, "checker", resp["error"]))
        for e in resp.get("file_errors") or ():
            report.findings.append(Finding(e["file"], e["line"], e["col"], "typecheck", e["msg"]))
    report.findings.sort(key=lambda x: (x.path, x.line, x.col))
    return report


def module_root(folder: Path) -> str:
    """The folder of the go.mod that holds folder ("" when none does): a package's imports
    resolve from its own module, wherever `gocoder check` runs (from elsewhere, chi's own
    packages were 135 false findings)."""
    for d in (folder.resolve(), *folder.resolve().parents):
        if (d / "go.mod").is_file():
            return str(d)
    return ""


def _first_per_line(errors, limit: int = 10):
    out, lines = [], set()
    for e in errors:
        if e.line not in lines and len(out) < limit:
            lines.add(e.line)
            out.append(e)
    return out


def _display(p: Path, cwd: Path, folders: dict[Path, Path]) -> str:
    """The path as a user reads it: relative to the (resolved) working folder cwd
    when under it. Each folder is resolved once, in folders (a resolve per file was
    116,000 lstat calls on GOROOT/src)."""
    real = folders.get(p.parent)
    if real is None:
        real = folders[p.parent] = p.parent.resolve()
    try:
        return (real / p.name).relative_to(cwd).as_posix()
    except ValueError:
        return p.as_posix()


def render(report: Report, fmt: Format) -> str:
    if fmt == "text":
        return "".join(f"{f.path}:{f.line}:{f.col}: {f.msg}\n" for f in report.findings)
    if fmt == "github":
        return "".join(
            f"::error file={_gh_prop(f.path)},line={f.line},col={f.col},title=gocoder "
            f"{f.rule}::{_gh_msg(f.msg)}\n"
            for f in report.findings
        )
    if fmt == "json":
        doc = {
            "files": len(report.files),
            "findings": [f.__dict__ for f in report.findings],
            "ok": not report.findings,
        }
        return json.dumps(doc, indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(_sarif(report), indent=2) + "\n"
    raise GocoderError(f"--format {fmt!r}: expected text, json, github or sarif")


def _gh_msg(s: str) -> str:
    # GitHub workflow commands: %, CR and LF are escaped in the message.
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_prop(s: str) -> str:
    return _gh_msg(s).replace(":", "%3A").replace(",", "%2C")


_RULES = {
    "syntax": "Go syntax error reported by go/parser.",
    "typecheck": "Go type error reported by go/types.",
    "gofmt": "The file is not formatted as gofmt formats it.",
    "checker": "The checker could not check the file (timeout or crash).",
}


def _sarif(report: Report) -> dict:
    results = []
    for f in report.findings:
        results.append({
            "ruleId": f.rule,
            "level": "warning" if f.rule == "gofmt" else "error",
            "message": {"text": f.msg},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path},
                "region": {"startLine": f.line,
                           "startColumn": _char_col(report.sources.get(f.path, b""), f)},
            }}],
        })  # fmt: skip
    driver = {
        "name": "gocoder-check",
        "version": __version__,
        "rules": [{"id": k, "shortDescription": {"text": v}} for k, v in _RULES.items()],
    }
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}
        ],
    }


def _char_col(src: bytes, f: Finding) -> int:
    """Go's 1-based byte column as a 1-based character column."""
    lines = src.split(b"\n")
    if not 0 < f.line <= len(lines):
        return f.col
    return len(lines[f.line - 1][: f.col - 1].decode("utf-8", "replace")) + 1
