"""Packed pretraining rows, two-stage training, host-free steps and FLOPs (gocoder/training/data.py TokenShard,
gocoder/model/model.py doc masks, gocoder/training/train.py): on CPU, in seconds."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from gocoder.config import ModelConfig, ShardsConfig, load_config
from gocoder.model.checkpoint import load_checkpoint
from gocoder.model.model import GocoderModel, count_params, gpt_layers_for, train_flops
from gocoder.training.data import TokenShard, open_shard
from gocoder.training.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, EOS = 64, 3


def write_tokens(root, docs_by_split: dict[str, list[list[int]]], tok_hash: str = "h", vocab: int = V) -> None:
    """A pretraining token folder as `gocoder corpus tokenize` writes it: files back to back, each ended by eos."""
    for split, docs in docs_by_split.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        np.asarray([t for d in docs for t in [*d, EOS]], dtype=np.uint16).tofile(root / split / "tokens.bin")
    meta = {"kind": "pretrain", "tokenizer_hash": tok_hash, "vocab_size": vocab, "dtype": "uint16", "eos_id": EOS}
    (root / "meta.json").write_text(json.dumps(meta))


def cfg_of(kind: str) -> ModelConfig:
    return ModelConfig(type=kind, vocab_size=V, d_model=32, n_heads=4, planner_layers=1, generator_layers=1,
                       max_seq_len=32, segments=1, halting="none", gpt_layers=2 if kind == "gpt" else 0)


def test_rows_carry_file_ids_and_every_token(tmp_path):
    write_tokens(tmp_path, {"train": [[10, 11, 12], [20, 21], [30, 31, 32, 33, 34, 35, 36, 37, 38]]})
    sh = TokenShard(tmp_path, "train", 8)
    assert len(sh) == 2 and sh.kind == "pretrain"  # 17 tokens: two rows of 8 (the tail is dropped)
    b = sh.batch([0, 1])
    assert b.tokens[0].tolist() == [10, 11, 12, EOS, 20, 21, EOS, 30]
    # the eos ends its own file; the next file starts after it
    assert b.doc[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 2]
    assert b.tokens[1].tolist() == [31, 32, 33, 34, 35, 36, 37, 38] and b.doc[1].tolist() == [0] * 8
    assert b.code_len.tolist() == [7, 7] and b.prompt_len.tolist() == [1, 1] and b.code_cap == 7
    assert isinstance(open_shard(tmp_path, "train", 8), TokenShard)


def _hidden(model: GocoderModel, batch) -> torch.Tensor:
    """Per-position final states: the GPT's stack output, or the generator's at the code positions."""
    grab = {}
    mod = model.gpt if model.cfg.type == "gpt" else model.generator
    h = mod.register_forward_hook(lambda m, i, o: grab.__setitem__("h", o))
    with torch.no_grad():
        model(batch)
    h.remove()
    return grab["h"]


@pytest.mark.parametrize("kind", ["gpt", "recursive"])
def test_no_position_sees_another_file(tmp_path, kind):
    torch.manual_seed(0)
    model = GocoderModel(cfg_of(kind)).eval()
    write_tokens(tmp_path / "a", {"train": [list(range(10, 19)), list(range(30, 52))]})
    write_tokens(tmp_path / "b", {"train": [list(range(40, 49)), list(range(30, 52))]})  # the first file differs
    ha = _hidden(model, TokenShard(tmp_path / "a", "train", 32).batch([0]))
    hb = _hidden(model, TokenShard(tmp_path / "b", "train", 32).batch([0]))
    # file 1 starts at token 10 of the row (9 tokens + eos); the generator's position j is row position j + 1
    first = 10 if kind == "gpt" else 9
    assert torch.allclose(ha[0, first:], hb[0, first:], atol=1e-5)
    assert not torch.allclose(ha[0, :first - 1], hb[0, :first - 1], atol=1e-3)  # the changed file itself changed


def test_packed_gpt_row_equals_the_file_alone(tmp_path):
    # rotary positions are relative: a file read at offset 10 of a packed row gives its states read alone
    torch.manual_seed(0)
    model = GocoderModel(cfg_of("gpt")).eval()
    second = list(range(30, 52))
    write_tokens(tmp_path / "p", {"train": [list(range(10, 19)), second]})
    write_tokens(tmp_path / "s", {"train": [second + [EOS] * 9]})
    packed = _hidden(model, TokenShard(tmp_path / "p", "train", 32).batch([0]))
    alone = _hidden(model, TokenShard(tmp_path / "s", "train", 32).batch([0]))
    assert torch.allclose(packed[0, 10:32], alone[0, 0:22], atol=1e-4)


def test_flex_attention_matches_the_dense_mask(tmp_path):
    torch.manual_seed(0)
    model = GocoderModel(cfg_of("gpt")).eval()
    write_tokens(tmp_path, {"train": [list(range(10, 15)), list(range(20, 40)), list(range(5, 12))]})
    b = TokenShard(tmp_path, "train", 32).batch([0])
    dense = _hidden(model, b)
    model.attn_impl = "flex"
    with pytest.warns(UserWarning):  # flex eager (no compile): the unfused reference path, fine on CPU
        flex = _hidden(model, b)
    assert torch.allclose(dense, flex, atol=1e-5)


def test_a_pretraining_row_is_one_text_in_the_loss(tmp_path):
    # every predicted token of a packed row weighs the same: the loss is the plain next-token mean of the
    # row (the row's second token, which the model predicts at its "plan" position, is one token of T - 1)
    import torch.nn.functional as F

    from gocoder.training.train import _loss

    torch.manual_seed(0)
    model = GocoderModel(cfg_of("gpt")).eval()
    write_tokens(tmp_path, {"train": [list(range(10, 30)), list(range(40, 60))]})
    b = TokenShard(tmp_path, "train", 32).batch([0])
    with torch.no_grad():
        out = model(b)
        h = _hidden(model, b)
    want = F.cross_entropy(model.logits(h)[0, :-1], b.tokens[0, 1:])
    t = load_config(None).train
    assert torch.allclose(_loss(out, t, b), want, atol=1e-5)
    assert not torch.allclose(t.w_plan * out.plan_loss + t.w_code * out.code_loss, want, atol=1e-3)


def test_train_flops_by_hand():
    # d=32, hidden = 32 * ceil(2.6667 * 32 / 32) = 96; one layer on n queries and m keys:
    # 2n(4d^2 + 3 d hid) + 4nmd; the head only where a token is predicted (plan + code)
    cfg = dataclasses.replace(cfg_of("gpt"), gpt_layers=2)
    d, hid = 32, 96
    layer = lambda n, m: 2 * n * (4 * d * d + 3 * d * hid) + 4 * n * m * d  # noqa: E731
    assert train_flops(cfg, 20, 8, plan=3) == 3 * (2 * layer(20, 20) + 2 * d * V * 11)
    assert train_flops(cfg, 20, 19) == 3 * (2 * layer(20, 20) + 2 * d * V * 19)  # a pretraining row
    rec = cfg_of("recursive")
    H = layer(20, 20)
    L = layer(8, 8) + 2 * 8 * 2 * d * d + 2 * 20 * 2 * d * d + 4 * 8 * 20 * d
    cyc = 2 * L + H  # l_cycles = 2
    assert train_flops(rec, 20, 8, 1.0, plan=3) == 2 * cyc + 2 * cyc + 3 * 2 * d * V * 11  # h_cycles 2, grad last
    assert math.isclose(train_flops(rec, 20, 8, 2.0, plan=3), 2 * train_flops(rec, 20, 8, 1.0, plan=3))
    # the GPT depth whose parameter count is nearest the recursive model's (the function returns at least 1)
    n, want = gpt_layers_for(rec), count_params(GocoderModel(rec))
    gap = {k: abs(count_params(GocoderModel(dataclasses.replace(rec, type="gpt", gpt_layers=k))) - want)
           for k in range(1, n + 3)}  # fmt: skip
    assert gap[n] == min(gap.values()), gap


@pytest.fixture(scope="module")
def two_stage(tmp_path_factory):
    """Pretraining tokens and record shards made with one tokenizer (tests/test_train.py's corpus)."""
    from tinycorpus import FUNCS, record  # noqa: F401 (the same small Go functions)

    from gocoder.text.serialize import serialize
    from gocoder.text.tokenizer import Tokenizer, train_tokenizer
    from gocoder.training.data import build_shards

    d = tmp_path_factory.mktemp("two")
    recs = [record(i) for i in range(16)] + [record(i, "valid") for i in range(4)]
    (d / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    train_tokenizer([serialize(r) for r in recs] * 4, d / "tok", vocab_size=420)
    tok = Tokenizer.load(d / "tok")
    build_shards(ShardsConfig(seed=0), d / "h.jsonl", tok, d / "shards")
    files = [tok.encode("package util\n\n" + code) for _, _, code in FUNCS]
    write_tokens(d / "pre", {"train": files * 4, "valid": files[:4]}, tok.hash, tok.vocab_size)
    return d


def _two_stage_cfg(d, out, **sets):
    base = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.out": str(out),
            "train.eval_every": 3, "train.eval_samples": 0, "train.log_every": 1, "train.ema_decay": 0.9,
            "train.steps": 6, "train.ckpt_every": 100, "train.batch_size": 4, "model.max_seq_len": 64}
    base.update(sets)
    cfg = load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in base.items()])
    stages = (dataclasses.replace(cfg.train.stages[0], name="files", data=str(d / "pre"), until_step=3,
                                  max_plan_steps=0, max_tokens=0),
              dataclasses.replace(cfg.train.stages[0], name="records", until_step=0))
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stages=stages))


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["gpt", "recursive"])
def test_files_then_records_and_resume_is_exact(two_stage, tmp_path, kind):
    d = two_stage
    a = _two_stage_cfg(d, tmp_path / "a", **{"model.type": kind})
    train(a)
    rows = [r for r in _rows(tmp_path / "a") if r["id"].startswith("train-")]
    assert [r["stage"] for r in rows] == ["files"] * 3 + ["records"] * 3
    assert all(r["tokens"] > 0 and r["flops"] > 0 for r in rows)
    evals = [r for r in _rows(tmp_path / "a") if r["id"].startswith("eval-")]
    assert len(evals) == 2 and all(math.isfinite(e["val_code_loss"]) for e in evals)
    b = _two_stage_cfg(d, tmp_path / "b", **{"model.type": kind})
    train(b, stop_after=2)  # stops inside the first stage, with batches built ahead and not used
    assert load_checkpoint(tmp_path / "b")[3]["step"] == 2
    train(b, resume=True)
    la = [r["loss"] for r in rows]
    lb = [r["loss"] for r in _rows(tmp_path / "b") if r["id"].startswith("train-")]
    assert la == lb
    ema_a, ema_b = load_checkpoint(tmp_path / "a")[2], load_checkpoint(tmp_path / "b")[2]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_a_step_reads_no_host_value(two_stage, tmp_path, monkeypatch):
    # the loop reads the device once per log interval: with log_every = 3, one .tolist() per 3 steps
    calls = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or real(self))
    cfg = _two_stage_cfg(two_stage, tmp_path / "r", **{"model.type": "gpt", "train.log_every": 3,
                                                        "train.eval_every": 0})
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stages=cfg.train.stages[:1]))
    train(cfg)
    assert len(calls) == 2  # steps 3 and 6


