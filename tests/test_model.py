"""The model on CPU: masks and losses by hand, causality, per-sample halting that really drops rows,
gradient through the last cycles only, the GPT baseline's size, and every shipped config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gocoder.config import ModelConfig, load_config
from gocoder.model.model import Batch, GocoderModel, count_params, gpt_layers_for, train_flops

V = 97
CFG = ModelConfig(vocab_size=V, d_model=32, n_heads=4, planner_layers=1, generator_layers=1, max_seq_len=64,
                  n_verdict=6)


def make_batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    P, Q, C = torch.tensor([5, 7, 3, 6]), torch.tensor([4, 2, 5, 3]), torch.tensor([9, 6, 0, 8])
    T = int((P + Q + C).max())
    tokens = torch.randint(4, V, (4, T), generator=g)
    for i, n in enumerate((P + Q + C).tolist()):
        tokens[i, n:] = 0  # right padding
    return Batch(tokens, P, Q, C, torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([2, 1, -1, 0]),
                 torch.randn(4, 6, generator=g))


def build(**kw) -> GocoderModel:
    torch.manual_seed(0)
    return GocoderModel(dataclasses.replace(CFG, **kw))


def capture(model: GocoderModel) -> dict[str, list]:
    """The outputs (and whether they carry gradient) of every planner/generator call."""
    seen: dict[str, list] = {"planner": [], "generator": [], "gpt": []}
    for name in seen:
        if hasattr(model, name):
            getattr(model, name).register_forward_hook(lambda m, a, o, n=name: seen[n].append(o))
    return seen


@pytest.mark.parametrize("kw", [{}, {"halting": "q"}, {"halting": "none", "segments": 3}, {"grad": "one_step"},
                                {"grad": "last_k", "grad_k": 2}, {"type": "gpt"}, {"tie_embeddings": False}])
def test_every_variant_trains(kw):
    m = build(**kw)
    out = m(make_batch(), want_logits=True)
    loss = out.plan_loss + out.code_loss + out.ctrl_loss + out.halt_loss
    loss.backward()
    assert torch.isfinite(loss) and out.last_logits.shape == (4, V) and out.ctrl_logits.shape == (4, 3)
    assert all(p.grad is not None for p in m.parameters())  # DDP needs every parameter used


def test_a_compiled_segment_is_one_graph_for_every_segment():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    eager, compiled = build(halting="none", segments=3), build(halting="none", segments=3)
    compiled._rope(CFG.max_seq_len, torch.device("cpu"))  # as prepare_model does before compiling
    compiled.compile_regions(backend="eager")  # Dynamo's graph capture without Inductor: the count, on CPU
    batch = dataclasses.replace(make_batch(), code_cap=9, plan_cap=5)  # spans the loader knows on the host
    a, b = eager(batch), compiled(batch)
    assert counters["stats"]["unique_graphs"] == 1  # the whole forward compiled made one per segment
    for x, y in ((a.plan_loss, b.plan_loss), (a.code_loss, b.code_loss), (a.ctrl_loss, b.ctrl_loss)):
        torch.testing.assert_close(x, y)
    (b.plan_loss + b.code_loss + b.ctrl_loss).backward()
    assert all(p.grad is not None for p in compiled.parameters())
    torch._dynamo.reset()


def test_masked_losses_equal_a_hand_computation():
    m = build(segments=1, halting="none")
    b = make_batch()
    seen = capture(m)
    out = m(b)
    zH, zL = seen["planner"][-1], seen["generator"][-1]
    E = m.embed.weight
    plan, code = [], []
    for i in range(4):
        P, Q, C = int(b.prompt_len[i]), int(b.plan_len[i]), int(b.code_len[i])
        for p in range(P - 1, P + Q - 1 + (C > 0)):  # plan tokens, and the first code token
            plan.append(F.cross_entropy(zH[i, p] @ E.T, b.tokens[i, p + 1]))
        for j in range(C - 1):
            if b.code_loss[i] > 0:
                code.append(F.cross_entropy(zL[i, j] @ E.T, b.tokens[i, P + Q + j + 1]))
    torch.testing.assert_close(out.plan_loss, torch.stack(plan).mean())
    torch.testing.assert_close(out.code_loss, torch.stack(code).mean())
    # the controller loss averages over labelled examples only (row 2 carries none)
    lab, logits = b.ctrl_label, m(b, want_logits=True).ctrl_logits
    assert (lab >= 0).sum() == 3
    torch.testing.assert_close(out.ctrl_loss, F.cross_entropy(logits[lab >= 0], lab[lab >= 0]))
    padded = dataclasses.replace(b, tokens=F.pad(b.tokens, (0, 5)))
    torch.testing.assert_close(m(padded).code_loss, out.code_loss)  # padding changes nothing


def test_no_token_sees_the_future():
    m = build(segments=2, halting="none").eval()
    b = make_batch()
    seen = capture(m)
    m(b)
    before = [s.clone() for s in (seen["planner"][-1], seen["generator"][-1])]
    b2 = dataclasses.replace(b, tokens=b.tokens.clone())
    P, Q = int(b.prompt_len[0]), int(b.plan_len[0])
    b2.tokens[0, P + Q + 5] = (b.tokens[0, P + Q + 5] + 1) % V  # code token 5 of example 0
    m(b2)
    after = (seen["planner"][-1], seen["generator"][-1])
    torch.testing.assert_close(after[0][0, : P + Q + 5], before[0][0, : P + Q + 5])  # planner before it
    torch.testing.assert_close(after[1][0, :5], before[1][0, :5])  # generator steps before it
    assert not torch.allclose(after[1][0, 5], before[1][0, 5])
    torch.testing.assert_close(after[0][1:], before[0][1:])  # other examples untouched


def forced(model: GocoderModel, verdict: torch.Tensor | None = None) -> None:
    """Halting logits from the verdict's first feature: examples where it is positive halt after
    segment 1 (the controller's own head is untrained, so the test decides who halts)."""
    ctrl = model.controller
    orig = type(ctrl).forward

    def forward(pooled, steps, valid, verdict):
        decide, _ = orig(ctrl, pooled, steps, valid, verdict)
        return decide, verdict[:, :1] * 100.0

    ctrl.forward = forward


def test_halted_examples_leave_the_batch():
    m = build(segments=3, h_cycles=2, l_cycles=2).eval()
    b = make_batch()
    b = dataclasses.replace(b, verdict=torch.tensor([[1.0], [-1.0], [1.0], [-1.0]]).expand(4, 6).clone())
    forced(m)
    seen = capture(m)
    out = m(b, want_logits=True)
    # rows processed: 4 in segment 1, then only the 2 still active in segments 2 and 3
    assert out.rows == 4 + 2 + 2 and out.segments.tolist() == [1.0, 3.0, 1.0, 3.0]
    assert m.planner.rows == 2 * out.rows and m.generator.rows == 4 * out.rows
    assert [z.shape[0] for z in seen["planner"]] == [4, 4, 2, 2, 2, 2]
    # the batch also shrinks to the longest active example (row 0, the longest, halted)
    assert seen["planner"][-1].shape[1] == int(b.total_len[[1, 3]].max()) < b.tokens.shape[1]
    # dropping rows changes nothing for the others: alone, they get the same answer
    alone = b.select(torch.tensor([1, 3]))
    torch.testing.assert_close(m(alone, want_logits=True).last_logits, out.last_logits[[1, 3]])


def test_losses_average_over_active_examples_only():
    # segment 2's loss is a mean over the 2 examples still active, not diluted by the 2 that halted
    m = build(segments=2, halting="bce")
    m1 = build(segments=1, halting="bce")
    m1.load_state_dict(m.state_dict())
    forced(m)
    forced(m1)
    verdict = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]]).expand(4, 6).clone()
    b = dataclasses.replace(make_batch(), verdict=verdict)
    two = b.select(torch.tensor([1, 3]))
    seg2_two = 2 * m(two).code_loss - m1(two).code_loss  # their own segment 2
    torch.testing.assert_close(m(b).code_loss, (m1(b).code_loss + seg2_two) / 2)


