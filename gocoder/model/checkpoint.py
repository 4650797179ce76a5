"""Checkpoints: save, load and export, the one module both training and
inference import (STYLE.md 16).

A checkpoint is a folder `ckpt-STEP/` (written under a temporary name, then renamed; the run
folder's `latest` names it): model.safetensors, ema.safetensors, config.json (the config, the
tokenizer hash, the git SHA, the step and the FLOPs spent) and state.pt (optimizer,
scheduler, RNG, data position, curriculum stage). An exported model is the same folder
without state.pt and ema.safetensors.

Inference (`load_weights`, `load_model`, `export_model`) reads config.json and the
safetensors only, never state.pt: a pickle is read only by `train --resume`
(`load_train_state`), with torch's weights_only loader.
"""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from gocoder import GocoderError
from gocoder.config import ModelConfig
from gocoder.fsio import atomic_dir, atomic_write, output_lock, write_file
from gocoder.model.model import GocoderModel

# training-state totals copied into config.json, so that the folder
# describes itself without its pickle
SUMMARY = ("flops", "tokens", "seconds")


def save_checkpoint(out: Path, step: int, model: GocoderModel, ema: dict[str, torch.Tensor] | None,
                    state: dict[str, Any], meta: dict[str, Any], keep: int = 2,
                    tokenizer: str | Path | None = None) -> Path:
    """Write ckpt-STEP/ atomically (fsio.atomic_dir: a temporary folder, fsynced, then renamed;
    `latest` last, the same way) and prune old ones: a kill or a full disk at any point leaves
    `latest` naming a whole one. tokenizer (a folder or .model file) is copied in as
    tokenizer.model/.json: the folder then generates on its own, wherever it is moved."""
    final = out / f"ckpt-{step:08d}"
    blobs = {}
    if tokenizer is not None:
        from gocoder.text.tokenizer import STEM

        src = Path(tokenizer) / f"{STEM}.model" if Path(tokenizer).is_dir() else Path(tokenizer)
        try:
            blobs = {
                "tokenizer.model": src.read_bytes(),
                "tokenizer.json": src.with_suffix(".json").read_bytes(),
            }
        except OSError as e:
            raise GocoderError(
                f"{e.filename}: cannot copy the tokenizer into the checkpoint: {e.strerror}"
            ) from None
    # serialized here and written by fsio.write_file: a full disk is then an OSError naming
    # the file (torch.save and safetensors' save_file report it in words of their own) and
    # the temporary folder is removed
    blobs["model.safetensors"] = save(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    )
    if ema is not None:
        blobs["ema.safetensors"] = save({k: v.cpu().contiguous() for k, v in ema.items()})
    buf = io.BytesIO()
    torch.save(state, buf)
    blobs["state.pt"] = buf.getvalue()
    info = dict(meta, step=step, **{k: state[k] for k in SUMMARY if k in state})
    blobs["config.json"] = (json.dumps(info, indent=2) + "\n").encode("utf-8")
    with atomic_dir(final) as tmp:
        for name, blob in blobs.items():
            write_file(tmp / name, blob)
    atomic_write(out / "latest", final.name + "\n")
    for old in sorted(out.glob("ckpt-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_dir(path: str | Path) -> Path:
    """A checkpoint folder itself, or the one a run folder's `latest` names."""
    p = Path(path)
    return p / (p / "latest").read_text(encoding="utf-8").strip() if (p / "latest").is_file() else p


def load_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict | None]:
    """(config.json, weights, EMA weights or None) of a checkpoint, run or exported-model folder;
    anything missing or corrupt is a GocoderError naming the file. state.pt is not opened."""
    p = checkpoint_dir(path)
    f = p / "config.json"
    if not f.is_file():
        raise GocoderError(f"{p}: no checkpoint there (neither a `latest` file nor a config.json)")
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
        f = p / "model.safetensors"
        weights = load_file(f)
        f = p / "ema.safetensors"
        ema = load_file(f) if f.exists() else None
    except FileNotFoundError:
        raise GocoderError(f"{f}: no checkpoint there (missing file)") from None
    except (OSError, ValueError, SafetensorError, RuntimeError, json.JSONDecodeError) as e:
        raise GocoderError(f"{f}: corrupt checkpoint: {str(e).splitlines()[0][:200]}") from None
    return meta, weights, ema


def load_train_state(path: str | Path) -> dict[str, Any]:
    """The training state (state.pt) of a checkpoint, for `train --resume` only; {} when there is
    none. torch's weights_only loader refuses anything but tensors and plain containers; a
    refused or corrupt file is one line naming it (torch's own message advises
    weights_only=False: never on a file we did not write)."""
    f = checkpoint_dir(path) / "state.pt"
    if not f.exists():
        return {}
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise GocoderError(
            f"{f}: not a gocoder training state (it holds objects the safe loader refuses)"
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError) as e:
        raise GocoderError(f"{f}: corrupt training state: {str(e).splitlines()[0][:200]}") from None


def load_checkpoint(
    path: str | Path,
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict | None, dict]:
    """(config.json, weights, EMA weights or None, training state):
    everything `train --resume` needs."""
    return (*load_weights(path), load_train_state(path))


def float_weights(
    path: str | Path, use_ema: bool = True
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config.json, the weights as floats) of a checkpoint, run or exported-model folder: the
    EMA weights when there are some (and use_ema), a quantized export's matrices (int8, int6,
    int4) turned back into floats."""
    from gocoder.model.quant import dequantize, is_quantized

    meta, weights, ema = load_weights(path)
    chosen = ema if (use_ema and ema is not None) else weights
    return meta, dequantize(chosen) if is_quantized(chosen) else chosen


def model_config(meta: dict[str, Any], where: Path) -> ModelConfig:
    """The ModelConfig of a checkpoint's config.json (meta), or one
    line naming where it is unusable."""
    try:
        # JSON has lists where the config has tuples (model.loop): a frozen config must hash
        model = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["model"].items()}
        return ModelConfig(**model)
    except (KeyError, TypeError, ValueError) as e:
        raise GocoderError(f"{where}: no usable model config ({type(e).__name__}: {e})") from None


def load_model(path: str | Path, use_ema: bool = True) -> tuple[GocoderModel, dict[str, Any]]:
    """A trained model from its checkpoint folder alone (EMA weights when there are some)."""
    meta, weights = float_weights(path, use_ema)
    where = checkpoint_dir(path) / "config.json"
    model = GocoderModel(model_config(meta, where))
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).splitlines()[0][:200]
        raise GocoderError(f"{where}: the weights do not fit its model config: {first}") from None
    return model.eval(), meta


def export_model(src: str | Path, dst: str | Path, dtype: str = "bfloat16", use_ema: bool = True,
                 tokenizer: bool = True, quantize: str = "none", group: int = 0,
                 embed_bits: int | None = None) -> Path:
    """A checkpoint as a model to ship or load for inference: its EMA weights (else the raw
    ones) cast to dtype in model.safetensors, config.json, and (tokenizer=True) the
    tokenizer the checkpoint carries.
    No optimizer state: a 10M-parameter model is ~20 MB in bf16 instead of ~160 MB with AdamW's
    moments; quantize="int8", "int6" or "int4" stores the matrices as such with a bf16 scale
    per `group` input columns (gocoder/model/quant.py; 0: its default for the bits), the
    embedding at embed_bits (None: int8).
    A checkpoint trained with QAT at the same bits (train.qat_bits) is exported with its training's
    group and embedding bits unless they are given: its weights then round-trip exactly.
    Written to a temporary folder and renamed; an existing dst is replaced whole."""
    from gocoder.model.quant import BITS, EMBED, EMBED_BITS, GROUP, QMAX, bits_for, is_matrix
    from gocoder.model.quant import quantize as quantize_tensors

    p = checkpoint_dir(src)
    meta, weights, ema = load_weights(p)
    model_config(meta, p / "config.json")  # a folder written now must load later
    try:
        dt = getattr(torch, dtype)
        assert isinstance(dt, torch.dtype) and dt.is_floating_point
    except (AttributeError, AssertionError):
        raise GocoderError(
            f"--dtype {dtype!r}: expected a floating torch dtype such as bfloat16 or float32"
        ) from None
    if quantize != "none" and quantize not in BITS:
        raise GocoderError(f"--quantize {quantize!r}: expected none, {', '.join(BITS)}")
    if embed_bits is not None and embed_bits and embed_bits not in QMAX:
        raise GocoderError(f"--embed-bits {embed_bits}: expected 0 (as the matrices), 4, 6 or 8")
    if group < 0:
        raise GocoderError(
            f"--group {group}: expected a number of columns >= 1, or 0 for the default"
        )
    bits = BITS.get(quantize, 0)
    qat = ((meta.get("config") or {}).get("train") or {}) if bits else {}
    if qat.get("qat_bits") == bits:  # trained for these bits: stored as it trained
        group = group or qat.get("qat_group", 0)
        embed_bits = qat.get("qat_embed_bits", EMBED_BITS) if embed_bits is None else embed_bits
    embed_bits = EMBED_BITS if embed_bits is None else embed_bits
    chosen = ema if (use_ema and ema is not None) else weights
    out = Path(dst)
    # matrices to be quantized stay float32 until they are: a QAT run's
    # weights then round-trip exactly
    tensors = {
        k: (
            v.float() if bits and is_matrix(v) else v.to(dt) if v.is_floating_point() else v
        ).contiguous()
        for k, v in chosen.items()
    }
    info = dict(meta, dtype=dtype, weights="ema" if chosen is ema else "raw", quantize=quantize)
    if bits:
        tensors = quantize_tensors(tensors, bits, group, embed_bits)
        b = bits_for(EMBED, bits, embed_bits)
        info.update(
            quant_group=group or GROUP[bits],
            quant_embed_bits=b,
            quant_embed_group=group or GROUP[b],
        )
    blobs = {
        "model.safetensors": save(tensors),
        "config.json": (json.dumps(info, indent=2) + "\n").encode(),
    }
    for name in ("tokenizer.model", "tokenizer.json") if tokenizer else ():
        if (p / name).exists():
            blobs[name] = (p / name).read_bytes()
    # a second export to the same folder fails at once
    with output_lock(out), atomic_dir(out) as tmp:
        for name, blob in blobs.items():
            write_file(tmp / name, blob)
    return out
