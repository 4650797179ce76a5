"""`gocoder train`: the joint multi-task loop over tokenized shards, with exact resume.

Over ~400 lines on purpose: everything here serves the one loop and is read with it (the state,
the step, the prefetcher, the evaluation it logs, the run); golf.py, the benchmarks and the tests
import its pieces from here.

Loss = w_plan * plan + w_code * code + w_ctrl * controller + w_halt * halting (each a masked mean
over the examples still active in a segment, then a mean over segments: gocoder/model/model.py).
AdamW (fused on CUDA), or Muon on the hidden matrices with AdamW on the rest (`train.optimizer`),
linear warmup then cosine decay or a constant rate and a linear cool-down (`train.cooldown`), over
the steps or over a wall-time budget (`train.schedule = "time"`: gocoder golf), gradient clipping,
gradient accumulation, bf16 autocast on CUDA, opt-in torch.compile and DDP (torchrun: the same
script on 1 or N GPUs), EMA of the weights, quantization-aware training (train.qat_bits:
gocoder/model/quant.py's fake quantization, parametrized onto the matrices from outside), a
curriculum of stages switched by step or by a validation metric, each stage reading its own data
(record shards, or pretraining tokens packed into fixed rows).

The loop is a state plus a step, as HRM's and TRM's are (`TrainState`, `train_step`): the step
reads no host value (losses, grad norm and FLOPs stay on the device until the log interval,
when one `.tolist()` reads them), so a compiled model settles into one graph per batch shape;
batches are built ahead on a thread (`Prefetcher`), pinned, and copied without blocking; the
EMA is one fused `_foreach_lerp_`.
`train()` is a short loop over a `Run`, whose methods are the rest: setup and resume, logging,
evaluation, the curriculum's stages, checkpoints, the wall-time budget and the stop signals.

A checkpoint (gocoder/model/checkpoint.py) holds the weights, the EMA weights, config.json and
state.pt (optimizer, scheduler, RNG, data position, curriculum stage). Resuming from it on CPU with
a fixed seed gives the same losses as a run that never stopped (tests/test_train.py checks it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gocoder import GocoderError
from gocoder.config import Config, ModelConfig, to_dict
from gocoder.fsio import output_lock
from gocoder.model.checkpoint import checkpoint_dir, float_weights, load_checkpoint, save_checkpoint
from gocoder.model.model import GocoderModel, count_params, train_flops
from gocoder.model.quant import add_fake_quant, dequantize, quantize, set_fake_quant
from gocoder.records import JsonlWriter
from gocoder.training.data import Shard, iter_batches, open_shard

PEAK_BF16 = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "4090": 165e12,
}


def peak_flops(device: torch.device) -> float | None:
    """Dense bf16 peak of the GPU, for MFU; None on CPU or an unknown
    GPU (MFU is then not reported)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def train_device(name: str) -> torch.device:
    """train.device as a torch device: "auto" is cuda when torch sees a GPU, else cpu."""
    return torch.device(
        name if name != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )


def lr_at(step: int, cfg: Any, elapsed_s: float = 0.0) -> float:
    """Multiplier of cfg.lr: linear warmup, then down to min_lr_ratio at the schedule's end,
    which is cfg.steps, or with cfg.schedule = "time" cfg.time_limit_s of training (elapsed_s so
    far). The decay is a cosine over the whole schedule (cooldown 1), or constant and then linear
    over its last `cooldown` share (the warm-up/stable/decay schedule of modded-nanogpt's and
    parameter-golf's fixed budgets)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    t = schedule_progress(step, cfg, elapsed_s)
    if cfg.cooldown >= 1.0:
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    down = min(1.0, max(0.0, (t - (1 - cfg.cooldown)) / cfg.cooldown))
    return 1.0 - (1 - cfg.min_lr_ratio) * down


def schedule_progress(step: int, cfg: Any, elapsed_s: float = 0.0) -> float:
    """The share of the schedule done, in [0, 1]: by steps after the warm-up, or by wall time."""
    if cfg.schedule == "time" and cfg.time_limit_s > 0:
        return min(1.0, elapsed_s / cfg.time_limit_s)
    return min(1.0, max(0, step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))


def muon_params(model: torch.nn.Module) -> set[str]:
    """The hidden matrices Muon updates: every 2-D weight but the token embedding (tied to the
    output head) and small heads (a side under 32: the controller's verdict and decision), as
    Keller Jordan's Muon and Moonlight leave embeddings, heads and vectors to AdamW."""
    return {
        n
        for n, p in model.named_parameters()
        if p.dim() == 2 and n != "embed.weight" and min(p.shape) >= 32
    }


def build_optimizers(
    model: torch.nn.Module, t: Any, device: torch.device
) -> list[torch.optim.Optimizer]:
    """AdamW over every parameter (weight decay on the matrices only), or, with
    train.optimizer = "muon", torch.optim.Muon over the hidden matrices (Moonlight's
    AdamW-matched update size, so train.lr and train.weight_decay keep their meaning) and
    AdamW over the rest. One schedule drives them all."""
    hidden = muon_params(model) if t.optimizer == "muon" else set()
    named = [(n, p) for n, p in model.named_parameters() if n not in hidden]
    decay = [p for n, p in named if p.dim() >= 2]
    other = [p for n, p in named if p.dim() < 2]
    opts: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": t.weight_decay},
                {"params": other, "weight_decay": 0.0},
            ],
            lr=t.lr,
            betas=(0.9, t.beta2),
            fused=device.type == "cuda",
        )
    ]
    if hidden:
        if not hasattr(torch.optim, "Muon"):
            raise GocoderError(
                'train.optimizer = "muon" needs torch >= 2.9 (torch.optim.Muon): '
                f"{torch.__version__}"
            )
        mats = [p for n, p in model.named_parameters() if n in hidden]
        opts.append(
            torch.optim.Muon(
                mats, lr=t.lr, weight_decay=t.weight_decay, adjust_lr_fn="match_rms_adamw"
            )
        )
    return opts


