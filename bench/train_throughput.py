"""Training throughput and quality of gocoder's models, each against its peer measured in the same run.

Parts (--parts, comma-separated; all by default):
  gpt2       the GPT baseline vs transformers' GPT2LMHeadModel of the same shape (layers, width, heads,
             vocab, sequence length, batch): train-step tokens/s, their ratio (target >= 1.0) and MFU
  recursive  the recursive model at 10M / 30M / 100M parameters (configs/recursive-*.toml): tokens/s, MFU,
             next to the GPT baseline of the same parameter count
  quality    needs --data: the recursive model and the GPT baseline (same parameters) trained on the same
             shards, the GPT for the same training FLOPs; validation code loss and the syntax-valid rate
             (gocheck) of greedy samples
  halting    needs --data (uses the recursive model trained by `quality`): on a validation batch of mixed
             difficulty, per-sample halting (halted rows leave the batch) vs batch-wise halting (every row
             runs until the last one halts), at equal answers: rows processed and train-step time

Example (GPU):  python bench/train_throughput.py --data data/shards --tokenizer tokenizer
Example (CPU check that everything runs end to end):  python bench/train_throughput.py --tiny --data D --tokenizer T
MFU counts matmul FLOPs (PaLM's convention, attention scores in full) against the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from gocoder.config import load_config
from gocoder.model.model import Batch, GocoderModel, count_params, train_flops
from gocoder.training.train import peak_flops

ROOT = Path(__file__).resolve().parent.parent


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(step, dev: torch.device, warmup: int, iters: int) -> float:
    """Seconds per call of step(), after warmup calls."""
    for _ in range(warmup):
        step()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync(dev)
    return (time.perf_counter() - t0) / iters


def autocast(dev: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()


def random_batch(B: int, T: int, V: int, dev: torch.device, n_verdict: int = 6) -> Batch:
    """B examples of T tokens: a quarter prompt, an eighth plan, the rest code (the shape of real PRs)."""
    P, Q = T // 4, T // 8
    tok = torch.randint(4, V, (B, T), device=dev)
    full = lambda v: torch.full((B,), v, device=dev)  # noqa: E731
    return Batch(tok, full(P), full(Q), full(T - P - Q), full(1.0), full(2), torch.zeros(B, n_verdict, device=dev))


def opt_for(model: torch.nn.Module, dev: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev.type == "cuda")


def ours_step(model, opt, batch, dev):
    def step():
        with autocast(dev):
            o = model(batch)
            loss = 0.4 * o.plan_loss + 0.4 * o.code_loss + 0.2 * o.ctrl_loss + o.halt_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return step


# ------------------------------------------------------------------------------------------ parts

def part_gpt2(a, dev, peak) -> dict:
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        print("gpt2: transformers is not installed: part skipped", file=sys.stderr)
        return {"skipped": "transformers is not installed"}

    L, d, h, V, T, B = a.gpt_shape
    cfg = dataclasses.replace(load_config().model, type="gpt", gpt_layers=L, d_model=d, n_heads=h, vocab_size=V,
                              max_seq_len=T, mlp_mult=8 / 3)  # SwiGLU at 8/3 d: GPT-2's 4d MLP's parameters
    torch.manual_seed(0)
    ours = GocoderModel(cfg).to(dev)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=L, n_embd=d, n_head=h, vocab_size=V, n_positions=T, resid_pdrop=0.0,
                                    embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
                                    attn_implementation="sdpa")).to(dev)
    if a.compile:
        ours, hf = torch.compile(ours), torch.compile(hf)
    batch = random_batch(B, T, V, dev)
    ids = batch.tokens
    o1, o2 = opt_for(ours, dev), opt_for(hf, dev)

    def hf_step():
        with autocast(dev):
            loss = hf(input_ids=ids, labels=ids).loss
        loss.backward()
        o2.step()
        o2.zero_grad(set_to_none=True)

    flops = B * train_flops(cfg, T, T - T // 4 - T // 8)  # the same shape: the same FLOPs for both
    res = {"shape": dict(layers=L, d_model=d, heads=h, vocab=V, seq=T, batch=B),
           "params_ours": count_params(ours), "params_gpt2": count_params(hf)}
    for name, fn in (("ours", ours_step(ours, o1, batch, dev)), ("gpt2", hf_step)):
        dt = timed(fn, dev, a.warmup, a.iters)
        res[f"{name}_tokens_per_s"] = B * T / dt
        res[f"{name}_mfu"] = flops / dt / peak if peak else None
    res["ratio"] = res["ours_tokens_per_s"] / res["gpt2_tokens_per_s"]
    print(f"gpt2: ours {res['ours_tokens_per_s']:.0f} tok/s vs GPT2LMHeadModel {res['gpt2_tokens_per_s']:.0f} tok/s: "
          f"ratio {res['ratio']:.3f}; MFU {res['ours_mfu']} vs {res['gpt2_mfu']}", file=sys.stderr)
    return res


def part_recursive(a, dev, peak) -> dict:
    out = {}
    for size in a.sizes:
        base = load_config(ROOT / "configs" / f"recursive-{size}.toml").model
        base = dataclasses.replace(base, vocab_size=a.vocab, **({"d_model": 64, "n_heads": 4, "planner_layers": 1,
                                                                "generator_layers": 1} if a.tiny else {}))
        row = {}
        for kind in ("recursive", "gpt"):
            cfg = dataclasses.replace(base, type=kind)
            torch.manual_seed(0)
            model = GocoderModel(cfg).to(dev)
            if a.compile:
                model = torch.compile(model, dynamic=True)
            batch = random_batch(a.batch, a.seq, a.vocab, dev, cfg.n_verdict)
            dt = timed(ours_step(model, opt_for(model, dev), batch, dev), dev, a.warmup, a.iters)
            # an untrained halting head (bias -5) halts nothing: every example runs all segments
            flops = a.batch * train_flops(cfg, a.seq, a.seq - a.seq // 4 - a.seq // 8, cfg.segments if kind ==
                                          "recursive" else 1)
            row[kind] = {"params": count_params(model), "tokens_per_s": a.batch * a.seq / dt,
                         "mfu": flops / dt / peak if peak else None, "step_s": dt}
            del model
        out[size] = row
        print(f"recursive {size}: {row['recursive']['params'] / 1e6:.1f}M params, "
              f"{row['recursive']['tokens_per_s']:.0f} tok/s, MFU {row['recursive']['mfu']}; GPT of the same size "
              f"{row['gpt']['tokens_per_s']:.0f} tok/s", file=sys.stderr)
    return out


def part_quality(a, dev, work: Path) -> dict:
    """Train both models on the same shards; the GPT gets the recursive run's FLOPs. Returns metrics and
    the recursive run's folder (for the halting part)."""
    from gocoder.model.checkpoint import load_model
    from gocoder.text.tokenizer import Tokenizer
    from gocoder.training.data import Shard
    from gocoder.training.train import evaluate, train

    def ema(steps: int) -> str:
        # an EMA horizon of a tenth of the run: the shipped 0.999 suits 20k steps, but after a few hundred
        # it would still hold ~half the initial weights and both models would be judged by a blur
        return f"train.ema_decay={max(0.0, 1 - 10 / steps):.6f}"

    sets = [f"train.data={a.data}", f"train.tokenizer={a.tokenizer}", "train.eval_every=0",
            f"train.device={dev.type}"] + ([] if a.keep_stages else ['train.stages=[{name="all"}]'])
    cfg_path = a.quality_config or ROOT / "configs" / ("tiny.toml" if a.tiny else f"recursive-{a.quality_size}.toml")
    rec_cfg = load_config(cfg_path, sets + [f"train.steps={a.quality_steps}", ema(a.quality_steps), *a.set,
                                            f"train.out={work / 'recursive'}"])
    t0 = time.perf_counter()
    rec = train(rec_cfg)
    rec_s = time.perf_counter() - t0
    shard = Shard(a.data, "train")
    # the GPT's FLOPs per example, from the examples the run drew: each curriculum stage's rows, weighted
    # by the steps the recursive run spent in that stage
    gpt_model = dataclasses.replace(rec_cfg.model, type="gpt", vocab_size=shard.meta["vocab_size"])
    per_ex, begin = 0.0, 0
    for st in rec_cfg.train.stages:
        end = min(st.until_step or rec["step"], rec["step"])
        if end <= begin:
            continue
        rows = shard.eligible(st.max_plan_steps, st.max_tokens)
        rows = rows[:: max(1, len(rows) // 4096)]
        lens = shard.lengths()[rows].clip(max=rec_cfg.model.max_seq_len)
        code = shard.index[rows, shard.col["code"]].clip(max=lens)
        mean = sum(train_flops(gpt_model, int(t), int(c)) for t, c in zip(lens, code, strict=True)) / len(rows)
        per_ex += mean * (end - begin) / rec["step"]
        begin = end
    gpt_steps = max(1, math.ceil(rec["flops"] / (per_ex * rec_cfg.train.batch_size * rec_cfg.train.grad_accum)))
    gpt_cfg = load_config(cfg_path, sets + [ema(gpt_steps), *a.set, f"train.out={work / 'gpt'}", 'model.type="gpt"',
                                            f"train.steps={gpt_steps}"])
    t0 = time.perf_counter()
    gpt = train(gpt_cfg)
    gpt_s = time.perf_counter() - t0
    tok = Tokenizer.load(a.tokenizer)
    valid = Shard(a.data, "valid")
    res = {}
    for name, run, cfg, secs in (("recursive", rec, rec_cfg, rec_s), ("gpt", gpt, gpt_cfg, gpt_s)):
        model, meta = load_model(work / name)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=meta["model"]["vocab_size"]),
                                  train=dataclasses.replace(cfg.train, eval_batches=a.eval_batches,
                                                            eval_samples=a.eval_samples))
        ev = evaluate(model.to(dev), valid, cfg, dev, tok)
        res[name] = dict(ev, params=meta["params"], steps=run["step"], train_flops=run["flops"], train_s=secs,
                         final_train_code_loss=run["code_loss"])
        if a.export:  # the model for inference (EMA, bf16) and its training log, kept past the temporary folder
            from gocoder.model.checkpoint import export_model

            export_model(work / name, Path(a.export) / name, tokenizer=False)
            shutil.copyfile(work / name / "metrics.jsonl", Path(a.export) / name / "metrics.jsonl")
        print(f"quality {name}: {meta['params'] / 1e6:.2f}M params, {run['step']} steps, {run['flops']:.3g} FLOPs: "
              f"val code loss {ev['val_code_loss']:.4f}, syntax-valid {ev.get('val_syntax_valid')}", file=sys.stderr)
    return res


