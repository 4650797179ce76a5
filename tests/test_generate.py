"""The refinement loop, candidate search and `gocoder generate`, on a tiny real checkpoint and a fake generator."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.inference.engine import Decision
from gocoder.inference.generate import (
    Candidate,
    Generator,
    LoopState,
    TestResult,
    decode_output,
    energy,
    init_state,
    load_state,
    save_state,
    should_halt,
    solve,
    step,
)
from gocoder.inference.search import Tree, reward
from gocoder.record import Record
from gocoder.text.serialize import escape

GOOD = "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"
BAD = "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t\n\treturn b\n}\n"  # a lost brace


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rec(i: int = 0) -> Record:
    return Record.from_dict({
        "id": f"g{i}", "problem": {"description": "Add Max", "details": "Max returns the larger of two ints."},
        "context": {"file": "util.go", "before": "package util\n"},
        "plan": {"steps": [{"intent": "ADD", "target": "func:Max", "description": "returns the larger"}]},
        "solution": {"code": GOOD, "validation": {"syntax": True, "tests": None}}})


@pytest.fixture()
def ckpt(tiny_ckpt):
    return tiny_ckpt  # the session's tiny checkpoint (tests/conftest.py): read only


def cand(code: str, ok: bool, done: float = 0.1, errors: int = 0, tests: TestResult | None = None) -> Candidate:
    rest = (1 - done) / 2
    return Candidate(code, [{"intent": "FIX", "target": "func:Max", "description": ""}], ok, None, tests,
                     Decision((rest, rest, done), None), "", True, 0 if ok else max(errors, 1),
                     "" if ok else "4:2: expected '}', found 'EOF'", [float(ok), 0, 0, 1, 0, 0])


class FakeGen:
    """Hands out the candidates it is given, in order, and records the records it was asked about."""

    def __init__(self, cands):
        self.cands, self.asked = list(cands), []

    def sample(self, rec, n=1, sampling=None, *, typecheck=False, tests=None):
        self.asked.append(rec)
        out, self.cands = self.cands[:n], self.cands[n:]
        return out


# ----------------------------------------------------------------------------- decoding and checkpoints

def test_decode_output_reads_plan_and_unescapes_code():
    go = 'x := "</CODE>"'
    text = ("<PLAN><STEP><INTENT:FIX><TARGET:method>T.Get\ncheck nil<STEP><INTENT:ADD>more</PLAN>"
            f"<CODE>{escape(go)}</CODE>")
    plan, code, finished = decode_output(text)
    assert plan == [{"intent": "FIX", "target": "method:T.Get", "description": "check nil"},
                    {"intent": "ADD", "target": "", "description": "more"}]
    assert code == 'x := "</CODE>"' and finished
    assert decode_output("<PLAN></PLAN><CODE>func f() {") == ([], "func f() {", False)
    assert decode_output("<PLAN><STEP>") == ([], "", False)
    # a target name the model never ended with a newline is still a target, not a description
    assert decode_output("<PLAN><STEP><INTENT:FIX><TARGET:func>Maxxx</PLAN>")[0] == [
        {"intent": "FIX", "target": "func:Maxxx", "description": ""}]


def test_checkpoint_carries_its_tokenizer(ckpt, tmp_path):
    folder = ckpt / (ckpt / "latest").read_text().strip()
    assert (folder / "tokenizer.model").is_file() and (folder / "tokenizer.json").is_file()
    moved = tmp_path / "moved"
    shutil.copytree(folder, moved)
    assert Generator.load(moved).tok.hash == json.loads((moved / "config.json").read_text())["tokenizer_hash"]
    # without its copy, config.json's tokenizer path is used and checked against the hash
    (moved / "tokenizer.model").unlink()
    meta = json.loads((moved / "config.json").read_text())
    meta["config"]["train"]["tokenizer"] = "tokenizer"  # the shipped one: another vocabulary
    (moved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(GocoderError, match="not the tokenizer"):
        Generator.load(moved)
    with pytest.raises(GocoderError, match="no checkpoint"):
        Generator.load(tmp_path / "nothing")


def test_missing_default_model_names_its_path(tmp_path, monkeypatch):
    import gocoder.inference.generate as g
    monkeypatch.setattr(g, "DEFAULT_MODEL", tmp_path / "models" / "default")
    monkeypatch.setattr(g, "WHEEL_MODEL", tmp_path / "wheel")
    with pytest.raises(GocoderError, match=r"models/default: no default model shipped yet; pass --checkpoint"):
        Generator.load(None)


# ------------------------------------------------------------------------------- the loop, real model

def test_loop_on_tiny_checkpoint(ckpt):
    gen = Generator.load(ckpt)
    state = init_state(rec())
    while not should_halt(state, 2):
        step(gen, state)
    assert 1 <= state.iteration <= 2 and len(state.trace) == state.iteration
    best = state.candidates[state.best]
    assert best.syntax_ok == any(c.syntax_ok for c in state.candidates)  # the answer parses if any did
    assert all(c.decision is not None and abs(sum(c.decision.probs) - 1) < 1e-4 for c in state.candidates)
    res = solve(gen, rec().to_dict(), max_iters=2)  # a record's JSON goes through Record.from_dict
    # the answer is the candidate of lowest energy (the first of equals), not merely one of those tried
    assert res.iterations <= 2 and res.code == min(res.trace, key=lambda t: t["energy"])["code"]


def test_refine_puts_previous_code_and_diagnostic_into_the_prompt(ckpt):
    gen = Generator.load(ckpt)
    seen = []
    real = gen.engine.generate
    gen.engine.generate = lambda prompts, *a, **k: seen.append(prompts[0]) or real(prompts, *a, **k)
    state = LoopState(rec=rec(), iteration=1, candidates=[cand(BAD, False)], best=0, current=0)
    step(gen, state)
    text = gen.tok.decode(seen[0])
    assert ("<REFINE><CODE>" + BAD + "</CODE><VALIDATE><SYNTAX_ERR>4:2: expected '}', found 'EOF'</VALIDATE>") in text
    assert state.trace[-1]["action"] == "refine" and state.iteration == 2


def test_sample_decodes_checks_tests_and_judges(ckpt, monkeypatch):
    """The real pipeline behind sample on texts we choose: the engine's completions get our tokens."""
    gen = Generator.load(ckpt)
    texts = ["<PLAN><STEP><INTENT:ADD><TARGET:func>Max\nbigger</PLAN><CODE>" + escape(GOOD) + "</CODE>",
             "<PLAN></PLAN><CODE>" + escape(BAD) + "</CODE>",
             '<PLAN></PLAN><CODE>func F() int {\n\treturn "s"\n}\n</CODE>',
             "<PLAN></PLAN><CODE>func F() {"]
    real = gen.engine.generate

    def fake(prompts, sampling, samples=1, on_token=None):
        comps = real(prompts, dataclasses.replace(sampling, max_new_tokens=2), samples)
        for c, t in zip(comps, texts, strict=False):
            c.tokens = gen.tok.encode(t)
        return comps

    monkeypatch.setattr(gen.engine, "generate", fake)
    ran = []
    good, bad, typed, cut = gen.sample(rec(), 4, typecheck=True, tests=lambda c: ran.append(c) or TestResult(
        "a > b" in c, "--- FAIL"))
    assert good.plan == [{"intent": "ADD", "target": "func:Max", "description": "bigger"}] and good.code == GOOD
    assert good.syntax_ok and good.type_ok and good.tests.passed and good.passed and good.errors == 0
    assert not bad.syntax_ok and bad.tests is None and bad.diagnostic.startswith("7:") and bad.errors >= 1
    assert typed.syntax_ok and typed.type_ok is False and not typed.passed and "string" in typed.diagnostic
    assert not cut.finished and not cut.syntax_ok and cut.errors >= 1
    assert ran == [GOOD, typed.code]  # tests run only on code that parses
    assert all(c.decision is not None and len(c.verdict) == 6 for c in (good, bad, typed, cut))
    assert good.verdict[0] == 1.0 and bad.verdict[0] == 0.0


