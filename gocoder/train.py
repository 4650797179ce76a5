"""`gocoder train`: the joint multi-task loop over tokenized shards, with exact resume.

Loss = w_plan * plan + w_code * code + w_ctrl * controller + w_halt * halting (each a masked mean over
the examples still active in a segment, then a mean over segments: gocoder/model.py). AdamW (fused on
CUDA), linear warmup then cosine decay, gradient clipping, gradient accumulation, bf16 autocast on
CUDA, opt-in torch.compile and DDP (torchrun: the same script on 1 or N GPUs), EMA of the weights,
a curriculum of stages switched by step or by a validation metric.

A checkpoint (gocoder/checkpoint.py) holds the weights, the EMA weights, config.json and state.pt
(optimizer, scheduler, RNG, data position, curriculum stage). Resuming from it on CPU with a fixed seed
gives the same losses as a run that never stopped (tests/test_train.py checks it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from gocoder import GocoderError
from gocoder.checkpoint import load_checkpoint, save_checkpoint
from gocoder.config import Config, ModelConfig, to_dict
from gocoder.data import Shard, iter_batches
from gocoder.model import GocoderModel, count_params, train_flops
from gocoder.records import JsonlWriter

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak of the GPU, for MFU; None on CPU or an unknown GPU (MFU is then not reported)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def lr_at(step: int, cfg: Any) -> float:
    """Multiplier of cfg.lr: linear warmup, then cosine down to min_lr_ratio at cfg.steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def prepare_model(model: GocoderModel, cfg: Any, device: torch.device) -> torch.nn.Module:
    """Everything model.py leaves out: device, compile and DDP, applied from outside."""
    model.to(device)
    if device.type == "cuda":
        # cuDNN attention builds a graph per new shape, and packed batches change length every step
        torch.backends.cuda.enable_cudnn_sdp(False)
    wrapped: torch.nn.Module = model
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        ids = [device.index] if device.type == "cuda" else None
        # the model's buffers (initial states, rotary tables) are constants: nothing to broadcast per step
        ddp = torch.nn.parallel.DistributedDataParallel
        new_name = "forward_sync_buffers" in inspect.signature(ddp).parameters  # torch >= 2.13
        wrapped = ddp(wrapped, device_ids=ids, **{"forward_sync_buffers" if new_name else "broadcast_buffers": False})
    if cfg.compile:  # after DDP, so that its optimizer splits graphs at the gradient buckets
        wrapped = torch.compile(wrapped, dynamic=True)
    return wrapped


