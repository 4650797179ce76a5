"""Weight-only quantization (gocoder/model/quant.py, gocoder export --quantize int8|int6|int4) and QAT
(train.qat_bits)."""

from __future__ import annotations

import json

import pytest
import torch

from gocoder import GocoderError
from gocoder.config import ModelConfig, load_config
from gocoder.model.checkpoint import export_model, load_checkpoint, load_model, save_checkpoint
from gocoder.model.model import Batch, GocoderModel
from gocoder.model.quant import (
    GROUP,
    SCALE,
    add_fake_quant,
    dequantize,
    fake_quant,
    group_size,
    is_quantized,
    pack,
    quantize,
    quantize_tensor,
    set_fake_quant,
    unpack,
)
from gocoder.training.data import open_shard
from gocoder.training.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("bits", [4, 6])
def test_pack_unpack_round_trip_is_exact(bits):
    g = torch.Generator().manual_seed(bits)
    lo = -(1 << (bits - 1))
    for n in (1, 2, 3, 5, 7, 13, 64, 3 * 17, 1001):  # odd counts leave a partly filled last word
        q = torch.randint(lo, -lo, (n,), generator=g, dtype=torch.int8)
        data = pack(q, bits)
        assert data.dtype == torch.uint8 and len(data) == (-(-n // 2) if bits == 4 else 3 * -(-n // 4))
        assert torch.equal(unpack(data, bits, n), q), (bits, n)


def test_group_size_divides_the_row():
    assert group_size(512, 128) == 128 and group_size(448, 128) == 112 and group_size(448, 64) == 64
    assert group_size(6, 128) == 6  # a narrow matrix: one group a row
    assert group_size(101, 64) == 101  # a prime width: one group a row rather than a scale per weight


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_quantize_error_is_within_half_a_scale(bits):
    torch.manual_seed(bits)
    t = {"w": torch.randn(64, 256) * 0.02, "odd": torch.randn(8, 448), "narrow": torch.randn(16, 6),
         "norm": torch.rand(256), "ids": torch.arange(4)}
    q = quantize(t, bits)
    assert torch.equal(q["norm"], t["norm"]) and torch.equal(q["ids"], t["ids"]) and is_quantized(q)
    assert q["w" + SCALE].shape == (64, 256 // GROUP[bits]) and q["w" + SCALE].dtype == torch.bfloat16
    if bits < 8:  # bit-packed uint8 with its shape
        assert q[f"w.q{bits}"].dtype == torch.uint8 and len(q[f"w.q{bits}"]) == 64 * 256 * bits // 8
        assert q["w.qshape"].tolist() == [64, 256] and "w" not in q
    back = dequantize(q)
    assert set(back) == set(t)
    for k in ("w", "odd", "narrow"):
        _, s = quantize_tensor(t[k], bits, GROUP[bits])
        rows, cols = t[k].shape
        half = (s.float() / 2).repeat_interleave(cols // s.shape[1], 1)  # [out, in]: each weight's half scale
        assert ((back[k] - t[k]).abs() <= half * (1 + 1e-6)).all(), (bits, k)
        assert torch.equal(back[k], fake_quant(t[k], bits, GROUP[bits]))  # export's arithmetic is QAT's


def test_embedding_keeps_its_own_bits():
    t = {"embed.weight": torch.randn(32, 64), "l.weight": torch.randn(64, 64)}
    q = quantize(t, 4)  # the embedding at int8 by default
    assert q["embed.weight"].dtype == torch.int8 and "l.weight.q4" in q
    q = quantize(t, 4, embed_bits=0)  # as the matrices
    assert "embed.weight.q4" in q


def _batch(shard, n: int, max_len: int):
    return shard.batch(list(range(min(n, len(shard)))), max_len, shard.meta["pad_id"], 64)


def _cfg(d, **sets):
    base = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.eval_every": 0,
            "train.log_every": 1, "train.ckpt_every": 100, "train.batch_size": 4, "train.ema_decay": 0.9}
    base.update(sets)
    return load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in base.items()])


def test_int6_int4_exports_load_and_predict_like_the_float_model(tiny_corpus, tiny_ckpt, tmp_path):
    d = tiny_corpus[0]
    mf, _ = load_model(export_model(tiny_ckpt, tmp_path / "f32", dtype="float32"))
    b = _batch(open_shard(d / "shards", "valid", mf.cfg.max_seq_len), 4, mf.cfg.max_seq_len)
    with torch.no_grad():
        lf = float(mf(b).code_loss)
        for bits, tol in ((6, 0.01), (4, 0.05)):
            mq, meta = load_model(export_model(tiny_ckpt, tmp_path / f"q{bits}", quantize=f"int{bits}"))
            assert meta["quantize"] == f"int{bits}" and meta["quant_group"] == GROUP[bits]
            assert meta["quant_embed_bits"] == 8
            lq = float(mq(b).code_loss)
            assert lf != lq and abs(lf - lq) / lf < tol, (bits, lf, lq)


def test_qat_run_resumes_exactly_and_its_export_round_trips(tiny_corpus, tmp_path):
    d = tiny_corpus[0]
    sets = {"train.steps": 4, "train.qat_bits": 4, "train.qat_start": 0.5, "train.eval_every": 2,
            "train.eval_samples": 0}
    straight = train(_cfg(d, **sets, **{"train.out": str(tmp_path / "a")}))
    cfg = _cfg(d, **sets, **{"train.out": str(tmp_path / "b")})
    train(cfg, stop_after=1)  # stops before QAT switches on at step 2; the resumed run switches it on
    resumed = train(cfg, resume=True)
    assert straight["loss"] == resumed["loss"]
    meta, weights, ema, _ = load_checkpoint(tmp_path / "a")
    assert set(ema) == set(weights) and not any("parametrizations" in k for k in weights)  # plain keys
    # the QAT model (EMA weights, fake quantization on) against its int4 export, loaded as generate loads
    mcfg = ModelConfig(**meta["model"])
    live = GocoderModel(mcfg)
    add_fake_quant(live, 4)
    live.load_state_dict(ema)  # plain names load into the parametrized model
    out = export_model(tmp_path / "a", tmp_path / "q4", quantize="int4", dtype="float32")
    loaded, _ = load_model(out)
    b = _batch(open_shard(d / "shards", "valid", mcfg.max_seq_len), 4, mcfg.max_seq_len)
    with torch.no_grad():
        l_live, l_export = float(live.eval()(b).code_loss), float(loaded(b).code_loss)
        set_fake_quant(live, False)
        l_float = float(live(b).code_loss)
    assert abs(l_live - l_export) < 1e-5 * l_live, (l_live, l_export)  # exact round trip
    assert l_float != l_live  # (the fake quantization did change the weights)
    sd = loaded.state_dict()
    for k in (k for k in ema if ema[k].dim() == 2):  # the embedding at int8, the rest int4
        bits = 8 if k == "embed.weight" else 4
        assert torch.equal(sd[k], fake_quant(ema[k], bits, GROUP[bits])), k


def test_int4_export_is_under_0_6_of_int8(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(type="gpt", vocab_size=300, d_model=128, n_heads=4, gpt_layers=2, max_seq_len=32)
    meta = {"model": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "tokenizer_hash": "x"}
    save_checkpoint(tmp_path / "run", 1, GocoderModel(cfg), None, {"step": 1}, meta)
    size = {}
    for bits in (8, 6, 4):
        out = export_model(tmp_path / "run", tmp_path / f"q{bits}", quantize=f"int{bits}", embed_bits=0,
                           tokenizer=False)
        size[bits] = (out / "model.safetensors").stat().st_size
    assert size[4] < 0.6 * size[8] and size[6] < 0.8 * size[8], size
    with pytest.raises(GocoderError, match="--quantize 'int3'"):
        export_model(tmp_path / "run", tmp_path / "x", quantize="int3")
    with pytest.raises(GocoderError, match="--embed-bits 5"):
        export_model(tmp_path / "run", tmp_path / "x", quantize="int4", embed_bits=5)
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.tmp").exists()


def test_fake_quant_keeps_parameters_and_plain_state_dict_keys():
    torch.manual_seed(0)
    cfg = ModelConfig(type="gpt", vocab_size=300, d_model=64, n_heads=4, gpt_layers=2, max_seq_len=32)
    m = GocoderModel(cfg)
    keys, params = list(m.state_dict()), {id(p) for p in m.parameters()}
    n = add_fake_quant(m, 6)
    assert n == sum(1 for p in m.parameters() if p.dim() == 2) and n > 0
    assert sorted(m.state_dict()) == sorted(keys)
    assert {id(p) for p in m.parameters()} == params  # an optimizer built before still holds them
    with pytest.raises(GocoderError, match="train.qat_bits"):
        load_config(None, ["train.qat_bits=5"])


@pytest.mark.slow
def test_qat_compiles_with_the_same_numbers_as_export():
    """torch.compile of a tiny GPT with fake quantization: forward and backward run, switching QAT on
    recompiles once, and the compiled quantizer gives export's numbers (a fused bf16 cast would not)."""
    torch.manual_seed(0)
    w = torch.randn(300, 64)
    assert torch.equal(torch.compile(fake_quant)(w, 4, 64), fake_quant(w, 4, 64))
    cfg = ModelConfig(type="gpt", vocab_size=300, d_model=64, n_heads=4, gpt_layers=2, max_seq_len=32)
    m = GocoderModel(cfg)
    add_fake_quant(m, 4)
    m._rope(cfg.max_seq_len, torch.device("cpu"))
    c = torch.compile(m)
    B, T = 2, 16
    b = Batch(torch.randint(4, 300, (B, T)), torch.ones(B, dtype=torch.long), torch.zeros(B, dtype=torch.long),
              torch.full((B,), T - 1, dtype=torch.long), torch.ones(B), torch.full((B,), -1), torch.zeros(B, 6))
    for on in (False, True):
        set_fake_quant(m, on)
        out = c(b)
        out.code_loss.backward()
        assert abs(float(out.code_loss) - float(m(b).code_loss)) < 1e-4
    assert m.embed.parametrizations.weight.original.grad is not None
