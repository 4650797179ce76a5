"""Plans: intent from words and diff, the declaration-level diff, and steps."""

from __future__ import annotations

import re

import pytest

from gocoder.check.validate import get_checker
from gocoder.collect.plans import (
    DeclChange,
    _code_differs,
    code_key,
    code_tokens,
    decl_changes,
    intent_of,
    text_intent,
)
from gocoder.collect.steps import plan_steps, sentences

BEFORE = '''package srv

import "net/http"

// Server serves.
type Server struct{ mux *http.ServeMux }

// Handler handles.
type Handler interface{ Handle() }

const (
	A = 1
	B = 2
)

var x, y = 1, 2

func helper() int { return 1 }

// Handle answers a request.
func (s *Server) Handle(w http.ResponseWriter) {
	w.WriteHeader(200)
}

func gone() {}

func init() {}

func init() { _ = 1 }
'''

AFTER = '''package srv

import "net/http"

// Server serves requests.
type Server struct{ mux *http.ServeMux }

// Handler handles.
type Handler interface {
	Handle()
	Close() error
}

const (
	A = 1
	B = 3
)

var x, y = 1, 2

func helper() int {
	// one, always
	return 1
}

// Handle answers a request.
func (s *Server) Handle(w http.ResponseWriter) {
	w.WriteHeader(http.StatusOK)
}

func (s *Server) Close() error { return nil }

func init() {}

func init() { _ = 2 }
'''


def diff(path: str, before: str, after: str, code_hash: bool = False) -> list[DeclChange]:
    ck = get_checker()
    rb = ck.check(before, kind="auto", docs=True, gofmt=False, code_hash=code_hash) if before else None
    ra = ck.check(after, kind="auto", docs=True, gofmt=False, code_hash=code_hash) if after else None
    return decl_changes(path, before, after, rb.decls if rb else (), ra.decls if ra else ())


@pytest.mark.parametrize("code_hash", [False, True])  # modified vs touched: by gocheck's hashes, or by code_key
def test_decl_changes_kinds_and_names(code_hash: bool) -> None:
    if code_hash:
        assert all(len(d.code) == 16 for d in get_checker().check(AFTER, code_hash=True).decls)
    got = {(f"{c.kind}:{c.name}", c.change) for c in diff("srv/server.go", BEFORE, AFTER, code_hash)}
    assert got == {
        ("struct:Server", "touched"),  # doc comment only
        ("interface:Handler", "modified"),
        ("const:B", "modified"),
        ("func:helper", "touched"),  # a comment and layout, same code
        ("method:Server.Handle", "modified"),
        ("method:Server.Close", "added"),
        ("func:gone", "removed"),
        ("func:init#2", "modified"),  # the second init, told apart from the first
    }


def test_added_and_deleted_files() -> None:
    assert {c.change for c in diff("a.go", "", AFTER)} == {"added"}
    assert {c.change for c in diff("a.go", BEFORE, "")} == {"removed"}
    # A fragment (a go-src record's declaration) works too.
    assert [(c.kind, c.name) for c in diff("a.go", "", "func F() {}")] == [("func", "F")]


def test_code_tokens_ignore_comments_and_layout_not_strings() -> None:
    assert code_tokens("f(a,  b) // x\n/* y */") == code_tokens("f(a, b)")
    assert code_tokens('s := "// not a comment"') != code_tokens('s := ""')
    assert code_tokens("x := `a\n//b`") == ["x", ":", "=", "`a\n//b`"]
    # code_key, the fast comparison annotate uses, agrees.
    assert code_key("f(a,  b) // x\n/* y */") == code_key("f(a, b)")
    assert code_key("func f() {\n\treturn a+b\n}") == code_key("func f() { return a + b }")
    assert code_key('s := "a  b"') != code_key('s := "a b"')
    assert code_key("return x") != code_key("returnx")
    # _code_differs answers code_key's question, with a shortcut for texts without comments.
    pairs = [("f(a,  b) // x", "f(a, b)"), ("func f() {\n\treturn a+b\n}", "func f() { return a + b }"),
             ('s := "a  b"', 's := "a b"'), ("return x", "returnx"), ("x := 1", "x := 2"),
             ('u := "http://a"', 'u := "http://b"'), ("x := `a\n b`", "x := `a\nb`")]  # fmt: skip
    for a, b in pairs:
        assert _code_differs(a, b) == (code_key(a) != code_key(b)), (a, b)


