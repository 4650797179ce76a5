"""Engine.decode (the static cache and a step a CUDA graph can capture) against Engine.generate on a tiny
random GPT on the CPU: the same answers, row for row, wherever the docstring says they must agree."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gocoder import GocoderError
from gocoder.config import ModelConfig
from gocoder.inference.engine import Engine, Sampling, draw
from gocoder.inference.kvcache import StaticGPT
from gocoder.model.model import GocoderModel

V, CODE, CLOSE = 61, 7, 9


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # a second thread made each step 30x slower here


def gpt(seed: int = 0, **kw) -> GocoderModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(type="gpt", vocab_size=V, d_model=32, n_heads=4, gpt_layers=2, max_seq_len=48,
                      tie_embeddings=False)  # tied, a random model mostly repeats the id it was fed
    m = GocoderModel(dataclasses.replace(cfg, **kw)).eval()
    with torch.no_grad():  # a peaked head: samples at T 0.9 that are not all alike
        m.head.weight.mul_(3)
    return m


PROMPTS = [[3, 4, 5], [10, 20, 30, 40, 50, 11, 12], [1], [30, 31]]


def both(m, prompts=PROMPTS, samples=2, plan_close=None, **kw):
    eng = Engine(m, code_open=CODE, plan_close=plan_close)
    opts = {k: kw.pop(k) for k in ("forced", "code_start", "first", "on_token") if k in kw}
    dec = {k: kw.pop(k) for k in ("check_every", "memory", "max_rows") if k in kw}
    s = Sampling(**kw)
    old = eng.generate(prompts, s, samples, **opts)
    new = eng.decode(prompts, s, samples, **opts, **dec)
    return [(c.prompt_index, c.sample_index, c.tokens, c.stopped) for c in old], \
        [(c.prompt_index, c.sample_index, c.tokens, c.stopped) for c in new]


def test_draw_is_multinomial_draw_for_draw():
    p = torch.rand(16, 300).softmax(-1)
    a = torch.multinomial(p, 1, generator=torch.Generator().manual_seed(5))[:, 0]
    assert torch.equal(draw(p, torch.Generator().manual_seed(5)), a)


@pytest.mark.parametrize("dec", [dict(check_every=3), dict(check_every=1, max_rows=2), dict(memory=1)])
def test_greedy_matches_generate_with_stops_the_context_and_groups(dec):
    m = gpt()
    if dec.get("memory") == 1:  # a budget that holds no prompt: an error before anything runs
        with pytest.raises(GocoderError, match="GiB"):
            both(m, max_new_tokens=8, **dec)
        return
    old, new = both(m, max_new_tokens=30, stop=(37,), no_repeat_ngram=3, **dec)  # 7 + 30 < 48: and the context
    assert old == new
    assert any(st for *_, st in new) and any(len(t) > 8 for _, _, t, _ in new)  # stops fired and rows ran on
    old, new = both(m, max_new_tokens=60, **dec)  # past max_seq_len: each row ends where its context does
    assert old == new and {len(t) for _, _, t, _ in new} == {48 - len(p) for p in PROMPTS}


def test_sampled_matches_generate_for_one_seed_when_no_row_ends_early():
    old, new = both(gpt(1), samples=3, max_new_tokens=12, temperature=0.9, top_p=0.9, seed=4)
    assert old == new and len({tuple(t) for _, _, t, _ in new}) > 3  # samples differ, the same in both
    eng = Engine(gpt(1), code_open=CODE)
    s = Sampling(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=5)
    assert [c.tokens for c in eng.decode(PROMPTS, s, 3)] != [t for _, _, t, _ in new]  # another seed


def test_on_token_ends_rows_at_the_same_id_as_generate():
    seen = {}

    def closed(r, t):  # ends row r at its first id above 40 (as complete mode's "}" line does)
        seen.setdefault(r, []).append(t)
        return t > 40

    old, new = both(gpt(), max_new_tokens=25, on_token=closed, check_every=4)
    assert old == new and any(len(t) < 25 for _, _, t, _ in new)


def test_forced_ids_first_and_code_start_match_generate():
    kw = dict(forced=[[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]], code_start=1, first=[20, 21, 22, 23])
    old, new = both(gpt(), prompts=[[1]] * 4, max_new_tokens=15, stop=(2,), no_repeat_ngram=4, **kw)
    assert old == new and all(t[0] in (20, 21, 22, 23) for _, _, t, _ in new)


def test_plan_budget_and_plan_close_match_generate():
    old, new = both(gpt(2), plan_close=CLOSE, max_new_tokens=20, max_plan_tokens=5)
    assert old == new
    assert any(t[5:7] == [CLOSE, CODE] for _, _, t, _ in new)  # a plan cut at its budget, then code


def test_the_recursive_model_goes_through_generate():
    torch.manual_seed(0)
    m = GocoderModel(ModelConfig(vocab_size=V, d_model=32, n_heads=4, max_seq_len=48)).eval()
    old, new = both(m, max_new_tokens=6)
    assert old == new


def test_the_step_reads_only_its_buffers():
    """What a CUDA graph needs: step k's logits depend on the ids fed and the cache, not on which Python
    call fed them; a second StaticGPT fed the same ids gives the same logits, slot for slot."""
    m = gpt()
    a, b = (StaticGPT(m, torch.device("cpu"), 2, 3, 3 + 70, graphs=False) for _ in range(2))
    toks = torch.tensor([[1, 2, 3], [0, 4, 5]])
    la, lb = a.prefill(toks, torch.tensor([0, 1]), 1), b.prefill(toks, torch.tensor([0, 1]), 1)
    for _k in range(68):  # across two buckets of keys
        nxt = la.argmax(-1)
        assert torch.equal(nxt, lb.argmax(-1))
        la, lb = a.step(nxt), b.step(nxt.clone())
    assert a.t == 3 + 68 and int(a.slot) == a.t
    with pytest.raises(GocoderError, match="past its length"):
        a.step(nxt), a.step(nxt), a.step(nxt)


def test_a_kept_cache_sees_new_weights():
    """decode keeps its cache (and graphs) for the next call of the same shape; training changes weights."""
    m = gpt()
    eng = Engine(m, code_open=CODE)
    first = [c.tokens for c in eng.decode(PROMPTS, Sampling(max_new_tokens=6))]
    kept = eng._static
    with torch.no_grad():
        for p in m.gpt.blocks[0].attn.parameters():
            p.mul_(-1.5)
    again = [c.tokens for c in eng.decode(PROMPTS, Sampling(max_new_tokens=6))]
    assert eng._static is kept and again != first
    assert again == [c.tokens for c in eng.generate(PROMPTS, Sampling(max_new_tokens=6))]


def test_golf_options_decode_as_generate():
    """QK-norm, ReLU^2, soft-capped logits and a looped middle layer (model.loop: its cache each visit)."""
    m = gpt(gpt_layers=3, qk_norm=True, mlp="relu2", logit_softcap=10.0, loop=(1, 2))
    old, new = both(m, max_new_tokens=8)
    assert old == new