def prepare_model(model: GocoderModel, cfg: Any, device: torch.device) -> torch.nn.Module:
    """Everything model.py leaves out: device, quantization-aware training, compile and DDP,
    applied from outside. QAT (train.qat_bits) parametrizes every matrix with export's quantizer,
    switched on; the loop switches it off before train.qat_start
    (gocoder.model.quant.set_fake_quant)."""
    model.to(device)
    if cfg.qat_bits:  # before DDP and compile, which then see the parametrized weights
        add_fake_quant(model, cfg.qat_bits, cfg.qat_group, cfg.qat_embed_bits)
    model._rope(model.cfg.max_seq_len, device)  # the rotary tables exist before any graph is traced
    if device.type == "cuda" and not cfg.compile:
        # eager cuDNN attention builds a graph per new shape, and record batches change length
        torch.backends.cuda.enable_cudnn_sdp(False)
    wrapped: torch.nn.Module = model
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        ids = [device.index] if device.type == "cuda" else None
        # the model's buffers (initial states, rotary tables) are
        # constants: nothing to broadcast per step
        ddp = torch.nn.parallel.DistributedDataParallel
        new_name = "forward_sync_buffers" in inspect.signature(ddp).parameters  # torch >= 2.13
        wrapped = ddp(
            wrapped,
            device_ids=ids,
            **{"forward_sync_buffers" if new_name else "broadcast_buffers": False},
        )
    if cfg.compile:  # after DDP, so that its optimizer splits graphs at the gradient buckets
        if device.type == "cuda":
            # packed rows: a fused kernel that skips the other files' blocks
            model.attn_impl = "flex"
        # pretraining rows have one shape; record batches a few (train.bucket), and the
        # recursive model's halted rows leave the batch: dynamo marks a dimension
        # dynamic once it has seen it change
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
        if model.cfg.type == "gpt":
            wrapped = torch.compile(wrapped)
        else:
            # the segment is the region: one graph for all segments (the segment loop stays Python)
            model.compile_regions()
    return wrapped


