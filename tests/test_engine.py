"""The generation engine: sampling on a mock model with known logits, and the KV cache of both model
families against recomputing the full forward for every token (what train.greedy_codes did)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import gocoder.inference.engine as engine
from gocoder import GocoderError
from gocoder.config import ModelConfig
from gocoder.inference.engine import Engine, Sampling
from gocoder.model.model import Batch, GocoderModel

V, CODE = 61, 7
# the mock's next-token distribution, by offset from the last token: +1 is the mode, +1 and +2 the 0.7 nucleus
PROBS = {1: 0.5, 2: 0.3, 3: 0.15}


class Mock:
    """Deterministic logits from the last fed token; records each step's batch size and every fed id."""

    vocab_size, max_seq_len, n_verdict = V, 30, 6

    def __init__(self):
        self.sizes: list[int] = []

    def _logits(self, last: torch.Tensor) -> torch.Tensor:
        p = torch.full((len(last), V), 0.05 / (V - 3))
        for off, q in PROBS.items():
            p[torch.arange(len(last)), (last + off) % V] = q
        return p.log()

    def start(self, tokens, lens, samples, cap):
        self.fed = [tokens[i, : int(n)].tolist() for i, n in enumerate(lens) for _ in range(samples)]
        return self._logits(tokens[torch.arange(len(lens)), lens - 1].repeat_interleave(samples))

    def step(self, tok, pos, code, want):
        self.sizes.append(len(tok))
        for f, t, p in zip(self.fed, tok.tolist(), pos.tolist(), strict=True):
            assert p == len(f)  # fed at the next position
            f.append(t)
        return self._logits(tok[want])

    def keep(self, rows):
        self.fed = [list(self.fed[r]) for r in rows.tolist()]

    def states(self, rows):
        return [self.fed[r] for r in rows]


def mock_gen(prompts, samples=1, **kw):
    m = Mock()
    return m, Engine(m, code_open=CODE).generate(prompts, Sampling(**kw), samples)


def test_greedy_follows_the_mode_and_top_k_1_is_greedy():
    _, out = mock_gen([[3], [10, 20]], max_new_tokens=5)
    assert [c.tokens for c in out] == [[4, 5, 6, 7, 8], [21, 22, 23, 24, 25]]
    assert not any(c.stopped for c in out)
    _, k1 = mock_gen([[3], [10, 20]], max_new_tokens=5, temperature=1.5, top_k=1, seed=3)
    assert [c.tokens for c in k1] == [c.tokens for c in out]


def test_top_p_keeps_the_nucleus_and_seeds_reproduce():
    _, out = mock_gen([[0]], samples=40, max_new_tokens=6, temperature=1.0, top_p=0.7, seed=0)
    offs = {b - a for c in out for a, b in zip([0] + c.tokens, c.tokens, strict=False)}
    assert offs == {1, 2}  # +3 (p 0.15) lies outside the 0.7 nucleus; both +1 and +2 occur
    _, k2 = mock_gen([[0]], samples=40, max_new_tokens=6, temperature=1.0, top_k=2, seed=0)
    assert {b - a for c in k2 for a, b in zip([0] + c.tokens, c.tokens, strict=False)} == {1, 2}  # the top 2
    _, wide = mock_gen([[0]], samples=40, max_new_tokens=6, temperature=1.0, seed=0)
    assert 3 in {b - a for c in wide for a, b in zip([0] + c.tokens, c.tokens, strict=False)}
    again = mock_gen([[0]], samples=40, max_new_tokens=6, temperature=1.0, top_p=0.7, seed=0)[1]
    other = mock_gen([[0]], samples=40, max_new_tokens=6, temperature=1.0, top_p=0.7, seed=1)[1]
    assert [c.tokens for c in again] == [c.tokens for c in out] != [c.tokens for c in other]


def test_stop_ids_end_rows_which_leave_the_batch():
    m, out = mock_gen([[0], [20]], samples=2, max_new_tokens=10, stop=(3,))
    assert [(c.prompt_index, c.sample_index) for c in out] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert out[0].tokens == [1, 2, 3] and out[0].stopped and out[1].tokens == [1, 2, 3]
    assert out[2].tokens == list(range(21, 31)) and not out[2].stopped
    # each row is fed its last token once more (for its final states), then leaves: 4 rows, then 2
    assert m.sizes == [4, 4, 4, 2, 2, 2, 2, 2, 2, 2]
    assert [c.state for c in out] == [[0, 1, 2, 3]] * 2 + [[20, *range(21, 31)]] * 2