def test_gradient_flows_through_the_last_cycles_only():
    for grad, k, gen, plan in (("last", 1, [0, 0, 1, 1], [0, 1]), ("one_step", 1, [0, 0, 0, 1], [0, 1]),
                               ("last_k", 2, [1, 1, 1, 1], [1, 1])):
        m = build(segments=1, halting="none", grad=grad, grad_k=k)
        seen = capture(m)
        m(make_batch())
        assert [int(z.requires_grad) for z in seen["generator"]] == gen, grad
        assert [int(z.requires_grad) for z in seen["planner"]] == plan, grad


def test_gpt_baseline_matches_the_parameter_count():
    cfg = dataclasses.replace(CFG, d_model=64, planner_layers=2, generator_layers=2)
    rec, gpt = GocoderModel(cfg), GocoderModel(dataclasses.replace(cfg, type="gpt"))
    assert gpt_layers_for(cfg) > 1 and abs(count_params(gpt) / count_params(rec) - 1) < 0.15
    assert train_flops(cfg, 100, 40) > 0 and train_flops(dataclasses.replace(cfg, type="gpt"), 100, 40) > 0


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path):
    cfg = load_config(path)
    model_cfg = dataclasses.replace(cfg.model, vocab_size=16000)
    with torch.device("meta"):
        n = count_params(GocoderModel(model_cfg))
    if "-" in path.stem:  # recursive-10m.toml: the size it says, within 10%
        want = float(path.stem.split("-")[1].rstrip("m")) * 1e6
        assert abs(n / want - 1) < 0.1, n