# ------------------------------------------------------------------------------- the loop, fake model

def test_premature_done_is_overridden_and_max_iters_respected():
    gen = FakeGen([cand(BAD, False, done=0.9)] * 5)
    res = solve(gen, rec(), max_iters=3)
    assert res.iterations == 3 and len(gen.asked) == 3 and res.premature == 3 and not res.syntax_ok
    assert all(t["decision"] == "done" and t["premature"] for t in res.trace)
    assert gen.asked[1].refine is not None and gen.asked[1].refine.code == BAD
    # done on code that parses but fails its tests is overridden too: the failing output is the feedback
    gen = FakeGen([cand(GOOD, True, done=0.9, tests=TestResult(False, "check failed: case 0"))] * 3)
    res = solve(gen, rec(), max_iters=3, tests=lambda c: TestResult(False, ""))
    assert res.iterations == 3 and res.premature == 3 and gen.asked[1].refine.code == GOOD


def test_final_answer_is_the_best_candidate_seen():
    gen = FakeGen([cand(GOOD, True, done=0.2), cand(BAD, False, done=0.99)])
    res = solve(gen, rec(), max_iters=2, tests=lambda c: TestResult(True, ""))
    assert res.code == GOOD and res.syntax_ok and res.first_try_ok and res.iterations == 1
    gen = FakeGen([cand(BAD, False, errors=3), cand(BAD + "}", False, errors=1), cand(BAD + "{", False, errors=5)])
    res = solve(gen, rec(), samples=3, max_iters=1)  # best-of 3: the fewest errors wins
    assert res.code == BAD + "}" and res.candidates == 3


