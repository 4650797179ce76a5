"""The golden cases of validators/cases through the Python client: the same verdicts `go test` pins.

Each case is NAME.src (raw bytes) and NAME.json ({about, request, expect}); validators/README.md
describes the format. A key missing from `expect` (package, doc, type_ok) is not compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gocoder.check.validate import CheckResult, get_checker

CASES = Path(__file__).resolve().parent.parent / "validators" / "cases"
NAMES = sorted(p.stem for p in CASES.glob("*.json"))


def load(name: str) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    case = json.loads((CASES / f"{name}.json").read_text(encoding="utf-8"))
    return (CASES / f"{name}.src").read_bytes(), case["request"], case["expect"]


def verdict(r: CheckResult, expect: dict[str, Any]) -> dict[str, Any]:
    """The fields of r that `expect` names, in the cases' JSON shape."""
    docs = any("doc" in d for d in expect.get("decls", []))

    def diags(ds):
        return [{"line": d.line, "col": d.col, "msg": d.msg} for d in ds]

    def decl(d):
        out = {"kind": d.kind, "name": d.name, "recv": d.recv, "start_line": d.start_line, "end_line": d.end_line}
        return {**out, "doc": d.doc} if docs else out

    got = {
        "ok": r.ok, "kind": r.kind, "package": r.package, "errors": diags(r.errors), "gofmt": r.gofmt,
        "decls": [decl(d) for d in r.decls], "type_ok": r.type_ok, "type_errors": diags(r.type_errors),
    }  # fmt: skip
    return {k: got[k] for k in expect}


def positions_inside(src: bytes, r: CheckResult) -> None:
    """Every offset is in the text and agrees with its 1-based line and byte column."""
    for d in (*r.errors, *r.type_errors):
        assert 0 <= d.offset <= len(src), d
        before = src[: d.offset]
        assert (d.line, d.col) == (before.count(b"\n") + 1, d.offset - (before.rfind(b"\n") + 1) + 1), d
    for d in r.decls:
        assert 0 <= d.start <= d.end <= len(src), d


def test_cases_exist():
    assert len(NAMES) >= 20, f"golden cases missing from {CASES}"
    for name in NAMES:
        assert (CASES / f"{name}.src").is_file(), f"{name}.json has no {name}.src"


@pytest.mark.parametrize("name", NAMES)
def test_golden(name):
    src, request, expect = load(name)
    r = get_checker().check(src, **request)
    assert not r.error, r.error
    assert verdict(r, expect) == expect
    positions_inside(src, r)


def test_golden_pipelined():
    """check_many (batched, pipelined across the pool) gives each case's verdict, in order."""
    by_request: dict[str, list[tuple[bytes, dict[str, Any]]]] = {}
    for src, request, expect in map(load, NAMES):
        if request["typecheck"]:  # type checks are slower and have their own deadline: one at a time above
            continue
        by_request.setdefault(json.dumps(request, sort_keys=True), []).append((src, expect))
    for request, group in by_request.items():
        results = get_checker().check_many([src for src, _ in group], **json.loads(request))
        assert [verdict(r, e) for r, (_, e) in zip(results, group, strict=True)] == [e for _, e in group]


IMPORTS = CASES.parent / "imports"
IMPORT_NAMES = sorted(p.stem for p in IMPORTS.glob("*.src"))


@pytest.mark.parametrize("name", IMPORT_NAMES)
def test_imports_golden(name):
    """validators/imports: NAME.src fixed is NAME.out, through the server's op imports."""
    src = (IMPORTS / f"{name}.src").read_text(encoding="utf-8")
    got = get_checker().fix_imports(src)
    assert got.ok and got.src == (IMPORTS / f"{name}.out").read_text(encoding="utf-8")


def test_imports_cases_exist():
    assert len(IMPORT_NAMES) >= 5
    assert all((IMPORTS / f"{n}.out").exists() for n in IMPORT_NAMES)


def test_imports_broken_source_comes_back_unchanged():
    got = get_checker().fix_imports("package p\nfunc f() {")
    assert not got.ok and got.src == "package p\nfunc f() {" and got.errors[0].line == 2