def _setup_dist(cfg: Any) -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; (0, 1, 0) without DDP."""
    if not cfg.ddp:
        return 0, 1, 0
    try:
        rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except KeyError as e:
        raise GocoderError(
            f"train.ddp=true needs torchrun's environment ({e.args[0]} is not set)"
        ) from None
    backend = (
        cfg.ddp_backend
        if cfg.ddp_backend != "auto"
        else ("nccl" if torch.cuda.is_available() else "gloo")
    )
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, rank=rank, world_size=world)
    return rank, world, local


def _git_sha() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ------------------------------------------------------------------------------------- the loop

def _loss(out: Any, t: Any, b: Any) -> torch.Tensor:
    """The weighted sum of the record losses; a pretraining row (packed files: b.doc) is one
    text, whose loss is the mean over all its T - 1 predicted tokens. (Weighted as a record, the
    row's one "plan" token, the second of the row, weighed as much as its T - 2 code tokens
    together: half of every step's gradient went to predicting 64 tokens a batch.)"""
    if b.doc is not None:
        T = b.tokens.shape[1]
        return (out.plan_loss + (T - 2) * out.code_loss) / (T - 1)
    return (
        t.w_plan * out.plan_loss
        + t.w_code * out.code_loss
        + t.w_ctrl * out.ctrl_loss
        + t.w_halt * out.halt_loss
    )


@torch.no_grad()
def evaluate(
    model: GocoderModel, shard: Any, cfg: Config, device: torch.device, tok: Any = None
) -> dict:
    """Validation losses over the first eval_batches batches, and (record shards, a
    tokenizer given) the syntax-valid rate by gocheck of greedy samples written from
    the first eval_samples prompts."""
    t, was = cfg.train, model.training
    model.eval()
    # plan, code, ctrl losses, mean segments: read once at the end
    sums = torch.zeros(4, device=device)
    segs = []
    n = 0
    for i in range(0, min(len(shard), t.eval_batches * t.batch_size), t.batch_size):
        rows = list(range(i, min(i + t.batch_size, len(shard))))
        out = model(
            shard.batch(rows, cfg.model.max_seq_len, shard.meta["pad_id"], t.bucket).to(device)
        )
        sums += torch.stack(
            [out.plan_loss, out.code_loss, out.ctrl_loss, out.segments.mean()]
        ).float()
        segs.append(out.segments)
        n += 1
    vals = (sums / max(n, 1)).tolist()
    names = ("val_plan_loss", "val_code_loss", "val_ctrl_loss", "val_segments")
    res: dict[str, Any] = dict(zip(names, vals, strict=True))
    # hist[i]: examples that halted after i + 1 segments (gocoder report plots it)
    hist = [0] * cfg.model.segments
    for s in torch.cat(segs).round().long().tolist() if segs else ():
        hist[min(max(s, 1), len(hist)) - 1] += 1
    res["val_segments_hist"] = hist
    if tok is not None and t.eval_samples > 0 and shard.kind == "records":
        from gocoder.check.validate import get_checker

        clean = [i for i in range(len(shard)) if shard.index[i, shard.col["kind"]] == 0][
            : t.eval_samples
        ]
        codes = greedy_codes(
            model, shard, clean, tok, cfg.model.max_seq_len, cfg.generate.max_new_tokens, device
        )
        # an empty answer (no <CODE> block, or nothing in it) is no valid
        # Go, whatever a parser says of ""
        checked = get_checker(cfg.validate).check_many([c for c in codes if c.strip()])
        res["val_syntax_valid"] = sum(r.ok for r in checked) / max(len(codes), 1)
    model.train(was)
    return res


def greedy_codes(
    model: GocoderModel,
    shard: Shard,
    rows: list[int],
    tok: Any,
    max_len: int,
    max_new: int,
    device: torch.device,
) -> list[str]:
    """Greedy plan-then-code continuations of the prompts of rows (cut to max_len, as in training),
    decoded to Go ("" when the model never opened a <CODE> block). Written by the KV-cached engine,
    which ends a row at the model's max_seq_len (the callers pass it as max_len) and at the first
    </CODE> (one before any <CODE> ends the row with no code)."""
    from gocoder.inference.engine import Engine, Sampling
    from gocoder.text.serialize import unescape

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


@dataclasses.dataclass
class TrainState:
    """What a checkpoint holds, as HRM's and TRM's TrainState: the model, its EMA, the
    optimizer and the schedule, and where the run stands (step, curriculum stage, data
    position, totals over all runs)."""

    model: GocoderModel
    opts: list[torch.optim.Optimizer]
    scheds: list[torch.optim.lr_scheduler.LambdaLR]
    ema: dict[str, torch.Tensor] | None
    step: int = 0
    stage: int = 0
    pos: dict[str, int] = dataclasses.field(default_factory=lambda: {"epoch": 0, "cursor": 0})
    flops: float = 0.0
    tokens: float = 0.0
    seconds: float = 0.0
    # (EMA tensors, the live weights they follow): the weights as detached
    # views, gathered once, not per step
    _ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = dataclasses.field(
        default=None, repr=False
    )

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema += (1 - decay) * (w - ema), one fused lerp over every tensor."""
        if self._ema_pairs is None:
            # fp32 parameters and buffers: views of the weights, no copies
            live = self.model.state_dict()
            self._ema_pairs = ([self.ema[k] for k in live], list(live.values()))
        torch._foreach_lerp_(*self._ema_pairs, 1 - decay)

    def state_dict(self) -> dict[str, Any]:
        st = {
            "optimizer": [o.state_dict() for o in self.opts],
            "scheduler": [s.state_dict() for s in self.scheds],
            "rng_cpu": torch.get_rng_state(),
            "step": self.step,
            "stage": self.stage,
            "data": dict(self.pos),
            "flops": self.flops,
            "tokens": self.tokens,
            "seconds": self.seconds,
        }
        # HRM's exploration draws on the GPU
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            st["rng_cuda"] = torch.cuda.get_rng_state()
        return st

    def load_state_dict(self, st: dict[str, Any], device: torch.device) -> None:
        opts, scheds = st["optimizer"], st["scheduler"]
        if isinstance(opts, dict):  # written before train.optimizer existed: one AdamW
            opts, scheds = [opts], [scheds]
        if len(opts) != len(self.opts):
            raise GocoderError(
                f"the checkpoint holds {len(opts)} optimizer(s), this run's train.optimizer "
                f"builds {len(self.opts)}: resume with the optimizer it was trained with"
            )
        for o, s in zip(self.opts, opts, strict=True):
            o.load_state_dict(s)
        for o, s in zip(self.scheds, scheds, strict=True):
            o.load_state_dict(s)
        torch.set_rng_state(st["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in st:
            torch.cuda.set_rng_state(st["rng_cuda"], device)
        self.step, self.stage, self.pos, self.flops = (
            st["step"],
            st["stage"],
            dict(st["data"]),
            st["flops"],
        )
        # absent before they were kept
        self.tokens, self.seconds = st.get("tokens", 0.0), st.get("seconds", 0.0)


def train_step(
    state: TrainState,
    wrapped: torch.nn.Module,
    micro: list[tuple[Any, torch.Tensor]],
    t: Any,
    autocast: Any,
) -> torch.Tensor:
    """One optimizer step over grad_accum micro-batches ((batch, per-segment FLOPs per example),
    on the device). Touches no host value: returns, on the device, [plan, code, ctrl, halt, loss,
    segments, grad norm, FLOPs] for the loop to read at its log interval."""
    acc = None  # [plan, code, ctrl, halt, loss, segments, FLOPs], summed over the micro-batches
    for i, (b, f) in enumerate(micro):
        sync = i == len(micro) - 1 or not hasattr(wrapped, "no_sync")
        with (contextlib.nullcontext() if sync else wrapped.no_sync()), autocast:
            o = wrapped(b)
            loss = _loss(o, t, b)
        (loss / len(micro)).backward()
        parts = (
            torch.stack(
                [
                    o.plan_loss,
                    o.code_loss,
                    o.ctrl_loss,
                    o.halt_loss,
                    loss,
                    o.segments.mean(),
                    (f * o.segments).sum(),
                ]
            )
            .detach()
            .float()
        )
        acc = parts if acc is None else acc + parts
    gnorm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), t.grad_clip, foreach=True)
    for o, s in zip(state.opts, state.scheds, strict=True):
        o.step()
        s.step()
        o.zero_grad(set_to_none=True)
    if state.ema is not None:
        state.update_ema(ema_decay_at(state.step, t.ema_decay))
    state.step += 1
    # the means; FLOPs add up
    return torch.cat([acc[:6] / len(micro), gnorm.reshape(1).float(), acc[6:]])


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA's decay at optimizer step `step` (0-based), warmed up as timm's ModelEmaV2 and TRM
    do: min(decay, (1 + step) / (10 + step)). A fixed 0.999 from the start kept 0.999^1900 = 15%
    of the random initial weights in a 1,900-step run's EMA (its exported model); the warm-up
    forgets them within ~10x fewer steps than the horizon."""
    return min(decay, (1 + step) / (10 + step))


class Prefetcher:
    """Batches built ahead on a background thread (pinned memory on a GPU), so the GPU never
    waits for data. Each item carries the data position after it, so a checkpoint records what
    was consumed, not what was built ahead."""

    def __init__(
        self,
        shard: Any,
        rows: np.ndarray,
        t: Any,
        mcfg: ModelConfig,
        pos: dict[str, int],
        seed: int,
        rank: int,
        world: int,
        device: torch.device,
    ):
        import queue
        import threading

        self.q: queue.Queue = queue.Queue(maxsize=max(1, t.prefetch))
        self.stop = threading.Event()
        pos = dict(pos)
        it = iter_batches(shard, rows, t.batch_size, seed, pos, rank, world)
        pin = device.type == "cuda"

        @functools.lru_cache(maxsize=4096)
        # once per shape, not per example per step
        def flops(total: int, code: int, plan: int) -> float:
            return train_flops(mcfg, total, code, 1.0, plan)

        def work() -> None:
            try:
                while not self.stop.is_set():
                    b = shard.batch(next(it), mcfg.max_seq_len, shard.meta["pad_id"], t.bucket)
                    lens = np.stack(
                        [b.total_len.numpy(), b.code_len.numpy(), b.plan_len.numpy()], 1
                    )  # on the host
                    f = torch.tensor([flops(*map(int, x)) for x in lens], dtype=torch.float32)
                    ntok = int(lens[:, 0].sum())
                    item = ((b.pin_memory(), f.pin_memory()) if pin else (b, f), ntok, dict(pos))
                    while not self.stop.is_set():
                        try:
                            self.q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
            except BaseException as e:  # noqa: BLE001 (handed to the consumer, which raises it)
                self.q.put(e)

        self.thread = threading.Thread(target=work, daemon=True, name="gocoder-prefetch")
        self.thread.start()
        self.device = device

    def next(self) -> tuple[tuple[Any, torch.Tensor], int, dict[str, int]]:
        item = self.q.get()
        if isinstance(item, BaseException):
            raise item
        (b, f), ntok, pos = item
        return (
            (b.to(self.device, non_blocking=True), f.to(self.device, non_blocking=True)),
            ntok,
            pos,
        )

    def close(self) -> None:
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.q.get_nowait()
            except Exception:  # noqa: BLE001 (queue.Empty: the worker is between items)
                self.thread.join(timeout=0.05)


def _log_line(m: dict[str, Any]) -> str:
    mfu = f" mfu {m['mfu']:.3f}" if m.get("mfu") is not None else ""
    return (f"step {m['step']} loss {m['loss']:.4f} code {m['code_loss']:.4f} "
            f"{m['tokens_per_s']:,.0f} tok/s{mfu} ({m['stage']})")


def _model_keys(model: dict[str, Any] | None) -> dict[str, Any]:
    """A model config as JSON holds it, with the defaults of fields added since it was written (a
    checkpoint from before model.loop existed is the same model as one
    with loop = []; tuples are lists)."""
    try:
        full = to_dict(ModelConfig(**(model or {})))
    except TypeError:  # a key this version does not know: never the same model
        full = dict(model or {})
    return json.loads(json.dumps(full))


def init_weights(path: str, model: dict[str, Any], tokenizer_hash: str) -> dict[str, torch.Tensor]:
    """The float weights of the model folder `train.init` names (its EMA weights when it has
    them), checked to be this run's model and tokenizer: a run continued from exported
    weights learns, never mis-loads."""
    meta, weights = float_weights(path)
    where = checkpoint_dir(path) / "config.json"
    theirs, ours = _model_keys(meta.get("model")), _model_keys(model)
    if theirs != ours:
        diff = sorted(k for k in ours if theirs.get(k) != ours[k])
        raise GocoderError(
            f"{where}: train.init's model config differs from this run's ({', '.join(diff)})"
        )
    if meta.get("tokenizer_hash") != tokenizer_hash:
        raise GocoderError(
            f"{where}: train.init was trained with another tokenizer than this run's data"
        )
    return {k: v.float() for k, v in weights.items()}


def train(cfg: Config, *, resume: bool = False, stop_after: int | None = None,
          progress: bool = False) -> dict:
    """Train cfg.model on the curriculum's data (each stage's `data`, else cfg.train.data), writing
    checkpoints and metrics.jsonl to cfg.train.out; resume continues from its latest checkpoint.
    stop_after ends this run after that many optimizer steps (a time-boxed job), checkpointing
    first. A SIGTERM (a scheduler's notice, `kill`) ends the run after the step under way,
    checkpointed; the last metrics then carry signal="SIGTERM". Returns the last metrics."""
    if stop_after is not None and stop_after < 1:  # 0 would train nothing and say nothing
        raise GocoderError(f"--stop-after {stop_after}: expected 1 or more optimizer steps")
    with Run(cfg, resume=resume, stop_after=stop_after, progress=progress) as run:
        while run.wants_step():
            run.step()
            run.maybe_log()
            run.maybe_eval()  # a stage that ends on a validation metric moves on here
            run.maybe_next_stage()  # and one that ends at a step, here
            run.maybe_checkpoint()
            run.show()
            if run.stopping:
                break  # a time limit or a SIGTERM: finish() checkpoints what was learned
        run.finish()
    return run.result()


class Run:
    """One `gocoder train` run, the pieces of train()'s loop: the model and its TrainState, each
    stage's data, the cadences (log, eval, checkpoint, stage), the clocks of a wall-time budget and
    the stop signals.

    Built, a run has read and checked its data, built the model and optimizers and loaded the
    checkpoint it resumes, and has written nothing. Entered (`with`), it holds the run folder's
    lock, the metrics log, the batch feed, the progress bar and a SIGTERM handler, which leaving
    gives back in reverse order, after a last checkpoint when Ctrl-C ended the loop."""

    # ------------------------------------------------------------------------- setup

    def __init__(self, cfg: Config, *, resume: bool, stop_after: int | None, progress: bool):
        from gocoder.text.tokenizer import Tokenizer

        t = self.t = cfg.train
        self.stop_after, self.progress = stop_after, progress
        self.rank, self.world, local = _setup_dist(t)
        self.device = train_device(t.device)
        if self.device.type == "cuda":
            index = local if self.world > 1 else (self.device.index or 0)
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)  # NCCL and the CUDA RNG state act on the current one
        self.out = Path(t.out)
        self.tok = Tokenizer.load(t.tokenizer)
        self.cfg = cfg = self._open_data(cfg)  # with model.vocab_size read off the shards
        self.mcfg = mcfg = cfg.model
        data_hash = self.shards[0].meta["tokenizer_hash"]
        torch.manual_seed(t.seed)
        self.model = model = GocoderModel(mcfg)
        if t.init and not resume:
            model.load_state_dict(init_weights(t.init, to_dict(mcfg), data_hash))
        ema = None
        if t.ema_decay > 0:
            ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
        opts = build_optimizers(model, t, self.device)
        # a time schedule reads the run's training seconds (this run's clock plus a resumed run's
        # total): elapsed(); __enter__ and the first step set the clock
        self.clock_start, self.clock_done = time.perf_counter(), 0.0
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_at(s, t, self.elapsed()))
                  for o in opts]
        # the stacks model.loop repeats, once train.loop_start is reached
        self.stacks = [m for m in model.modules() if getattr(m, "loop", ())]
        self.state = TrainState(model, opts, scheds, ema)
        self.meta = {"config": to_dict(cfg), "model": to_dict(mcfg), "tokenizer_hash": data_hash,
                     "git_sha": _git_sha(), "params": count_params(model)}
        if resume:
            self._resume()
        self.wrapped = prepare_model(model, t, self.device)
        if self.state.ema is not None:
            self.state.ema = {k: v.to(self.device) for k, v in self.state.ema.items()}
        self.peak = peak_flops(self.device)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device.type == "cuda"
                         else contextlib.nullcontext())
        self.qat_from = math.ceil(t.qat_start * t.steps) if t.qat_bits else None  # QAT's first step
        self.qat_on = bool(t.qat_bits)  # as prepare_model left it (on, under QAT only)
        self.last: dict[str, Any] = {}  # the metrics last logged, and the evaluation since
        self.term: list[int] = []  # the SIGTERMs received
        self.stopping = False  # the step just taken is the last: a time limit or a SIGTERM

    def _open_data(self, cfg: Config) -> Config:
        """Open every stage's train (and valid) split and check them all against the tokenizer and
        the model before anything is written; cfg with model.vocab_size filled in from the data."""
        t, mcfg = cfg.train, cfg.model
        self.shards = [open_shard(s.data or t.data, "train", mcfg.max_seq_len) for s in t.stages]
        valids = [open_shard(s.data or t.data, "valid", mcfg.max_seq_len)
                  if (Path(s.data or t.data) / "valid").is_dir() else None for s in t.stages]
        # an empty split validates nothing
        self.valids = [v if v is not None and len(v) else None for v in valids]
        meta0 = self.shards[0].meta
        for s, sh in zip(t.stages, self.shards, strict=True):
            if self.tok.hash != sh.meta["tokenizer_hash"]:
                raise GocoderError(f"{s.data or t.data}/meta.json: tokenized by another tokenizer "
                                   f"than {t.tokenizer}")
        if mcfg.vocab_size == 0:
            mcfg = dataclasses.replace(mcfg, vocab_size=int(meta0["vocab_size"]))
        if mcfg.n_verdict != meta0["n_verdict"]:
            raise GocoderError(f"model.n_verdict={mcfg.n_verdict} but the shards carry "
                               f"{meta0['n_verdict']}")
        for i in range(len(t.stages)):  # every stage admits a batch
            self._stage_rows(i)
        return dataclasses.replace(cfg, model=mcfg)

    def _stage_rows(self, i: int) -> np.ndarray:
        """The rows of stage i's train split that the stage admits."""
        s = self.t.stages[i]
        rows = self.shards[i].eligible(s.max_plan_steps, s.max_tokens)
        if len(rows) < self.t.batch_size * self.world:
            raise GocoderError(f"train.stages[{i}] ({s.name}) admits {len(rows)} examples: too few "
                               "for a batch")
        return rows

    def _resume(self) -> None:
        """Weights, EMA, optimizers, schedule, RNG and data position of train.out's checkpoint."""
        ck_meta, weights, ck_ema, st = load_checkpoint(self.out)
        same = _model_keys(ck_meta.get("model")) == _model_keys(self.meta["model"])
        if not same or ck_meta.get("tokenizer_hash") != self.meta["tokenizer_hash"]:
            raise GocoderError(f"{self.out}: the checkpoint's model config or tokenizer differs "
                               "from this run's")
        self.model.load_state_dict(weights)
        if self.state.ema is not None and ck_ema is not None:
            self.state.ema = {k: v.float() for k, v in ck_ema.items()}
        self.state.load_state_dict(st, self.device)

    def __enter__(self) -> Run:
        t, rank = self.t, self.rank
        with contextlib.ExitStack() as held:  # given back in reverse order by __exit__
            if t.ddp:
                held.callback(_end_dist)
            self.log: JsonlWriter | None = None
            if rank == 0:
                # one process writes a run folder: a second one (a resume started twice) fails here
                held.enter_context(output_lock(self.out))
                self.log = held.enter_context(JsonlWriter(self.out / "metrics.jsonl"))
            self.feed = self._feeder()
            held.callback(lambda: self.feed.close())  # the feed of the stage the run ends in
            self.bar = _progress(self.progress and rank == 0, t.steps, self.state.step)
            held.callback(self.bar, None, None)
            self.start_step, self.done_s = self.state.step, self.state.seconds
            self.loop_t = self.budget_t0 = self.clock_start = time.perf_counter()
            self.clock_done = self.done_s
            self._set_looping()
            self.window: list[torch.Tensor] = []  # per-step device metrics since the last log
            self.win_tokens, self.win_t, self.first_step_s = 0, time.perf_counter(), None
            # SIGTERM sets a flag the loop reads between steps, so a checkpoint is never cut in
            # half. NOTE(gocoder): not under torchrun (world > 1), whose ranks would leave the loop
            # at different steps and hang.
            if self.world == 1 and threading.current_thread() is threading.main_thread():
                prev = signal.signal(signal.SIGTERM, lambda sig, frame: self.term.append(sig))
                held.callback(signal.signal, signal.SIGTERM, prev)
            self.held = held.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if kind is not None and issubclass(kind, KeyboardInterrupt):
                self._fold()  # the totals count every step taken
                self.save()  # what was learned is kept: resume goes on from here
        finally:
            self.held.close()

    # ------------------------------------------------------------------------- the loop's pieces

    def wants_step(self) -> bool:
        """Steps are left: of train.steps, and of --stop-after."""
        done, cap = self.state.step, self.stop_after
        return done < self.t.steps and (cap is None or done - self.start_step < cap)

    def step(self) -> None:
        """One optimizer step over train.grad_accum micro-batches; its metrics stay on device."""
        t, st = self.t, self.state
        self.wrapped.train()
        if self.stacks and not self.stacks[0].looping:
            self._set_looping()
        micro, ntok = [], 0
        for _ in range(t.grad_accum):
            mb, n, pos = self.feed.next()
            micro.append(mb)
            ntok += n
        st.pos = pos
        self._switch_qat()
        self.window.append(train_step(st, self.wrapped, micro, t, self.autocast))
        self.win_tokens += ntok * self.world
        if self.first_step_s is None:  # the first step pays for compiling
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.first_step_s = time.perf_counter() - self.loop_t
            if t.schedule == "time":  # a wall-time budget counts training, not the first compile
                self.budget_t0 = self.clock_start = time.perf_counter()
        # a time-boxed job (a rented GPU) ends here: its last interval is logged and checkpointed.
        # Read once a step, so a SIGTERM that comes mid-step is logged as well as checkpointed.
        over = bool(t.time_limit_s) and time.perf_counter() - self.budget_t0 >= t.time_limit_s
        self.stopping = over or bool(self.term)

    def maybe_log(self) -> None:
        """The interval's metrics, read off the device and written: every train.log_every steps, at
        the end of the schedule or of --stop-after, and before a stop."""
        step, t = self.state.step, self.t
        end = step == t.steps or (self.stop_after and step - self.start_step == self.stop_after)
        if step % t.log_every and not end and not self.stopping:
            return
        self.last = self._fold()
        if self.log is not None:
            self.log.write(dict(self.last, id=f"train-{step}"))
        if self.progress and self.rank == 0 and not _is_tty():
            print(_log_line(self.last), file=sys.stderr, flush=True)

    def maybe_eval(self) -> None:
        """Every train.eval_every steps, validation on the stage's valid split (of the EMA weights,
        as export will store them); the stage moves on when until_metric is below until_below."""
        t, st, step = self.t, self.state, self.state.step
        valid = self.valids[st.stage]
        if valid is None or not t.eval_every or step % t.eval_every:
            return
        move = torch.zeros(1, device=self.device)
        if self.rank == 0:
            qat = t if self.qat_on else None
            judged = _ema_model(self.model, st.ema, self.mcfg, self.device, qat)
            ev = evaluate(judged, valid, self.cfg, self.device, self.tok)
            self.last.update(ev)
            self.log.write(dict(ev, id=f"eval-{step}", step=step))
            s = t.stages[st.stage]
            move += bool(s.until_metric) and ev.get(s.until_metric, math.inf) < s.until_below
        if self.world > 1:  # rank 0 decides, so every rank reads the same stage's data
            torch.distributed.broadcast(move, 0)
        if move.item() and st.stage + 1 < len(t.stages):
            self._advance()

    def maybe_next_stage(self) -> None:
        """The next stage, once the step reaches the stage's until_step."""
        s, st = self.t.stages[self.state.stage], self.state
        if s.until_step and st.step >= s.until_step and st.stage + 1 < len(self.t.stages):
            self._advance()

    def maybe_checkpoint(self) -> None:
        """A checkpoint every train.ckpt_every steps and at the end of the schedule."""
        if self.state.step % self.t.ckpt_every == 0 or self.state.step == self.t.steps:
            self.save()

    def show(self) -> None:
        """The progress bar (a TTY only)."""
        self.bar(self.state.step, self.last)

    def finish(self) -> None:
        """The last checkpoint, unless the cadence has just written it."""
        if self.state.step % self.t.ckpt_every and self.state.step != self.t.steps:
            self.save()

    def result(self) -> dict[str, Any]:
        """The last metrics; signal="SIGTERM" when a SIGTERM stopped the run."""
        return dict(self.last, signal="SIGTERM") if self.term else self.last

    def save(self) -> None:
        """A checkpoint of the state (rank 0 writes it)."""
        if self.rank == 0:
            st = self.state
            st.seconds = self.done_s + time.perf_counter() - self.loop_t
            save_checkpoint(self.out, st.step, self.model, st.ema, st.state_dict(), self.meta,
                            tokenizer=self.meta["config"]["train"]["tokenizer"])

    # ------------------------------------------------------------------------- helpers

    def elapsed(self) -> float:
        """The run's training seconds, which a time schedule (train.schedule = "time") runs over."""
        return self.clock_done + time.perf_counter() - self.clock_start

    def _feeder(self) -> Prefetcher:
        i = self.state.stage
        return Prefetcher(self.shards[i], self._stage_rows(i), self.t, self.mcfg, self.state.pos,
                          self.t.seed + i, self.rank, self.world, self.device)

    def _advance(self) -> None:
        """The next curriculum stage, which starts its own epochs from the beginning."""
        self.feed.close()
        self.state.stage += 1
        self.state.pos = {"epoch": 0, "cursor": 0}
        self.feed = self._feeder()

    def _set_looping(self) -> None:
        """model.loop on from train.loop_start: a flag torch.compile guards on (one recompile)."""
        on = schedule_progress(self.state.step, self.t, self.elapsed()) >= self.t.loop_start
        for s in self.stacks:
            s.looping = on

    def _switch_qat(self) -> None:
        """Fake quantization on from train.qat_start (of the steps, or the time): one recompile."""
        if self.qat_from is None:
            return
        t = self.t
        if t.schedule == "time":
            want = schedule_progress(self.state.step, t, self.elapsed()) >= t.qat_start
        else:
            want = self.state.step >= self.qat_from
        if want != self.qat_on:
            self.qat_on = want
            set_fake_quant(self.model, want)

    def _fold(self) -> dict[str, Any]:
        """The metrics since the last fold, read off the device at once, added to the totals."""
        st, world = self.state, self.world
        # the one host sync of the interval
        vals = torch.stack(self.window).tolist() if self.window else []
        dt = time.perf_counter() - self.win_t
        mean = [sum(v[k] for v in vals) / max(len(vals), 1) for k in range(7)]
        flops = sum(v[7] for v in vals) * world
        st.flops += flops
        st.tokens += self.win_tokens
        names = ("plan_loss", "code_loss", "ctrl_loss", "halt_loss", "loss", "halt_segments",
                 "grad_norm")
        m = dict(zip(names, mean, strict=True),
                 step=st.step, lr=st.scheds[0].get_last_lr()[0], stage=self.t.stages[st.stage].name,
                 tokens_per_s=self.win_tokens / dt,
                 mfu=(flops / world / dt / self.peak) if self.peak else None,
                 flops=st.flops, tokens=st.tokens,
                 train_s=self.done_s + time.perf_counter() - self.loop_t,
                 first_step_s=self.first_step_s, graphs=_graphs())
        self.window, self.win_tokens, self.win_t = [], 0, time.perf_counter()
        return m


