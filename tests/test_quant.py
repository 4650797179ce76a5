"""Weight-only int8 export (gocoder/quant.py, gocoder export --quantize int8)."""

from __future__ import annotations

import torch

from gocoder.checkpoint import export_model, load_model, save_checkpoint
from gocoder.config import ModelConfig
from gocoder.model import Batch, GocoderModel
from gocoder.quant import SCALE, dequantize, is_quantized, quantize_int8


def test_int8_round_trip_is_close_and_leaves_vectors_alone():
    torch.manual_seed(0)
    t = {"w": torch.randn(64, 256), "odd": torch.randn(8, 100), "norm": torch.rand(256), "ids": torch.arange(4)}
    q = quantize_int8(t)
    assert q["w"].dtype == torch.int8 and q["w" + SCALE].shape == (64, 2)  # groups of 128 columns
    assert q["odd" + SCALE].shape == (8, 1)  # 100 columns: one group a row
    assert torch.equal(q["norm"], t["norm"]) and torch.equal(q["ids"], t["ids"]) and is_quantized(q)
    back = dequantize(q)
    for k in ("w", "odd"):
        rel = (back[k] - t[k]).norm() / t[k].norm()
        assert rel < 0.01, (k, rel)
    assert set(back) == set(t)


def test_exported_int8_model_loads_and_predicts_like_the_float_one(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(type="gpt", vocab_size=300, d_model=128, n_heads=4, gpt_layers=2, max_seq_len=32)
    model = GocoderModel(cfg)
    meta = {"model": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "tokenizer_hash": "x"}
    save_checkpoint(tmp_path / "run", 1, model, None, {"step": 1}, meta)
    f = export_model(tmp_path / "run", tmp_path / "f32", dtype="float32", tokenizer=False)
    q = export_model(tmp_path / "run", tmp_path / "q8", dtype="float32", tokenizer=False, quantize="int8")
    assert (q / "model.safetensors").stat().st_size < 0.35 * (f / "model.safetensors").stat().st_size
    mf, _ = load_model(f)
    mq, meta_q = load_model(q)
    assert meta_q["quantize"] == "int8"
    B, T = 2, 16
    toks = torch.randint(4, 300, (B, T))
    b = Batch(toks, torch.ones(B, dtype=torch.long), torch.zeros(B, dtype=torch.long),
              torch.full((B,), T - 1, dtype=torch.long), torch.ones(B), torch.full((B,), -1), torch.zeros(B, 6))
    with torch.no_grad():
        lf, lq = mf(b).code_loss, mq(b).code_loss
    assert abs(lf - lq) / lf < 0.01
