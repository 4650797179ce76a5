"""gocoder/inference/incremental.py: tree-sitter follows code as it is written; a valid prefix is never cut, a broken
candidate stops at its first final error, and the generation loop stops such a candidate early."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gocoder.check.toolchain import find_go
from gocoder.inference.incremental import GO, GoWatch, Watcher

BROKEN = "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n\nfunc Min(a, b int) int {\n\tif a < b \n\t\treturn a\n\t}\n\treturn b\n}\n\nfunc Abs(x int) int {\n\treturn x\n}\n"  # noqa: E501


def go_files() -> list[Path]:
    go, env = find_go()
    root = Path(subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, env=env).stdout.strip()) / "src"
    return sorted((root / "strings").glob("*.go"))[:12] + sorted((root / "container" / "list").glob("*.go"))


def test_no_prefix_of_valid_go_is_cut():
    files = go_files()
    assert len(files) >= 10
    snippets = [f.read_text(encoding="utf-8") for f in files]
    snippets += ['func f() {\n\ts := `\nfunc g( {}\nfunc h() {}\n`\n\t_ = s\n}\n',  # a raw string that looks like Go
                 "/*\nfunc g( {}\n*/\nfunc h() {}\n"]  # a block comment that does
    for src in snippets:
        w = GoWatch()
        cuts = sorted({i for i, c in enumerate(src) if c == "\n"} | set(range(1, len(src), 97)))
        for end in cuts:
            assert w.feed(src[: end + 1]) is None, src[: end + 1][-200:]


def test_a_broken_candidate_stops_at_its_first_final_error():
    w, seen = GoWatch(), []
    for i, _ in enumerate(BROKEN.splitlines(keepends=True)):
        seen.append(w.feed("".join(BROKEN.splitlines(keepends=True)[: i + 1])))
    first = next(i for i, e in enumerate(seen) if e is not None)
    assert BROKEN.splitlines()[first] == "func Abs(x int) int {"  # the parser has moved past Min's error
    assert seen[first][0] in (9, 10)  # at Min's `if`, where the brace is missing
    # the incremental tree is the tree of a fresh parse
    import tree_sitter as ts

    assert str(w.tree.root_node) == str(ts.Parser(GO).parse(BROKEN.encode()).root_node)


def test_watcher_cuts_rows_at_line_ends_only_after_the_code_opens():
    lines = BROKEN.splitlines(keepends=True)
    text = ["<PLAN></PLAN>", "<CODE>", *lines]  # one "token" per line
    w = Watcher(lambda ids: None if 1 not in ids else "".join(text[i] for i in ids[ids.index(1) + 1:]),
                line_ids=set(range(2, len(text))))
    stops = [w(0, i) for i in range(len(text))]
    assert stops.index(True) == 2 + lines.index("func Abs(x int) int {\n") and w.stopped[0][0] in (9, 10)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_loop_stops_a_candidate_early(tiny_ckpt, monkeypatch):
    """The wiring: Generator.sample hands the engine a Watcher; a row the watcher stops ends there (greedy,
    so the stopped text is a prefix of the free one). Here every id ends a line and every parse is final."""
    import gocoder.inference.incremental as inc
    from gocoder.inference.engine import Sampling
    from gocoder.inference.generate import Generator

    gen = Generator.load(tiny_ckpt)
    assert gen.line_ids and all("\n" in gen.tok.decode([i]) for i in gen.line_ids)
    rec = {"id": "w", "problem": {"description": "Add Max", "details": "Max returns the larger of two ints."},
           "context": {"file": "util.go", "before": "package util\n"}}
    s = Sampling(max_new_tokens=30)
    (free,) = gen.sample(rec, 1, s)
    before = gen.cut
    gen.line_ids = set(range(gen.tok.vocab_size))
    monkeypatch.setattr(gen, "code_of", lambda ids: "x")
    monkeypatch.setattr(inc, "final_error", lambda root, src: (1, 1))
    (cut,) = gen.sample(rec, 1, s)
    assert gen.cut == before + 1 and not cut.finished
    assert 0 < len(cut.text) < len(free.text) and free.text.startswith(cut.text)


def test_close_function_cuts_at_the_last_line_between_statements():
    from gocoder.inference.incremental import close_function

    done = "func f(a []int) int {\n\ts := 0\n\tfor _, x := range a {\n\t\ts += x\n\t}\n\treturn s\n}\n"
    assert close_function(done) == done  # a finished function is left as it is
    # cut inside a loop, after a raw string holding a brace and a comment holding one: closed after the loop
    cut = ("func f(a []int) int {\n\ts := 0\n\tq := `{\n`  // {\n\tfor _, x := range a {\n\t\ts += x\n\t}\n"
           "\tfor i := 0; i < len(a); i++ {\n\t\tif a[i] > s {\n\t\t\ts = a[")
    closed = close_function(cut)
    assert closed == cut[: cut.index("\tfor i")] + "}\n"
    parser = __import__("tree_sitter").Parser(GO)
    assert not parser.parse(("package main\n" + closed).encode()).root_node.has_error
    # a line that does not parse is not kept even at depth 1 (a broken string), so the cut is earlier
    bad = "func g() string {\n\tx := 1\n\ty := \"a{\n\treturn"
    assert close_function(bad) == "func g() string {\n\tx := 1\n}\n"