def test_max_seq_len_and_max_new_tokens_end_rows():
    _, out = mock_gen([list(range(27)), [5]], max_new_tokens=4)
    assert len(out[0].tokens) == 3 and len(out[1].tokens) == 4  # 27 + 3 = max_seq_len 30
    _, full = mock_gen([list(range(30))], max_new_tokens=4)
    assert full[0].tokens == [] and full[0].state == list(range(30))
    assert mock_gen([[5]], max_new_tokens=0)[1][0].tokens == []


def test_streaming_order_and_stream():
    m = Mock()
    eng = Engine(m, code_open=CODE)
    seen: list[tuple[int, int]] = []
    out = eng.generate([[0], [9, 9]], Sampling(max_new_tokens=3), on_token=lambda r, t: seen.append((r, t)))
    assert seen == [(0, 1), (1, 10), (0, 2), (1, 11), (0, 3), (1, 12)]  # step by step, rows in order
    assert list(eng.stream([0], Sampling(max_new_tokens=3))) == out[0].tokens
    # between two ids the caller runs in its own torch mode, not the engine's inference mode
    modes = [torch.is_inference_mode_enabled() for _ in eng.stream([0], Sampling(max_new_tokens=3))]
    assert modes == [False] * 3


def test_bad_input_is_one_line_error():
    eng = Engine(Mock(), code_open=CODE)
    for bad in ([[]], [[V]], [list(range(31))]):
        with pytest.raises(GocoderError, match="prompt 0"):
            eng.generate(bad)
    with pytest.raises(GocoderError, match="top_p"):
        Sampling(top_p=0.0)
    with pytest.raises(GocoderError, match="samples"):
        eng.generate([[1]], samples=0)


# ----------------------------------------------------------------------------------- the real models


def build(**kw) -> GocoderModel:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, d_model=32, n_heads=4, planner_layers=2, generator_layers=2, max_seq_len=40)
    m = GocoderModel(dataclasses.replace(cfg, **kw)).eval()
    # make <CODE> likely where one feature of the state is high, so rows open code at different steps
    W = m.embed.weight if m.head is None else m.head.weight
    m.logits = lambda z: F.linear(z, W) + F.one_hot(torch.tensor(CODE), V).to(z) * (6 * z[..., 2:3] + 0.5)
    return m


def batch(prompt: list[int], gen: list[int]) -> tuple[list[int], int, int, int]:
    q = gen.index(CODE) if CODE in gen else len(gen)
    return prompt + gen, len(prompt), q, len(gen) - q


def full_forward(m: GocoderModel, seqs: list[tuple[list[int], int, int, int]], verdict=None):
    tok = torch.zeros(len(seqs), max(len(s[0]) for s in seqs), dtype=torch.long)
    for i, s in enumerate(seqs):
        tok[i, : len(s[0])] = torch.tensor(s[0])
    P, Q, C = (torch.tensor([s[k] for s in seqs]) for k in (1, 2, 3))
    n = len(seqs)
    v = torch.zeros(n, 6) if verdict is None else verdict
    with torch.no_grad():
        return m(Batch(tok, P, Q, C, torch.zeros(n), torch.full((n,), -1), v), want_logits=True)


def reference(m: GocoderModel, prompts: list[list[int]], n: int):
    """Greedy ids and logits by recomputing the full forward for every new token."""
    gen, logs = [[] for _ in prompts], [[] for _ in prompts]
    for _ in range(n):
        act = [i for i, p in enumerate(prompts) if len(p) + len(gen[i]) < m.cfg.max_seq_len]
        if not act:
            break
        last = full_forward(m, [batch(prompts[i], gen[i]) for i in act]).last_logits
        for j, i in enumerate(act):
            gen[i].append(int(last[j].argmax()))
            logs[i].append(last[j])
    return gen, logs


@pytest.mark.parametrize("kw", [{"type": "gpt"}, {"halting": "bce"}, {"halting": "none"},
                                {"halting": "none", "segments": 3, "h_cycles": 1, "l_cycles": 3}])