def _setup_dist(cfg: Any) -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; (0, 1, 0) without DDP."""
    if not cfg.ddp:
        return 0, 1, 0
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except KeyError as e:
        raise GocoderError(f"train.ddp=true needs torchrun's environment ({e.args[0]} is not set)") from None
    backend = cfg.ddp_backend if cfg.ddp_backend != "auto" else ("nccl" if torch.cuda.is_available() else "gloo")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, rank=rank, world_size=world)
    return rank, world, local


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ------------------------------------------------------------------------------------- the loop

def _loss(out: Any, t: Any) -> torch.Tensor:
    return t.w_plan * out.plan_loss + t.w_code * out.code_loss + t.w_ctrl * out.ctrl_loss + t.w_halt * out.halt_loss


@torch.no_grad()
def evaluate(model: GocoderModel, shard: Shard, cfg: Config, device: torch.device, tok: Any = None) -> dict:
    """Validation losses over the first eval_batches batches, and the syntax-valid rate by gocheck
    of greedy samples written from the first eval_samples prompts (when a tokenizer is given)."""
    t, was = cfg.train, model.training
    model.eval()
    sums: dict[str, float] = {"val_plan_loss": 0.0, "val_code_loss": 0.0, "val_ctrl_loss": 0.0, "val_segments": 0.0}
    hist = [0] * cfg.model.segments  # hist[i]: examples that halted after i + 1 segments (gocoder report plots it)
    n = 0
    for i in range(0, min(len(shard), t.eval_batches * t.batch_size), t.batch_size):
        rows = list(range(i, min(i + t.batch_size, len(shard))))
        out = model(shard.batch(rows, cfg.model.max_seq_len, shard.meta["pad_id"]).to(device))
        for k, v in (("plan", out.plan_loss), ("code", out.code_loss), ("ctrl", out.ctrl_loss)):
            sums[f"val_{k}_loss"] += float(v)
        sums["val_segments"] += float(out.segments.mean())
        for s in out.segments.round().long().tolist():
            hist[min(max(s, 1), len(hist)) - 1] += 1
        n += 1
    res: dict[str, Any] = {k: v / max(n, 1) for k, v in sums.items()}
    res["val_segments_hist"] = hist
    if tok is not None and t.eval_samples > 0:
        from gocoder.validate import get_checker

        clean = [i for i in range(len(shard)) if shard.index[i, shard.col["kind"]] == 0][: t.eval_samples]
        codes = greedy_codes(model, shard, clean, tok, cfg.model.max_seq_len, t.eval_max_new, device)
        # an empty answer (no <CODE> block, or nothing in it) is no valid Go, whatever a parser says of ""
        checked = get_checker(cfg.validate).check_many([c for c in codes if c.strip()])
        res["val_syntax_valid"] = sum(r.ok for r in checked) / max(len(codes), 1)
    model.train(was)
    return res


def greedy_codes(model: GocoderModel, shard: Shard, rows: list[int], tok: Any, max_len: int, max_new: int,
                 device: torch.device) -> list[str]:
    """Greedy plan-then-code continuations of the prompts of rows (cut to max_len, as in training),
    decoded to Go ("" when the model never opened a <CODE> block). Written by the KV-cached engine,
    which ends a row at the model's max_seq_len (the callers pass it as max_len) and at the first
    </CODE> (one before any <CODE> ends the row with no code)."""
    from gocoder.engine import Engine, Sampling
    from gocoder.serialize import unescape

    code_open, code_close = tok.token_id("<CODE>"), tok.token_id("</CODE>")
    prompts = []
    for r in rows:
        ids, n = shard.example(r, max_len)[:2]
        prompts.append(ids[:n].tolist())
    done = Engine(model, code_open=code_open, device=device).generate(
        prompts, Sampling(max_new_tokens=max_new, stop=(code_close,)))
    codes = []
    for c in done:
        if code_open not in c.tokens:
            codes.append("")
            continue
        body = c.tokens[c.tokens.index(code_open) + 1:]
        codes.append(unescape(tok.decode(body[:-1] if c.stopped else body)))
    return codes


def train(cfg: Config, *, resume: bool = False, stop_after: int | None = None, progress: bool = False) -> dict:
    """Train cfg.model on the shards in cfg.train.data, writing checkpoints and metrics.jsonl to
    cfg.train.out; resume continues from its latest checkpoint. stop_after ends this run after that
    many optimizer steps (a time-boxed job), checkpointing first. Returns the last metrics."""
    t = cfg.train
    rank, world, local = _setup_dist(t)
    device = torch.device(t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        device = torch.device("cuda", local if world > 1 else (device.index or 0))
        torch.cuda.set_device(device)  # NCCL and the CUDA RNG state act on the current device
    out = Path(t.out)
    shard = Shard(t.data, "train")
    valid = Shard(t.data, "valid") if (Path(t.data) / "valid").is_dir() else None
    from gocoder.tokenizer import Tokenizer

    tok = Tokenizer.load(t.tokenizer)
    if tok.hash != shard.meta["tokenizer_hash"]:
        raise GocoderError(f"{t.data}/meta.json: the shards were tokenized by another tokenizer than {t.tokenizer}")
    mcfg = cfg.model
    if mcfg.vocab_size == 0:
        mcfg = dataclasses.replace(mcfg, vocab_size=int(shard.meta["vocab_size"]))
    if mcfg.n_verdict != shard.meta["n_verdict"]:
        raise GocoderError(f"model.n_verdict={mcfg.n_verdict} but the shards carry {shard.meta['n_verdict']}")
    cfg = dataclasses.replace(cfg, model=mcfg)
    torch.manual_seed(t.seed)
    model = GocoderModel(mcfg)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()} if t.ema_decay > 0 else None
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay}, {"params": other, "weight_decay": 0.0}],
                            lr=t.lr, betas=(0.9, t.beta2), fused=device.type == "cuda")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, t))
    meta = {"config": to_dict(cfg), "model": to_dict(mcfg), "tokenizer_hash": shard.meta["tokenizer_hash"],
            "git_sha": _git_sha(), "params": count_params(model)}
    step, stage, pos, done_flops = 0, 0, {"epoch": 0, "cursor": 0}, 0.0
    done_tokens, done_s = 0.0, 0.0  # totals over all runs of this training (resume continues them)
    if resume:
        ck_meta, weights, ck_ema, st = load_checkpoint(out)
        if ck_meta.get("model") != meta["model"] or ck_meta.get("tokenizer_hash") != meta["tokenizer_hash"]:
            raise GocoderError(f"{out}: the checkpoint's model config or tokenizer differs from this run's")
        model.load_state_dict(weights)
        ema = {k: v.float() for k, v in ck_ema.items()} if (ema is not None and ck_ema is not None) else ema
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        torch.set_rng_state(st["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in st:
            torch.cuda.set_rng_state(st["rng_cuda"], device)
        step, stage, pos, done_flops = st["step"], st["stage"], dict(st["data"]), st["flops"]
        done_tokens, done_s = st.get("tokens", 0.0), st.get("seconds", 0.0)  # absent before they were kept
    wrapped = prepare_model(model, t, device)
    if ema is not None:
        ema = {k: v.to(device) for k, v in ema.items()}
    log = JsonlWriter(out / "metrics.jsonl") if rank == 0 else None
    peak = peak_flops(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def stage_rows(i: int):
        s = t.stages[i]
        rows = shard.eligible(s.max_plan_steps, s.max_tokens)
        if len(rows) < t.batch_size * world:
            raise GocoderError(f"train.stages[{i}] ({s.name}) admits {len(rows)} examples: too few for a batch")
        return rows

    batches = iter_batches(shard, stage_rows(stage), t.batch_size, t.seed + stage, pos, rank, world)
    last: dict[str, Any] = {}
    bar = _progress(progress and rank == 0, t.steps, step)
    start_step = step
    loop_t = time.perf_counter()

    def train_s() -> float:  # wall seconds of the loop (steps, evaluations, checkpoints), over all runs
        return done_s + time.perf_counter() - loop_t

    try:
        while step < t.steps and (stop_after is None or step - start_step < stop_after):
            t0 = time.perf_counter()
            wrapped.train()
            acc: dict[str, float] = {"plan_loss": 0.0, "code_loss": 0.0, "ctrl_loss": 0.0, "halt_loss": 0.0,
                                     "loss": 0.0, "halt_segments": 0.0}
            tokens = flops = 0.0
            for micro in range(t.grad_accum):
                b = shard.batch(next(batches), mcfg.max_seq_len, shard.meta["pad_id"]).to(device)
                sync = micro == t.grad_accum - 1 or not hasattr(wrapped, "no_sync")
                with (contextlib.nullcontext() if sync else wrapped.no_sync()), autocast:
                    o = wrapped(b)
                    loss = _loss(o, t)
                (loss / t.grad_accum).backward()
                for k in ("plan_loss", "code_loss", "ctrl_loss", "halt_loss"):
                    acc[k] += float(getattr(o, k).detach()) / t.grad_accum
                acc["loss"] += float(loss.detach()) / t.grad_accum
                acc["halt_segments"] += float(o.segments.mean()) / t.grad_accum
                tot, code = b.total_len.tolist(), b.code_len.tolist()
                tokens += sum(tot)
                flops += sum(train_flops(mcfg, n, c, float(s)) for n, c, s in zip(tot, code, o.segments.tolist(),
                                                                                       strict=True))
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            if ema is not None:
                with torch.no_grad():
                    for k, v in model.state_dict().items():
                        ema[k].mul_(t.ema_decay).add_(v.float(), alpha=1 - t.ema_decay)
            step += 1
            done_flops += flops * world
            done_tokens += tokens * world
            dt = time.perf_counter() - t0
            last = dict(acc, step=step, lr=sched.get_last_lr()[0], grad_norm=gnorm, stage=t.stages[stage].name,
                        tokens_per_s=tokens * world / dt, mfu=(flops / dt / peak) if peak else None,
                        flops=done_flops, tokens=done_tokens, train_s=train_s())
            if log is not None and (step % t.log_every == 0 or step == t.steps):
                log.write(dict(last, id=f"train-{step}"))
            if valid is not None and t.eval_every and step % t.eval_every == 0:
                move = torch.zeros(1, device=device)
                if rank == 0:
                    ev = evaluate(_ema_model(model, ema, mcfg, device), valid, cfg, device, tok)
                    last.update(ev)
                    log.write(dict(ev, id=f"eval-{step}", step=step))
                    s = t.stages[stage]
                    move += bool(s.until_metric) and ev.get(s.until_metric, math.inf) < s.until_below
                if world > 1:  # rank 0 decides, so every rank reads the same stage's data
                    torch.distributed.broadcast(move, 0)
                if move.item() and stage + 1 < len(t.stages):
                    stage = _advance(stage, t, pos)
                    batches = iter_batches(shard, stage_rows(stage), t.batch_size, t.seed + stage, pos, rank, world)
            if t.stages[stage].until_step and step >= t.stages[stage].until_step and stage + 1 < len(t.stages):
                stage = _advance(stage, t, pos)
                batches = iter_batches(shard, stage_rows(stage), t.batch_size, t.seed + stage, pos, rank, world)
            if rank == 0 and (step % t.ckpt_every == 0 or step == t.steps):
                _save(out, step, model, ema, opt, sched, pos, stage, meta, done_flops, done_tokens, train_s())
            bar(step, last)
            if t.time_limit_s and time.perf_counter() - loop_t >= t.time_limit_s:
                break  # a time-boxed job (a rented GPU): the checkpoint below keeps what was learned
    except KeyboardInterrupt:
        if rank == 0:  # what was learned is kept: resume goes on from here
            _save(out, step, model, ema, opt, sched, pos, stage, meta, done_flops, done_tokens, train_s())
        raise
    finally:
        bar(None, None)
        if log is not None:
            log.close()
        if t.ddp and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if rank == 0 and step % t.ckpt_every and step != t.steps:
        _save(out, step, model, ema, opt, sched, pos, stage, meta, done_flops, done_tokens, train_s())
    return last


def _advance(stage: int, t: Any, pos: dict[str, int]) -> int:
    """The next curriculum stage starts its own epochs from the beginning."""
    pos["epoch"], pos["cursor"] = 0, 0
    return stage + 1


def _save(out, step, model, ema, opt, sched, pos, stage, meta, done_flops, tokens=0.0, seconds=0.0) -> None:
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng_cpu": torch.get_rng_state(),
             "step": step, "stage": stage, "data": dict(pos), "flops": done_flops, "tokens": tokens,
             "seconds": seconds}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # HRM's exploration draws on the GPU
        state["rng_cuda"] = torch.cuda.get_rng_state()
    save_checkpoint(out, step, model, ema, state, meta, tokenizer=meta["config"]["train"]["tokenizer"])


def _ema_model(model: GocoderModel, ema: dict | None, mcfg: ModelConfig, device: torch.device) -> GocoderModel:
    """The model to evaluate: a copy holding the EMA weights (TRM evaluates with them), else the model."""
    if ema is None:
        return model
    m = GocoderModel(mcfg).to(device)
    m.load_state_dict({k: v.to(m.state_dict()[k].dtype) for k, v in ema.items()})
    return m


def _progress(on: bool, total: int, done: int):
    """A rich progress bar on stderr (a TTY only): call it with (step, metrics), then (None, None)."""
    if not on:
        return lambda *a: None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return lambda *a: None
    p = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                 TextColumn("{task.fields[info]}"), console=console)
    task = p.add_task("train", total=total, completed=done, info="")
    p.start()

    def update(step, m):
        if step is None:
            p.stop()
            return
        p.update(task, completed=step, info=f"loss {m['loss']:.3f} code {m['code_loss']:.3f} "
                                             f"{m['tokens_per_s']:.0f} tok/s")

    return update
