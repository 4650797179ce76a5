"""What quantized export costs: validation loss of a checkpoint's weights as bf16 and as int8, int6 or int4
(gocoder export --quantize), on the same batches, and CPU generation speed of the exports.

    python3 bench/quant_loss.py --checkpoint runs/default/gpt --data runs/default/tokens --batches 16
    python3 bench/quant_loss.py --checkpoint R --data D --bits 8 6 4 --embed-bits 8   # int6/int4, int8 embedding
    python3 bench/quant_loss.py --checkpoint runs/default/gpt --data D --speed   # also tokens/s on the CPU

Prints one JSON object: val loss of each export (val_loss_none: bf16), its relative change against bf16
(target <= 1% for int8), and each file's size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from gocoder.model.checkpoint import export_model, load_model
from gocoder.training.data import open_shard


@torch.no_grad()
def val_loss(model, shard, batches: int, batch_size: int, dev: torch.device) -> float:
    model.to(dev).eval()
    total = 0.0
    n = 0
    for i in range(0, min(len(shard), batches * batch_size), batch_size):
        rows = list(range(i, min(i + batch_size, len(shard))))
        b = shard.batch(rows, model.cfg.max_seq_len, shard.meta["pad_id"], 64).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            total += float(model(b).code_loss)
        n += 1
    return total / max(n, 1)


def gen_speed(path: Path, new_tokens: int) -> float:
    """Greedy tokens/s on the CPU through the engine (threads as torch has them), from a Go file's head."""
    from gocoder.inference.engine import Engine, Sampling
    from gocoder.text.tokenizer import Tokenizer

    model, _ = load_model(path)
    tok = Tokenizer.load(path / "tokenizer.model")
    eng = Engine(model, code_open=tok.token_id("<CODE>"), device="cpu")
    t0 = time.perf_counter()
    out = eng.generate([tok.encode("package main\n\nimport \"fmt\"\n\nfunc main() {\n")],
                       Sampling(max_new_tokens=new_tokens))
    return len(out[0].tokens) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a run or checkpoint folder")
    ap.add_argument("--data", required=True, help="shard folder or pretraining tokens (its valid split)")
    ap.add_argument("--batches", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--speed", action="store_true", help="also CPU generation tokens/s of each export")
    ap.add_argument("--bits", type=int, nargs="+", default=[8], choices=[8, 6, 4], help="quantized exports")
    ap.add_argument("--group", type=int, default=0, help="columns a scale (0: export's default for the bits)")
    ap.add_argument("--embed-bits", type=int, default=None, help="embedding bits (export's default: 8)")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for q in ["none"] + [f"int{b}" for b in a.bits]:
            out = export_model(a.checkpoint, Path(tmp) / q, dtype="bfloat16", quantize=q, group=a.group,
                               embed_bits=a.embed_bits)
            model, _ = load_model(out)
            shard = open_shard(a.data, "valid", model.cfg.max_seq_len)
            if not len(shard):
                sys.exit(f"{a.data}/valid: no validation rows to measure on")
            res[f"val_loss_{q}"] = val_loss(model, shard, a.batches, a.batch_size, dev)
            res[f"bytes_{q}"] = (out / "model.safetensors").stat().st_size
            if a.speed:
                res[f"cpu_tokens_per_s_{q}"] = gen_speed(out, 128)
    for b in a.bits:
        res[f"relative_change_int{b}"] = (res[f"val_loss_int{b}"] - res["val_loss_none"]) / res["val_loss_none"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
