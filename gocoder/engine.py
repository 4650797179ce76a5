"""The token-level generation engine: sampling, batches of prompts and samples, streaming, the controller.

It works on token ids only (the Go check lives in gocoder/generate.py's outer loop), after nanochat's
engine.py: prefill each prompt once, copy its cache to its samples, then one forward step per token
(the caches and steps of both model families are in gocoder/kvcache.py). Rows that end leave the batch.
NOTE(gocoder): halting is per sequence and cannot be per token under a cache: the engine runs a fixed
number of segments (the model's `segments` unless told otherwise); a full forward whose halting head
never fires (HRM's bias -5 start) computes the same thing, which tests/test_engine.py checks.

Every generated token is fed once more after its row ends, so that a row's final states (kept on the CPU
in `Completion.state` for `Engine.decide`) cover its whole sequence, as the controller saw it in training.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gocoder import GocoderError
from gocoder.kvcache import Core
from gocoder.model import GocoderModel


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    stop: tuple[int, ...] = ()  # ids that end a row (the stop id is kept in Completion.tokens)
    seed: int | None = None  # a torch.Generator seed: the same seed gives the same samples

    def __post_init__(self):
        bad = (("max_new_tokens", self.max_new_tokens < 0), ("temperature", not self.temperature >= 0),
               ("top_k", self.top_k < 0), ("top_p", not 0 < self.top_p <= 1))
        for name, wrong in bad:
            if wrong:
                raise GocoderError(f"sampling.{name}: {getattr(self, name)!r} is out of range "
                                   "(max_new_tokens >= 0, temperature >= 0, top_k >= 0, 0 < top_p <= 1)")


@dataclass
class Completion:
    prompt_index: int
    sample_index: int
    tokens: list[int]  # generated ids only (not the prompt)
    stopped: bool  # True when a stop id ended it (else max_new_tokens or the model's max_seq_len)
    state: Any = None  # what Engine.decide needs (the final plan/code states of this row); opaque


@dataclass(frozen=True)
class Decision:
    probs: tuple[float, float, float]  # CONTINUE, REFINE, DONE (gocoder.model's order)
    halt: float | None  # the halting head's probability, None when the model has none


def sample(logits: Tensor, s: Sampling, gen: torch.Generator | None) -> Tensor:
    """Next ids [b] from logits [b, V] (float): greedy, or temperature with top-k and top-p (nucleus)."""
    if s.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / s.temperature
    if s.top_k > 0:
        kth = logits.topk(min(s.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if s.top_p < 1:
        srt, order = logits.sort(dim=-1, descending=True)
        p = srt.softmax(-1)
        drop = p.cumsum(-1) - p >= s.top_p  # the tokens after the nucleus (the most likely always stays)
        logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
    return torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]



# ------------------------------------------------------------------------------------------ the engine


class Engine:
    """Batched generation over a GocoderModel, through gocoder.kvcache.Core. Any other object with Core's
    interface (vocab_size, max_seq_len, start, step, keep, states; decide and n_verdict for `decide`) is
    driven as it is: the tests' mock model. The model is put in eval mode."""

    def __init__(self, model: GocoderModel, *, code_open: int, device: str | torch.device = "cpu",
                 segments: int | None = None):
        self.device = torch.device(device)
        if isinstance(model, GocoderModel):
            n = model.cfg.segments if segments is None else segments
            if n < 1:
                raise GocoderError(f"segments: {n} must be >= 1")
            self.core = Core(model.to(self.device).eval(), self.device, n)
        elif all(hasattr(model, k) for k in ("start", "step", "keep", "states")):
            self.core = model
        else:  # e.g. a torch.compile or DDP wrapper: the engine steps the model's own modules
            raise GocoderError(f"Engine needs a GocoderModel, not {type(model).__name__} (unwrap it first)")
        self.code_open = code_open

    def _mode(self) -> contextlib.ExitStack:
        """Inference mode, and bf16 autocast on CUDA."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    def generate(self, prompts: list[list[int]], sampling: Sampling = Sampling(), samples: int = 1,
                 on_token: Callable[[int, int], None] | None = None) -> list[Completion]:
        """`samples` completions per prompt, prompt-major (row = prompt_index * samples + sample_index);
        on_token(row, id) sees every id as it is sampled."""
        run = self._run(prompts, sampling, samples)
        while True:
            try:
                rows, ids = next(run)
            except StopIteration as done:
                return done.value
            if on_token is not None:
                for r, t in zip(rows.tolist(), ids.tolist(), strict=True):
                    on_token(r, t)

    def stream(self, prompt: list[int], sampling: Sampling = Sampling()) -> Iterator[int]:
        """The ids of one completion of one prompt, as they are sampled."""
        for _, ids in self._run([prompt], sampling, 1):
            yield int(ids[0])

    def _check(self, prompts: list[list[int]], samples: int) -> None:
        if samples < 1:
            raise GocoderError(f"samples: {samples} must be >= 1")
        V, T = self.core.vocab_size, self.core.max_seq_len
        for i, p in enumerate(prompts):
            if not p:
                raise GocoderError(f"prompt {i} is empty (the model needs at least one prompt token)")
            if len(p) > T:
                raise GocoderError(f"prompt {i} has {len(p)} tokens, more than the model's max_seq_len {T}")
            if not all(isinstance(t, int) and 0 <= t < V for t in p):
                raise GocoderError(f"prompt {i}: token ids must be ints in [0, {V})")

    def _run(self, prompts: list[list[int]], s: Sampling, samples: int) -> Generator[tuple[Tensor, Tensor], None,
                                                                                     list[Completion]]:
        """Yields (global rows [k], ids [k]) per step; returns the completions."""
        self._check(prompts, samples)
        if not prompts:
            return []
        core, dev, N = self.core, self.device, len(prompts)
        R, T = N * samples, core.max_seq_len
        with self._mode():
            lens = torch.tensor([len(p) for p in prompts], device=dev)
            tokens = torch.zeros(N, int(lens.max()), dtype=torch.long, device=dev)
            for i, p in enumerate(prompts):
                tokens[i, : len(p)] = torch.tensor(p)
            logits = core.start(tokens, lens, samples, min(T, int(lens.max()) + s.max_new_tokens))
            gen = None if s.seed is None else torch.Generator(dev).manual_seed(s.seed)
            stop = torch.tensor(s.stop, dtype=torch.long, device=dev)
            out = torch.full((R, max(1, s.max_new_tokens)), -1, dtype=torch.long, device=dev)
            n_out = torch.zeros(R, dtype=torch.long, device=dev)
            stopped = torch.zeros(R, dtype=torch.bool, device=dev)
            states: list[Any] = [None] * R
            # per batch row: its global row, the position of its last fed token, where its <CODE> sits
            row = torch.arange(R, device=dev)
            pos = lens.repeat_interleave(samples) - 1
            cstart = torch.full((R,), T + 1, dtype=torch.long, device=dev)
            tok = torch.zeros(R, dtype=torch.long, device=dev)
            samp = (pos + 1 < T) & (s.max_new_tokens > 0)  # rows that sample now
            logits = logits[torch.nonzero(samp)[:, 0]]
        while True:
            with self._mode():
                idx = torch.nonzero(samp)[:, 0]
                nxt_samp = samp.clone()
                if len(idx):
                    nxt = sample(logits, s, gen)
                    g = row[idx]
                    out[g, n_out[g]] = nxt
                    n_out[g] += 1
                    tok[idx] = nxt
                    hit = torch.isin(nxt, stop)
                    stopped[g] = hit
                    opened = (nxt == self.code_open) & (cstart[idx] > T)
                    cstart[idx] = torch.where(opened, pos[idx] + 1, cstart[idx])
                    nxt_samp[idx] = ~(hit | (n_out[g] >= s.max_new_tokens) | (pos[idx] + 2 >= T))
            if len(idx):  # outside the torch modes: the caller runs in its own between two ids
                yield g, nxt
            with self._mode():
                # rows with nothing left to feed leave the batch with their final states
                gone = torch.nonzero(~samp)[:, 0]
                if len(gone):
                    for r, st in zip(row[gone].tolist(), core.states(gone.tolist()), strict=True):
                        states[r] = st
                    keep = torch.nonzero(samp)[:, 0]
                    if not len(keep):
                        break
                    core.keep(keep)
                    row, pos, cstart, tok, nxt_samp = row[keep], pos[keep], cstart[keep], tok[keep], nxt_samp[keep]
                pos = pos + 1
                code = torch.where(pos >= cstart, pos - cstart, -1)
                samp = nxt_samp
                logits = core.step(tok, pos, code, torch.nonzero(samp)[:, 0])
        n_out, out, stopped = n_out.tolist(), out.tolist(), stopped.tolist()
        return [Completion(r // samples, r % samples, out[r][: n_out[r]], stopped[r], states[r]) for r in range(R)]

    def decide(self, completions: list[Completion], verdicts: list[list[float]]) -> list[Decision]:
        """The refinement controller (and halting head) on each completion's final states and the
        validator's verdict features (gocoder.validate.verdict_features)."""
        if len(completions) != len(verdicts):
            raise GocoderError(f"decide: {len(completions)} completions but {len(verdicts)} verdicts")
        if not completions:
            return []
        nv = getattr(self.core, "n_verdict", None)
        if nv is not None and any(len(v) != nv for v in verdicts):
            raise GocoderError(f"decide: every verdict must hold {nv} features (gocoder.validate.verdict_features)")
        if any(c.state is None for c in completions):
            raise GocoderError("decide: a completion has no state (it was not made by this engine)")
        with self._mode():
            ctrl, halt = self.core.decide([c.state for c in completions], torch.tensor(verdicts, dtype=torch.float))
            probs = ctrl.float().softmax(-1).tolist()
            # the halting head's "halt now" probability (BCE's one logit, Q-learning's q_halt)
            h = [None] * len(probs) if halt is None else torch.sigmoid(halt[:, 0].float()).tolist()
        return [Decision(tuple(p), q) for p, q in zip(probs, h, strict=True)]