def test_set_reaches_a_stage_by_index():
    cfg = load_config("configs/go-26m.toml", ["train.stages.0.until_step=900", "train.stages.1.data=x"])
    assert cfg.train.stages[0].until_step == 900 and cfg.train.stages[1].data == "x"
    from gocoder import GocoderError

    with pytest.raises(GocoderError, match=r"7 is no index of that list \(0\.\.2\)"):
        load_config("configs/go-26m.toml", ["train.stages.7.until_step=1"])


def test_ema_warms_up_so_the_initial_weights_fade():
    from gocoder.training.train import ema_decay_at

    assert ema_decay_at(0, 0.999) == pytest.approx(0.1) and ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.999) == 0.999
    keep = 1.0  # the share of the initial weights left in the EMA after 1,900 steps
    for s in range(1900):
        keep *= ema_decay_at(s, 0.999)
    assert keep < 0.001 < 0.999**1900


def test_a_time_boxed_run_counts_its_last_steps(two_stage, tmp_path):
    # the limit falls between two logs: the steps since the last log still count in the checkpoint
    cfg = _two_stage_cfg(two_stage, tmp_path / "t", **{"model.type": "gpt", "train.log_every": 100,
                                                        "train.eval_every": 0, "train.time_limit_s": 1e-6})
    train(cfg)
    st = load_checkpoint(tmp_path / "t")[3]
    rows = _rows(tmp_path / "t")
    assert st["step"] == 1 and st["tokens"] == 4 * 64 and st["flops"] > 0  # one step of 4 rows of 64
    assert rows[-1]["id"] == "train-1" and rows[-1]["tokens"] == st["tokens"]
