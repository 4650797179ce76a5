"""`gocoder train`'s own loop on real data, against the isolated train step of the same model, same run.

Runs the real command (`gocoder train`, or `torchrun ... gocoder train` with --nproc > 1) for --steps
optimizer steps on the given data, then reads its metrics.jsonl: tokens/s and MFU averaged over the log
intervals after the first (the first pays for compiling), the first step's seconds (compile time), and the
graphs torch.compile made at each log (recompiles after the first log = the last count minus the first).
Then it times the isolated step of the same model and batch shape in this process (compiled when the run
was: forward, backward, fused AdamW, no data loading, no logging, no EMA) and prints loop / isolated.

Example (one H200):   python bench/train_loop.py --config configs/pretrain-30m.toml --data D --steps 200
Example (two GPUs):   python bench/train_loop.py --config configs/pretrain-30m.toml --data D --nproc 2
Example (CPU check):  python bench/train_loop.py --config configs/tiny.toml --data D --steps 20 --no-compile
Bench data without the corpus: --make-data D --tokens 6000000 writes packed rows of the Go distribution's
own source (GOROOT/src, shuffled files, testdata and vendor left out) with the shipped tokenizer, then exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gocoder.config import StageConfig, load_config, to_toml
from gocoder.model.model import GocoderModel, count_params, train_flops
from gocoder.training.data import open_shard
from gocoder.training.train import peak_flops, prepare_model

ROOT = Path(__file__).resolve().parent.parent


def one_stage_config(config: str, name: str, dest: Path) -> Path:
    """The config at `config` with its curriculum replaced by one stage `name` that reads train.data (the
    config's stages may name other data each), written to dest for `gocoder train --config`."""
    cfg = load_config(config)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stages=(StageConfig(name=name),)))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(to_toml(cfg), encoding="utf-8")
    return dest


def run_loop(a, out: Path) -> list[dict]:
    conf = one_stage_config(a.config, "bench", out.parent / "bench.toml")
    sets = [f"train.data={json.dumps(a.data)}", f"train.out={json.dumps(str(out))}", f"train.steps={a.steps}",
            f"train.log_every={a.log_every}", "train.eval_every=0", f"train.ckpt_every={a.steps}",
            f"train.compile={'true' if a.compile else 'false'}", f"train.ddp={'true' if a.nproc > 1 else 'false'}",
            f"train.tokenizer={json.dumps(a.tokenizer)}", *a.set]
    cmd = [sys.executable, "-m", "gocoder", "train", "--config", str(conf)]
    if a.nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={a.nproc}", "-m", "gocoder", "train",
               "--config", str(conf)]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    print(f"loop: {a.steps} steps in {time.perf_counter() - t0:.1f} s (process start to exit)", file=sys.stderr)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if str(r.get("id", "")).startswith("train-")]


