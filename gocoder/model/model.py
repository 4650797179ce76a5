"""The gocoder model: a planner (H, slow) and a generator (L, fast)
refined in cycles, and a flat GPT.

Over ~400 lines on purpose: the model is one file read top to bottom (STYLE.md 3), variants are
its config fields, never near-copied files.

Read top to bottom: the batch layout, the blocks, the planner and generator stacks, the refinement
controller, the recursion with deep supervision and per-sample halting, then the GPT baseline.

Ideas and where they come from:
- HRM (arXiv 2506.21734): two modules at two speeds, H cycles of L steps, input injection by
  addition (L gets z_L + z_H + x, H gets z_H + z_L), the one-step gradient (`grad =
  "one_step"`), deep supervision over segments with the state detached between them,
  Q-learning halting (`halting = "q"`).
- TRM (arXiv 2510.04871): full backprop through the last cycle only (`grad = "last"`), a single BCE
  halting head (`halting = "bce"`), EMA of the weights (in gocoder/training/train.py).
- HRM-Text (arXiv 2605.20613): for text, a prompt-bidirectional / answer-causal mask and a
  normalization at each module exit.

One example is the serialized text S = prompt ++ plan ++ code (gocoder/text/serialize.py):
    prompt [0, P)          problem and context (in a refinement round also the draft
    and its verdict) plan   [P, P+Q)        the plan tokens code   [P+Q, P+Q+C)    the
    code (and the validate segment)
The planner reads all of S under the prefix-LM mask and predicts the plan (and the first
code token); the generator reads the code positions only, causally, cross-attends the
planner's states up to its own position, and predicts the rest of the code. Every answer
token is predicted exactly once.

NOTE(gocoder): z_L only exists at code positions, so H's injection of z_L is a scatter onto those
positions, and H also gets x (HRM's H gets x only through z_L, which here
would leave the prompt blind).
NOTE(gocoder): z_H and z_L are aligned by position, which keeps the recursion causal: a planner
state at position i never depends on a token after i, so teacher forcing leaks nothing.
No device, compile or distributed code here: gocoder/training/train.py applies those from outside.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from gocoder.config import ModelConfig

CONTINUE, REFINE, DONE = 0, 1, 2  # the controller's three decisions; -1 marks "no label"


@dataclass
class Batch:
    """A padded batch; lengths are per example, tokens are right-padded with pad ids."""

    tokens: Tensor  # [B, T] long
    prompt_len: Tensor  # [B] long, >= 1
    plan_len: Tensor  # [B] long
    code_len: Tensor  # [B] long (0 while the plan is being decoded)
    # [B] float: 1 to learn this code, 0 for a corrupted draft shown to the controller
    code_loss: Tensor
    ctrl_label: Tensor  # [B] long: CONTINUE / REFINE / DONE, or -1
    verdict: Tensor  # [B, n_verdict] float: the validator's verdict on this code
    # [B, T] long: document of each position in a packed row (None: one example a row)
    doc: Tensor | None = None
    # Host-side bounds the data loader knows without asking the device (0: computed from the
    # lengths, which reads the device): the longest code and plan-prediction spans. Fixed values
    # keep shapes static under torch.compile and the step free of host syncs.
    code_cap: int = 0
    plan_cap: int = 0

    @property
    def total_len(self) -> Tensor:
        return self.prompt_len + self.plan_len + self.code_len

    def _tensors(self) -> list[str]:
        return [f for f in self.__dataclass_fields__ if isinstance(getattr(self, f), Tensor)]

    def select(self, rows: Tensor) -> Batch:
        """The examples at rows, trimmed to their own longest length
        (so dropped rows cost nothing)."""
        b = replace(self, **{f: getattr(self, f).index_select(0, rows) for f in self._tensors()})
        T = int(b.total_len.max()) if self.doc is None else b.tokens.shape[1]
        return replace(b, tokens=b.tokens[:, :T], doc=None if b.doc is None else b.doc[:, :T])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            **{f: getattr(self, f).to(device, non_blocking=non_blocking) for f in self._tensors()},
        )

    def pin_memory(self) -> Batch:
        return replace(self, **{f: getattr(self, f).pin_memory() for f in self._tensors()})


# ----------------------------------------------------------------------------------------------
# blocks


def rope_tables(n: int, head_dim: int, theta: float, device: torch.device) -> tuple[Tensor, Tensor]:
    inv = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim
    )
    ang = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv)  # [n, head_dim/2]
    return ang.cos(), ang.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    # x: [B, h, n, hd]; rotate pairs (first half, second half) as in GPT-NeoX / Llama
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, 1e-6)


class Attention(nn.Module):
    """Self-attention with rotary positions, or cross-attention (no
    rotary: the memory carries its own)."""

    def __init__(self, d: int, n_heads: int, cross: bool = False, qk_norm: bool = False):
        super().__init__()
        self.h, self.cross, self.qk_norm = n_heads, cross, qk_norm
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def rotate(self, qk: Tensor, rope: tuple | None) -> Tensor:
        """Queries or keys [..., hd] made ready for the scores: QK-norm (modded-nanogpt:
        RMS over each head, no weight), then the rotary. The KV-cached engine calls this
        too, so both do the same math."""
        if self.qk_norm:
            qk = F.rms_norm(qk, (qk.shape[-1],), eps=1e-6)
        return qk if rope is None else apply_rope(qk, *rope)

    def forward(
        self, x: Tensor, mem: Tensor | None, mask: Tensor | None, rope: tuple | None
    ) -> Tensor:
        B, n, d = x.shape
        src = x if mem is None else mem
        q = self.q(x).view(B, n, self.h, -1).transpose(1, 2)  # [B, h, n, hd]
        # 2 x [B, h, m, hd]
        k, v = self.kv(src).view(B, src.shape[1], 2, self.h, -1).permute(2, 0, 3, 1, 4)
        if rope is not None or self.qk_norm:
            q, k = self.rotate(q, rope), self.rotate(k, rope)
        # packed rows under torch.compile: a fused kernel that skips masked blocks
        if isinstance(mask, BlockMask):
            y = flex_attention(q, k, v, block_mask=mask)
        else:  # mask None means plain causal (the GPT): lets SDPA pick its flash kernel
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.o(y.transpose(1, 2).reshape(B, n, d))


class SwiGLU(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(d, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(a) * b)


class ReLU2(nn.Module):
    """relu(x)^2 (Primer; modded-nanogpt's and parameter-golf's MLP): two
    matrices instead of SwiGLU's three."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(F.relu(self.up(x)).square())


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, SwiGLU (or ReLU^2); no biases."""

    def __init__(self, cfg: ModelConfig, cross: bool = False):
        super().__init__()
        d = cfg.d_model
        hidden = 32 * math.ceil(cfg.mlp_mult * d / 32)
        self.n1, self.attn = RMSNorm(d), Attention(d, cfg.n_heads, qk_norm=cfg.qk_norm)
        self.nx, self.xattn = (
            (RMSNorm(d), Attention(d, cfg.n_heads, cross=True)) if cross else (None, None)
        )
        self.n2, self.mlp = RMSNorm(d), (ReLU2 if cfg.mlp == "relu2" else SwiGLU)(d, hidden)

    def forward(self, x, mask, rope, mem=None, xmask=None):
        x = x + self.attn(self.n1(x), None, mask, rope)
        if self.xattn is not None:
            x = x + self.xattn(self.nx(x), mem, xmask, None)
        return x + self.mlp(self.n2(x))


class Stack(nn.Module):
    """A module of the recursion (planner or generator): blocks and a normalization at its exit."""

    def __init__(self, cfg: ModelConfig, n_layers: int, cross: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg, cross) for _ in range(n_layers))
        self.norm = RMSNorm(cfg.d_model)
        # examples processed, summed over calls: the test of per-sample halting reads it
        self.rows = 0
        self.loop = tuple(cfg.loop)
        # Depth recurrence (parameter-golf's looped middle layers): with `looping` on, the
        # blocks loop[0].. loop[1]-1 run a second time, on their own output. Off until
        # train.loop_start (a flag torch.compile guards on: switching it costs one recompile); a
        # model built for inference has it on.
        self.looping = bool(self.loop)

    def order(self) -> list[int]:
        """The indices of the blocks in the order they run (a looped block appears twice)."""
        n = list(range(len(self.blocks)))
        if not (self.looping and self.loop):
            return n
        a, b = self.loop
        return n[:b] + n[a:b] + n[b:]

    def forward(self, x, mask, rope, mem=None, xmask=None):
        # An int attribute changed in forward is a guard to torch.compile: counting while compiling
        # recompiled the graph for every new total (8 recompiles, then
        # eager; 17x slower on an H200).
        if not torch.compiler.is_compiling():
            self.rows += x.shape[0]
        for i in self.order():
            x = self.blocks[i](x, mask, rope, mem, xmask)
        return self.norm(x)


class Controller(nn.Module):
    """Continue / refine / done, from the pooled plan state, attention over the generator's per-step
    states, and the validator's verdict features; the halting head reads the same features."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.attn = Attention(d, cfg.n_heads, cross=True)
        self.null = nn.Parameter(torch.zeros(1, 1, d))  # an always-visible key: code may be empty
        self.verdict = nn.Linear(cfg.n_verdict, d, bias=False)
        self.mix = nn.Sequential(nn.Linear(3 * d, d, bias=False), nn.SiLU())
        self.decide = nn.Linear(d, 3, bias=False)
        n_halt = {"bce": 1, "q": 2, "none": 0}[cfg.halting]
        self.halt = nn.Linear(d, n_halt) if n_halt else None  # the only bias: HRM starts it at -5
        if self.halt is not None:  # HRM: zero weights, bias -5: nothing halts until the head learns
            nn.init.zeros_(self.halt.weight)
            nn.init.constant_(self.halt.bias, -5.0)

    def forward(self, pooled: Tensor, steps: Tensor, steps_valid: Tensor, verdict: Tensor):
        # pooled [B, d]; steps [B, C, d] generator states; steps_valid
        # [B, C]; verdict [B, n_verdict]
        B = pooled.shape[0]
        mem = torch.cat([self.null.expand(B, 1, -1).to(steps.dtype), steps], dim=1)  # [B, 1+C, d]
        valid = F.pad(steps_valid, (1, 0), value=True)[:, None, None, :]  # [B, 1, 1, 1+C]
        seen = self.attn(pooled[:, None, :], mem, valid, None)[:, 0]  # [B, d]
        h = self.mix(torch.cat([pooled, seen, self.verdict(verdict.to(pooled.dtype))], dim=-1))
        halt = self.halt(h).float() if self.halt is not None else None  # [B, 1] or [B, 2] logits
        return self.decide(h).float(), halt


