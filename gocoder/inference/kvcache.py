"""KV caches and one-token forward steps of both model families, for gocoder/inference/engine.py.

Over ~400 lines on purpose: the engine's two caches, `Core` (either family; rows leave the batch)
and `StaticGPT` (a GPT's fixed-shape cache, for CUDA graphs), each replay the model's own Block
in its order of operations with the same attention step, and are read against each other and the
full forward (tests/test_engine.py, tests/test_decode.py).

- `type = "gpt"`: one causal stack, one K/V cache per layer.
- `type = "recursive"`: the model is a fixed chain of stack passes (per segment, per H cycle:
  l_cycles generator passes, then one planner pass; gocoder/model/model.py `_recur`). Past the
  prompt every pass is causal per position, so each pass and layer gets its own self-attention
  cache, and each planner state that the generator cross-attends (the planner's output before each
  cycle) a cache of its cross-attention K/V.
  A new token runs every pass at its own position only. Generator rope positions count from
  `<CODE>`, the planner's are absolute; rows still writing the plan skip the generator passes.
The blocks reuse the model's own modules (gocoder.model.model.Block's order of operations), so
training code stays as it is; tests/test_engine.py checks the steps against the full forward.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gocoder import GocoderError
from gocoder.model.model import GocoderModel, gpt_layers_for, looped_layers


@dataclass
class _At:
    """Where one pass writes and reads its caches: per-row positions
    of a subset of the batch rows."""

    rows: Tensor  # [b] batch rows
    sub: bool  # rows is a strict subset (reads gather, else they slice)
    pos: Tensor | None  # [b] the position each row writes; None: a prefill of positions [0, n)
    n: int  # keys to read
    mask: Tensor | None  # [b, 1, 1, n] bool; None: every key (or plain causal)
    rope: tuple[Tensor, Tensor] | None
    causal: bool = False  # a prefill under the plain causal mask (the GPT's): SDPA's fast path
    same: int | None = None  # the one position of every row (all rows, no mask), else None


def _store(kv: tuple[Tensor, Tensor], k: Tensor, v: Tensor, at: _At) -> tuple[Tensor, Tensor]:
    """Write k, v [b, h, q, hd] into the cache [B, h, cap, hd] and
    return the keys the queries read."""
    kc, vc = kv
    if at.pos is None:
        kc[:, :, : k.shape[2]], vc[:, :, : k.shape[2]] = k, v
        return k, v
    if at.same is not None:  # every row at one position: a plain copy, no scatter
        kc[:, :, at.same], vc[:, :, at.same] = k[:, :, 0], v[:, :, 0]
    else:
        kc[at.rows, :, at.pos], vc[at.rows, :, at.pos] = k[:, :, 0], v[:, :, 0]
    return _read(kv, at)


def _read(kv: tuple[Tensor, Tensor], at: _At) -> tuple[Tensor, Tensor]:
    kc, vc = kv
    if at.sub:
        return kc[at.rows, :, : at.n], vc[at.rows, :, : at.n]
    return kc[:, :, : at.n], vc[:, :, : at.n]


def _heads(x: Tensor, h: int) -> Tensor:
    return x.view(x.shape[0], x.shape[1], h, -1).transpose(1, 2)  # [b, q, d] -> [b, h, q, hd]


def _attend(
    attn, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool = False
) -> Tensor:
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)  # [b, h, q, hd]
    return attn.o(y.transpose(1, 2).flatten(2))


def _block(blk, w_qkv: Tensor, x: Tensor, kv, at: _At, xkv=None, xat: _At | None = None) -> Tensor:
    """gocoder.model.model.Block.forward with cached keys and values (same modules,
    same order of operations; w_qkv: the attention's q and kv weights in one
    matrix, one matmul instead of two)."""
    a, (b, n, _) = blk.attn, x.shape
    # [3, b, h, n, hd]
    qkv = F.linear(blk.n1(x), w_qkv).view(b, n, 3, a.h, -1).permute(2, 0, 3, 1, 4)
    (q, k), v = a.rotate(qkv[:2], at.rope), qkv[2]  # q and k (QK-norm and) rotated in one call
    x = x + _attend(a, q, *_store(kv, k, v, at), at.mask, at.causal)
    if blk.xattn is not None:  # cross-attention over the planner states cached by Core._memory
        x = x + _attend(
            blk.xattn, _heads(blk.xattn.q(blk.nx(x)), blk.xattn.h), *_read(xkv, xat), xat.mask
        )
    return x + blk.mlp(blk.n2(x))


def _keys(pos: Tensor) -> tuple[int, Tensor | None]:
    """Keys to read and the mask [b, 1, 1, n] of queries at positions pos [b] (keys <= own
    position); no mask when every row sits at the same position (SDPA runs faster without one)."""
    lo, hi = (int(v) for v in pos.aminmax())
    if lo == hi:
        return hi + 1, None
    return hi + 1, (torch.arange(hi + 1, device=pos.device)[None] <= pos[:, None])[:, None, None]


class Core:
    """The caches and forward steps of one GocoderModel; rows of the batch are the dim 0
    of every tensor in `self.t`, so that rows leave the batch (`keep`) or copy to
    samples (`start`) in one place."""

    def __init__(self, model: GocoderModel, device: torch.device, segments: int):
        self.m, self.dev, cfg = model, device, model.cfg
        self.max_seq_len, self.vocab_size, self.d = cfg.max_seq_len, cfg.vocab_size, cfg.d_model
        self.n_verdict = cfg.n_verdict
        self.gpt = cfg.type == "gpt"
        # planner passes (and planner states the generator reads)
        self.passes = segments * cfg.h_cycles
        self.t: dict[str, Any] = {}
        self.dtype = torch.bfloat16 if device.type == "cuda" else next(model.parameters()).dtype

    def _alloc(self, name: str, n: int, cap: int) -> None:
        hd = self.d // self.m.cfg.n_heads
        shape = (n, self.m.cfg.n_heads, cap, hd)
        # zeros, not empty: a masked key still multiplies its value by 0, and 0 * NaN is NaN
        self.t[name] = (torch.zeros(shape, dtype=self.dtype, device=self.dev),
                        torch.zeros(shape, dtype=self.dtype, device=self.dev))

    def _stack(
        self, stack, x: Tensor, name: str, at: _At, mem: int | None = None, xat: _At | None = None
    ) -> Tensor:
        # a looped block (model.loop) runs twice: its own self-attention cache each visit j, one
        # cross-attention memory per block i
        for j, i in enumerate(stack.order()):
            blk = stack.blocks[i]
            x = _block(
                blk, self.qkv[blk], x, self.t[f"{name}.{j}"], at, self.t.get(f"x{mem}.{i}"), xat
            )
        return stack.norm(x)

    def _memory(self, i: int, zH: Tensor, at: _At) -> None:
        """Cache the generator's cross-attention K/V of the planner
        state zH [b, q, d] (the i-th one)."""
        for li, blk in enumerate(self.m.generator.blocks):
            k, v = (
                blk.xattn.kv(zH)
                .view(zH.shape[0], zH.shape[1], 2, blk.xattn.h, -1)
                .permute(2, 0, 3, 1, 4)
            )
            _store(self.t[f"x{i}.{li}"], k, v, at)

    def start(self, tokens: Tensor, lens: Tensor, samples: int, cap: int) -> Tensor:
        """Prefill prompts tokens [N, P] (right-padded, lengths lens) once, copy each to its
        samples; returns the logits [N * samples, V] of the first new token."""
        m, (N, P), self.t = self.m, tokens.shape, {}
        # fused per call, not once: the model's weights may have
        # changed since the last one (training)
        self.qkv = {blk: torch.cat([blk.attn.q.weight, blk.attn.kv.weight]) for blk in m.modules()
                    if hasattr(blk, "attn")}
        ccap = max(1, cap - int(lens.min()))  # code positions a row can reach
        x = m.embed(tokens) * math.sqrt(self.d)  # [N, P, d]
        rope = tuple(r[:P] for r in m._rope(cap, self.dev))
        if self.gpt:  # right padding never shows to a causal query of the prompt
            for j in range(len(m.gpt.order())):
                self._alloc(f"gpt.{j}", N, cap)
            z = self._stack(
                m.gpt, x, "gpt", _At(torch.arange(N), False, None, P, None, rope, causal=True)
            )
        else:
            cfg = m.cfg
            for p in range(self.passes):
                for j in range(len(m.planner.order())):
                    self._alloc(f"p{p}.{j}", N, cap)
                for i in range(cfg.generator_layers):
                    self._alloc(f"x{p}.{i}", N, cap)
                for j in range(len(m.generator.order())):
                    for s in range(cfg.l_cycles):
                        self._alloc(f"g{p * cfg.l_cycles + s}.{j}", N, ccap)
            # the planner is bidirectional over the prompt: every prompt query sees the whole prompt
            # [N, 1, 1, P]
            mask = (torch.arange(P, device=self.dev)[None] < lens[:, None])[:, None, None]
            at = _At(torch.arange(N), False, None, P, mask, rope)
            z = m.h_init.expand(N, P, -1)
            # no code in the prompt: no generator pass, no injection of z_L
            for p in range(self.passes):
                self._memory(p, z, at)
                z = self._stack(m.planner, z + x, f"p{p}", at)
        self.t |= {
            "plan_sum": torch.zeros(N, self.d, device=self.dev),
            "plan_n": torch.zeros(N, device=self.dev),
            "code": torch.zeros(N, ccap, self.d, device=self.dev),
            "code_n": torch.zeros(N, dtype=torch.long, device=self.dev),
        }
        if samples > 1:
            self.keep(torch.arange(N, device=self.dev).repeat_interleave(samples))
        last = z[torch.arange(N, device=self.dev), lens - 1]  # [N, d]
        return m.logits(last).float().repeat_interleave(samples, 0)

    def step(self, tok: Tensor, pos: Tensor, code: Tensor, want: Tensor) -> Tensor:
        """Feed tok [b] at absolute positions pos [b] (code: index from `<CODE>`, -1 in the plan);
        returns the next-token logits [len(want), V] of the rows want."""
        m, b = self.m, tok.shape[0]
        x = m.embed(tok)[:, None] * math.sqrt(self.d)  # [b, 1, d]
        cos, sin = m._rope(self.max_seq_len, self.dev)
        allrows = torch.arange(b, device=self.dev)
        n, mask = _keys(pos)
        at = _At(allrows, False, pos, n, mask, (cos[pos][:, None, None], sin[pos][:, None, None]),
                 same=n - 1 if mask is None else None)
        crow = torch.nonzero(code >= 0)[:, 0]  # rows writing code
        if self.gpt:
            z = self._stack(m.gpt, x, "gpt", at)[:, 0]
            self._record(z, z[crow], code, crow)
            return m.logits(z if len(want) == b else z[want]).float()
        cfg, nc = m.cfg, len(crow)
        sub = nc < b
        zH, zL = m.h_init.expand(b, 1, -1), m.l_init.expand(nc, 1, -1)
        if nc:
            j = code[crow]
            nj, jmask = _keys(j)
            atL = _At(crow, sub, j, nj, jmask, (cos[j][:, None, None], sin[j][:, None, None]))
            # cross-attention: the planner states up to each row's own position
            xat = _At(crow, sub, None, n, None if mask is None else mask[crow], None)
            xc = x[crow] if sub else x
        for p in range(self.passes):
            self._memory(p, zH, at)  # every row: later code positions read the plan's states too
            inj = 0
            if nc:  # z_L gets z_L + z_H + x, then z_H gets z_L injected where there is code
                zHc = zH[crow] if sub else zH
                for s in range(cfg.l_cycles):
                    zL = self._stack(
                        m.generator, zL + zHc + xc, f"g{p * cfg.l_cycles + s}", atL, p, xat
                    )
                inj = torch.zeros_like(zH).index_copy(0, crow, zL.to(zH.dtype)) if sub else zL
            zH = self._stack(m.planner, zH + inj + x, f"p{p}", at)
        z = zH[:, 0].clone()
        if nc:
            z[crow] = zL[:, 0].to(z.dtype)
        self._record(zH[:, 0], zL[:, 0], code, crow)
        return m.logits(z if len(want) == b else z[want]).float()

    def _record(self, zH: Tensor, zL: Tensor, code: Tensor, crow: Tensor) -> None:
        """Keep what the controller reads: the sum of the final planner states over the plan
        positions, and the final generator states (the GPT's states) at the code positions."""
        plan = (code < 0).float()
        self.t["plan_sum"] += zH.float() * plan[:, None]
        self.t["plan_n"] += plan
        if len(crow):
            self.t["code"][crow, code[crow]] = zL.float()
            self.t["code_n"][crow] += 1

    def keep(self, rows: Tensor) -> None:
        self.t = {
            k: tuple(x.index_select(0, rows) for x in v)
            if isinstance(v, tuple)
            else v.index_select(0, rows)
            for k, v in self.t.items()
        }

    def states(self, rows: list[int]) -> list[dict[str, Tensor]]:
        # copies (on the CPU too), not views: a view would keep the whole batch's buffer alive
        t = self.t
        return [{"pooled": (t["plan_sum"][r] / t["plan_n"][r].clamp(min=1)).to("cpu", copy=True),
                 "code": t["code"][r, : int(t["code_n"][r])].to("cpu", copy=True)} for r in rows]

    def decide(
        self, states: list[dict[str, Tensor]], verdict: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """The model's controller (as in GocoderModel._heads) on kept
        states: ctrl [N, 3], halt logits."""
        C = max(1, max(len(s["code"]) for s in states))
        steps = torch.zeros(len(states), C, self.d)
        for i, s in enumerate(states):
            steps[i, : len(s["code"])] = s["code"]
        valid = torch.arange(C)[None] < torch.tensor([len(s["code"]) for s in states])[:, None]
        pooled = torch.stack([s["pooled"] for s in states])
        p = next(self.m.parameters())
        return self.m.controller(pooled.to(p), steps.to(p), valid.to(self.dev), verdict.to(p))


# ------------------------------------------------------------------------ the GPT's static cache


class StaticGPT:
    """A GPT's KV cache of fixed shape and a one-token step whose shapes never
    change, so that the step can be captured once in a CUDA graph and replayed for
    every token (on the CPU it runs eagerly).

    Rows are left-padded (row r's first pad[r] slots are padding): every row writes its next key at
    the same slot t, a device tensor, and reads the same number of keys; its rope position is t -
    pad[r] and its mask hides the padding. Cache: per layer K and V [rows, heads, length, head_dim].
    The step reads the keys up to a bucket of `BUCKET` slots past t (one graph per bucket): a fixed
    length would read the whole cache at every token. NOTE(gocoder): after the static-cache decoders
    of gpt-fast (PyTorch, 2023) and vLLM's CUDA-graph decode; the blocks are
    gocoder.model.model.Block's own modules.
    """

    BUCKET = 64

    def __init__(
        self,
        model: GocoderModel,
        device: torch.device,
        rows: int,
        prompt_len: int,
        length: int,
        graphs: bool,
    ):
        m, cfg = model, model.cfg
        self.m, self.dev, self.B, self.P, self.L = m, device, rows, prompt_len, length
        self.h, self.hd, self.T = cfg.n_heads, cfg.d_model // cfg.n_heads, cfg.max_seq_len
        self.dtype = torch.bfloat16 if device.type == "cuda" else next(m.parameters()).dtype
        # a looped block (model.loop) twice: a cache each
        self.blocks = [m.gpt.blocks[i] for i in m.gpt.order()]
        with torch.no_grad():
            self.qkv = [torch.cat([b.attn.q.weight, b.attn.kv.weight]) for b in self.blocks]
        shape = (rows, self.h, length, self.hd)
        # zeros, not empty: a masked key still multiplies its value by 0, and 0 * NaN is NaN
        self.k = [torch.zeros(shape, dtype=self.dtype, device=device) for _ in self.blocks]
        self.v = [torch.zeros(shape, dtype=self.dtype, device=device) for _ in self.blocks]
        self.cos, self.sin = m._rope(self.T, device)
        # the step's inputs, written in place between replays: the ids fed,
        # the slot they go to, the padding
        self.tok = torch.zeros(rows, dtype=torch.long, device=device)
        self.slot = torch.zeros(1, dtype=torch.long, device=device)
        self.pad = torch.zeros(rows, dtype=torch.long, device=device)
        self.ar = torch.arange(length, device=device)
        self.t = 0  # the host's copy of slot: which bucket (graph) the next step runs
        self.graphs = graphs and device.type == "cuda"
        self._graph: dict[int, tuple[Any, Tensor]] = {}
        self._pool = None

    @staticmethod
    def row_bytes(cfg: Any, length: int, elt: int) -> int:
        """Device bytes one row needs: its K and V in every layer, and the step's and the sampler's
        [vocab] rows (logits, top-p's sort and order, the n-gram
        ban, the noise: ~10 float copies)."""
        layers = (cfg.gpt_layers or gpt_layers_for(cfg)) + looped_layers(cfg)
        return 2 * layers * length * cfg.d_model * elt + 10 * 4 * cfg.vocab_size + 16 * length

    def _mode(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        # no weight cache: a graph must not keep casts made during its capture
        if self.dev.type == "cuda":
            stack.enter_context(torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False))
        return stack

    def prefill(self, tokens: Tensor, pad: Tensor, samples: int) -> Tensor:
        """Prompts tokens [N, P] (left-padded, pad [N] slots of padding each) into the
        cache, each copied to its `samples` rows (N * samples = rows); returns the
        first new token's logits [rows, V]."""
        m, (N, P) = self.m, tokens.shape
        with self._mode():
            # in place (graphs read it): weights may have
            for w, b in zip(self.qkv, self.blocks, strict=True):
                # changed since the cache was made
                torch.cat([b.attn.q.weight, b.attn.kv.weight], out=w)
            ar = torch.arange(P, device=self.dev)
            pos = (ar[None] - pad[:, None]).clamp(min=0)  # [N, P] rope positions
            rope = (self.cos[pos][:, None], self.sin[pos][:, None])  # [N, 1, P, hd/2]
            # causal, padding hidden; a padding query sees itself, so that no softmax runs over
            # nothing (a NaN there would reach the padding's cached values, and 0 * NaN is NaN)
            mask = (ar[None, :] <= ar[:, None])[None] & (ar[None, None, :] >= pad[:, None, None])
            mask = (mask | torch.eye(P, dtype=torch.bool, device=self.dev))[:, None]  # [N, 1, P, P]
            x = m.embed(tokens) * math.sqrt(m.cfg.d_model)  # [N, P, d]
            for i, blk in enumerate(self.blocks):
                qkv = (
                    F.linear(blk.n1(x), self.qkv[i])
                    .view(N, P, 3, self.h, -1)
                    .permute(2, 0, 3, 1, 4)
                )
                (q, k), v = blk.attn.rotate(qkv[:2], rope), qkv[2]  # [N, h, P, hd] each
                self.k[i][:, :, :P] = k.repeat_interleave(samples, 0)
                self.v[i][:, :, :P] = v.repeat_interleave(samples, 0)
                x = x + _attend(blk.attn, q, k, v, mask)
                x = x + blk.mlp(blk.n2(x))
            self.pad.copy_(pad.repeat_interleave(samples))
            self.slot.fill_(P)
            self.t = P
            return m.logits(m.gpt.norm(x[:, -1])).float().repeat_interleave(samples, 0)

    def _forward(self, n: int) -> Tensor:
        """The step: self.tok [rows] at slot self.slot, reading the first n slots; logits [rows, V].
        Shape-static and free of host reads: the body a CUDA graph captures."""
        m, B = self.m, self.B
        pos = (self.slot - self.pad).clamp(0, self.T - 1)  # [B] rope positions
        rope = (self.cos[pos][:, None, None], self.sin[pos][:, None, None])  # [B, 1, 1, hd/2]
        ar = self.ar[:n]
        # [B, 1, 1, n]
        mask = ((ar[None] >= self.pad[:, None]) & (ar[None] <= self.slot))[:, None, None]
        x = m.embed(self.tok)[:, None] * math.sqrt(m.cfg.d_model)  # [B, 1, d]
        for i, blk in enumerate(self.blocks):
            qkv = F.linear(blk.n1(x), self.qkv[i]).view(B, 1, 3, self.h, -1).permute(2, 0, 3, 1, 4)
            (q, k), v = blk.attn.rotate(qkv[:2], rope), qkv[2]  # [B, h, 1, hd] each
            self.k[i].index_copy_(2, self.slot, k.to(self.dtype))
            self.v[i].index_copy_(2, self.slot, v.to(self.dtype))
            x = x + _attend(blk.attn, q, self.k[i][:, :, :n], self.v[i][:, :, :n], mask)
            x = x + blk.mlp(blk.n2(x))
        return m.logits(m.gpt.norm(x[:, 0])).float()

    def step(self, tok: Tensor) -> Tensor:
        """Feed tok [rows] at the next slot; the next logits [rows, V] (a graph's output buffer
        on CUDA: read it before the next step)."""
        if self.t >= self.L:
            raise GocoderError(f"static cache: slot {self.t} past its length {self.L}")
        n = min(self.L, -(-(self.t + 1) // self.BUCKET) * self.BUCKET)  # keys read: t's bucket
        with self._mode():
            self.tok.copy_(tok)
            if not self.graphs:
                out = self._forward(n)
            else:
                if n not in self._graph:
                    self._graph[n] = self._capture(n)
                g, out = self._graph[n]
                g.replay()
            self.slot += 1
        self.t += 1
        return out

    def _capture(self, n: int) -> tuple[Any, Tensor]:
        """A CUDA graph of _forward(n). The warm-up runs write the very keys the
        replay writes (the step is a function of its inputs), so capturing in the
        middle of a decode changes nothing."""
        side = torch.cuda.Stream(self.dev)
        side.wait_stream(torch.cuda.current_stream(self.dev))
        with torch.cuda.stream(side):
            for _ in range(2):
                self._forward(n)
        torch.cuda.current_stream(self.dev).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        g = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(g, pool=self._pool):
                out = self._forward(n)
        except Exception as e:  # loud: a silent eager fallback would hide a 4x slower decode
            raise GocoderError(
                f"capturing the decode step in a CUDA graph failed ({type(e).__name__}: {e}); "
                "GOCODER_CUDA_GRAPHS=0 runs it eagerly"
            ) from e
        return g, out