def isolated(a, dev: torch.device, peak: float | None) -> dict:
    """The same model and batch shape, one batch reused: forward, backward, optimizer step, compiled as the
    loop was. What the loop adds on top (data, logging, EMA, clipping) is the gap between the two."""
    cfg = load_config(a.config, a.set)
    shard = open_shard(a.data, "train", cfg.model.max_seq_len)
    mcfg = dataclasses.replace(cfg.model, vocab_size=int(shard.meta["vocab_size"]))
    torch.manual_seed(0)
    model = GocoderModel(mcfg)
    t = dataclasses.replace(cfg.train, compile=a.compile, ddp=False)
    wrapped = prepare_model(model, t, dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")
    rows = shard.eligible(0, 0)[: t.batch_size]
    b = shard.batch(rows, mcfg.max_seq_len, shard.meta["pad_id"], t.bucket).to(dev)
    lens = zip(b.total_len.tolist(), b.code_len.tolist(), b.plan_len.tolist(), strict=True)
    flops = sum(train_flops(mcfg, n, c, 1.0, q) for n, c, q in lens)
    flops *= mcfg.segments if mcfg.type == "recursive" else 1  # upper bound: every row runs every segment
    ctx = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step():
        with ctx:
            o = wrapped(b)
            loss = o.plan_loss + o.code_loss + o.ctrl_loss + o.halt_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(a.iters):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    dt = (time.perf_counter() - t0) / a.iters
    tokens = int(b.total_len.sum())
    return {"params": count_params(model), "tokens_per_s": tokens / dt, "mfu": flops / dt / peak if peak else None}


def make_data(out: Path, tokens: int, tokenizer: str) -> None:
    """A pretraining token folder (the `gocoder corpus tokenize` format) from GOROOT/src."""
    import random
    import subprocess as sp

    import numpy as np

    from gocoder.check.validate import find_go
    from gocoder.text.tokenizer import Tokenizer

    tok = Tokenizer.load(tokenizer)
    goroot = Path(sp.run([find_go()[0], "env", "GOROOT"], capture_output=True, text=True, check=True).stdout.strip())
    files = sorted(str(f) for f in (goroot / "src").rglob("*.go") if not {"testdata", "vendor"} & set(f.parts))
    random.Random(0).shuffle(files)
    for split, n in (("train", tokens), ("valid", tokens // 20)):
        (out / split).mkdir(parents=True, exist_ok=True)
        ids: list[int] = []
        while len(ids) < n and files:
            texts = [Path(f).read_text(encoding="utf-8", errors="replace") for f in files[:64]]
            del files[:64]
            for e in tok.encode_batch(texts):
                ids += [*e, tok.eos_id]
        np.asarray(ids, dtype=np.uint16).tofile(out / split / "tokens.bin")
    meta = {"kind": "pretrain", "tokenizer_hash": tok.hash, "vocab_size": tok.vocab_size, "dtype": "uint16",
            "eos_id": tok.eos_id, "source": "GOROOT/src sample (bench/train_loop.py --make-data)"}
    (out / "meta.json").write_text(json.dumps(meta) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--data", help="shard folder or pretraining tokens")
    p.add_argument("--make-data", help="write bench data from GOROOT/src to this folder and exit")
    p.add_argument("--tokens", type=int, default=6_000_000, help="with --make-data: training tokens")
    p.add_argument("--tokenizer", default="tokenizer")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--nproc", type=int, default=1, help="GPUs (torchrun); the isolated step runs on one")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--set", action="append", default=[], help="config override, as gocoder train --set")
    p.add_argument("--json", help="write the result here too")
    a = p.parse_args()
    if a.make_data:
        return make_data(Path(a.make_data), a.tokens, a.tokenizer)
    if not (a.config and a.data):
        p.error("--config and --data are required (or --make-data)")
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = peak_flops(dev)
    with tempfile.TemporaryDirectory() as tmp:
        logs = run_loop(a, Path(tmp) / "run")
    after = logs[1:] or logs  # the first interval holds the compile
    res = {"config": a.config, "set": a.set, "nproc": a.nproc, "compile": a.compile, "steps": a.steps,
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "loop_tokens_per_s": sum(r["tokens_per_s"] for r in after) / len(after),
           "loop_mfu": (sum(r["mfu"] for r in after) / len(after)) if after[0].get("mfu") is not None else None,
           "first_step_s": logs[0].get("first_step_s"), "graphs_first_log": logs[0].get("graphs"),
           "graphs_last_log": logs[-1].get("graphs"), "final_loss": logs[-1]["loss"]}
    res["recompiles_after_first_log"] = (res["graphs_last_log"] or 0) - (res["graphs_first_log"] or 0)
    iso = isolated(a, dev, peak)
    res.update(isolated_tokens_per_s_per_gpu=iso["tokens_per_s"], isolated_mfu=iso["mfu"], params=iso["params"])
    res["loop_vs_isolated"] = res["loop_tokens_per_s"] / a.nproc / iso["tokens_per_s"]
    print(json.dumps(res, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
