"""gocoder eval: the metrics against hand computations, resume, the arena and promotion."""

from __future__ import annotations

import json

import pytest
from test_generate import BAD, GOOD, FakeGen, cand, rec
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.eval.evaluate import compare, edit_similarity, evaluate, plan_scores, promote, shape, summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def ckpt(tiny_ckpt):
    return tiny_ckpt  # the session's tiny checkpoint (tests/conftest.py): read only


def test_edit_similarity_by_hand():
    assert edit_similarity([], []) == 1.0
    assert edit_similarity(list("abcd"), list("abcd")) == 1.0
    assert edit_similarity(list("abcd"), list("abxd")) == 0.75  # one substitution in 4
    assert edit_similarity(list("ab"), list("abcd")) == 0.5  # two insertions, longer side 4
    assert edit_similarity(list("ab"), []) == 0.0


def test_plan_scores_by_hand():
    gold = [{"intent": "FIX", "target": "func:A"}, {"intent": "ADD", "target": "struct:T"}]
    pred = [{"intent": "FIX", "target": "type:T"}, {"intent": "FIX", "target": "func:B"},
            {"intent": "ADD", "target": "func:C"}]
    acc, f1 = plan_scores(pred, gold)
    assert acc == pytest.approx(1 / 3)  # step 1 matches; 3 steps in the longer plan
    assert f1 == pytest.approx(2 * 1 / (3 + 2))  # type:T is the struct target
    assert plan_scores([], []) == (1.0, 1.0)


def test_shape_ignores_names_and_sees_operators():
    renamed = GOOD.replace("Max", "Big").replace("a", "x")
    assert shape(GOOD) == shape(renamed) and shape(GOOD) != shape(GOOD.replace(">", "<"))
    assert edit_similarity(shape(GOOD), shape(GOOD.replace(">", "<"))) == pytest.approx(1 - 1 / len(shape(GOOD)))


def test_evaluate_metrics_by_hand_and_resume(tmp_path):
    data = tmp_path / "test.jsonl"
    r2 = dict(rec(1).to_dict(), plan={"steps": [{"intent": "ADD", "target": "func:Min", "description": ""}]})
    data.write_text("".join(json.dumps(r) + "\n" for r in (rec(0).to_dict(), r2, rec(2).to_dict())))
    # record 0: the exact code on the first try; record 1: broken twice, then done said on broken code
    # (premature), record 2 is beyond --limit
    gen = FakeGen([cand(GOOD + "\n", True), cand(BAD, False, done=0.9), cand(BAD, False, done=0.9)])
    out = tmp_path / "rows.jsonl"
    s = evaluate(gen, data, out, limit=2, solve_kw={"max_iters": 2})
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["g0", "g1"] and s["items"] == 2
    assert rows[0]["exact_match"] and rows[0]["ast_similarity"] == 1.0 and not rows[1]["exact_match"]
    assert rows[1]["premature_stop"] and rows[1]["iterations"] == 2 and not rows[1]["syntax_valid"]
    # cand's plan is FIX func:Max: intent wrong for both (gold ADD), target right for g0 only
    assert (rows[0]["intent_accuracy"], rows[0]["target_f1"], rows[1]["target_f1"]) == (0.0, 1.0, 0.0)
    assert s["exact_match"] == 0.5 and s["syntax_valid"] == 0.5 and s["iterations"] == 1.5
    assert s["premature_stop"] == 0.5 and s["first_try_valid"] == 0.5 and s["target_f1"] == 0.5
    assert s["type_valid"] is None  # nothing was type-checked
    sim = edit_similarity(shape(BAD), shape(GOOD))
    assert s["ast_similarity"] == pytest.approx((1 + sim) / 2) and sim < 1
    # rerun: nothing is redone (the fake generator has no candidates left), the summary is the same
    assert evaluate(FakeGen([]), data, out, limit=2, solve_kw={"max_iters": 2}) == s
    with pytest.raises(GocoderError, match=r"bad.jsonl:1: record \?: missing field 'id'"):
        (tmp_path / "bad.jsonl").write_text('{"problem": {}}\n')
        evaluate(gen, tmp_path / "bad.jsonl", tmp_path / "o.jsonl")


def test_no_records_is_an_error_not_a_zero_score(tmp_path):
    (tmp_path / "valid.jsonl").write_text("")  # what annotate leaves for a split no repository fell into
    with pytest.raises(GocoderError, match=r"valid.jsonl: no records to evaluate: an empty file"):
        evaluate(FakeGen([]), tmp_path / "valid.jsonl", tmp_path / "rows.jsonl")
    (tmp_path / "test.jsonl").write_text(json.dumps(rec(0).to_dict()) + "\n")
    with pytest.raises(GocoderError, match="no records to evaluate: --limit 0"):
        evaluate(FakeGen([]), tmp_path / "test.jsonl", tmp_path / "rows.jsonl", limit=0)
    assert not (tmp_path / "rows.jsonl").exists()


def row(i, valid, syntax, sim):
    return {"id": f"r{i}", "final_valid": valid, "syntax_valid": syntax, "ast_similarity": sim}


def test_arena_and_promotion(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in [row(0, True, True, .5), row(1, False, True, .9),
                                                         row(2, False, False, .3), row(3, True, True, 1)]))
    b.write_text("".join(json.dumps(r) + "\n" for r in [row(0, False, True, .9), row(1, False, True, .8),
                                                         row(2, False, True, .1), row(3, True, True, 1)]))
    assert compare(a, b) == {"items": 4, "wins": 2, "losses": 1, "ties": 1, "win_rate": 0.625}
    assert summarize([row(0, True, True, .5), row(1, False, True, .9)])["ast_similarity"] == pytest.approx(.7)
    src = tmp_path / "ck"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "model.safetensors").write_text("w")
    (src / "state.pt").write_text("s")
    best = tmp_path / "best"
    best.mkdir()
    (best / "config.json").write_text("old")
    promote(src, best)
    assert (best / "config.json").read_text() == "{}" and not (best / "state.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl", "best", "ck"]  # no leftovers
    with pytest.raises(GocoderError, match="not a checkpoint"):
        promote(tmp_path / "a.jsonl", best)


@pytest.mark.slow
def test_eval_cli_against_and_promote(ckpt, tmp_path):
    from gocoder.cli import app

    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(rec(i).to_dict()) + "\n" for i in range(2)))  # --limit 1 in the arena
    args = ["eval", "--checkpoint", str(ckpt), "--data", str(data), "--max-iters", "1", "--out",
            str(tmp_path / "rows.jsonl"), "--json"]
    r = CliRunner().invoke(app, args)
    rep = json.loads(r.stdout)
    assert r.exit_code == 0 and rep["summary"]["items"] == 2 and 0 <= rep["summary"]["ast_similarity"] <= 1
    # the same checkpoint against itself: every item a tie, win rate 0.5, nothing promoted
    r = CliRunner().invoke(app, args + ["--limit", "1", "--against", str(ckpt), "--promote", "--best",
                                        str(tmp_path / "best")])
    rep = json.loads(r.stdout)
    assert rep["arena"]["ties"] == 1 and rep["arena"]["win_rate"] == 0.5 and rep["promoted"] is None
    assert not (tmp_path / "best").exists()
    # --promote without --against is an error: a checkpoint is promoted by winning the arena
    r = CliRunner().invoke(app, args[:-1] + ["--promote"])
    assert r.exit_code != 0
