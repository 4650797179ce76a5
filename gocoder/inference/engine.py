"""The token-level generation engine: sampling, batches of prompts and
samples, streaming, the controller.

Over ~400 lines on purpose: one Engine with its two loops side by side, generate (any model;
ended rows leave the batch) and decode (a GPT through a static cache and a CUDA graph), held to
the same answers by tests/test_decode.py.

It works on token ids only (the Go check lives in gocoder/inference/generate.py's outer loop),
after nanochat's engine.py: prefill each prompt once, copy its cache to its samples, then one
forward step per token (the caches and steps of both model families are in
gocoder/inference/kvcache.py). Rows that end leave the batch.
NOTE(gocoder): halting is per sequence and cannot be per token under a cache: the engine
runs a fixed number of segments (the model's `segments` unless told otherwise); a full
forward whose halting head never fires (HRM's bias -5 start) computes the same thing,
which tests/test_engine.py checks.

Every generated token is fed once more after its row ends, so that a row's final states (kept
on the CPU in `Completion.state` for `Engine.decide`) cover its whole sequence, as the
controller saw it in training.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gocoder import GocoderError
from gocoder.config import GenerateConfig
from gocoder.inference.kvcache import Core, StaticGPT
from gocoder.model.model import GocoderModel


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = GenerateConfig.max_new_tokens  # one home for the default: [generate]
    temperature: float = 0.0  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    stop: tuple[int, ...] = ()  # ids that end a row (the stop id is kept in Completion.tokens)
    seed: int | None = None  # a torch.Generator seed: the same seed gives the same samples
    # 0 = off; n: never write an n-gram of ids that this row already wrote (Hugging Face's
    # no_repeat_ngram_size, over the generated ids only): a small model's greedy answer otherwise
    # loops on one line until the budget is gone
    no_repeat_ngram: int = 0
    # 0 = off; n: a row that has written n ids and no `<CODE>` closes its plan there
    # (`</PLAN>`, then `<CODE>`): a plan that repeats itself never reaches code
    # otherwise (the engine needs plan_close)
    max_plan_tokens: int = 0

    def __post_init__(self):
        bad = (
            ("max_new_tokens", self.max_new_tokens < 0),
            ("temperature", not self.temperature >= 0),
            ("top_k", self.top_k < 0),
            ("top_p", not 0 < self.top_p <= 1),
            ("no_repeat_ngram", self.no_repeat_ngram < 0),
            ("max_plan_tokens", self.max_plan_tokens < 0),
        )
        for name, wrong in bad:
            if wrong:
                raise GocoderError(
                    f"sampling.{name}: {getattr(self, name)!r} is out of range "
                    "(max_new_tokens >= 0, temperature >= 0, top_k >= 0, 0 < top_p <= 1, "
                    "no_repeat_ngram >= 0, max_plan_tokens >= 0)"
                )


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


def ban_repeats(logits: Tensor, out: Tensor, n_out: Tensor, n: int) -> Tensor:
    """logits [b, V] with -inf at every id that would end an n-gram the row's ids out
    [b, L] (its first n_out [b] valid) already hold: the ids that followed each earlier
    copy of the row's last n - 1 ids."""
    L = out.shape[1]
    if n < 1 or L < n:
        return logits
    k = n - 1
    at = (n_out[:, None] - k + torch.arange(k, device=out.device)[None]).clamp(min=0)  # [b, k]
    last = out.gather(1, at)  # the row's last n - 1 ids
    # earlier n-grams start at j and end at j + k < n_out
    starts = torch.arange(L - k, device=out.device)
    # [b, L - k, k]
    win = out.unfold(1, k, 1)[:, : L - k] if k else out.new_zeros(out.shape[0], L, 0)
    hit = (
        (win == last[:, None]).all(-1) & (starts[None] + k < n_out[:, None]) & (n_out[:, None] >= k)
    )
    nxt = out[:, k:]  # the id after each window
    ban = torch.zeros(logits.shape, dtype=torch.int32, device=logits.device)
    # add, not set: many windows share an id
    ban.scatter_add_(1, torch.where(hit, nxt, 0), hit.int())
    return logits.masked_fill(ban > 0, -math.inf)


