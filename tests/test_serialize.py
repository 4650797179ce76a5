"""The serializer: lossless round trip (property-tested), the escaping rule, refine, and errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokfixtures import tiny_records

from gocoder import GocoderError
from gocoder.record import Record
from gocoder.text.serialize import (
    SPECIAL_TOKENS,
    cut_points,
    escape,
    load_vocab,
    parse,
    prompt,
    repair_record,
    segments,
    serialize,
    serialized_fields,
    unescape,
)

TAGS = list(load_vocab().symbols)
# Text that stresses the escaping: every tag, already-escaped tags, backslashes, newlines, "<".
tricky = st.lists(
    st.one_of(st.text(max_size=8), st.sampled_from(TAGS),
              st.sampled_from(TAGS).map(lambda t: "<" + "\\" * 2 + t[1:]),
              st.sampled_from(["<", "\\", "\\n", "\n", "<\\", ">", "\r\n", "\u2581"])),
    max_size=12,
).map("".join)


def record(desc="d", details="", file="a.go", before="", steps=(), code="", syntax=None, tests=None):
    return {"id": "t", "problem": {"description": desc, "details": details},
            "context": {"file": file, "before": before}, "plan": {"steps": list(steps)},
            "solution": {"code": code, "validation": {"syntax": syntax, "tests": tests}}}


def test_tiny_records_round_trip_and_segments_concatenate():
    for rec in tiny_records(7):
        seg = segments(rec)
        assert list(seg) == ["prompt", "plan", "code", "validate"]
        text = serialize(rec)
        assert "".join(seg.values()) == text
        assert parse(text) == serialized_fields(rec)
        assert seg["code"] == f"<CODE>{escape(rec['solution']['code'])}</CODE>"


def test_exact_text_of_a_record():
    rec = record("Fix nil deref", "It crashed.", "srv/h.go", "package srv\n",
                 [{"intent": "FIX", "target": "method:Server.Handle", "description": "check nil"}],
                 "func f() {}\n", True, False)
    assert serialize(rec) == (
        "<PROBLEM>Fix nil deref\nIt crashed.</PROBLEM><CONTEXT><FILE>srv/h.go\npackage srv\n</FILE></CONTEXT>"
        "<PLAN><STEP><INTENT:FIX><TARGET:method>Server.Handle\ncheck nil</PLAN>"
        "<CODE>func f() {}\n</CODE><VALIDATE><SYNTAX_OK><TEST_FAIL></VALIDATE>")


@settings(max_examples=200, deadline=None)
@given(desc=tricky, details=tricky, file=tricky, before=tricky, code=tricky, name=tricky, sdesc=tricky,
       intent=st.sampled_from(load_vocab().intents), kind=st.sampled_from(load_vocab().target_kinds),
       syntax=st.sampled_from([True, False, None]), tests=st.sampled_from([True, False, None]))
def test_round_trip_on_arbitrary_text(desc, details, file, before, code, name, sdesc, intent, kind, syntax, tests):
    steps = [{"intent": intent, "target": f"{kind}:{name}", "description": sdesc},
             {"intent": intent, "target": "", "description": sdesc}]
    rec = record(desc, details, file, before, steps, code, syntax, tests)
    assert parse(serialize(rec)) == serialized_fields(rec)


@settings(max_examples=200, deadline=None)
@given(text=tricky)
def test_escaped_text_holds_no_tag_and_unescapes(text):
    e = escape(text)
    assert not any(t in e for t in TAGS)
    assert unescape(e) == text


def test_go_file_containing_close_code_round_trips():
    code = 'package p\n\nconst s = "</CODE>" + `<\\/CODE>` // <VALIDATE>\n'
    text = serialize(record(code=code))
    assert text.count("</CODE>") == 1 and text.endswith("</CODE><VALIDATE></VALIDATE>")
    assert parse(text)["solution"]["code"] == code


def test_struct_target_is_written_as_type():
    rec = record(steps=[{"intent": "ADD", "target": "struct:Point", "description": ""}])
    assert "<TARGET:type>Point\n" in serialize(rec)
    assert parse(serialize(rec))["plan"]["steps"][0]["target"] == "type:Point"


def test_refine_keeps_previous_code_and_first_diagnostic_only():
    rec = record(code="func f() {}\n", syntax=True,
                 steps=[{"intent": "FIX", "target": "func:f", "description": "close the paren"}])
    diags = [SimpleNamespace(line=1, col=8, msg="expected ')'"), "2:1: cascade"]
    text = serialize(repair_record(rec, "func f( {}\n", diags[0]))
    back = parse(text)
    assert back["refine"] == {"code": "func f( {}\n", "diagnostic": "1:8: expected ')'",
                              "validation": {"syntax": False, "tests": None}}
    assert back["solution"]["code"] == "func f() {}\n" and "cascade" not in text
    prefix = prompt(repair_record(rec, "func f( {}\n", diags[0]))
    assert text.startswith(prefix) and prefix.endswith("</REFINE>") is False
    assert prefix.endswith("<REFINE><CODE>func f( {}\n</CODE><VALIDATE><SYNTAX_ERR>1:8: expected ')'</VALIDATE>")


def test_prompt_cut_keeps_head_and_tail():
    assert cut_points(10, 10) == (10, 10) and cut_points(3, 8) == (3, 3)
    head, tail = cut_points(10, 4)
    seq = list(range(10))
    assert seq[:head] + seq[tail:] == [0, 1, 8, 9]
    assert cut_points(10, 1) == (1, 10)  # one token left: the head's first


def test_training_writes_the_prompt_inference_sends_for_a_draft():
    """The repair rows of the shards, against the prompt the generation loop builds from a candidate that
    wrote the same draft and got gocheck's verdict on it (STYLE.md 17)."""
    import random

    from gocoder.check.validate import get_checker
    from gocoder.inference.candidates import refine_record
    from gocoder.inference.generate import decode_output, judge
    from gocoder.training.data import _examples

    good = "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"
    rec = Record.from_dict(record(code=good, syntax=True,
                                  steps=[{"intent": "ADD", "target": "func:Max", "description": "max"}]))
    rows = _examples(rec, 12, get_checker(), random.Random(3))
    repairs = [r for r in rows if r["kind"] == 2]
    syntax_errors = 0
    for row in repairs:
        draft = parse("".join(row[k] for k in ("prompt", "plan", "code", "validate")))["refine"]["code"]
        text = f"<PLAN></PLAN><CODE>{escape(draft)}</CODE>"  # the model wrote the draft
        cand = judge(text, decode_output(text), get_checker().check(draft))
        assert prompt(refine_record(rec, cand)) == row["prompt"]
        syntax_errors += not cand.syntax_ok
    assert syntax_errors >= 1 and len(repairs) >= 3  # drafts with a diagnostic were compared