def test_an_empty_answer_never_wins_over_code():
    # the controller likes the empty draft best, and the other has many syntax errors: the code still wins
    empty, broken = cand("", False, done=0.99), cand(BAD, False, done=0.0, errors=10)
    assert energy(broken) < energy(empty)
    res = solve(FakeGen([empty, broken]), rec(), samples=2, max_iters=1)
    assert res.code == BAD
    res = solve(FakeGen([broken, empty]), rec(), max_iters=2)  # across rounds too
    assert res.code == BAD


def test_done_on_type_errors_is_overridden():
    typed = dataclasses.replace(cand(GOOD, True, done=0.9), type_ok=False, errors=1, diagnostic="2:9: undefined: x")
    gen = FakeGen([typed] * 3)
    res = solve(gen, rec(), max_iters=3, typecheck=True)
    assert res.iterations == 3 and res.type_ok is False and gen.asked[1].refine.diagnostic == "2:9: undefined: x"


def test_state_round_trips_and_continues(tmp_path):
    gen = FakeGen([cand(BAD, False), cand(BAD, False), cand(GOOD, True)])
    state = step(gen, init_state(rec()))
    save_state(state, tmp_path / "s.json")
    back = load_state(tmp_path / "s.json")
    assert back == state
    step(gen, back)
    assert back.iteration == 2 and back.trace[1]["action"] == "refine"
    # solve resumes from a saved state: one round left to reach max_iters=3, and it passes
    save_state(back, tmp_path / "s.json")
    res = solve(gen, rec(), max_iters=3, state_path=tmp_path / "s.json")
    assert res.iterations == 3 and res.syntax_ok and not gen.cands
    with pytest.raises(GocoderError, match="not a saved loop state"):
        (tmp_path / "bad.json").write_text("{}")
        load_state(tmp_path / "bad.json")


def test_energy_orders_passing_parsing_and_errors():
    passing, failing = cand(GOOD, True, tests=TestResult(True, "")), cand(GOOD, True, tests=TestResult(False, ""))
    assert energy(passing) < energy(failing) < energy(cand(BAD, False, errors=1)) < energy(cand(BAD, False, errors=4))
    assert energy(cand(GOOD, True, done=0.9)) < energy(cand(GOOD, True, done=0.1))


