"""The hierarchical record: from_dict/to_dict give back the JSON byte for byte, and a bad record is one
line naming the file, line, record and field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gocoder import GocoderError
from gocoder.record import Context, Plan, Problem, Record, Refine, Related, Solution, Step, Validation

# three go-src records (the first lines of an annotated GOROOT) and a synth one, as annotate wrote them
SAMPLE = Path(__file__).parent / "data" / "hier_sample.jsonl"


def test_real_lines_round_trip_byte_for_byte():
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == 4
    for i, line in enumerate(lines, 1):
        rec = Record.from_dict(json.loads(line), where=f"{SAMPLE}:{i}")
        assert json.dumps(rec.to_dict()) + "\n" == line
    rec = Record.from_dict(json.loads(lines[0]))
    assert (rec.id, rec.split, rec.source, rec.pr_number) == ("0abb618eaf2002c3", "train", "go-src", None)
    assert rec.plan is not None and rec.plan.intent == "ADD" and rec.steps[0].target.startswith("func:")
    assert rec.solution is not None and rec.solution.validation.syntax is True and rec.code == rec.solution.code
    assert Record.from_dict(json.loads(lines[3])).bug_kind


def test_a_built_record_writes_what_annotate_wrote():
    line = SAMPLE.read_text(encoding="utf-8").splitlines()[3]
    d = json.loads(line)
    rec = Record(id=d["id"], split=d["split"], source=d["source"], repo=d["repo"], pr_number=None, sha=None,
                 problem=Problem(**d["problem"]), context=Context(**d["context"]),
                 plan=Plan(intent=d["plan"]["intent"], steps=tuple(Step(**s) for s in d["plan"]["steps"])),
                 solution=Solution(code=d["solution"]["code"], validation=Validation(**d["solution"]["validation"])),
                 bug_kind=d["bug_kind"])
    assert json.dumps(rec.to_dict()) == line
    assert rec == Record.from_dict(d)


def test_a_problem_record_has_only_what_it_was_given():
    rec = Record(id="p", problem=Problem(description="Add Max", details="d"),
                 context=Context(file="main.go", before="package main\n"))
    assert rec.to_dict() == {"id": "p", "problem": {"description": "Add Max", "details": "d"},
                             "context": {"file": "main.go", "before": "package main\n"}}
    assert rec.steps == () and rec.code == ""
    bench = Record(id="b", split="test", source="bench:mbxp", problem=rec.problem, context=rec.context, plan=Plan())
    assert list(bench.to_dict()) == ["id", "split", "source", "problem", "context", "plan"]
    assert bench.to_dict()["plan"] == {"steps": []}


def test_unknown_keys_and_key_order_survive_and_new_fields_go_last():
    d = {"problem": {"details": "x", "description": "y", "lang": "go"}, "id": "r", "note": [1, {"a": None}],
         "context": {"before": "b", "file": "f"}, "pr_number": None,
         "plan": {"steps": [{"intent": "FIX", "target": "func:F", "description": "", "why": 1}]}}
    rec = Record.from_dict(d)
    assert json.dumps(rec.to_dict()) == json.dumps(d)
    assert rec.extra == {"note": [1, {"a": None}]} and rec.plan is not None and rec.plan.steps[0].extra == {"why": 1}
    more = dataclasses.replace(rec, context=dataclasses.replace(rec.context, related=(Related(file="g", code="c"),)),
                               refine=Refine(code="x", diagnostic="1:1: e", validation=Validation(syntax=False)))
    out = more.to_dict()
    assert list(out) == [*d, "refine"]
    assert out["context"] == {"before": "b", "file": "f", "related": [{"file": "g", "code": "c"}]}
    assert out["refine"] == {"code": "x", "diagnostic": "1:1: e", "validation": {"syntax": False, "tests": None}}
    assert Record.from_dict(out) == more


@pytest.mark.parametrize("bad, msg", [
    ({"id": 3}, "record ?: field 'id' must be a string, got 3"),
    ({"problem": None}, "record r: field 'problem' must be an object, got None"),
    ({"problem": {}}, "record r: missing field 'problem.description'"),
    ({"plan": {"steps": {}}}, "record r: field 'plan.steps' must be a list, got {}"),
    ({"plan": {"steps": [{"intent": "FIX"}, "x"]}}, "record r: field 'plan.steps[1]' must be an object, got 'x'"),
    ({"plan": {"steps": [{"target": "f"}]}}, "record r: missing field 'plan.steps[0].intent'"),
    ({"solution": {"code": "", "validation": {"syntax": "yes"}}},
     "record r: field 'solution.validation.syntax' must be true, false or null, got 'yes'"),
    ({"pr_number": True}, "record r: field 'pr_number' must be an integer or null, got True"),
    ({"context": {"related": [{"file": "a"}]}}, "record r: missing field 'context.related[0].code'"),
])
def test_a_bad_record_is_one_line_naming_file_line_and_field(bad, msg):
    d = {"id": "r", "problem": {"description": "d"}, **bad}
    with pytest.raises(GocoderError) as e:
        Record.from_dict(d, where="data/hierarchical/train.jsonl:7")
    assert str(e.value) == f"data/hierarchical/train.jsonl:7: {msg}"
    with pytest.raises(GocoderError, match="expected a JSON object, got list"):
        Record.from_dict([], where="f:1")  # type: ignore[arg-type]


def test_of_takes_a_record_or_a_dict():
    rec = Record(id="r", problem=Problem(description="d"))
    assert Record.of(rec) is rec
    assert Record.of(rec.to_dict()) == rec


def test_read_records_names_the_file_and_line_of_a_bad_one(tmp_path):
    from gocoder.record import read_records

    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "a.jsonl").write_text(lines[0] + '{"id": "x", "problem": {"description": 1}}\n')
    (tmp_path / "b.jsonl").write_text("".join(lines[1:]))
    with pytest.raises(GocoderError) as e:
        list(read_records(tmp_path))
    assert str(e.value) == f"{tmp_path / 'a.jsonl'}:2: record x: field 'problem.description' must be a string, got 1"
    (tmp_path / "a.jsonl").write_text(lines[0])
    got = [(f.name, r.id) for f, r in read_records(tmp_path)]
    assert got == [("a.jsonl", "0abb618eaf2002c3"), *(("b.jsonl", json.loads(ln)["id"]) for ln in lines[1:])]
