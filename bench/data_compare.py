"""Which data teaches Go better at the same model and wall time: whole Go files (`gocoder corpus`) or the
shipped model's records (`gocoder shards`)? Issue 13's measure, at a scale a CPU can run.

Trains the same small GPT twice with `gocoder train`, each for --seconds of training (train.time_limit_s,
constant learning rate after warm-up so that neither run is cut mid-schedule), once on the corpus's
pretraining tokens and once on the record shards, then scores both EMA checkpoints on the corpus's
validation split (whole files of packages neither run trained on): mean next-token loss in nats.

    python bench/data_compare.py --tokens runs/default/tokens --records runs/default/shards --seconds 300

At GPU scale, the shipped model's shape, compiled, one run a GPU side by side (--only picks one; --set
passes any other setting, such as train.optimizer="muon" for an optimizer at equal wall time):

    CUDA_VISIBLE_DEVICES=0 python bench/data_compare.py --tokens T --records R --config configs/go-26m.toml \
        --set model.type=gpt --compile --seconds 240 --only files --out D &
    CUDA_VISIBLE_DEVICES=1 python bench/data_compare.py ... --only records --out D & wait

The records run's tokens are tagged text (plan, code); the score asks what each run learned about Go files
it has not seen, which is what pretraining is for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from train_loop import one_stage_config  # bench/, the script's own folder (sys.path[0] when run)

from gocoder.model.checkpoint import load_model
from gocoder.training.data import TokenShard
from gocoder.training.train import _loss

ROOT = Path(__file__).resolve().parent.parent


def train(data: str, out: Path, a) -> None:
    sets = {"train.data": json.dumps(data), "train.out": json.dumps(str(out)), "train.steps": 1_000_000,
            "train.warmup_steps": 50, "train.min_lr_ratio": 1.0, "train.time_limit_s": a.seconds,
            "train.log_every": 50, "train.eval_every": 1_000_000, "train.eval_samples": 0,
            "train.ckpt_every": 1_000_000, "train.compile": "true" if a.compile else "false",
            "train.tokenizer": json.dumps(a.tokenizer)}  # fmt: skip
    if a.config:  # its model and batch, one stage on this run's data
        conf = one_stage_config(a.config, "compare", out.parent / f"{out.name}.toml")
    else:
        conf = ROOT / "configs" / "tiny.toml"
        sets |= {"model.type": '"gpt"', "model.d_model": a.d_model, "model.n_heads": a.d_model // 64,
                 "model.gpt_layers": a.layers, "model.max_seq_len": a.seq_len, "train.batch_size": a.batch,
                 "train.lr": 2e-3, "train.ema_decay": 0.99}  # fmt: skip
    cmd = [sys.executable, "-m", "gocoder", "--threads", str(a.threads), "train", "--config", str(conf)]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    for s in a.set:
        cmd += ["--set", s]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


@torch.no_grad()
def held_out_loss(run: Path, tokens: str, batches: int, batch: int, device: str) -> tuple[float, int]:
    model, meta = load_model(run)
    model.to(device).eval()
    shard = TokenShard(tokens, "valid", model.cfg.max_seq_len)
    n = min(len(shard), batches * batch)
    total = 0.0
    for i in range(0, n, batch):
        rows = list(range(i, min(i + batch, n)))
        b = shard.batch(rows).to(torch.device(device))
        # training's loss of a pretraining row: the mean over its every predicted token (rows of equal length)
        total += float(_loss(model(b), None, b)) * len(rows)
    return total / n, int(meta.get("tokens", 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", required=True, help="pretraining token folder (gocoder corpus tokenize)")
    ap.add_argument("--records", required=True, help="record shard folder (gocoder shards)")
    ap.add_argument("--tokenizer", default="tokenizer")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-batches", type=int, default=40)
    ap.add_argument("--config", help="train this config's model and batch instead of the small GPT above")
    ap.add_argument("--set", action="append", default=[], help="any other setting of both runs (repeatable)")
    ap.add_argument("--compile", action="store_true", help="train.compile=true (a GPU)")
    ap.add_argument("--only", choices=("files", "records"), help="one of the two runs (one a GPU, side by side)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="for the scoring")
    ap.add_argument("--out", help="keep the runs here (default: a temporary folder)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = Path(a.out or tempfile.mkdtemp(prefix="data-compare-"))
    res = {}
    for name, data in (("files", a.tokens), ("records", a.records)):
        if a.only and name != a.only:
            continue
        train(data, base / name, a)
        loss, tokens = held_out_loss(base / name, a.tokens, a.eval_batches, a.batch, a.device)
        res[name] = {"held_out_loss": round(loss, 4), "tokens_trained": tokens}
        print(f"{name}: {tokens:,} training tokens in {a.seconds:.0f} s, held-out Go files {loss:.4f} nats/token")
    shape = {"config": a.config, "set": a.set} if a.config else {"d_model": a.d_model, "layers": a.layers}
    print(json.dumps({"seconds": a.seconds, **shape, **res}))


if __name__ == "__main__":
    main()
