"""Weight-only quantization for shipped models, and the fake quantization that trains for it.

Matrices are stored as int8, int6 or int4 with a bf16 scale per group of input columns (symmetric
absmax: scale = absmax / qmax, as LLM.int8()'s and GPTQ's weight-only storage; int6 with
quantization-aware training is what openai/parameter-golf's records ship), everything else as it
was. Loading turns them back into floating weights, so the model code never sees an integer: the
gain is the download and the 32 MB cap, not the arithmetic.

On disk (safetensors), for a matrix W [out, in] with groups of g columns:
- int8: `W` (int8 [out, in]) and `W.qscale` (bf16 [out, in/g]);
- int6 / int4: `W.q6` / `W.q4` (uint8, bit-packed, row-major: four 6-bit values in three bytes, two
  4-bit values in a byte, the last byte(s) padded), `W.qscale` and `W.qshape` (int32 [2]: out, in).
The group g is in/groups (a divisor of in, see `group_size`); the bits are in the key's suffix.

The embedding (tied to the output head) keeps its own bits (`embed_bits`, int8 by default): its rows
are looked up one at a time and each token's logit reads one row, so its error is not averaged away
as a hidden matrix's is; parameter-golf's records keep it at int8 or fp16 for the same reason.
Measured on the same tiny GPT as GROUP: int4 matrices cost +0.20% validation loss with an int8
embedding, +0.55% with an int4 one, for 8% fewer bytes.

Quantization-aware training (`add_fake_quant`, applied by gocoder/training/train.py from outside the
model) runs every 2-D weight through `fake_quant`, the same arithmetic as export, with a
straight-through gradient: the weights a QAT run exports round-trip exactly.
"""

from __future__ import annotations

import torch
from torch import nn

SCALE, SHAPE = ".qscale", ".qshape"
PACKED = {4: ".q4", 6: ".q6"}  # int8 is stored unpacked, as before int6/int4 existed
QMAX = {4: 7, 6: 31, 8: 127}
BITS = {"int8": 8, "int6": 6, "int4": 4}  # `gocoder export --quantize` names
# columns a scale covers, by bits: 4-bit values need finer scales. On a 2-layer d=128 GPT
# trained 150 CPU steps on GOROOT/src (bench/quant_loss.py), int4's validation loss change
# was +0.28% in groups of 128, +0.20% in 64, +0.21% in 32; int6's +0.017% in 128, +0.010%
# in 64 (not worth 2% more bytes).
GROUP = {4: 64, 6: 128, 8: 128}
EMBED = "embed.weight"  # the token embedding and tied output head (gocoder/model/model.py)
EMBED_BITS = 8


def group_size(cols: int, group: int) -> int:
    """The columns one scale covers: the largest divisor of cols that is <= group
    (448 columns in groups of 128: 112), or the whole row when that divisor is under
    half the group (a prime width)."""
    g = next(d for d in range(min(group, cols), 0, -1) if cols % d == 0)
    return g if 2 * g >= min(group, cols) else cols


def quantize_tensor(w: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) of a matrix w [out, in]: q int8 [out, in] in [-qmax,
    qmax], scale bf16 [out, in/g].
    Computed in float32 from w as it is (a bf16 scale rounded first, then q = round(w / scale)), so
    that q * scale is the same number at export and in training."""
    rows, cols = w.shape
    g = group_size(cols, group)
    wg = w.float().reshape(rows, cols // g, g)  # [out, groups, g]
    scale = _bf16((wg.abs().amax(-1) / QMAX[bits]).clamp(min=1e-12))  # [out, groups]
    q = torch.round(wg / scale[..., None]).clamp(-QMAX[bits], QMAX[bits])  # [out, groups, g]
    return q.reshape(rows, cols).to(torch.int8), scale.to(torch.bfloat16)


def _bf16(x: torch.Tensor) -> torch.Tensor:
    """x (float32, positive) rounded to the nearest bf16 (ties to even), kept as float32.
    On the bits, not by .to(bfloat16): torch.compile's inductor drops a down-and-up cast
    inside a fused kernel (its emulate_precision_casts is off by default), and QAT's scales
    would then differ from export's."""
    i = x.contiguous().view(torch.int32)
    i = (i + 0x7FFF + ((i >> 16) & 1)) & -65536  # round the low 16 bits of the mantissa away
    return i.view(torch.float32)


