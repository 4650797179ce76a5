"""The gocheck client: verdicts, positions, the pool under threads, and the failure paths."""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from gocoder import GocoderError
from gocoder.check.validate import Checker, _batches, _unbatch, get_checker, gocheck_binary, source_hash
from gocoder.config import ValidateConfig


@pytest.fixture(scope="module")
def checker():
    c = Checker(ValidateConfig(servers=2, timeout_s=10.0))
    yield c
    c.close()


def test_valid_function_lists_its_declaration(checker):
    r = checker.check("func (s *Server) Handle(w Writer) error {\n\treturn nil\n}\n")
    assert r.ok and r.kind == "decls" and r.gofmt is True
    assert [(d.kind, d.name, d.recv, d.start_line, d.end_line) for d in r.decls] == [
        ("method", "Server.Handle", "Server", 1, 3)
    ]


def test_error_positions_point_into_the_callers_text(checker):
    src = "x := 1\nif x > {\n}\n"
    r = checker.check(src, kind="stmts")
    assert not r.ok and r.kind == "stmts"
    first = r.first_error
    assert (first.line, first.col) == (2, 8)
    assert src.encode()[first.offset : first.offset + 1] == b"{"


def test_kinds_are_detected(checker):
    assert checker.check("package p\n").kind == "file"
    assert checker.check("type T struct{}").kind == "decls"
    assert checker.check("for i := 0; i < 3; i++ {\n}").kind == "stmts"
    assert checker.check("a + b*c").kind in ("stmts", "expr")  # an expression is also a statement
    assert checker.check("a + b*c", kind="expr").ok


def test_non_utf8_bytes_travel_and_are_reported(checker):
    r = checker.check(b'package main\n\nvar s = "\xff\xfe"\n')
    assert not r.ok and "UTF-8" in r.first_error.msg and r.first_error.line == 3


def test_typecheck_resolves_the_standard_library(checker):
    ok = checker.check('package main\n\nimport "strings"\n\nvar s = strings.ToUpper("x")\n', typecheck=True)
    assert ok.ok and ok.type_ok is True and ok.type_errors == ()
    bad = checker.check('package main\n\nimport "strings"\n\nvar n int = strings.ToUpper("x")\n', typecheck=True)
    assert bad.ok and bad.type_ok is False
    assert bad.type_errors[0].line == 5 and "string" in bad.type_errors[0].msg


def test_docs_on_request(checker):
    r = checker.check("// Add sums two ints.\nfunc Add(a, b int) int { return a + b }\n", docs=True)
    assert r.decls[0].doc == "Add sums two ints."
    assert checker.check("// Add.\nfunc Add() {}\n").decls[0].doc == ""


def test_check_many_keeps_order_under_threads(checker):
    """Eight threads, each pipelining its own batch: every answer must belong to its own request."""
    failures = []

    def work(t: int) -> None:
        srcs = [f"func f{t}_{i}() int {{ return {i} }}" for i in range(150)]
        for i, r in enumerate(checker.check_many(srcs, batch_items=16)):
            if not r.ok or r.decls[0].name != f"f{t}_{i}":
                failures.append((t, i, r))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))  # list() re-raises an exception from any thread
    assert failures == []


def test_plain_answers_share_a_result_and_batches_split_back(checker):
    srcs = ["func a() {}", "x +", "y := 1", "func b() {}"]
    a, bad, stmt, b = checker.check_many(srcs, gofmt=False, decls=False)
    assert a is b and a.ok and a.kind == "decls"  # one immutable result for every plain answer
    assert not bad.ok and bad.errors and stmt.ok and stmt.kind == "stmts"
    (req,) = _batches([s.encode() for s in srcs], {"kind": "auto"}, 8, 1 << 20)
    assert req["src_lens"] == [11, 3, 6, 11]
    alone = _unbatch(req)  # a batch that crashed its server is retried item by item
    assert [r["_raw"] for r in alone] == [s.encode() for s in srcs] and alone[2]["kind"] == "auto"


def test_killed_server_is_restarted(checker):
    checker.check("func a() {}")
    for srv in checker._servers:
        if srv is not None:
            srv.proc.kill()
    time.sleep(0.1)
    assert checker.check("func b() {}").ok


def test_deep_nesting_and_garbage_get_verdicts(checker):
    deep = checker.check("var x = " + "(" * 100_000 + "1" + ")" * 100_000)
    assert not deep.ok and any("nesting" in e.msg for e in deep.errors)
    garbage = checker.check(bytes(range(256)) * 4096)  # 1 MiB of every byte value, NULs included
    assert not garbage.ok and not garbage.timed_out and garbage.errors


@pytest.mark.slow
def test_50mb_file_gets_an_answer_or_a_timeout():
    c = Checker(ValidateConfig(servers=1, timeout_s=20.0))
    fn = "func f{0}(x int) int {{\n\tif x > 0 {{\n\t\treturn x * {0}\n\t}}\n\treturn 0\n}}\n"
    body = "".join(fn.format(i) for i in range(720_000))
    src = "package main\n\n" + body
    assert len(src) > 50e6
    t = time.monotonic()
    r = c.check(src)
    assert time.monotonic() - t < 20.0 + 5.0 + 10.0
    assert (r.ok and len(r.decls) == 720_000 and r.gofmt is None) or r.timed_out
    assert c.check("func g() {}").ok  # the pool is still usable
    c.close()


def _fake_gocheck(tmp_path, body: str):
    exe = tmp_path / "gocheck"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_hung_server_gives_a_timeout_verdict(tmp_path):
    exe = _fake_gocheck(tmp_path, "exec sleep 60\n")  # reads nothing, answers nothing
    c = Checker(ValidateConfig(servers=1, timeout_s=0.2, hang_grace_s=0.3), binary=exe)
    t = time.monotonic()
    r = c.check("func f() {}")
    assert r.timed_out and not r.ok and time.monotonic() - t < 3
    c.close()


def test_crashing_server_gives_an_error_verdict(tmp_path):
    exe = _fake_gocheck(tmp_path, "read line; echo 'panic: boom' >&2; exit 2\n")
    c = Checker(ValidateConfig(servers=1, timeout_s=2.0, hang_grace_s=1.0), binary=exe)
    r = c.check("func f() {}")
    assert not r.ok and "crashed" in r.error
    c.close()


def test_binary_is_cached_by_source_hash(monkeypatch):
    monkeypatch.delenv("GOCODER_GOCHECK", raising=False)
    b = gocheck_binary()
    assert b.name == f"gocheck-{source_hash()}" and os.access(b, os.X_OK)
    assert gocheck_binary() == b


def test_prebuilt_binary_must_be_executable(tmp_path, monkeypatch):
    monkeypatch.setenv("GOCODER_GOCHECK", str(tmp_path / "missing"))
    with pytest.raises(GocoderError, match="GOCODER_GOCHECK"):
        gocheck_binary()


def test_shared_checker_is_one_object():
    assert get_checker() is get_checker()
