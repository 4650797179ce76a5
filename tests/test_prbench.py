"""gocoder/eval/prbench.py: problems mined from a git history, and the scores of an answer."""

from __future__ import annotations

import json

import pytest
from conftest import RepoBuilder

from gocoder.eval.prbench import build_prbench, edit_similarity, run_prbench, score, tree_at

GOMOD = "module example.com/calc\n\ngo 1.22\n"
V1 = "package calc\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn a + b\n}\n"
MUL = "\n// Mul multiplies a by b.\nfunc Mul(a, b int) int {\n\treturn a * b\n}\n"
NEG = "\n// Neg is -a.\nfunc Neg(a int) int {\n\treturn -a\n}\n"


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    b = RepoBuilder(tmp_path_factory.mktemp("clones") / "calc")
    b.commit("Initial commit", {"go.mod": GOMOD, "calc.go": V1})
    b.commit("Add a Mul function to multiply ints", {"calc.go": V1 + MUL, "calc_test.go": "package calc\n"})
    b.commit("Update README", {"README.md": "# calc\n"})
    b.commit("Add Neg for the negation of an int\n\nCallers asked for it.", {"calc.go": V1 + MUL + NEG})
    b.commit("Bump version", {"calc.go": V1 + MUL + NEG + "\nconst Version = 2\n"})
    return b.path


def test_edit_similarity_is_one_minus_normalized_levenshtein():
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert edit_similarity("abc", "abc") == 1.0 and edit_similarity("", "") == 1.0
    assert edit_similarity("abc", "") == 0.0 and edit_similarity("", "xy") == 0.0
    assert edit_similarity("flaw", "lawn") == pytest.approx(0.5)


def test_build_keeps_described_changes_of_one_file_with_their_parent_and_answer(clone, tmp_path):
    out = tmp_path / "pr.jsonl"
    res = build_prbench([clone], out, per_repo=10)
    probs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert res["problems"] == 2 == len(probs)  # the README and the version bump are not problems
    neg = next(p for p in probs if p["description"].startswith("Add Neg"))
    assert neg["details"] == "Callers asked for it." and neg["path"] == "calc.go"
    assert neg["before"] == V1 + MUL and neg["answer"].strip() == NEG.strip() and neg["after"] == V1 + MUL + NEG
    assert neg["id"] == f"calc@{neg['sha'][:12]}" and len(neg["parent"]) == 40
    mul = next(p for p in probs if p["description"].startswith("Add a Mul"))
    assert "calc_test" not in mul["answer"] and mul["answer"].strip() == MUL.strip()
    manifest = json.loads((tmp_path / "pr.jsonl.manifest.json").read_text())
    assert manifest["repos"]["calc"]["kept"] == 2 and len(manifest["repos"]["calc"]["head"]) == 40


def test_scores_of_a_right_a_wrong_and_a_broken_answer(clone, tmp_path):
    build_prbench([clone], tmp_path / "pr.jsonl")
    p = next(json.loads(ln) for ln in (tmp_path / "pr.jsonl").read_text().splitlines() if "Neg" in ln)
    tree = tree_at(clone, p["parent"], tmp_path / "trees")
    assert (tree / "calc.go").read_text() == V1 + MUL
    right = score(p, "func Neg(a int) int {\n  return -a\n}", tree)  # gofmt makes it the real one, bar the doc
    assert right["parses"] and right["typechecks"] and 0.6 < right["edit_similarity"] < 1 and not right["exact"]
    assert score(p, NEG, tree)["exact"]
    wrong = score(p, "func Neg(a int) string {\n\treturn a\n}\n", tree)  # parses, does not type-check
    assert wrong["parses"] and not wrong["typechecks"]
    broken = score(p, "func Neg(a int int {", tree)
    assert not broken["parses"] and not broken["typechecks"]


def test_run_resumes_and_summarizes(clone, tmp_path, monkeypatch):
    import gocoder.inference.generate as g
    from gocoder.config import GenerateConfig

    build_prbench([clone], tmp_path / "pr.jsonl")
    answers = iter(["func Neg(a int) int {\n\treturn -a\n}\n", "func Mul(a, b int) int {\n\treturn a * b\n}\n"])

    class Fake:
        def with_related(self, rec, idx, max_new, exclude=()):
            return rec

    monkeypatch.setattr(g.Generator, "load", classmethod(lambda cls, *a, **k: Fake()))
    monkeypatch.setattr(g, "solve", lambda gen, rec, **k: g.Result(
        next(answers) if "Neg" in rec.problem.description else "func Mul(a, b int) int {\n\treturn a * b\n}\n",
        [], 1, True, None, None, True, []))
    s = run_prbench(tmp_path / "pr.jsonl", clone.parent, tmp_path / "run", generate=GenerateConfig(), limit=1)
    assert s["problems"] == 1 and s["typecheck_problems"] == 1 and s["reference_typechecks"] == 1.0
    s = run_prbench(tmp_path / "pr.jsonl", clone.parent, tmp_path / "run", generate=GenerateConfig(), retrieve=True)
    assert s["problems"] == 2 and s["parses"] == 1.0 and s["typechecks"] == 1.0
    assert len((tmp_path / "run" / "results.jsonl").read_text().splitlines()) == 2  # the first row kept, not redone