@pytest.mark.parametrize(
    ("title", "body", "want"),
    [
        ("fix(http): handle nil body", "", "FIX"),
        ("feat!: add retries", "", "ADD"),
        ("perf: faster decode", "", "OPTIMIZE"),
        ("refactor: split server", "", "REFACTOR"),
        ("revert: add retries", "", "REMOVE"),
        ("chore: bump deps", "", "UPDATE"),
        ("Add WithTimeout option", "", "ADD"),
        ("transport/http: remove dead code", "", "REMOVE"),
        ("Rename Foo to Bar", "", "REFACTOR"),
        ("update decoder to stop a panic on empty input", "", "FIX"),
        ("Add missing nil check", "", "FIX"),
        ("reduce allocations in the encoder", "", "OPTIMIZE"),
        ("encoder: optimize map keys", "", "OPTIMIZE"),
        ("code style", "", "REFACTOR"),
        ("add unit tests for the router", "", "UPDATE"),
        ("upgrade grpc to v1.60.0", "", "UPDATE"),
        ("server shutdown", "Fixes #12", "FIX"),
        ("router tweaks", "", None),
    ],
)
def test_text_intent(title: str, body: str, want: str | None) -> None:
    assert text_intent(title, body) == want


def test_intent_from_the_diff() -> None:
    added = [DeclChange("a.go", "func", "F", "added", "", "func F() {}", 0)]
    removed = [DeclChange("a.go", "func", "F", "removed", "func F() {}", "", 0)]
    modified = [DeclChange("a.go", "func", "f", "modified", "func f() {}", "func f() { g() }", 0)]
    renamed = [DeclChange("a.go", "func", "Old", "removed", "func Old() { g() }", "", 0),
               DeclChange("a.go", "func", "New", "added", "", "func New() { g() }", 0)]  # fmt: skip
    touched = [DeclChange("a.go", "func", "f", "touched", "func f() {}", "// c\nfunc f() {}", 0)]
    tests = [DeclChange("a_test.go", "func", "TestF", "added", "", "func TestF() {}", 0)]
    assert intent_of("router tweaks", "", added) == "ADD"
    assert intent_of("router tweaks", "", removed) == "REMOVE"
    assert intent_of("router tweaks", "", renamed) == "REFACTOR"
    assert intent_of("router tweaks", "", modified) == "FIX"  # the commonest reason to edit code
    assert intent_of("update router", "", added) == "ADD"  # a generic verb yields to a sharp diff
    assert intent_of("fix typo", "", touched) == "UPDATE"  # comments only: no behaviour changes
    assert intent_of("add TestF", "", tests) == "UPDATE"  # tests only
    assert intent_of("fix: flaky TestF", "", tests) == "FIX"


def test_sentences_drop_template_noise() -> None:
    body = ("<!-- describe your change -->\n#### What type of PR is this?\n- [x] bug fix\n\n"
            "The server dropped the body. Handle now copies it first.\n\n* also tidy Close\n"
            "Signed-off-by: A <a@b.c>")  # fmt: skip
    assert sentences(body) == ["The server dropped the body.", "Handle now copies it first.", "also tidy Close"]