def sample(logits: Tensor, s: Sampling, gen: torch.Generator | None) -> Tensor:
    """Next ids [b] from logits [b, V] (float): greedy, or temperature
    with top-k and top-p (nucleus)."""
    if s.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / s.temperature
    if s.top_k > 0:
        kth = logits.topk(min(s.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if s.top_p < 1:
        srt, order = logits.sort(dim=-1, descending=True)
        p = srt.softmax(-1)
        # the tokens after the nucleus (the most likely always stays)
        drop = p.cumsum(-1) - p >= s.top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), -math.inf)
    return draw(logits.softmax(-1), gen)


def draw(probs: Tensor, gen: torch.Generator | None) -> Tensor:
    """One id per row of probs [b, V]: argmax of p / E with E ~ Exp(1) (the exponential
    race), which is what torch.multinomial(probs, 1) computes on the CPU, draw for draw
    from the same generator (tests/test_engine.py checks), without the validity check by
    which it reads the device on CUDA."""
    return (probs / torch.empty_like(probs).exponential_(1, generator=gen)).argmax(-1)



def _shift(
    on_token: Callable[[int, int], bool | None], base: int
) -> Callable[[int, int], bool | None]:
    """on_token for a group whose rows start at global row base."""
    return lambda r, t: on_token(base + r, t)


# ------------------------------------------------------------------------------------------ the
# engine