# ------------------------------------------------------------------------------------------- the
# model


@dataclass
class Output:
    """Losses of one batch, each averaged over its segments; per
    segment over the rows still active."""

    plan_loss: Tensor
    code_loss: Tensor
    ctrl_loss: Tensor
    halt_loss: Tensor
    segments: Tensor  # [B] float: segments each example ran before it halted
    rows: int  # examples processed by the stacks, summed over segments (what halting saves)
    last_logits: Tensor | None = None  # [B, V]: the next-token logits at each example's end
    ctrl_logits: Tensor | None = None  # [B, 3]: the controller's decision at each example's halt


def _gather(x: Tensor, pos: Tensor) -> Tensor:
    # x [B, T, d], pos [B, n] -> [B, n, d]
    return x.gather(1, pos[..., None].expand(-1, -1, x.shape[-1]))


def _masked_ce(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    # the mean over the tokens the mask keeps; 0 (with a graph) when it keeps none
    ce = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    m = mask.flatten().float()
    return (ce * m).sum() / m.sum().clamp(min=1.0)


def _ctrl_ce(logits: Tensor, label: Tensor) -> Tensor:
    # the mean over the examples that carry a controller label (-1: none)
    keep = (label >= 0).float()
    return (
        F.cross_entropy(logits, label.clamp(min=0), reduction="none") * keep
    ).sum() / keep.sum().clamp(min=1)


class GocoderModel(nn.Module):
    """`type = "recursive"`: planner + generator + controller under HRM/TRM recursion;
    `type = "gpt"`: one causal stack of `gpt_layers` over the whole text, same blocks and heads."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError(
                "model.vocab_size must be set (from the tokenizer) before building the model"
            )
        self.cfg = cfg
        d = cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, d)
        if cfg.type == "gpt":
            self.gpt = Stack(cfg, cfg.gpt_layers or gpt_layers_for(cfg))
        else:
            self.planner = Stack(cfg, cfg.planner_layers)
            self.generator = Stack(cfg, cfg.generator_layers, cross=True)
            # HRM: fixed random initial states (buffers: under grad="last" a
            # parameter would get no gradient)
            self.register_buffer(
                "h_init", nn.init.trunc_normal_(torch.empty(d), std=1.0, a=-2.0, b=2.0)
            )
            self.register_buffer(
                "l_init", nn.init.trunc_normal_(torch.empty(d), std=1.0, a=-2.0, b=2.0)
            )
        self.controller = Controller(
            cfg if cfg.type == "recursive" else replace(cfg, halting="none")
        )
        self.head = None if cfg.tie_embeddings else nn.Linear(d, cfg.vocab_size, bias=False)
        self.apply(self._init)
        # "flex" for packed rows: set by train.prepare_model when it compiles on a GPU
        self.attn_impl = "sdpa"
        self.register_buffer("_rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("_rope_sin", torch.empty(0), persistent=False)

    def _init(self, m: nn.Module) -> None:
        # embeddings at std 1/sqrt(d) scaled by sqrt(d) on the way in (HRM): unit-size inputs, and
        # as the tied output, logits of size ~1 from the unit-RMS states each stack ends with
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=self.cfg.d_model**-0.5)
        elif isinstance(m, nn.Linear) and m.bias is None:
            nn.init.trunc_normal_(m.weight, std=m.in_features**-0.5)

    def logits(self, z: Tensor) -> Tensor:
        y = F.linear(z, self.embed.weight if self.head is None else self.head.weight)
        cap = self.cfg.logit_softcap
        return cap * torch.tanh(y / cap) if cap > 0 else y  # soft-capped (Gemma 2, modded-nanogpt)

    def prompt_states(self, tokens: Tensor, valid: Tensor) -> Tensor:
        """The final states [B, T, d] of right-padded prompts (valid [B, T] marks real tokens):
        a GPT's stack, causal, so padding never reaches a real token; a recursive model's planner
        after its passes, bidirectional with padding keys hidden (no code: no generator pass)."""
        x = self.embed(tokens) * math.sqrt(self.cfg.d_model)  # [B, T, d]
        rope = self._rope(tokens.shape[1], tokens.device)
        if self.cfg.type == "gpt":
            return self.gpt(x, None, rope)
        mask = valid[:, None, None, :]  # [B, 1, 1, T]
        z = self.h_init.expand_as(x)
        for _ in range(self.cfg.segments * self.cfg.h_cycles):
            z = self.planner(z + x, mask, rope)
        return z

    def _rope(self, n: int, device: torch.device) -> tuple[Tensor, Tensor]:
        if self._rope_cos.shape[0] < n or self._rope_cos.device != device:
            hd = self.cfg.d_model // self.cfg.n_heads
            self._rope_cos, self._rope_sin = rope_tables(
                max(n, self.cfg.max_seq_len), hd, self.cfg.rope_theta, device
            )
        return self._rope_cos[:n], self._rope_sin[:n]

    # ----------------------------------------------------------------------------- shared per batch

    def _layout(self, b: Batch, masks: bool = True) -> dict[str, Tensor]:
        """Positions and masks of one (sub-)batch (the GPT needs no masks: it runs plain causal, or
        causal within each document of a packed row)."""
        B, T = b.tokens.shape
        dev = b.tokens.device
        C = b.code_cap or max(int(b.code_len.max()), 1)
        ar_T, ar_C = torch.arange(T, device=dev), torch.arange(C, device=dev)
        start = b.prompt_len + b.plan_len  # [B] the first code position
        code_valid = ar_C[None] < b.code_len[:, None]  # [B, C]
        code_pos = (start[:, None] + ar_C[None]).clamp(max=T - 1)  # [B, C]
        lay = dict(code_pos=code_pos, code_valid=code_valid)
        if masks:
            # planner: prompt keys visible to all, other keys causally; padding keys hidden
            key_ok = ar_T[None] < b.total_len[:, None]  # [B, T]
            pmask = (ar_T[None, None, :] < b.prompt_len[:, None, None]) | (
                ar_T[None, None, :] <= ar_T[None, :, None]
            )
            pmask = pmask & key_ok[:, None, :]  # [B, T, T]
            # generator: causal over code (the diagonal always, so empty
            # rows never softmax over nothing)
            gmask = (ar_C[None, :] <= ar_C[:, None])[None] & code_valid[:, None, :]  # [B, C, C]
            xmask = (ar_T[None, None, :] <= code_pos[:, :, None]) & key_ok[:, None, :]  # [B, C, T]
            if b.doc is not None:  # a packed row: no position sees another document
                doc_c = b.doc.gather(1, code_pos)  # [B, C]
                pmask = pmask & (b.doc[:, :, None] == b.doc[:, None, :])
                gmask = gmask & (doc_c[:, :, None] == doc_c[:, None, :])
                xmask = xmask & (doc_c[:, :, None] == b.doc[:, None, :])
            lay["pmask"] = pmask[:, None]  # [B, 1, T, T]
            # [B, 1, C, C]
            lay["gmask"] = (gmask | torch.eye(C, dtype=torch.bool, device=dev))[:, None]
            lay["xmask"] = xmask[:, None]  # [B, 1, C, T]
        # plan predictions: states at [P-1, P+Q) predict plan tokens and the first code token
        Q1 = b.plan_cap or int((b.plan_len + (b.code_len > 0)).max())
        # [B, Q1]
        plan_pos = (b.prompt_len[:, None] - 1 + torch.arange(Q1, device=dev)[None]).clamp(max=T - 1)
        plan_valid = torch.arange(Q1, device=dev)[None] < (b.plan_len + (b.code_len > 0))[:, None]
        # [B, T] offset into plan
        plan_mask = torch.arange(T, device=dev)[None] - b.prompt_len[:, None]
        plan_mask = (plan_mask >= 0) & (plan_mask < b.plan_len[:, None])
        return dict(lay, plan_pos=plan_pos, plan_valid=plan_valid, plan_mask=plan_mask)

    def _gpt_mask(self, b: Batch) -> Tensor | BlockMask | None:
        """The GPT's attention mask: None (plain causal, flash) for one example a row; for a
        packed row, causal within each document, as a flex BlockMask when prepare_model chose
        flex (compiled, GPU), else a dense [B, 1, T, T] boolean mask."""
        if b.doc is None:
            return None
        doc, (B, T) = b.doc, b.tokens.shape
        if self.attn_impl == "flex":
            def same_doc_causal(bi, h, qi, ki):
                return (qi >= ki) & (doc[bi, qi] == doc[bi, ki])

            return create_block_mask(same_doc_causal, B, None, T, T, device=doc.device)
        ar = torch.arange(T, device=doc.device)
        return ((ar[None, :] <= ar[:, None])[None] & (doc[:, :, None] == doc[:, None, :]))[:, None]

    def _heads(self, b: Batch, lay: dict, zH: Tensor, zL: Tensor):
        """Per-example losses' pieces and the controller, from the planner states [B, T, d] and the
        generator states [B, C, d]."""
        B, T = b.tokens.shape
        tgt = b.tokens.gather(1, (lay["plan_pos"] + 1).clamp(max=T - 1))  # [B, Q1]
        plan_logits = self.logits(_gather(zH, lay["plan_pos"]))  # [B, Q1, V]
        code_tok = b.tokens.gather(1, lay["code_pos"])  # [B, C]
        code_logits = self.logits(zL[:, :-1])  # [B, C-1, V]: code position j predicts j+1
        code_valid = lay["code_valid"][:, 1:]
        pm = lay["plan_mask"].to(zH.dtype)
        pooled = (zH * pm[..., None]).sum(1) / pm.sum(1, keepdim=True).clamp(min=1)  # [B, d]
        ctrl, halt = self.controller(pooled, zL, lay["code_valid"], b.verdict)
        acc = None
        # share of answer tokens predicted right: the halting target (TRM's "correct")
        if halt is not None:
            right = (plan_logits.argmax(-1) == tgt) & lay["plan_valid"]
            right_c = (code_logits.argmax(-1) == code_tok[:, 1:]) & code_valid
            n = lay["plan_valid"].sum(1) + code_valid.sum(1)
            acc = (right.sum(1) + right_c.sum(1)).float() / n.clamp(min=1)
        return dict(plan=(plan_logits, tgt, lay["plan_valid"]),
                    code=(code_logits, code_tok[:, 1:], code_valid & (b.code_loss[:, None] > 0)),
                    ctrl=ctrl, halt=halt, acc=acc)

    # ------------------------------------------------------------------------------- the recursion

    def _recur(self, b: Batch, lay: dict, zH: Tensor, zL: Tensor) -> tuple[Tensor, Tensor]:
        """One segment: h_cycles of (l_cycles generator steps, one
        planner step), injection by addition."""
        cfg = self.cfg
        B, T = b.tokens.shape
        x = self.embed(b.tokens) * math.sqrt(cfg.d_model)  # [B, T, d]
        xL = _gather(x, lay["code_pos"])  # [B, C, d]
        ropeH, ropeL = self._rope(T, x.device), self._rope(zL.shape[1], x.device)
        cv = lay["code_valid"][..., None].to(x.dtype)  # [B, C, 1]
        idx = lay["code_pos"][..., None].expand(-1, -1, cfg.d_model)  # [B, C, d]
        n_grad = {"last": 1, "last_k": cfg.grad_k, "one_step": 0}[cfg.grad]
        # s == l_cycles: H
        steps = [(c, s) for c in range(cfg.h_cycles) for s in range(cfg.l_cycles + 1)]
        for i, (c, s) in enumerate(steps):
            # one_step (HRM): only the last L step and the last H
            # step; else the last n_grad H cycles
            with_grad = (
                i >= len(steps) - 2 if cfg.grad == "one_step" else c >= cfg.h_cycles - n_grad
            )
            with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
                if s < cfg.l_cycles:  # L gets z_L + z_H + x; cross-attends the planner
                    zL = self.generator(
                        zL + _gather(zH, lay["code_pos"]) + xL,
                        lay["gmask"],
                        ropeL,
                        zH,
                        lay["xmask"],
                    )
                else:  # H gets z_H + z_L (scattered onto the code positions) + x
                    inj = torch.zeros_like(zH).scatter_add(1, idx, zL * cv)
                    zH = self.planner(zH + inj + x, lay["pmask"], ropeH)
        return zH, zL

    def _segment(self, b: Batch, zH: Tensor, zL: Tensor):
        """One segment: the masks, the recursion, the heads and their cross-entropies. The region
        compile_regions compiles: every segment runs the same code on the same shapes,
        so one graph serves them all. The logits and masks end here (only Q-learning
        halting needs the masks after)."""
        lay = self._layout(b)
        zH, zL = self._recur(b, lay, zH[:, : b.tokens.shape[1]], zL[:, : lay["code_pos"].shape[1]])
        out = self._heads(b, lay, zH, zL)
        ces = (
            _masked_ce(*out["plan"]),
            _masked_ce(*out["code"]),
            _ctrl_ce(out["ctrl"], b.ctrl_label),
        )
        lay = lay if self.cfg.halting == "q" else None
        return zH, zL, lay, {k: out[k] for k in ("ctrl", "halt", "acc")}, ces

    def compile_regions(self, backend: str = "inductor") -> None:
        """torch.compile the recursive model's segment, not the whole forward:
        compiling the whole traced the segment loop unrolled, a graph per segment (8
        graphs, a first step of 120 s at 100M)."""
        self._segment = torch.compile(self._segment, backend=backend)

    def forward(self, batch: Batch, want_logits: bool = False) -> Output:
        """All segments of one batch; examples that halt leave the batch for the segments after."""
        if self.cfg.type == "gpt":
            return self._forward_gpt(batch, want_logits)
        cfg, B, dev = self.cfg, batch.tokens.shape[0], batch.tokens.device
        rows = torch.arange(B, device=dev)  # the examples still active, as rows of `batch`
        # contiguous, as every later segment's states are: a compiled
        # segment then has one input layout
        zH = self.h_init.expand(B, batch.tokens.shape[1], -1).contiguous()
        zL = self.l_init.expand(
            B, batch.code_cap or max(int(batch.code_len.max()), 1), -1
        ).contiguous()
        # segment to halt at when exploring (HRM): a random minimum of segments for some examples
        explore = torch.ones(B, device=dev)
        if self.training and cfg.halting == "q" and cfg.halt_explore > 0:
            pick = torch.rand(B, device=dev) < cfg.halt_explore
            explore = torch.where(
                pick, torch.randint(2, cfg.segments + 1, (B,), device=dev).float(), explore
            )
        sums = {k: [] for k in ("plan", "code", "ctrl", "halt")}
        seg_count = torch.zeros(B, device=dev)
        last_logits, ctrl_out = [None] * B, [None] * B
        n_rows = 0
        for seg in range(cfg.segments):
            b = batch.select(rows)
            zH, zL, lay, out, ces = self._segment(b, zH, zL)
            n_rows += len(rows)
            seg_count[rows] += 1
            for k, v in zip(("plan", "code", "ctrl"), ces, strict=True):
                sums[k].append(v)
            last = seg == cfg.segments - 1
            halted = torch.full_like(rows, last, dtype=torch.bool)
            if out["halt"] is not None:
                correct = (out["acc"] >= cfg.halt_acc).float()
                if cfg.halting == "bce":
                    halted = halted | (out["halt"][:, 0] > 0)
                    sums["halt"].append(
                        F.binary_cross_entropy_with_logits(out["halt"][:, 0], correct)
                    )
                else:
                    halted = halted | (out["halt"][:, 0] > out["halt"][:, 1])
                    sums["halt"].append(self._q_loss(b, lay, zH, zL, out["halt"], correct, seg))
                # HRM: exploring examples run at least their drawn number of segments
                if self.training:
                    halted = (halted & (seg_count[rows] >= explore[rows])) | last
            if want_logits:
                for j in torch.nonzero(halted).flatten().tolist():  # the halted examples' answers
                    r, cl = int(rows[j]), int(b.code_len[j])
                    z = zL[j, cl - 1] if cl > 0 else zH[j, int(b.total_len[j]) - 1]
                    last_logits[r], ctrl_out[r] = self.logits(z).float(), out["ctrl"][j]
            if bool(halted.all()):
                break
            # drop the halted rows: their compute really stops
            keep = torch.nonzero(~halted).flatten()
            rows, zH, zL = rows[keep], zH[keep].detach(), zL[keep].detach()
        mean = {
            k: torch.stack(v).mean() if v else torch.zeros((), device=dev) for k, v in sums.items()
        }
        return Output(mean["plan"], mean["code"], mean["ctrl"], mean["halt"], seg_count, n_rows,
                      torch.stack(last_logits) if want_logits else None,
                      torch.stack(ctrl_out) if want_logits else None)

    def _q_loss(self, b, lay, zH, zL, q, correct, seg: int) -> Tensor:
        """HRM's Q-learning halting: q_halt -> "correct now"; q_continue -> the best Q of the next
        segment, bootstrapped from one more recursion without gradient (or
        q_halt's there if it is last)."""
        loss = F.binary_cross_entropy_with_logits(q[:, 0], correct)
        if seg == self.cfg.segments - 1:
            return loss
        with torch.no_grad():
            nH, nL = self._recur(b, lay, zH.detach(), zL.detach())
            nq = self._heads(b, lay, nH, nL)["halt"]
            next_last = seg + 1 == self.cfg.segments - 1
            target = torch.sigmoid(nq[:, 0] if next_last else nq.max(dim=-1).values)
        return loss + F.binary_cross_entropy_with_logits(q[:, 1], target)

    # ------------------------------------------------------------------------------ the GPT
    # baseline

    def _forward_gpt(self, b: Batch, want_logits: bool) -> Output:
        """A flat causal decoder over the same text: plan and code losses on the same
        tokens, the same controller over its pooled plan state and its code-position
        states; one segment, no halting."""
        lay = self._layout(b, masks=False)
        T = b.tokens.shape[1]
        x = self.embed(b.tokens) * math.sqrt(self.cfg.d_model)
        h = self.gpt(x, self._gpt_mask(b), self._rope(T, b.tokens.device))
        out = self._heads(b, lay, h, _gather(h, lay["code_pos"]))
        last = None
        if want_logits:
            last = self.logits(_gather(h, (b.total_len - 1)[:, None])[:, 0]).float()
        zero = torch.zeros((), device=h.device)
        B = b.tokens.shape[0]
        return Output(
            _masked_ce(*out["plan"]),
            _masked_ce(*out["code"]),
            _ctrl_ce(out["ctrl"], b.ctrl_label),
            zero,
            torch.ones(B, device=h.device),
            B,
            last,
            out["ctrl"],
        )


# --------------------------------------------------------------------------------- sizes and FLOPs


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# train_flops asks once per example per step: building three models each time cost seconds
@functools.cache
def gpt_layers_for(cfg: ModelConfig) -> int:
    """GPT layers that give the recursive model's parameter count (built on the meta device)."""
    with torch.device("meta"):
        rec = count_params(GocoderModel(replace(cfg, type="recursive")))
        one = count_params(GocoderModel(replace(cfg, type="gpt", gpt_layers=1)))
        two = count_params(GocoderModel(replace(cfg, type="gpt", gpt_layers=2)))
    return max(1, round((rec - one) / (two - one)) + 1)


def looped_layers(cfg: ModelConfig) -> int:
    """The layers of a stack that model.loop runs a second time (0 without a loop)."""
    return cfg.loop[1] - cfg.loop[0] if cfg.loop else 0


def train_flops(
    cfg: ModelConfig, total: int, code: int, segments: float = 1.0, plan: int | None = None
) -> float:
    """Matmul FLOPs of one training example (forward + backward) with `total` tokens of which `code`
    are code and `plan` plan tokens, per PaLM's convention (attention scores counted in full).
    Steps run without gradient cost one forward; steps with gradient three. The vocabulary
    head runs only where a token is predicted (the plan and code positions, plan + code of
    them: the prompt computes no logits); plan=None takes every position after the first as
    predicted (a pretraining row)."""
    d = cfg.d_model
    hid = 32 * math.ceil(cfg.mlp_mult * d / 32)
    # n queries, m keys
    layer = lambda n, m: 2 * n * (4 * d * d + 3 * d * hid) + 4 * n * m * d  # noqa: E731
    head = 2 * d * cfg.vocab_size * (total - 1 if plan is None else plan + code)
    extra = looped_layers(cfg)  # looped layers run twice (counted as if always on)
    if cfg.type == "gpt":
        return (
            3 * ((cfg.gpt_layers or gpt_layers_for(cfg)) + extra) * layer(total, total) + 3 * head
        )
    H = (cfg.planner_layers + extra) * layer(total, total)
    # q, o; k, v; scores
    xattn = 2 * code * 2 * d * d + 2 * total * 2 * d * d + 4 * code * total * d
    L = (cfg.generator_layers + extra) * (layer(code, code) + xattn)
    cyc = cfg.l_cycles * L + H
    g = {"last": cyc, "last_k": cfg.grad_k * cyc, "one_step": L + H}[cfg.grad]
    return segments * (cfg.h_cycles * cyc + 2 * g + 3 * head)