def test_steps_intents_and_descriptions() -> None:
    changes = diff("srv/server.go", BEFORE, AFTER)
    body = "Handle now writes http.StatusOK. Close releases the mux."
    steps = plan_steps("fix(srv): status code (#12)", body, changes, "FIX")
    by_target = {s["target"].removesuffix("@srv/server.go"): s for s in steps}
    assert all(s["target"].endswith("@srv/server.go") for s in steps)  # targets name their file
    # The body's sentence that names the target, then what the change itself adds.
    assert by_target["method:Server.Handle"] == {
        "intent": "FIX", "target": "method:Server.Handle@srv/server.go",
        "description": "Handle now writes http.StatusOK; uses http.StatusOK"}  # fmt: skip
    assert by_target["method:Server.Close"] == {
        "intent": "ADD", "target": "method:Server.Close@srv/server.go",
        "description": "Close releases the mux; new func (s *Server) Close() error"}  # fmt: skip
    assert by_target["func:gone"]["description"] == "drops func gone()"
    assert by_target["const:B"]["description"] == "2 -> 3"  # no name changes: the first edited tokens
    assert by_target["interface:Handler"]["description"] == "status code; adds Close"  # the title: no step named
    assert by_target["func:helper"] == {"intent": "PRESERVE", "target": "func:helper@srv/server.go",
                                        "description": "comment: one, always"}
    assert by_target["func:init"]["intent"] == "FIX"  # "#2" is dropped from the target
    # Touched declarations come after the ones whose code changes.
    assert [s["intent"] for s in steps][-2:] == ["PRESERVE", "PRESERVE"]
    # No template description: every step says something beyond its intent and target.
    assert not any(re.fullmatch(r"(Fix|Add|Update|Remove|Refactor) \w+ [\w.]+", s["description"]) for s in steps)
    # A one-step plan takes the title (its prefix dropped) when the body names nothing.
    one = plan_steps("fix(srv): status code", "", [c for c in changes if c.name == "Server.Handle"], "FIX")
    assert one[0]["description"] == "status code; uses http.StatusOK"
    # A refactor's new and removed declarations are part of the refactor.
    assert {s["intent"] for s in plan_steps("t", "", changes, "REFACTOR") if not s["target"].startswith(
        ("func:helper", "struct:Server"))} == {"REFACTOR"}  # fmt: skip


def test_calls_added_and_removed_and_signatures() -> None:
    before = "package p\n\nfunc realIP(r *http.Request) string {\n\treturn r.RemoteAddr\n}\n"
    after = ("package p\n\nfunc realIP(r *http.Request, trust bool) string {\n"
             "\tif ip := r.Header.Get(\"X-Real-IP\"); trust && ip != \"\" {\n\t\treturn strings.TrimSpace(ip)\n\t}\n"
             "\thost, _, _ := net.SplitHostPort(r.RemoteAddr)\n\treturn host\n}\n")  # fmt: skip
    (step,) = plan_steps("trust X-Real-IP only when asked", "", diff("mw/realip.go", before, after), "FIX")
    assert step == {"intent": "FIX", "target": "func:realIP@mw/realip.go", "description":
                    "trust X-Real-IP only when asked; now func realIP(r *http.Request, trust bool) string; "
                    "calls r.Header.Get, strings.TrimSpace, net.SplitHostPort"}  # fmt: skip
    (gone,) = plan_steps("x", "", diff("mw/realip.go", after, before), "FIX")
    assert gone["description"].endswith("no longer calls r.Header.Get, strings.TrimSpace, net.SplitHostPort")
    # a signature with a type's braces is whole (it was cut at `interface{`)
    added = "package a\n\nfunc F(x interface{}) error {\n\treturn nil\n}\n"
    (new,) = plan_steps("add", "", diff("a.go", "package a\n", added), "ADD")
    assert new["description"].endswith("new func F(x interface{}) error")


def test_the_plans_intent_is_in_its_steps() -> None:
    # A feature that only edits existing code: before, every step was UPDATE and the ADD was nowhere.
    changes = [c for c in diff("srv/server.go", BEFORE, AFTER) if c.change == "modified"]
    steps = plan_steps("feat: status codes", "", changes, "ADD")
    assert [s["intent"] for s in steps].count("ADD") == 1 and steps[0]["intent"] == "ADD"
    assert {s["intent"] for s in steps[1:]} == {"UPDATE"}
    # Two files with a `main` each are two targets, not one listed twice.
    two = diff("cmd/a/main.go", "", "package main\n\nfunc main() {}\n")
    two += diff("cmd/b/main.go", "", "package main\n\nfunc main() {}\n")
    assert [s["target"] for s in plan_steps("add tools", "", two, "ADD")] == [
        "func:main@cmd/a/main.go", "func:main@cmd/b/main.go"]
