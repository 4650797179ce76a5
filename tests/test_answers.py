"""gocoder bench --answers-only (gocoder/eval/answers.py write_answers): rows written as batches come, and a cut run
resumed to the very file an uncut run writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import gocoder.eval.answers as answers
from gocoder import GocoderError
from gocoder.config import BenchConfig, GenerateConfig
from gocoder.eval.benchmarks import load_problems

DATA = Path(__file__).resolve().parent / "data" / "bench"


@pytest.fixture
def fake(monkeypatch):
    calls = []

    def codes(gen, problems, task, n, s, mode):  # an answer that names its problem, sample and seed
        calls.append(([p.id for p in problems], n, s.seed))
        return [[f"func f() int {{ return {len(p.id)} }} // {p.id} {j} {s.seed}\n" for j in range(n)] for p in problems]

    monkeypatch.setattr(answers, "answer_codes", codes)
    return calls


def test_rows_come_per_batch_and_a_cut_run_resumes_to_the_uncut_file(tmp_path, fake):
    one = load_problems(DATA / "mbxp.jsonl", "mbxp")[0]
    probs = [dataclasses.replace(one, id=f"MBGP/{i}") for i in range(5)]
    cfg = BenchConfig(samples=3, batch_size=2, temperature=0.5)
    full = tmp_path / "full.jsonl"
    res = answers.write_answers(object(), probs, cfg, full, generate=GenerateConfig(max_new_tokens=9))
    rows = [json.loads(x) for x in full.read_text().splitlines()]
    assert res["answers"] == len(rows) == 15 and res["batches_run"] == 3
    assert {r["kind"] for r in rows} == {"sampled"} and [r["sample"] for r in rows[:3]] == [0, 1, 2]
    assert all(r["completion"] and r["task_id"] in r["code"] and "code_raw" in r for r in rows)
    seeds = [s for _, _, s in fake]
    assert len(set(seeds)) == 3 and None not in seeds  # one seed a batch (batch_seed)
    # cut inside the second batch, with a torn last line: the rerun redoes that batch and the third only
    cut = tmp_path / "cut.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:8]) + lines[8][:20])
    fake.clear()
    res = answers.write_answers(object(), probs, cfg, cut, generate=GenerateConfig(max_new_tokens=9))
    assert [ids for ids, _, _ in fake] == [[p.id for p in probs[2:4]], [probs[4].id]]
    assert cut.read_text() == full.read_text() and res["answers"] == 7
    fake.clear()
    assert answers.write_answers(object(), probs, cfg, cut)["answers"] == 0 and fake == []  # all done


def test_the_greedy_answer_comes_first_when_the_loop_filters(tmp_path, fake):
    probs = load_problems(DATA / "mbxp.jsonl", "mbxp")[:1]
    out = tmp_path / "a.jsonl"
    answers.write_answers(object(), probs, BenchConfig(samples=2, refine_iters=1, mode="complete"), out)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["kind"], r["sample"]) for r in rows] == [("greedy", 0), ("sampled", 0), ("sampled", 1)]
    assert [s for _, _, s in fake][0] is None  # greedy: no seed
    with pytest.raises(GocoderError, match="--mode complete"):
        answers.write_answers(object(), probs, BenchConfig(refine_iters=1), tmp_path / "b.jsonl")