def part_halting(a, dev, work: Path) -> dict:
    """Both weight sets of the quality run's recursive model: the EMA (what `quality` evaluates) and the
    raw weights (what made training's halting decisions; the EMA's halting head lags behind them)."""
    return {name: _halting(a, dev, work, ema) for name, ema in (("ema", True), ("raw", False))}


def _halting(a, dev, work: Path, use_ema: bool) -> dict:
    from gocoder.model.checkpoint import load_model
    from gocoder.training.data import Shard

    model, meta = load_model(work / "recursive", use_ema=use_ema)
    model.to(dev).train()  # train mode: the halting of a training step (BCE: no exploration)
    valid = Shard(a.data, "valid")
    rows = list(range(min(len(valid), a.halting_batch)))
    batch = valid.batch(rows, model.cfg.max_seq_len, valid.meta["pad_id"]).to(dev)
    with torch.no_grad():
        seg = model(batch).segments  # [B] segments each example ran
    per_sample_rows, batchwise_rows = float(seg.sum()), float(seg.max()) * len(rows)
    # batch-wise halting: every row runs until the last one halts (the halted rows' answers are kept
    # from their own halting segment, so the answers, and the accuracy, are the same)
    flat = GocoderModel(dataclasses.replace(model.cfg, halting="none", segments=int(seg.max()))).to(dev).train()
    flat.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("controller.halt")},
                         strict=False)

    def step(m):
        def run():
            with autocast(dev):
                o = m(batch)
                (o.plan_loss + o.code_loss + o.ctrl_loss + o.halt_loss).backward()
            m.zero_grad(set_to_none=True)
        return run

    t_per = timed(step(model), dev, a.warmup, a.iters)
    t_flat = timed(step(flat), dev, a.warmup, a.iters)
    res = {"batch": len(rows), "segments_hist": torch.bincount(seg.long()).tolist(),
           "rows_per_sample": per_sample_rows, "rows_batchwise": batchwise_rows,
           "rows_saved": 1 - per_sample_rows / batchwise_rows, "step_s_per_sample": t_per, "step_s_batchwise": t_flat,
           "time_saved": 1 - t_per / t_flat}
    print(f"halting ({'EMA' if use_ema else 'raw'} weights): {res['rows_saved']:.1%} rows and {res['time_saved']:.1%} "
          f"step time saved (examples per segment count {res['segments_hist']})", file=sys.stderr)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="gpt2,recursive,quality,halting", help="which parts to run")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: checks on CPU that every part runs")
    ap.add_argument("--data", help="shard folder (gocoder shards) for the quality and halting parts")
    ap.add_argument("--tokenizer", default="tokenizer", help="the shards' tokenizer")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models of each comparison")
    ap.add_argument("--quality-size", default="10m", help="configs/recursive-SIZE.toml for the quality part")
    ap.add_argument("--quality-config", help="config file for the quality runs (overrides --quality-size)")
    ap.add_argument("--quality-steps", type=int, default=2000, help="optimizer steps of the recursive run")
    ap.add_argument("--eval-samples", type=int, default=64, help="greedy samples checked by gocheck per model")
    ap.add_argument("--eval-batches", type=int, default=16, help="validation batches for the code loss")
    ap.add_argument("--halting-batch", type=int, default=64, help="validation examples in the halting batch")
    ap.add_argument("--set", action="append", default=[], help="config override for the quality runs (a.b=v)")
    ap.add_argument("--out", default="", help="also write the results as JSON here")
    ap.add_argument("--work", default="", help="quality: keep the training runs here (default: a temporary folder)")
    ap.add_argument("--keep-stages", action="store_true", help="quality: keep the config's curriculum stages")
    ap.add_argument("--export", default="", help="quality: export both trained models (bf16 EMA) under this folder")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = peak_flops(dev)
    if a.tiny:
        a.gpt_shape, a.sizes, a.vocab, a.seq, a.batch = (2, 64, 4, 512, 64, 2), ["10m"], 512, 64, 2
        a.warmup, a.iters = 1, 2
        a.quality_steps, a.eval_samples, a.eval_batches, a.halting_batch = min(a.quality_steps, 4), 2, 1, 4
        a.set = a.set + ["generate.max_new_tokens=16", "train.ckpt_every=1000"]
    else:
        a.gpt_shape, a.sizes, a.vocab, a.seq, a.batch, a.warmup, a.iters = (12, 768, 12, 16000, 1024, 16), \
            ["10m", "30m", "100m"], 16000, 1024, 16, 3, 10
    parts = a.parts.split(",")
    res: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "peak_flops": peak, "torch": torch.__version__, "compile": a.compile, "tiny": a.tiny}

    def save() -> None:  # after every part: a run cut off by a time limit keeps what it measured
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(res, indent=2) + "\n")

    if "gpt2" in parts:
        res["gpt2"] = part_gpt2(a, dev, peak)
        save()
    if "recursive" in parts:
        res["recursive"] = part_recursive(a, dev, peak)
        save()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(a.work or tmp)
        if ("quality" in parts or "halting" in parts) and not a.data:
            print("quality and halting need --data (a shard folder): skipped", file=sys.stderr)
        elif "quality" in parts or "halting" in parts:
            res["quality"] = part_quality(a, dev, work)
            save()
            if "halting" in parts:
                res["halting"] = part_halting(a, dev, work)
                save()
    print(json.dumps(res, indent=2))

if __name__ == "__main__":
    main()