def test_refine_field_in_a_record_round_trips():
    rec = dict(record(code="x"), refine={"code": "</CODE>", "diagnostic": "<\\STEP>",
                                          "validation": {"syntax": True, "tests": False}})
    assert parse(serialize(rec)) == serialized_fields(rec)


@pytest.mark.parametrize("bad, msg", [
    ({"plan": {"steps": [{"intent": "FIXX"}]}}, "plan.steps[0].intent 'FIXX'"),
    ({"plan": {"steps": [{"intent": "FIX", "target": "Foo"}]}}, "plan.steps[0].target 'Foo'"),
    ({"plan": {"steps": [{"intent": "FIX", "target": "class:Foo"}]}}, "must be KIND:NAME"),
    ({"solution": {"code": "x", "validation": {"syntax": "yes"}}}, "solution.validation"),
    ({"solution": {"validation": {}}}, "missing field 'solution.code'"),
    ({"problem": {"description": 3}}, "'problem.description' must be a string"),
])
def test_bad_records_name_the_record_and_field(bad, msg):
    rec = {**record(), **bad}
    with pytest.raises(GocoderError, match="record t: ") as e:
        serialize(rec)
    assert msg in str(e.value)


def test_malformed_text_names_the_offset():
    text = serialize(tiny_records(1)[0])
    for broken in (text[:-1], text[1:], text.replace("<PLAN>", ""), text + "x",
                   text.replace("<INTENT:FIX>", "<INTENT:NOPE>")):
        with pytest.raises(GocoderError, match=r"serialized text, char \d+: expected"):
            parse(broken)


def test_bad_special_tokens_file_is_an_error(tmp_path):
    src = json.loads(SPECIAL_TOKENS.read_text(encoding="utf-8"))
    bad = dict(src, intents=src["intents"] + ["<A B>"])
    p = tmp_path / "special.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(GocoderError, match="must look like <NAME>"):
        load_vocab(p)
    p.write_text(json.dumps(dict(src, structure=[t for t in src["structure"] if t != "</CODE>"])))
    with pytest.raises(GocoderError, match="missing special tokens"):
        load_vocab(p)
