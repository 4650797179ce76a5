"""gocoder/inference/retrieve.py: the BM25 index of a repository's declarations, its cache, and its way into prompts."""

from __future__ import annotations

import json
import os

import pytest
from conftest import PARSE, STACK
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.cli import app
from gocoder.inference.retrieve import build_index, open_index, signature, split_ident, terms, with_related
from gocoder.record import Record
from gocoder.text.serialize import parse, prompt, serialize, serialized_fields


@pytest.fixture
def repo(decl_repo):
    return decl_repo


def test_identifiers_split_at_case_and_underscores():
    assert split_ident("parseHTTPResponse") == ["parse", "http", "response", "parsehttpresponse"]
    assert split_ident("max_len2") == ["max", "len", "2", "max_len2"]
    assert "the" not in terms("Add the ReadAll func") and "readall" in terms("Add the ReadAll func")


def test_search_ranks_by_name_doc_and_signature_and_skips_tests_and_vendor(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "idx.json"
    idx, st = build_index(repo, out)
    assert st.files == 2 and {d[1] for f in idx.files.values() for d in f["decls"]} == {
        "ParseDuration", "Stack", "Stack.Push"}
    assert idx.search("read a duration from the config")[0].name == "ParseDuration"
    assert idx.search("push onto a stack")[0].name in ("Stack.Push", "Stack")
    assert idx.search("push onto a stack", exclude=["ds/stack.go"]) == []
    hit = idx.search("duration")[0]
    assert hit.code(idx.root).startswith("// ParseDuration reads") and "return time.ParseDuration" in hit.code(idx.root)
    assert hit.code(idx.root, whole=False).endswith("func ParseDuration(s string) (time.Duration, error)")


def test_a_rerun_rereads_only_the_changed_file(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "idx.json"
    _, first = build_index(repo, out)
    assert sorted(first.reread) == ["conf/parse.go", "ds/stack.go"]
    _, again = build_index(repo, out)
    assert again.reread == [] and again.decls == first.decls
    p = repo / "ds" / "stack.go"
    p.write_text(STACK + "\n// Pop takes the top off.\nfunc (s *Stack) Pop() int { return 0 }\n")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    (repo / "conf" / "parse.go").unlink()
    idx, third = build_index(repo, out)
    assert third.reread == ["ds/stack.go"] and third.removed == ["conf/parse.go"]
    assert idx.search("pop the top")[0].name == "Stack.Pop"
    assert json.loads(out.read_text())["root"] == str(repo.resolve())
    assert open_index(out).search("pop")[0].name == "Stack.Pop"  # the saved file, as bench --retrieve reads it


def test_related_declarations_round_trip_and_fill_only_the_budget(repo, tmp_path_factory):
    idx, _ = build_index(repo, tmp_path_factory.mktemp("cache") / "idx.json")
    d = {"id": "r", "problem": {"description": "Parse a timeout duration", "details": ""},
         "context": {"file": "main.go", "before": "package main\n"}, "plan": {"steps": []},
         "solution": {"code": "func f() {}\n", "validation": {"syntax": True, "tests": None}}}
    rec = Record.from_dict(d)
    full = with_related(rec, idx, lambda r: True)
    assert [r.file for r in full.context.related] == ["conf/parse.go"]
    assert full.to_dict()["context"]["related"][0]["file"] == "conf/parse.go" and "related" not in d["context"]
    text = prompt(full)
    assert text.index("<FILE>conf/parse.go\n// ParseDuration") < text.index("<FILE>main.go\n")
    assert parse(serialize(full)) == serialized_fields(full) and "related" not in serialized_fields(rec)["context"]
    short = with_related(rec, idx, lambda r: len(prompt(r)) < len(prompt(rec)) + 180)  # only the signature fits
    assert short.context.related[0].code.endswith("(time.Duration, error)")
    assert with_related(rec, idx, lambda r: False) is rec
    with pytest.raises(GocoderError, match="context.related"):
        serialize({**d, "context": {**d["context"], "related": ["x"]}})


def test_index_cli(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "idx.json"
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), "--method", "bm25", "--query", "stack push",
                                 "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["files"] == 2 and got["reread"] == 2 and got["hits"][0]["path"] == "ds/stack.go"
    r = CliRunner().invoke(app, ["index", str(repo / "nope")])
    assert isinstance(r.exception, GocoderError) and "nope: not a folder to index" in str(r.exception)


class _FakeGen:
    """Generator's prompt budget on whitespace tokens: enough for with_related, no model."""

    max_len = 1024

    class tok:  # noqa: N801
        encode = staticmethod(str.split)

    def __init__(self, keep_words: int):
        self.keep = keep_words

    def prompt_keep(self, max_new):
        return self.keep

    def prompt_text(self, rec):
        return prompt(rec)

    def with_related(self, rec, index, max_new, exclude=()):
        from gocoder.inference.generate import Generator

        return Generator.with_related(self, rec, index, max_new, exclude)


def test_generate_with_repo_prompts_with_related_declarations_but_not_its_own_file(repo, monkeypatch):
    import gocoder.inference.generate as g
    from gocoder.config import GenerateConfig

    seen = {}
    monkeypatch.setenv("GOCODER_CACHE", str(repo / ".cache-test"))
    monkeypatch.setattr(g.Generator, "load", classmethod(lambda cls, *a, **k: _FakeGen(400)))
    monkeypatch.setattr(g, "solve", lambda gen, rec, **k: seen.setdefault("rec", rec) and g.Result(
        "", [], 1, False, None, None, False, []))
    g.generate_for_pr(GenerateConfig(), "Push an int onto the stack", repo / "ds" / "stack.go", repo=repo)
    assert seen["rec"].context.related == ()  # the only match is the file itself
    seen.clear()
    g.generate_for_pr(GenerateConfig(), "Parse the duration of a config value", repo / "ds" / "stack.go", repo=repo)
    assert [r.file for r in seen["rec"].context.related] == ["conf/parse.go"]
    seen.clear()
    monkeypatch.setattr(g.Generator, "load", classmethod(lambda cls, *a, **k: _FakeGen(20)))  # no room
    g.generate_for_pr(GenerateConfig(), "Parse the duration of a config value", repo / "ds" / "stack.go", repo=repo)
    assert "related" not in seen["rec"].to_dict()["context"]


def test_bench_retrieve_puts_related_code_into_problem_records(repo, tmp_path_factory):
    from gocoder.eval.benchmarks import Problem, problem_record
    from gocoder.eval.benchrun import with_retrieved

    p = Problem(id="t/1", format="mbxp", prompt="package main\n\n// ParseDuration of a config value.\nfunc f() {\n",
                entry_point="f", description="Parse a duration from a config value", test="")
    idx_file = tmp_path_factory.mktemp("cache") / "idx.json"
    build_index(repo, idx_file)
    (q,) = with_retrieved([p], _FakeGen(400), idx_file, 256, "synthesize")
    assert q.related and q.related[0][0] == "conf/parse.go"
    assert problem_record(q).context.related[0].code.startswith("// ParseDuration reads")
    assert "related" not in problem_record(p).to_dict()["context"]


def test_index_leaves_out_what_a_decontamination_list_names_and_rebuilds_when_the_list_changes(repo, tmp_path):
    from gocoder.collect.decontam import code_hashes

    block = tmp_path / "block.txt"
    block.write_text("\n".join(sorted(code_hashes(PARSE))) + "\n")
    out = tmp_path / "idx.json"
    bm25 = ["--method", "bm25"]
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), *bm25, "--decontaminate", str(block), "--json"])
    assert r.exit_code == 0, r.output
    idx = open_index(out)
    assert json.loads(r.stdout)["decls"] == 2 and [h.name for h in idx.search("duration")] == []
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), *bm25, "--json"])  # no list: all read again
    assert json.loads(r.stdout)["reread"] == 2 and open_index(out).search("duration")[0].name == "ParseDuration"


def test_signature_stops_at_the_body_brace_not_a_type_brace():
    # the head was cut at the first "{\n": a one-line body gave the whole text, a struct parameter its brace
    assert signature("func One() int { return 1 }", "func") == "func One() int "
    assert signature("func F(x struct {\n\tA int\n}) {\n\treturn\n}", "func") == "func F(x struct {\n\tA int\n}) "
    assert signature("type T struct {\n\tA int\n}", "type") == "type T struct {\n\tA int\n}"
