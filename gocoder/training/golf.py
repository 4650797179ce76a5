"""`gocoder golf`: the best Go model one GPU trains in a fixed wall time,
exported under a size cap, scored.

The question openai/parameter-golf asks of FineWeb (the best model that trains in 10 minutes and
fits in 16 MB, scored in bits per byte after its int8 round trip), asked of Go: one run trains a
model from scratch on the pretraining tokens of `gocoder corpus tokenize` for `train.time_limit_s`
seconds (the schedule runs over that time: `train.schedule = "time"`), exports it (`--quantize`,
checked against `--max-mb`), loads the export back as every user of it would, and scores it in bits
per byte on the held-out packages (the corpus's valid split, `gocoder.splits`). Bits per byte, not
loss per token, so tokenizers of different sizes compare fairly.

What a run writes (OUT): run/ (the training run), model/ (the export) and golf.json (the score, the
sizes and the run's totals); a rerun with golf.json present only prints it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gocoder import GocoderError
from gocoder.config import Config, StageConfig
from gocoder.model.checkpoint import export_model, load_model
from gocoder.training.data import TokenShard

LN2 = math.log(2)


def byte_lengths(tok: Any) -> np.ndarray:
    """UTF-8 bytes of each token id as it decodes inside a text: a byte-fallback piece is
    one byte, a control piece (pad, bos, eos) none, any other piece its text with
    SentencePiece's space mark as a space."""
    sp = tok._sp
    out = np.zeros(tok.vocab_size, dtype=np.int64)
    for i in range(tok.vocab_size):
        if sp.IsByte(i):
            out[i] = 1
        elif not (sp.IsControl(i) or sp.IsUnknown(i)):
            out[i] = len(sp.IdToPiece(i).replace("\u2581", " ").encode("utf-8"))
    return out


@torch.no_grad()
def bits_per_byte(model: Any, shard: TokenShard, nbytes: np.ndarray, device: torch.device,
                  max_tokens: int = 4 << 20, batch_size: int = 32) -> dict[str, float]:
    """The model's cross-entropy over the first max_tokens of a split (rows of seq_len,
    each file attending only to itself), in bits per byte of the text the predicted
    tokens spell, and in nats per token."""
    model.eval()
    T = shard.seq_len
    rows = min(len(shard), max(1, max_tokens // T))
    if rows == 0:
        raise GocoderError("the held-out split has no row of model.max_seq_len tokens to score")
    from gocoder.training.train import _loss

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    nats = torch.zeros((), dtype=torch.float64, device=device)
    for i in range(0, rows, batch_size):
        idx = list(range(i, min(i + batch_size, rows)))
        b = shard.batch(idx).to(device)
        with autocast:
            out = model(b)
        # the training loss of a pretraining row is the mean over its T - 1 predicted tokens
        nats += len(idx) * (T - 1) * _loss(out, None, b).double()
    toks = np.asarray(shard.tokens[: rows * T]).reshape(rows, T)[:, 1:]  # the predicted tokens
    total_bytes = int(nbytes[toks].sum())
    n = rows * (T - 1)
    v = float(nats.item())
    return {
        "bits_per_byte": v / LN2 / total_bytes,
        "loss": v / n,
        "tokens": n,
        "bytes": total_bytes,
    }


def golf(
    cfg: Config,
    tokens: str | Path,
    out: str | Path,
    *,
    quantize: str = "int8",
    max_mb: float = 32.0,
    eval_tokens: int = 4 << 20,
    progress: bool = False,
) -> dict[str, Any]:
    """Train cfg's model on the pretraining tokens for cfg.train.time_limit_s, export it
    (quantize) under max_mb, and score the export in bits per byte on the tokens' valid
    split. Returns golf.json's record."""
    from gocoder.text.tokenizer import Tokenizer
    from gocoder.training.train import train, train_device

    out, tokens = Path(out), Path(tokens)
    done = out / "golf.json"
    if done.exists():
        return json.loads(done.read_text(encoding="utf-8"))
    t = cfg.train
    if t.time_limit_s <= 0:
        raise GocoderError(
            "gocoder golf needs a wall-time budget: --seconds (train.time_limit_s) > 0"
        )
    if max_mb <= 0:
        raise GocoderError(f"--max-mb {max_mb}: expected a size in MB > 0")
    valid = TokenShard(tokens, "valid", cfg.model.max_seq_len)  # checked before any training
    if len(valid) == 0:
        raise GocoderError(
            f"{tokens}/valid: no held-out tokens to score (build the corpus with its splits)"
        )
    stage = StageConfig(name="files", data=str(tokens))
    # the budget is the schedule (train.schedule = "time"); steps only bound it
    train_cfg = dataclasses.replace(t, out=str(out / "run"), stages=(stage,), schedule="time",
                                    steps=max(t.steps, 10**7), eval_every=0, ckpt_every=10**8)
    run_cfg = dataclasses.replace(cfg, train=train_cfg)
    t0 = time.perf_counter()
    last = train(run_cfg, resume=(out / "run" / "latest").exists(), progress=progress)
    train_wall = time.perf_counter() - t0
    model_dir = export_model(out / "run", out / "model", quantize=quantize)
    size = (model_dir / "model.safetensors").stat().st_size
    if size > max_mb * 1e6:
        raise GocoderError(
            f"{model_dir}/model.safetensors: {size / 1e6:.1f} MB is over --max-mb {max_mb}"
        )
    device = train_device(t.device)
    model, meta = load_model(model_dir)
    tok = Tokenizer.load(model_dir / "tokenizer.model")
    score = bits_per_byte(
        model.to(device), valid, byte_lengths(tok), device, eval_tokens, t.batch_size
    )
    rec = {
        "bits_per_byte": round(score["bits_per_byte"], 5),
        "val_loss": round(score["loss"], 5),
        "eval_tokens": score["tokens"],
        "eval_bytes": score["bytes"],
        "model_bytes": size,
        "quantize": quantize,
        "params": meta.get("params"),
        "steps": last.get("step"),
        "train_tokens": last.get("tokens"),
        "train_s": round(last.get("train_s") or 0.0, 1),
        "wall_s": round(train_wall, 1),
        "tokens_per_s": last.get("tokens_per_s"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "tokenizer_vocab": tok.vocab_size,
        "model": meta.get("model"),
        "train": meta["config"]["train"],
    }
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1) + "\n", encoding="utf-8")
    tmp.replace(done)
    return rec
