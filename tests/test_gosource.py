"""gocoder/text/gosource.py: Go source as text, on Go that the copies it replaced got wrong."""

from __future__ import annotations

import pytest

from gocoder.text.gosource import Import, body_open, func_body, funcs, imports, line_depths, skip_balanced, split_list

FILE = '''// Package x { is not a brace.
package x

import (
	"fmt"
	str "strings" // a comment with "quotes"
	. "math"
	_ "embed"
	/* "commented/out" */
	`raw/path`
)
import m "math/rand"
import "os"

var tmpl = `
import (
	"net/http"
)
func fake() {`

type F func(int) error

func (s *Stack[K, V]) Push(v V) { if v == '{' { return }; _ = "}" }

func Map[T any, U interface{ ~int }](xs []T) (out []U) {
	f := func() {}
	_ = f
	return nil
}

func stub(x int) int

func Open(x struct{ A int `json:"a{"` }) interface{ M() } {
	return nil
}
'''


def test_imports_grouped_aliased_dot_blank_raw_and_single():
    got = imports(FILE)
    assert [(i.name, i.path, i.alias) for i in got] == [
        ("fmt", "fmt", ""), ("str", "strings", "str"), (".", "math", "."), ("_", "embed", "_"),
        ("path", "raw/path", ""), ("m", "math/rand", "m"), ("os", "os", ""),
    ]
    assert [FILE[i.start : i.end] for i in got][:2] == ['"fmt"', 'str "strings"']
    assert [i.spec() for i in got][1:3] == ['str "strings"', '. "math"']


def test_imports_stop_at_the_first_declaration():
    # the copies' regexes read `import (` anywhere at a line start: here inside a raw string after a func
    src = 'package p\n\nimport "fmt"\n\nfunc f() string {\n\treturn `\nimport (\n\t"os"\n)\n`\n}\n'
    assert imports(src) == [Import("fmt", "fmt", "", 18, 23)]
    assert imports("") == [] and imports("func f() {}\n") == []
    assert [i.path for i in imports('import ("a"; b "c")\n')] == ["a", "c"]  # one line, semicolons


def test_funcs_are_top_level_heads_only():
    got = funcs(FILE)
    assert [(f.name, f.recv) for f in got] == [
        ("Push", "s *Stack[K, V]"), ("Map", ""), ("stub", ""), ("Open", ""),
    ]  # not `fake` (in a raw string), not F (a func type), not the func literal in Map
    for f in got:
        assert FILE.startswith("func", f.start) and FILE[f.params] == "("
    m = got[1]
    assert FILE[m.start : m.params] == "func Map[T any, U interface{ ~int }]"


def test_funcs_on_an_open_prompt_and_broken_code():
    prompt = "package main\n\n// Add two.\nfunc add(a int, b int) int {\n"
    assert [f.name for f in funcs(prompt)] == ["add"]
    assert [f.name for f in funcs("}\n}\nfunc g() {}\n")] == ["g"]  # stray closers
    assert funcs("\tx := func() {}\n") == []


def test_body_open_skips_types_strings_comments_and_runes():
    assert body_open("func f() {") == len("func f() {")
    sig = "func f(x struct{ A int `json:\"a{\"` }) interface{ M() } /* { */ {"
    assert body_open(sig) == len(sig)
    assert body_open("func f(\n\ta int,\n) (int, error) {\n}") == len("func f(\n\ta int,\n) (int, error) {")
    assert body_open("func stub(x int) int\n\nfunc g() {") == -1  # no body: the next func's is not its
    assert body_open("func f(x int") == -1


def test_func_body_spans_the_body_past_braces_in_literals():
    got = {f.name: func_body(FILE, f) for f in funcs(FILE)}
    at, end = got["Push"]
    assert FILE[at - 1] == "{" and FILE[at - 1 : end] == "{ if v == '{' { return }; _ = \"}\" }"
    assert got["stub"] == (-1, -1)
    body = FILE[got["Map"][0] - 1 : got["Map"][1]]
    assert body.startswith("{\n\tf := func() {}") and body.endswith("return nil\n}")
    assert FILE[: got["Open"][1]].endswith("return nil\n}")
    assert func_body("func f() { if x {\n", funcs("func f() { if x {\n")[0]) == (10, -1)


@pytest.mark.parametrize("src, pair, want", [
    ('{ s := "}" }', "{}", 12),  # the copy in records.py stopped at the brace in the string
    ("{ r := '}' }", "{}", 12),
    ("{ s := `\n}` }", "{}", 13),
    ("{ // }\n}", "{}", 8),
    ("{ /* } */ }", "{}", 11),
    ("(a, f(b), \")\")", "()", 14),
    ("{ open", "{}", 6),  # never closes: the text's end
])
def test_skip_balanced(src, pair, want):
    assert skip_balanced(src, 0, pair) == want


def test_line_depths():
    src = "func f() {\n\tx := `a\nb{`\n\tg(1,\n\t/* {\n */ 2)\n}\n"
    assert line_depths(src) == [(1, 0), (-1, -1), (1, 0), (1, 1), (-1, -1), (1, 0), (0, 0)]
    assert line_depths('s := "{\nt := 1\n') == [(0, 0), (0, 0)]  # a quote cannot cross a line


def test_split_list():
    assert split_list("int, map[string]int, func(a, b int) (x, y int)") == [
        "int", "map[string]int", "func(a, b int) (x, y int)"]
    assert split_list('a, struct{ X int `tag:"a,b"` }, ') == ["a", 'struct{ X int `tag:"a,b"` }']
    assert split_list("") == []