def _end_dist() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _graphs() -> int:
    """Graphs torch.compile has made in this process (constant after
    warm-up when nothing recompiles)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _is_tty() -> bool:
    return sys.stderr.isatty()


def _ema_model(model: GocoderModel, ema: dict | None, mcfg: ModelConfig, device: torch.device,
               qat: Any = None) -> GocoderModel:
    """The model to evaluate: a copy holding the EMA weights (TRM
    evaluates with them), else the model.
    Under QAT (qat: the train config) the copy holds them as export
    stores them at train.qat_bits."""
    if ema is None:
        return model
    m = GocoderModel(mcfg).to(device)
    if qat is not None:
        ema = dequantize(quantize(ema, qat.qat_bits, qat.qat_group, qat.qat_embed_bits))
    m.load_state_dict({k: v.to(m.state_dict()[k].dtype) for k, v in ema.items()})
    return m


def _progress(on: bool, total: int, done: int):
    """A rich progress bar on stderr (a TTY only): call it with
    (step, metrics), then (None, None)."""
    if not on:
        return lambda *a: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

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
        if "loss" not in m:  # no step logged yet (train.log_every > 1): the count alone
            p.update(task, completed=step)
            return
        p.update(task, completed=step, info=f"loss {m['loss']:.3f} code {m['code_loss']:.3f} "
                                             f"{m['tokens_per_s']:.0f} tok/s")

    return update
