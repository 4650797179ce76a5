"""`gocoder bench` with a model: greedy, sampled pass@k and the loop on visible checks, side by side."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import gocoder.eval.answers as answers
import gocoder.eval.benchrun as benchrun
import gocoder.eval.scoring as scoring
from gocoder import GocoderError
from gocoder.check.sandbox import Limits
from gocoder.config import BenchConfig, GenerateConfig
from gocoder.eval.benchmarks import completion_from_code, load_problems
from gocoder.eval.benchrun import excluded_why, pass_at_k, run_benchmark, score
from gocoder.eval.checks import feedback, mbxp_checks
from gocoder.inference.engine import Sampling

DATA = Path(__file__).parent / "data" / "bench"
MBXP = Path(__file__).resolve().parents[2] / "shared" / "bench" / "mbxp_go.jsonl"
LIM = Limits(wall_s=5.0)
WRONG = "func triple(n int) int {\n\treturn n\n}\n"
RIGHT = "func triple(n int) int {\n\treturn 3 * n\n}\n"


def test_pass_at_k_by_hand():
    # n=3, c=1, k=2: the pairs that miss the one right answer are 1 of C(3,2)=3, so 1 - 1/3
    assert pass_at_k(3, 1, 2) == pytest.approx(2 / 3)
    # n=4, c=2, k=1: the share of right answers
    assert pass_at_k(4, 2, 1) == pytest.approx(0.5)
    # n=6, c=1, k=3: 1 - C(5,3)/C(6,3) = 1 - 10/20
    assert pass_at_k(6, 1, 3) == pytest.approx(0.5)
    assert pass_at_k(100, 0, 100) == 0.0 and pass_at_k(100, 1, 100) == 1.0
    assert pass_at_k(100, 3, 10) == pytest.approx(1 - math.comb(97, 10) / math.comb(100, 10))


def test_visible_checks_never_hold_a_hidden_only_check():
    files = [DATA / "mbxp.jsonl"] + ([MBXP] if MBXP.exists() else [])
    for f in files:
        for p in load_problems(f, "mbxp"):
            head, checks = mbxp_checks(p.test)
            vis = p.visible().test
            assert mbxp_checks(vis) == (head, checks[:1]), p.id
            assert all(c not in vis for c in checks[1:]), p.id  # hidden = all; visible = the first
            # the answer is scored on every check: the program built from the problem holds them all
            assert len(checks) >= 1 and all(c in p.program("")["main.go"] for c in checks), p.id
    other = load_problems(DATA / "multiple.jsonl", "multipl-e")[0]
    assert other.visible().test == ""  # no split rule: the loop sees no check at all


def test_distinct_seeds_give_distinct_samples():
    from gocoder.inference.generate import Generator

    gen = Generator.load()
    probs = load_problems(DATA / "mbxp.jsonl", "mbxp")
    s = Sampling(max_new_tokens=40, temperature=1.0, seed=1, max_plan_tokens=8)  # a short plan: code comes soon
    a = benchrun.generate_codes(gen, probs, "synthesize", 3, s)
    again = benchrun.generate_codes(gen, probs, "synthesize", 3, s)
    b = benchrun.generate_codes(gen, probs, "synthesize", 3, dataclasses.replace(s, seed=2))
    assert a == again and a != b and [len(x) for x in a] == [3, 3] and all(c for x in a for c in x)
    assert len({c for x in a for c in x}) > 1  # the samples of one call differ from each other
    greedy = benchrun.generate_codes(gen, probs, "synthesize", 2, Sampling(max_new_tokens=40, max_plan_tokens=8))
    assert all(x[0] == x[1] for x in greedy)


@pytest.mark.slow
def test_answer_with_a_helper_builds_and_methods_only_is_a_wrong_answer():
    p = load_problems(DATA / "mbxp.jsonl", "mbxp")[0]
    helper = "func times(a, b int) int {\n\treturn a * b\n}\n\nfunc tripled(n int) int {\n\treturn times(3, n)\n}\n"
    assert score(p, completion_from_code(p, helper), LIM).status == "ok"
    methods = "type T struct{}\n\nfunc (T) Triple(n int) int {\n\treturn 3 * n\n}\n"
    res = score(p, completion_from_code(p, methods), LIM)
    assert res.status == "fail" and "declares no function" in res.stderr


@pytest.mark.slow
def test_what_go_types_rejects_is_a_build_error_without_a_build(monkeypatch):
    p = load_problems(DATA / "mbxp.jsonl", "mbxp")[0]
    bad = completion_from_code(p, "func triple(n int) int {\n\treturn n, n\n}\n")
    built = score(p, bad, LIM)  # the compiler's verdict
    runs = []
    monkeypatch.setattr(scoring, "run_go", lambda *a, **k: runs.append(a) or built)
    fast = score(p, bad, LIM, typecheck_first=True)
    assert runs == [] and fast.status == built.status == "build_error"
    assert fast.build_output.startswith("# go/types") and "too many return values" in fast.build_output
    assert feedback(p, bad, fast) == feedback(p, bad, built)  # a repair round reads the same first error
    score(p, completion_from_code(p, RIGHT), LIM, typecheck_first=True)  # type-checks: built and run
    assert len(runs) == 1
    row = scoring.scored(p, [bad, bad], LIM, False)  # off: built (once for equal answers)
    assert len(runs) == 2 and row["n"] == 2


def test_feedback_names_the_compiler_error_line_or_the_failing_check():
    p = load_problems(DATA / "mbxp.jsonl", "mbxp")[0].visible()
    comp = completion_from_code(p, "func triple(n int) int {\n\treturn m\n}\n")
    fb = feedback(p, comp, score(p, comp, LIM))
    assert fb.startswith("compile error: main.go:14: undefined: m") and "\treturn m" in fb
    comp = completion_from_code(p, WRONG)
    fb = feedback(p, comp, score(p, comp, LIM))
    assert fb == 'check failed: panic: case 0\ndeepCompare(triple(2), 6, "case 0")', fb


@pytest.mark.slow
def test_a_harness_whose_test_never_compiles_is_excluded_in_any_format(tmp_path):
    rows = [json.loads(ln) for ln in (DATA / "multiple.jsonl").read_text().splitlines()]
    rows[0]["tests"] = rows[0]["tests"].replace("func Test", "var broken int = nil\n\nfunc Test", 1)
    f = tmp_path / "m.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = load_problems(f, "multipl-e")[0]
    assert "never compiles" in excluded_why(p, LIM)
    assert excluded_why(load_problems(DATA / "multiple.jsonl", "multipl-e")[0], LIM) == ""
    s = run_benchmark([p], BenchConfig(), out=tmp_path / "o", completions={p.id: ["    return x\n}\n"]}, limits=LIM)
    assert s["scored"] == 0 and s["excluded"][0]["id"] == p.id and "given" not in s


@pytest.mark.slow
def test_loop_sees_visible_checks_and_is_scored_on_hidden_ones(tmp_path, monkeypatch):
    import gocoder.inference.generate as generate
    seen = []

    def fake_codes(gen, problems, task, n, s):
        assert s.temperature == 0.5 and s.seed is not None  # only the sampled answers: greedy is the loop's
        assert s.max_new_tokens == 77  # the budget's one home is [generate]
        return [[WRONG, RIGHT] for _ in problems]

    def fake_solve(gen, rec, *, max_iters, tests, sampling):
        assert max_iters == 2 and sampling.temperature == 0 and sampling.max_new_tokens == 77
        first = tests(WRONG)  # the visible check fails, with its message
        seen.append(first.output)
        # an answer right on the visible check (triple(2) == 6) and wrong on the hidden one (triple(-1))
        return SimpleNamespace(code="func triple(n int) int {\n\treturn 6\n}\n", candidates=2, iterations=2,
                               passed=tests("func triple(n int) int {\n\treturn 6\n}\n").passed,
                               trace=[{"code": WRONG, "verdict": {"diagnostic": first.output}}])  # fmt: skip

    monkeypatch.setattr(answers, "generate_codes", fake_codes)
    monkeypatch.setattr(generate, "solve", fake_solve)
    cfg = BenchConfig(samples=2, ks=(1, 2), refine_iters=2, temperature=0.5)
    probs = load_problems(DATA / "mbxp.jsonl", "mbxp")[:1]
    s = run_benchmark(probs, cfg, out=tmp_path, generator=object(), limits=LIM,
                      generate=GenerateConfig(max_new_tokens=77))
    assert s["greedy"]["pass@k"] == {"pass@1": 0.0} and s["sampled"]["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert s["loop"]["pass@k"] == {"pass@1": 0.0} and s["loop"]["visible_passed"] == 1  # hidden checks decide
    assert s["loop"]["candidates_mean"] == 2 and s["loop"]["rounds_max"] == 2
    assert "case 0" in seen[0] and "case 1" not in seen[0]
    assert json.loads((tmp_path / "summary.json").read_text()) == s


@pytest.mark.slow
@pytest.mark.skipif(not MBXP.exists(), reason="the shared MBXP file is not here")
def test_the_generic_rule_finds_every_known_broken_mbxp_harness():
    broken = [p for p in load_problems(MBXP, "mbxp") if p.excluded]
    assert len(broken) == 11 and all(excluded_why(dataclasses.replace(p, excluded=""), LIM) for p in broken)
    # and no other among the first 30 (each is a build and a run of a zero-value body)
    assert not any(excluded_why(p, LIM) for p in load_problems(MBXP, "mbxp")[:30] if not p.excluded)


class _Engine:
    """Writes a fixed answer one id at a time through on_token, as Engine.decode does, and records the call."""

    def __init__(self, tok, answer: str):
        self.core = SimpleNamespace(max_seq_len=1024)
        self.tok, self.ids, self.call = tok, tok.encode(answer), {}

    def decode(self, prompts, s, samples=1, on_token=None, **kw):
        from gocoder.inference.engine import Completion

        self.call = dict(kw, prompts=prompts, sampling=s)
        out = []
        for r in range(len(prompts) * samples):
            toks = []
            for t in self.ids[: s.max_new_tokens]:
                toks.append(t)
                if on_token(r, t):
                    break
            out.append(Completion(r // samples, r % samples, toks, False))
        return out


def test_complete_mode_heals_the_open_brace_stops_at_the_close_and_closes_a_cut_answer():
    import threading

    from gocoder.eval.benchmarks import Problem
    from gocoder.text.tokenizer import Tokenizer

    tok = Tokenizer.load(Path(__file__).resolve().parent.parent / "tokenizer")
    head = "package main\n\n// Add two numbers.\nfunc add (a int, b int) int"
    p = Problem(id="X/1", format="mbxp", prompt=head + " {\n", entry_point="add", description="", test="")
    text = [tok.decode([i]) for i in range(tok.vocab_size)]
    gen = SimpleNamespace(tok=tok, lock=threading.Lock(), calls=0, piece_text=text,
                          engine=_Engine(tok, " {\n\treturn a + b\n}\n\nfunc main() {}\n"))
    (code,), = benchrun.complete_codes(gen, [p], 1, Sampling(max_new_tokens=64))
    assert code == "func add (a int, b int) int {\n\treturn a + b\n}\n"  # stopped at the "}" line
    call = gen.engine.call
    assert call["prompts"] == [[tok.eos_id]] and call["code_start"] == 1 and call["forced"] == [tok.encode(head)]
    firsts = {tok.decode([i]) for i in call["first"]}
    assert " {\n\t" in firsts and all(t.startswith(" {\n") or " {\n".startswith(t) for t in firsts)
    # an answer the budget cuts inside a loop is closed after its last whole statement
    gen.engine = _Engine(tok, " {\n\ts := a\n\tfor i := 0; i < b; i++ {\n\t\ts += 1\n\t\ts += 1\n\t\ts += 1\n")
    (code,), = benchrun.complete_codes(gen, [p], 1, Sampling(max_new_tokens=16))
    assert code == "func add (a int, b int) int {\n\ts := a\n}\n"
    assert completion_from_code(p, code).strip("\n") == "\ts := a\n}"
    # the answer as the model wrote it stays beside it: the summary's parsed_raw counts it, parsed the closed one
    assert code.raw.startswith("func add (a int, b int) int {\n\ts := a\n\tfor i") and not code.raw.endswith("}\n")
    comp = benchrun.completion_from_code(p, code)
    assert comp == completion_from_code(p, code) and comp.raw != comp
    assert benchrun.parses(p, comp) and not benchrun.parses(p, comp.raw)


@pytest.mark.slow
@pytest.mark.parametrize(("samples", "passed", "visible"), [(["SIX", "RIGHT"], 0.0, 1), (["WRONG", "RIGHT"], 1.0, 1),
                                                            (["WRONG", "WRONG"], 0.0, 0)])
def test_complete_mode_loop_submits_the_first_answer_that_passes_the_visible_check(tmp_path, monkeypatch, samples,
                                                                                   passed, visible):
    six = "func triple(n int) int {\n\treturn 6\n}\n"  # right on the visible check (triple(2)), wrong on a hidden one
    codes = {"SIX": six, "RIGHT": RIGHT, "WRONG": WRONG}

    def fake_complete(gen, problems, n, s):
        assert s.max_new_tokens == 77 and s.no_repeat_ngram == 5
        return [[WRONG] if n == 1 else [codes[c] for c in samples] for _ in problems]

    monkeypatch.setattr(answers, "complete_codes", fake_complete)
    cfg = BenchConfig(samples=2, ks=(1, 2), refine_iters=1, mode="complete")
    probs = load_problems(DATA / "mbxp.jsonl", "mbxp")[:1]
    s = run_benchmark(probs, cfg, out=tmp_path, generator=object(), limits=LIM,
                      generate=GenerateConfig(max_new_tokens=77, no_repeat_ngram=5))
    assert s["greedy"]["pass@k"] == {"pass@1": 0.0}  # the greedy answer is the first candidate, and wrong
    assert s["loop"]["pass@k"] == {"pass@1": passed} and s["loop"]["visible_passed"] == visible
    assert s["loop"]["candidates_mean"] == 3 and s["loop"]["rounds_max"] == 1
    with pytest.raises(GocoderError, match="--samples"):
        run_benchmark(probs, dataclasses.replace(cfg, samples=1), out=tmp_path / "x", generator=object(), limits=LIM)


@pytest.mark.slow
def test_a_completions_file_with_the_loop_submits_the_first_answer_that_passes_the_visible_check(tmp_path):
    p = load_problems(DATA / "mbxp.jsonl", "mbxp")[0]
    six = completion_from_code(p, "func triple(n int) int {\n\treturn 6\n}\n")  # visible right, hidden wrong
    wrong, right = completion_from_code(p, WRONG), completion_from_code(p, RIGHT)
    cfg = BenchConfig(refine_iters=1)
    s = run_benchmark([p], cfg, out=tmp_path / "a", completions={p.id: [wrong, right]}, limits=LIM)
    assert s["given"]["pass@k"]["pass@1"] == 0.5  # both answers scored as given
    assert s["loop"]["pass@k"] == {"pass@1": 1.0} and s["loop"]["visible_passed"] == 1
    s = run_benchmark([p], cfg, out=tmp_path / "b", completions={p.id: [wrong, six, right]}, limits=LIM)
    assert s["loop"]["pass@k"] == {"pass@1": 0.0} and s["loop"]["visible_passed"] == 1  # the hidden checks decide
    s = run_benchmark([p], BenchConfig(), out=tmp_path / "c", completions={p.id: [wrong, right]}, limits=LIM)
    assert "loop" not in s  # no --refine-iters: the file's answers only
    assert s["given"]["parsed"] == 2  # both parse: one fails its checks, one passes
    s = run_benchmark([p], BenchConfig(), out=tmp_path / "d", completions={p.id: ["\treturn 3 *\n}\n"]}, limits=LIM)
    assert s["given"]["parsed"] == 0 and s["given"]["status_counts"] == {"build_error": 1}