def fake_quant(w: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """w quantized and read back (float32, w's shape): what export then load gives for w."""
    q, scale = quantize_tensor(w, bits, group)
    rows, cols = w.shape
    return (q.float().reshape(rows, scale.shape[1], -1) * scale.float()[..., None]).reshape(
        rows, cols
    )


def pack(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed ints in [-2^(bits-1), 2^(bits-1)) (any shape) as flat uint8: two 4-bit
    values a byte, or four 6-bit values in three bytes (little-endian within each 24-bit
    word); the tail padded with zeros."""
    per = {4: 2, 6: 4}[bits]
    u = q.flatten().to(torch.int32) + (1 << (bits - 1))  # unsigned: [0, 2^bits)
    u = torch.cat([u, u.new_zeros(-len(u) % per)]).reshape(-1, per)  # [words, per]
    word = sum(u[:, i] << (bits * i) for i in range(per))  # [words]: 8 or 24 bits each
    nbytes = bits * per // 8
    return (
        torch.stack([(word >> (8 * i)) & 0xFF for i in range(nbytes)], 1).flatten().to(torch.uint8)
    )


def unpack(data: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """The first n signed ints (int8, flat) that pack wrote into data."""
    per = {4: 2, 6: 4}[bits]
    nbytes = bits * per // 8
    b = data.to(torch.int32).reshape(-1, nbytes)  # [words, bytes]
    word = sum(b[:, i] << (8 * i) for i in range(nbytes))  # [words]
    u = torch.stack([(word >> (bits * i)) & ((1 << bits) - 1) for i in range(per)], 1).flatten()[:n]
    return (u - (1 << (bits - 1))).to(torch.int8)


def bits_for(name: str, bits: int, embed_bits: int) -> int:
    return embed_bits if name == EMBED and embed_bits else bits


def is_matrix(w: torch.Tensor) -> bool:
    """What export quantizes and QAT fake-quantizes: every floating 2-D tensor (norm weights,
    biases, 3-D parameters and integer tensors are kept as they are)."""
    return w.is_floating_point() and w.dim() == 2


def quantize(tensors: dict[str, torch.Tensor], bits: int, group: int = 0,
             embed_bits: int = EMBED_BITS) -> dict[str, torch.Tensor]:
    """The matrices of tensors at bits (8, 6 or 4; the embedding at embed_bits) with a scale per
    group of input columns (group 0: GROUP[bits]); other tensors unchanged. Quantize float32
    weights, not bf16 ones, for a QAT run's weights to round-trip exactly."""
    out: dict[str, torch.Tensor] = {}
    for k, w in tensors.items():
        if not is_matrix(w):
            out[k] = w
            continue
        b = bits_for(k, bits, embed_bits)
        q, scale = quantize_tensor(w, b, group or GROUP[b])
        out[k + SCALE] = scale.contiguous()
        if b == 8:
            out[k] = q.contiguous()
        else:
            out[k + PACKED[b]] = pack(q, b)
            out[k + SHAPE] = torch.tensor(w.shape, dtype=torch.int32)
    return out


def is_quantized(tensors: dict[str, torch.Tensor]) -> bool:
    return any(k.endswith(SCALE) for k in tensors)


def dequantize(
    tensors: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Floating weights again (dtype) from quantize's output (int8, int6 and int4
    alike); other tensors pass through."""
    out: dict[str, torch.Tensor] = {}
    for k, w in tensors.items():
        bits = next((b for b, suf in PACKED.items() if k.endswith(suf)), None)
        name = k[: -len(PACKED[bits])] if bits else k
        if name + SCALE not in tensors:
            if not k.endswith((SCALE, SHAPE)):
                out[k] = w  # not quantized
            continue
        if bits:  # int6 / int4: unpack to [out, in] first
            rows, cols = tensors[name + SHAPE].tolist()
            w = unpack(w, bits, rows * cols).reshape(rows, cols)
        s = tensors[name + SCALE]  # [out, groups]
        rows, cols = w.shape
        out[name] = (
            (w.float().reshape(rows, s.shape[1], -1) * s.float()[..., None])
            .reshape(rows, cols)
            .to(dtype)
        )
    return out


# ------------------------------------------------------------------ quantization-aware training

class FakeQuant(nn.Module):
    """A parametrization (torch.nn.utils.parametrize): the weight the model sees is
    fake_quant(w) in the forward pass and w's own in the backward (the straight-through
    estimator, w + (q(w) - w).detach()).
    `on` is a plain attribute: torch.compile guards on it, so switching
    QAT on mid-run recompiles once."""

    def __init__(self, bits: int, group: int):
        super().__init__()
        self.bits, self.group, self.on = bits, group, True

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if not self.on:
            return w
        return w + (fake_quant(w, self.bits, self.group).to(w.dtype) - w).detach()


def add_fake_quant(model: nn.Module, bits: int, group: int = 0, embed_bits: int = EMBED_BITS,
                   on: bool = True) -> int:
    """Fake-quantize every 2-D parameter of model as `quantize` would store it (the embedding at
    embed_bits). The Parameter objects stay (optimizers built before keep them), and state_dict /
    load_state_dict keep the plain key names (`x.weight`, not parametrize's
    `x.parametrizations.weight.original`): checkpoints, the EMA and resume
    see the model they saw before.
    Returns the number of parametrized weights."""
    from torch.nn.utils import parametrize

    n = 0
    for mname, mod in list(model.named_modules()):
        names = [p for p, w in mod.named_parameters(recurse=False) if is_matrix(w)]
        for p in names:
            full = f"{mname}.{p}" if mname else p
            b = bits_for(full, bits, embed_bits)
            fq = FakeQuant(b, group or GROUP[b])
            fq.on = on
            parametrize.register_parametrization(mod, p, fq)
            n += 1
        if names:
            mod.register_state_dict_post_hook(_plain_keys)
            mod.register_load_state_dict_pre_hook(_parametrized_keys)
    return n


def set_fake_quant(model: nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, FakeQuant):
            m.on = on


def _plain_keys(module: nn.Module, sd: dict, prefix: str, local_metadata: dict) -> None:
    for name in module.parametrizations:
        k = f"{prefix}parametrizations.{name}.original"
        if k in sd:
            sd[prefix + name] = sd.pop(k)


def _parametrized_keys(module: nn.Module, sd: dict, prefix: str, *args: object) -> None:
    for name in module.parametrizations:
        if prefix + name in sd:
            sd[f"{prefix}parametrizations.{name}.original"] = sd.pop(prefix + name)