def test_cache_matches_the_full_forward(kw, monkeypatch):
    torch.set_num_threads(1)
    m = build(**kw)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(10, V, (n,), generator=g).tolist() for n in (5, 9, 3, 33)]
    ref, ref_logits = reference(m, prompts, 12)
    opens = [r.index(CODE) if CODE in r else 99 for r in ref]
    assert any(0 < o < 99 for o in opens)  # a plan, then code
    assert any(len({o <= k for o in opens}) == 2 for k in range(12))  # rows in both phases in one step
    seen: list[torch.Tensor] = []
    real = engine.sample
    monkeypatch.setattr(engine, "sample", lambda lg, s, gen: (seen.append(lg.clone()), real(lg, s, gen))[1])
    out = Engine(m, code_open=CODE).generate(prompts, Sampling(max_new_tokens=12))
    assert [c.tokens for c in out] == ref  # the 33-token prompt stops at max_seq_len 40 after 7
    # the engine's logits, step by step for the rows still sampling, against the full forward's
    act = [[i for i in range(4) if len(ref[i]) > k] for k in range(12)]
    assert len(seen) == 12  # one sampling a step (none seen: the loop below would check nothing)
    for k, lg in enumerate(seen):
        torch.testing.assert_close(lg, torch.stack([ref_logits[i][k] for i in act[k]]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kw", [{"type": "gpt"}, {"halting": "bce"}])
def test_rows_at_one_position_match_too(kw):
    """Equal prompt lengths take the engine's no-mask, no-scatter path."""
    torch.set_num_threads(1)
    m = build(**kw)
    prompts = [[11, 12, 13, 14, 15], [40, 41, 42, 43, 44]]
    out = Engine(m, code_open=CODE).generate(prompts, Sampling(max_new_tokens=6), samples=2)
    ref = reference(m, prompts, 6)[0]
    assert [c.tokens for c in out] == [r for r in ref for _ in range(2)]


@pytest.mark.parametrize("kw", [{"type": "gpt"}, {"halting": "bce"}, {"halting": "q"}])
def test_decide_matches_the_full_forward_controller(kw):
    torch.set_num_threads(1)
    m = build(**kw)
    prompts = [[11, 12, 13, 14], [20, 21], [30, 31, 32, 33, 34, 35]]
    eng = Engine(m, code_open=CODE)
    out = eng.generate(prompts, Sampling(max_new_tokens=8, temperature=1.0, seed=0), samples=2)
    verdict = torch.rand(len(out), 6, generator=torch.Generator().manual_seed(0))
    dec = eng.decide(out, verdict.tolist())
    want = full_forward(m, [batch(prompts[c.prompt_index], c.tokens) for c in out], verdict).ctrl_logits.softmax(-1)
    torch.testing.assert_close(torch.tensor([d.probs for d in dec]), want, atol=1e-4, rtol=1e-4)
    assert all((d.halt is None) == (kw.get("type") == "gpt") for d in dec)
    assert all(d.halt is None or 0 < d.halt < 1 for d in dec)
    with pytest.raises(GocoderError, match="6 features"):
        eng.decide(out[:1], [[0.0]])


def test_a_wrapped_model_is_a_one_line_error():
    with pytest.raises(GocoderError, match="GocoderModel"):
        Engine(torch.nn.Linear(2, 2), code_open=CODE)


def test_on_token_ends_a_row_and_the_others_go_on():
    eng = Engine(Mock(), code_open=CODE)
    out = eng.generate([[0], [9, 9]], Sampling(max_new_tokens=5), on_token=lambda r, t: r == 1 and t == 11)
    assert out[0].tokens == [1, 2, 3, 4, 5] and out[1].tokens == [10, 11] and not out[1].stopped


# ------------------------------------------------------------------- repeats, forced ids, code start


def test_ban_repeats_bans_what_followed_each_earlier_copy():
    out = torch.tensor([[5, 6, 7, 5, 6, 9, 5, 6, -1], [1, 2, 3, 4, -1, -1, -1, -1, -1]])
    n_out = torch.tensor([8, 4])
    banned = engine.ban_repeats(torch.zeros(2, 12), out, n_out, 3).isinf()
    # row 0 ends with 5 6: 5 6 was followed by 7 and by 9; row 1's last pair 3 4 never came before
    assert banned[0].nonzero().flatten().tolist() == [7, 9] and not banned[1].any()
    assert not engine.ban_repeats(torch.zeros(2, 12), out, torch.tensor([2, 1]), 3).isinf().any()


class Cycle(Mock):
    """The mode cycles 20 -> 21 -> 22 -> 20: greedy repeats one trigram forever."""

    def _logits(self, last):
        lg = torch.zeros(len(last), V)
        lg[torch.arange(len(last)), 20 + (last - 19) % 3] = 5.0
        return lg


def test_no_repeat_ngram_breaks_a_loop_and_greedy_alone_does_not():
    loop = Engine(Cycle(), code_open=CODE).generate([[20]], Sampling(max_new_tokens=12))[0].tokens
    assert loop[:6] == [21, 22, 20, 21, 22, 20]
    toks = Engine(Cycle(), code_open=CODE).generate([[20]], Sampling(max_new_tokens=12, no_repeat_ngram=3))[0].tokens
    grams = [tuple(toks[i : i + 3]) for i in range(len(toks) - 2)]
    assert len(toks) == 12 and len(set(grams)) == len(grams)


def test_forced_ids_are_fed_not_returned_and_not_counted():
    seen = []
    out = Engine(Mock(), code_open=CODE).generate([[10], [30, 31]], Sampling(max_new_tokens=3), forced=[[40, 41], [50]],
                                             on_token=lambda r, t: seen.append((r, t)))  # fmt: skip
    assert [c.tokens for c in out] == [[42, 43, 44], [51, 52, 53]]  # the mode follows the last forced id
    assert sorted(seen) == sorted((r, t) for r, c in enumerate(out) for t in c.tokens)  # forced ids not shown
    with pytest.raises(GocoderError, match="forced"):
        Engine(Mock(), code_open=CODE).generate([[10]], forced=[[1], [2]])
    with pytest.raises(GocoderError, match="code_start"):
        Engine(Mock(), code_open=CODE).generate([[10, 11]], code_start=1)


def test_forced_ids_give_the_gpt_what_a_longer_prompt_gives():
    torch.set_num_threads(1)
    m = build(type="gpt")
    eng = Engine(m, code_open=CODE)
    a = eng.generate([[11, 12], [30]], Sampling(max_new_tokens=5), forced=[[13, 14, 15], [31, 32, 33, 34]])
    b = eng.generate([[11, 12, 13, 14, 15], [30, 31, 32, 33, 34]], Sampling(max_new_tokens=5))
    assert [c.tokens for c in a] == [c.tokens for c in b]


@pytest.mark.parametrize("kw", [{"type": "gpt"}, {"halting": "bce"}])
def test_code_start_reads_a_file_as_pretraining_did(kw):
    # a one-id prompt and the file forced from position 1 on, as code: each next id is what the full
    # forward over a pretraining row (prompt 1, no plan, the rest code) predicts
    torch.set_num_threads(1)
    m = build(**kw)
    file = [20, 21, 22, 23, 24, 25, 26, 27]
    out = Engine(m, code_open=CODE).generate([[3]], Sampling(max_new_tokens=6), forced=[file], code_start=1)
    seq = [3, *file]
    for _ in range(6):
        last = full_forward(m, [(seq, 1, 0, len(seq) - 1)]).last_logits
        seq.append(int(last[0].argmax()))
    assert out[0].tokens == seq[9:]


def test_first_limits_only_the_first_sampled_id():
    # the mock's mode after 10 is 11; barred, the first id is the best allowed one, and then the mode again
    out = Engine(Mock(), code_open=CODE).generate([[10], [20]], Sampling(max_new_tokens=3), first=[12, 22])
    assert [c.tokens for c in out] == [[12, 13, 14], [22, 23, 24]]
    out = Engine(Mock(), code_open=CODE).generate([[10]], Sampling(max_new_tokens=2), forced=[[30]], first=[33])
    assert out[0].tokens == [33, 34]  # forced ids are not the first sampled one
    with pytest.raises(GocoderError, match="first"):
        Engine(Mock(), code_open=CODE).generate([[10]], first=[])


def test_a_plan_past_its_budget_closes_and_code_follows_plan_close():
    PLAN_CLOSE = 40
    # the mock counts up from 30: 31, 32, ... it would write </PLAN> (40) only after 10 ids
    out = Engine(Mock(), code_open=CODE, plan_close=PLAN_CLOSE).generate(
        [[30]], Sampling(max_new_tokens=8, max_plan_tokens=3))
    assert out[0].tokens == [31, 32, 33, PLAN_CLOSE, CODE, 8, 9, 10]  # then the mode after <CODE> (7) again
    # a plan the model closes itself is followed by <CODE> whatever the model would write next
    out = Engine(Mock(), code_open=CODE, plan_close=PLAN_CLOSE).generate([[37]], Sampling(max_new_tokens=5))
    assert out[0].tokens == [38, 39, PLAN_CLOSE, CODE, 8]
    # without a plan_close the budget changes nothing
    out = Engine(Mock(), code_open=CODE).generate([[30]], Sampling(max_new_tokens=5, max_plan_tokens=2))
    assert out[0].tokens == [31, 32, 33, 34, 35]