class Engine:
    """Batched generation over a GocoderModel, through gocoder.inference.kvcache.Core. Any
    other object with Core's interface (vocab_size, max_seq_len, start, step, keep,
    states; decide and n_verdict for `decide`) is driven as it is: the tests' mock model.
    The model is put in eval mode."""

    def __init__(self, model: GocoderModel, *, code_open: int, device: str | torch.device = "cpu",
                 segments: int | None = None, plan_close: int | None = None):
        self.device = torch.device(device)
        if isinstance(model, GocoderModel):
            n = model.cfg.segments if segments is None else segments
            if n < 1:
                raise GocoderError(f"segments: {n} must be >= 1")
            self.core = Core(model.to(self.device).eval(), self.device, n)
        elif all(hasattr(model, k) for k in ("start", "step", "keep", "states")):
            self.core = model
        else:  # e.g. a torch.compile or DDP wrapper: the engine steps the model's own modules
            raise GocoderError(
                f"Engine needs a GocoderModel, not {type(model).__name__} (unwrap it first)"
            )
        # plan_close (`</PLAN>`): always followed by code_open, as the grammar
        # says (gocoder/text/serialize.py); with Sampling.max_plan_tokens,
        # written where a plan has run too long
        self.code_open, self.plan_close = code_open, plan_close
        # decode's cache and graphs, kept for the next call
        self._static: tuple[tuple, StaticGPT] | None = None

    def _mode(self) -> contextlib.ExitStack:
        """Inference mode, and bf16 autocast on CUDA."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        if self.device.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16))
        return stack

    def generate(self, prompts: list[list[int]], sampling: Sampling = Sampling(), samples: int = 1,
                 on_token: Callable[[int, int], bool | None] | None = None, *,
                 forced: list[list[int]] | None = None, code_start: int | None = None,
                 first: list[int] | None = None) -> list[Completion]:
        """`samples` completions per prompt, prompt-major (row = prompt_index * samples +
        sample_index); on_token(row, id) sees every id as it is sampled, and ends that row there by
        returning True (the completion keeps the id; stopped stays False: no stop id ended it).

        forced[i]: ids fed after prompt i, one step each, before sampling starts (the start of
        the answer, given; not in Completion.tokens). code_start: the position where every row's
        code begins (by default, at the `<CODE>` id it writes): 1 with a one-id prompt reads a
        whole file as pretraining did (gocoder/training/data.py TokenShard: the row's first id is
        its prompt, the rest its code). first: the ids a row's first sampled id may be (token
        healing: a prompt cut before its last piece, whose text the first id must start with,
        reads as training text did; " {\n\t" is one piece, " {\n" rare)."""
        run = self._run(prompts, sampling, samples, forced, code_start, first)
        end: list[int] = []
        while True:
            try:
                rows, ids = run.send(end or None)
            except StopIteration as done:
                return done.value
            end = []
            if on_token is not None:
                for r, t in zip(rows.tolist(), ids.tolist(), strict=True):
                    if on_token(r, t):
                        end.append(r)

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
                raise GocoderError(
                    f"prompt {i} is empty (the model needs at least one prompt token)"
                )
            if len(p) > T:
                raise GocoderError(
                    f"prompt {i} has {len(p)} tokens, more than the model's max_seq_len {T}"
                )
            if not all(isinstance(t, int) and 0 <= t < V for t in p):
                raise GocoderError(f"prompt {i}: token ids must be ints in [0, {V})")

    def _inputs(self, prompts: list[list[int]], samples: int, forced: list[list[int]] | None,
                code_start: int | None, first: list[int] | None) -> None:
        """generate's and decode's inputs, checked: a one-line error naming what is wrong."""
        self._check(prompts, samples)
        if forced is not None:
            if len(forced) != len(prompts):
                raise GocoderError(f"forced: {len(forced)} prefixes for {len(prompts)} prompts")
            self._check([[0, *f] for f in forced], 1)
        if prompts and code_start is not None and code_start < max(len(p) for p in prompts):
            raise GocoderError(f"code_start {code_start}: inside a prompt (prompts are never code)")
        if first is not None and not (first and all(0 <= t < self.core.vocab_size for t in first)):
            raise GocoderError(
                f"first: {len(first)} ids; give at least one, each in [0, {self.core.vocab_size})"
            )

    def _run(
        self,
        prompts: list[list[int]],
        s: Sampling,
        samples: int,
        forced: list[list[int]] | None = None,
        code_start: int | None = None,
        first: list[int] | None = None,
    ) -> Generator[tuple[Tensor, Tensor], None, list[Completion]]:
        """Yields (global rows [k], ids [k]) per step (sampled ids only, not forced
        ones); returns the completions."""
        self._inputs(prompts, samples, forced, code_start, first)
        if not prompts:
            return []
        core, dev, N = self.core, self.device, len(prompts)
        R, T = N * samples, core.max_seq_len
        n_forced = max(len(f) for f in forced) if forced else 0
        with self._mode():
            lens = torch.tensor([len(p) for p in prompts], device=dev)
            tokens = torch.zeros(N, int(lens.max()), dtype=torch.long, device=dev)
            for i, p in enumerate(prompts):
                tokens[i, : len(p)] = torch.tensor(p)
            logits = core.start(
                tokens, lens, samples, min(T, int(lens.max()) + n_forced + s.max_new_tokens)
            )
            gen = None if s.seed is None else torch.Generator(dev).manual_seed(s.seed)
            stop = torch.tensor(s.stop, dtype=torch.long, device=dev)
            out = torch.full((R, max(1, s.max_new_tokens)), -1, dtype=torch.long, device=dev)
            # the forced ids of each row, and how many it has fed
            fid = torch.full((N, max(1, n_forced)), -1, dtype=torch.long, device=dev)
            for i, f in enumerate(forced or ()):
                fid[i, : len(f)] = torch.tensor(f, dtype=torch.long)
            fid = fid.repeat_interleave(samples, 0)
            f_len = torch.tensor(
                [len(f) for f in forced or [[]] * N], device=dev
            ).repeat_interleave(samples)
            f_at = torch.zeros(R, dtype=torch.long, device=dev)
            barred = None  # ids a first sampled id may not be
            if first is not None:
                barred = torch.ones(core.vocab_size, dtype=torch.bool, device=dev)
                barred[torch.tensor(first, device=dev)] = False
            n_out = torch.zeros(R, dtype=torch.long, device=dev)
            stopped = torch.zeros(R, dtype=torch.bool, device=dev)
            states: list[Any] = [None] * R
            # per batch row: its global row, the position of its last
            # fed token, where its <CODE> sits
            row = torch.arange(R, device=dev)
            pos = lens.repeat_interleave(samples) - 1
            cstart = torch.full(
                (R,), T + 1 if code_start is None else code_start, dtype=torch.long, device=dev
            )
            tok = torch.zeros(R, dtype=torch.long, device=dev)
            # rows that sample (or are fed) now
            samp = (pos + 1 < T) & ((s.max_new_tokens > 0) | (f_len > 0))
            logits = logits[torch.nonzero(samp)[:, 0]]
        while True:
            with self._mode():
                idx = torch.nonzero(samp)[:, 0]
                nxt_samp = samp.clone()
                if len(idx):
                    g = row[idx]
                    if s.no_repeat_ngram:
                        logits = ban_repeats(logits, out[g], n_out[g], s.no_repeat_ngram)
                    if barred is not None:
                        logits = logits.masked_fill(
                            (n_out[g] == 0)[:, None] & barred[None], -math.inf
                        )
                    nxt = sample(logits, s, gen)
                    given = f_at[g] < f_len[g]  # rows still fed their forced ids
                    nxt = torch.where(given, fid[g, f_at[g].clamp(max=fid.shape[1] - 1)], nxt)
                    f_at[g] += given
                    free = ~given
                    if self.plan_close is not None:
                        in_plan = free & (cstart[idx] > T)
                        if s.max_plan_tokens:  # a plan past its budget closes here
                            over = (
                                in_plan
                                & (n_out[g] >= s.max_plan_tokens)
                                & (tok[idx] != self.plan_close)
                            )
                            nxt = torch.where(over, self.plan_close, nxt)
                        nxt = torch.where(
                            in_plan & (tok[idx] == self.plan_close), self.code_open, nxt
                        )
                    fg = g[free]
                    out[fg, n_out[fg]] = nxt[free]
                    n_out[g] += free
                    tok[idx] = nxt
                    hit = torch.isin(nxt, stop) & free
                    stopped[g] = hit
                    opened = (nxt == self.code_open) & (cstart[idx] > T)
                    cstart[idx] = torch.where(opened, pos[idx] + 1, cstart[idx])
                    # its budget, after its forced ids
                    full = (n_out[g] >= s.max_new_tokens) & (f_at[g] >= f_len[g])
                    nxt_samp[idx] = ~(hit | full | (pos[idx] + 2 >= T))
            # outside the torch modes: the caller runs in its own between two ids
            if len(idx) and len(fg):
                end = yield fg, nxt[free]
                if end:  # rows the caller ends here (Engine.generate's on_token)
                    with self._mode():
                        nxt_samp[idx] &= ~torch.isin(g, torch.tensor(end, device=dev))
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
                    row, pos, cstart, tok, nxt_samp = (
                        row[keep],
                        pos[keep],
                        cstart[keep],
                        tok[keep],
                        nxt_samp[keep],
                    )
                pos = pos + 1
                code = torch.where(pos >= cstart, pos - cstart, -1)
                samp = nxt_samp
                logits = core.step(tok, pos, code, torch.nonzero(samp)[:, 0])
        n_out, out, stopped = n_out.tolist(), out.tolist(), stopped.tolist()
        return [
            Completion(r // samples, r % samples, out[r][: n_out[r]], stopped[r], states[r])
            for r in range(R)
        ]

    # ------------------------------------------------------------------
    # decoding at GPU speed (the GPT)

    def decode(
        self,
        prompts: list[list[int]],
        sampling: Sampling = Sampling(),
        samples: int = 1,
        on_token: Callable[[int, int], bool | None] | None = None,
        *,
        forced: list[list[int]] | None = None,
        code_start: int | None = None,
        first: list[int] | None = None,
        check_every: int = 32,
        memory: int | None = None,
        max_rows: int = 4096,
    ) -> list[Completion]:
        """generate's completions (same arguments, same rows, Completion.state None) through a
        static KV cache and a step captured in a CUDA graph (gocoder.inference.kvcache.StaticGPT),
        for a GPT; any other model goes through generate. Every row stays in the batch until the
        batch ends, stops are a done mask on the device, and the host reads the ids every
        check_every steps, one interval late (a copy it waits on only after queuing the next steps):
        on_token then sees each row's new ids in order, and a row it ends is cut there (the ids the
        device wrote after it are dropped).
        Forced ids are prefilled with their prompt instead of fed one step each.

        Rows are planned in groups of whole prompts: at most max_rows rows, and the bytes of their
        cache and sampler within `memory` (default: 60% of the free GPU memory, 2 GiB on the CPU); a
        group that cannot hold one prompt's samples is an error before anything runs.

        Same answers as generate (tests/test_engine.py): greedy always, up to the floats of a
        left-padded prefill (the same math in another summation order). Sampled with the same seed
        only where generate draws the same noise: one group, no forced ids, and no row ending before
        the last step (generate drops ended rows from its draws; decode draws for every row of its
        group at every step). A seed gives the same samples for the same prompts and group plan."""
        core = self.core
        if not (isinstance(core, Core) and core.gpt):
            return self.generate(
                prompts,
                sampling,
                samples,
                on_token,
                forced=forced,
                code_start=code_start,
                first=first,
            )
        self._inputs(prompts, samples, forced, code_start, first)
        if check_every < 1:
            raise GocoderError(f"check_every: {check_every} must be >= 1")
        s, dev, T = sampling, self.device, core.max_seq_len
        ext = [p + list(f) for p, f in zip(prompts, forced or [[]] * len(prompts), strict=True)]
        steps = max(0, min(s.max_new_tokens, T - min((len(e) for e in ext), default=T)))
        elt = 2 if dev.type == "cuda" else next(core.m.parameters()).element_size()
        if memory is None:
            memory = int(0.6 * torch.cuda.mem_get_info(dev)[0]) if dev.type == "cuda" else 2 << 30
        groups: list[list[int]] = []
        P = 0
        for i, e in enumerate(ext):
            grow = max(P, len(e))
            rows = (len(groups[-1]) + 1) * samples if groups else 0
            if (
                groups
                and rows <= max_rows
                and rows * StaticGPT.row_bytes(core.m.cfg, grow + steps + 1, elt) <= memory
            ):
                groups[-1].append(i)
                P = grow
                continue
            need = samples * StaticGPT.row_bytes(core.m.cfg, len(e) + steps + 1, elt)
            if need > memory or samples > max_rows:
                raise GocoderError(
                    f"decode: prompt {i}'s {samples} rows need {need / 2**30:.2f} GiB of cache and "
                    f"sampler ({memory / 2**30:.2f} GiB free for it, max_rows {max_rows})"
                )
            groups.append([i])
            P = len(e)
        gen = None if s.seed is None else torch.Generator(dev).manual_seed(s.seed)
        graphs = os.environ.get("GOCODER_CUDA_GRAPHS", "1") != "0"
        out: list[Completion] = []
        for idx in groups:
            tok0 = (
                [f[-1] if f else 0 for f in (forced[i] for i in idx)] if forced else [0] * len(idx)
            )
            in_plan0 = [
                code_start is None and not (forced and self.code_open in forced[i]) for i in idx
            ]
            for c in self._decode_group(
                [ext[i] for i in idx],
                s,
                samples,
                steps,
                gen,
                tok0,
                in_plan0,
                first,
                graphs,
                check_every,
                None if on_token is None else _shift(on_token, idx[0] * samples),
            ):
                c.prompt_index += idx[0]
                out.append(c)
        return out

    def _decode_group(
        self,
        prompts: list[list[int]],
        s: Sampling,
        samples: int,
        steps: int,
        gen: torch.Generator | None,
        tok0: list[int],
        in_plan0: list[bool],
        first: list[int] | None,
        graphs: bool,
        check_every: int,
        on_token: Callable[[int, int], bool | None] | None,
    ) -> list[Completion]:
        """decode for one group of prompts (forced ids already appended):
        rows = len(prompts) * samples."""
        dev, T, N = self.device, self.core.max_seq_len, len(prompts)
        # the padded prompt length in whole buckets: groups of one shape reuse one cache and its
        # graphs (more padding changes no answer: padding is masked)
        P = -(-max(len(p) for p in prompts) // StaticGPT.BUCKET) * StaticGPT.BUCKET
        B, W = N * samples, max(1, s.max_new_tokens)
        # per prompt -> per row
        rep = lambda x: torch.tensor(x, device=dev).repeat_interleave(samples)  # noqa: E731
        key = (B, P, P + max(1, steps), graphs)
        if self._static is None or self._static[0] != key:
            self._static = None  # the old cache and graphs go before the new ones are made
            self._static = (key, StaticGPT(self.core.m, dev, *key))
        st = self._static[1]
        with st._mode():
            lens = torch.tensor([len(p) for p in prompts], device=dev)
            tokens = torch.zeros(N, P, dtype=torch.long, device=dev)
            for i, p in enumerate(prompts):
                tokens[i, P - len(p):] = torch.tensor(p)
            logits = st.prefill(tokens, P - lens, samples)
            # [B] ids a row may write
            cap = (T - lens).clamp(min=0, max=s.max_new_tokens).repeat_interleave(samples)
            # column W: where ended rows write
            out = torch.full((B, W + 1), -1, dtype=torch.long, device=dev)
            n_out = torch.zeros(B, dtype=torch.long, device=dev)
            done, stopped = cap <= 0, torch.zeros(B, dtype=torch.bool, device=dev)
            tok, in_plan = rep(tok0), rep(in_plan0)
            stop = torch.tensor(s.stop, dtype=torch.long, device=dev)
            barred = None
            if first is not None:
                barred = torch.ones(self.core.vocab_size, dtype=torch.bool, device=dev)
                barred[torch.tensor(first, device=dev)] = False
        end_at = [W + 1] * B  # where on_token ended each row (W + 1: it did not)
        pending: list[tuple] = []
        at = 0  # the ids before this step index have been queued for the host

        def host(final: bool) -> bool:
            """Read back the oldest queued ids (all of them when
            final); True when every row is done."""
            nonlocal done
            finished = False
            while pending and (final or len(pending) > 1):
                ev, ids, n, dn, a = pending.pop(0)
                if ev is not None:
                    ev.synchronize()
                ended = []
                for r in range(B) if on_token is not None else ():
                    if end_at[r] <= W:
                        continue
                    for j in range(a, min(a + ids.shape[1], int(n[r]))):
                        if on_token(r, int(ids[r, j - a])):
                            end_at[r] = j + 1
                            ended.append(r)
                            break
                if ended:
                    with st._mode():
                        done = done.index_fill(0, torch.tensor(ended, device=dev), True)
                finished = bool(dn.all()) or all(
                    bool(d) or e <= W for d, e in zip(dn.tolist(), end_at, strict=True)
                )
            return finished

        def queue(b: int) -> None:
            nonlocal at
            cuda = dev.type == "cuda"
            bufs = [
                torch.empty(x.shape, dtype=x.dtype, pin_memory=cuda)
                for x in (out[:, at:b], n_out, done)
            ]
            for buf, x in zip(bufs, (out[:, at:b], n_out, done), strict=True):
                buf.copy_(x, non_blocking=cuda)
            ev = None
            if cuda:
                ev = torch.cuda.Event()
                ev.record()
            pending.append((ev, *bufs, at))
            at = b

        for k in range(steps):
            with st._mode():
                if s.no_repeat_ngram:
                    logits = ban_repeats(logits, out[:, :W], n_out, s.no_repeat_ngram)
                if barred is not None:
                    logits = logits.masked_fill((n_out == 0)[:, None] & barred[None], -math.inf)
                nxt = sample(logits, s, gen)
                if self.plan_close is not None:
                    if s.max_plan_tokens:  # a plan past its budget closes here
                        over = in_plan & (n_out >= s.max_plan_tokens) & (tok != self.plan_close)
                        nxt = torch.where(over, self.plan_close, nxt)
                    nxt = torch.where(in_plan & (tok == self.plan_close), self.code_open, nxt)
                live = ~done
                out.scatter_(1, torch.where(live, n_out, W)[:, None], nxt[:, None])
                n_out += live
                hit = torch.isin(nxt, stop) & live
                stopped |= hit
                in_plan &= nxt != self.code_open
                tok = nxt
                done = done | hit | (n_out >= cap)
            if (k + 1) % check_every == 0 or k + 1 == steps:
                queue(k + 1)
                if host(final=False):
                    break
            if k + 1 < steps:
                logits = st.step(nxt)
        host(final=True)
        n_out, out, stopped = n_out.tolist(), out.tolist(), stopped.tolist()
        res = []
        for r in range(B):
            n = min(n_out[r], end_at[r])
            res.append(
                Completion(r // samples, r % samples, out[r][:n], stopped[r] and n == n_out[r])
            )
        return res

    def decide(self, completions: list[Completion], verdicts: list[list[float]]) -> list[Decision]:
        """The refinement controller (and halting head) on each completion's final states and the
        validator's verdict features (gocoder.check.validate.verdict_features)."""
        if len(completions) != len(verdicts):
            raise GocoderError(
                f"decide: {len(completions)} completions but {len(verdicts)} verdicts"
            )
        if not completions:
            return []
        nv = getattr(self.core, "n_verdict", None)
        if nv is not None and any(len(v) != nv for v in verdicts):
            raise GocoderError(f"decide: every verdict must hold {nv} features "
                               "(gocoder.check.validate.verdict_features)")
        if any(c.state is None for c in completions):
            raise GocoderError("decide: a completion has no state (it was not made by this engine)")
        with self._mode():
            ctrl, halt = self.core.decide(
                [c.state for c in completions], torch.tensor(verdicts, dtype=torch.float)
            )
            probs = ctrl.float().softmax(-1).tolist()
            # the halting head's "halt now" probability (BCE's one logit, Q-learning's q_halt)
            h = [None] * len(probs) if halt is None else torch.sigmoid(halt[:, 0].float()).tolist()
        return [Decision(tuple(p), q) for p, q in zip(probs, h, strict=True)]
