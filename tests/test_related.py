"""gocoder/training/related.py: retrieved neighbours in training records, never the answer, within the budget,
from the record's own package (its split) only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.cli import app
from gocoder.inference import retrieve
from gocoder.records import read_jsonl
from gocoder.splits import file_key, record_keys, split_of
from gocoder.text.serialize import prompt, prompt_budget, segments
from gocoder.text.tokenizer import Tokenizer
from gocoder.training.related import PackageIndexes, relate

TOK = Tokenizer.load(Path(__file__).resolve().parent.parent / "tokenizer")
FILES = {
    "conf/a.go": '''package conf

// ParseValue reads a config value from text and returns its size.
func ParseValue(text string) int { return len(text) }

// Config holds the parsed config settings.
type Config struct{ Size int }

// Close releases the config and its settings.
func (c *Config) Close() error { c.Size = 0; return nil }
''',
    # another build tag's copy of the answer: as good a leak as the answer's own file
    "conf/a_windows.go": '''package conf

// ParseValue reads a config value from text and returns its size, on Windows.
func ParseValue(text string) int { return len(text) + 1 }

// Close releases the config and its settings, on Windows.
func (c *Config) Close() error { return nil }
''',
    "conf/render.go": '''package conf

// renderValue writes one config value as text.
func renderValue(size int) string { return "" }

// DefaultConfig is the config value read when no text is given.
var DefaultConfig = Config{Size: 1}
''',
    # a subfolder is another package, maybe of another split: it must never lend a neighbour
    "conf/sub/sub.go": '''package sub

// ParseConfigValue reads a config value from text and returns its size.
func ParseConfigValue(text string) int { return 0 }
''',
    "other/o.go": '''package other

// ParseConfigValueText reads a config value from text and returns its size.
func ParseConfigValueText(text string) int { return 0 }
''',
}


def _rec(i: str, desc: str, target: str, code: str, repo: str = "GOROOT/src/conf") -> dict:
    source = "go-src" if repo.startswith("GOROOT/") else "github"
    return {"id": i, "split": "train", "source": source, "repo": repo,
            "problem": {"description": desc, "details": f"{desc}\n\nSignature: {code.split('{')[0]}"},
            "context": {"file": "conf/a.go", "before": ""},
            "plan": {"steps": [{"intent": "ADD", "target": f"{target}@conf/a.go", "description": desc}]},
            "solution": {"code": code, "validation": {"syntax": True, "tests": None}}}


PARSE = _rec("parse", "ParseValue reads a config value from text and returns its size.", "func:ParseValue",
             "func ParseValue(text string) int { return len(text) }")
CLOSE = _rec("close", "Close releases the config and its settings.", "method:Config.Close",
             "func (c *Config) Close() error { c.Size = 0; return nil }")


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.setattr(retrieve, "index_path", lambda root: tmp_path / "cache" / "index.json")
    root = tmp_path / "src"
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def _run(tree: Path, tmp: Path, recs: list[dict], name: str = "out", **kw) -> tuple[list[dict], object]:
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    stats = relate(src, tmp / f"{name}.jsonl", tree, TOK, **kw)
    return list(read_jsonl(tmp / f"{name}.jsonl")), stats


def test_the_answer_is_never_a_neighbour_in_its_file_or_a_sibling_build_tag(tree, tmp_path):
    idx = PackageIndexes(tree).index("conf")
    for rec, name in ((PARSE, "ParseValue"), (CLOSE, "Config.Close")):
        q = f"{rec['problem']['description']}\n{rec['problem']['details']}"
        assert idx.search(q, k=2)[0].name == name  # without the rule, the answer is the best match
    out, stats = _run(tree, tmp_path, [PARSE, CLOSE])
    assert stats.records == 2 and stats.related == 2
    for rec in out:
        related = rec["context"]["related"]
        assert related and len(related) <= 8
        text = "".join(r["code"] for r in related)
        assert rec["solution"]["code"] not in text
        assert ("func ParseValue(" in text) == (rec["id"] != "parse")  # the other record's answer may serve
        assert (") Close() error" in text) == (rec["id"] != "close")
        assert {r["file"] for r in related} <= {"conf/a.go", "conf/a_windows.go", "conf/render.go"}


def test_neighbours_come_from_the_records_own_package_and_split_only(tree, tmp_path):
    out, stats = _run(tree, tmp_path, [PARSE, _rec("gh", PARSE["problem"]["description"], "func:ParseValue",
                                                   PARSE["solution"]["code"], repo="someone/conf")])
    got = {r["id"]: r for r in out}
    key = record_keys(got["parse"])
    assert key == ["conf"]
    for r in got["parse"]["context"]["related"]:
        assert [file_key(r["file"])] == key and split_of(file_key(r["file"]), (0.5, 0.25, 0.25)) == split_of(
            key[0], (0.5, 0.25, 0.25))
        assert "ParseConfigValue" not in r["code"]  # the best BM25 match, in conf/sub and other/
    # a record whose split key is not its file's folder (a GitHub repository's) is left as it is
    assert got["gh"] == _rec("gh", PARSE["problem"]["description"], "func:ParseValue", PARSE["solution"]["code"],
                             repo="someone/conf")
    assert stats.other_key == 1


def test_the_prompt_stays_within_the_inference_budget_and_the_example_uncut(tree, tmp_path):
    base = len(TOK.encode(prompt(PARSE)))
    seg = segments(PARSE)
    answer = len(TOK.encode(seg["plan"])) + len(TOK.encode(seg["code"] + seg["validate"]))
    counts = {}
    for max_len, max_new in ((4096, 256), (base + answer + 40, 64), (2 * (base + 30), 2 * base), (base + 10, 8)):
        out, stats = _run(tree, tmp_path, [PARSE], name=f"o{max_len}", max_len=max_len, max_new=max_new)
        counts[max_len] = len(out[0]["context"].get("related", []))
        n = len(TOK.encode(prompt(out[0])))
        assert counts[max_len] == 0 or (n <= prompt_budget(max_len, max_new) and n + answer <= max_len)
    assert counts[4096] >= 4 and 0 < counts[base + answer + 40] < counts[4096]
    assert counts[base + 10] == 0 and stats.over_budget == 1  # the answer alone does not fit


def test_a_rerun_appends_only_what_is_missing(tree, tmp_path):
    recs = [PARSE, CLOSE, dict(PARSE, id="parse2")]
    first, _ = _run(tree, tmp_path, recs)
    out = tmp_path / "out.jsonl"
    out.write_text(out.read_text().splitlines(keepends=True)[0])
    again, stats = _run(tree, tmp_path, recs)
    assert again == first and stats.resumed == 1 and stats.records == 2


def test_relate_cli(tree, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "train.jsonl").write_text(json.dumps(PARSE) + "\n")
    (src / "test.jsonl").write_text(json.dumps(CLOSE) + "\n")
    r = CliRunner().invoke(app, ["relate", "-i", str(src), "-o", str(tmp_path / "rel"), "--root", str(tree),
                                 "--k", "2", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["records"] == 2 and got["related"] == 2 and got["neighbours"] <= 4
    assert sorted(p.name for p in (tmp_path / "rel").glob("*.jsonl")) == ["test.jsonl", "train.jsonl"]
    r = CliRunner().invoke(app, ["relate", "-i", str(src), "-o", str(tmp_path / "rel"), "--root", str(tree),
                                 "--k", "0"])
    assert isinstance(r.exception, GocoderError) and "--k 0" in str(r.exception)