# ------------------------------------------------------------------------------------------ tree search

def test_ucb_prefers_reward_then_explores():
    t = Tree()
    a, b = t.add(None, 0.2), t.add(None, 0.8)
    assert t.select(c=0.0, max_depth=3) == b
    t.add(b, 0.0)
    t.add(b, 0.0)  # b's subtree now averages 0.27 over 3 visits; a is less visited
    assert t.visits[b] == 3 and t.select(c=2.0, max_depth=2) == a  # depth-2 children may not grow


def test_tree_search_expands_the_best_node_and_stops():
    roots = [cand(BAD, False, errors=5), cand(BAD, False, errors=1)]
    gen = FakeGen(roots + [cand(GOOD, True)])
    res = solve(gen, rec(), samples=2, max_iters=3, search="tree", budget=10, ucb_c=0.1)
    assert res.syntax_ok and res.candidates == 3  # stopped at the first passing candidate
    assert gen.asked[1].refine.code == roots[1].code and res.trace[2]["parent"] == 1
    gen = FakeGen([cand(BAD, False)] * 20)
    res = solve(gen, rec(), samples=2, max_iters=3, search="tree", budget=5)
    assert res.candidates == 5 and len(gen.asked) == 4 and not res.syntax_ok  # the budget stops it
    assert reward(cand(GOOD, True)) > reward(cand(BAD, False))


# ------------------------------------------------------------------------------------ gocoder generate

def test_generate_cli_json_and_exit_codes(ckpt, tmp_path, monkeypatch):
    from gocoder.cli import app

    ctx = tmp_path / "util.go"
    ctx.write_text("package util\n")
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Add Max", "--context", str(ctx), "--checkpoint",
                                 str(ckpt), "--max-iters", "2", "--json"])
    out = json.loads(r.stdout)
    assert set(out) >= {"code", "plan", "iterations", "syntax_ok", "type_ok", "trace"}
    assert r.exit_code == (0 if out["syntax_ok"] else 1) and 1 <= out["iterations"] <= 2
    # a model whose every candidate fails to parse: exit 1, the code still printed
    monkeypatch.setattr(Generator, "sample", lambda self, *a, **k: [cand(BAD, False)])
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Add Max", "--checkpoint", str(ckpt)])
    assert r.exit_code == 1 and BAD in r.stdout
    # a log line longer than 80 columns stays one line (a pipe is 80 columns wide to rich)
    long = dataclasses.replace(cand(BAD, False), plan=[{"intent": "FIX", "target": "", "description": "word " * 40}])
    monkeypatch.setattr(Generator, "sample", lambda self, *a, **k: [long])
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Add Max", "--checkpoint", str(ckpt)])
    assert "plan: FIX -  " + "word " * 40 in r.stderr.splitlines()
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "x", "--checkpoint", str(tmp_path / "none")])
    assert isinstance(r.exception, GocoderError) and "no checkpoint" in str(r.exception)  # main() exits 2 on it
    # code that parses but has the type errors --typecheck asked about: the answer fails its checks, exit 1
    typed = dataclasses.replace(cand(GOOD, True, done=0.9), type_ok=False, errors=1, diagnostic="1:1: undefined")
    monkeypatch.setattr(Generator, "sample", lambda self, *a, **k: [typed])
    r = CliRunner().invoke(app, ["generate", "--pr-desc", "Add Max", "--checkpoint", str(ckpt), "--typecheck"])
    assert r.exit_code == 1 and GOOD in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["--pr-desc", "  "], "error: --pr-desc is empty"),
    (["--pr-desc", "Add Max", "--device", "cuda"], "error: --device cuda: "),
    (["--pr-desc", "Add Max", "--device", "gpu"], "error: config key 'generate.device' must be cpu, mps, cuda"),
])  # fmt: skip
def test_generate_usage_and_environment_errors_exit_2(args, msg):
    import subprocess
    import sys

    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = subprocess.run([sys.executable, "-m", "gocoder", "generate", *args], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith(msg), p.stderr
