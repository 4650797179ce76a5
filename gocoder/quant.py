"""Weight-only int8 for shipped models: matrices stored as int8 with a bf16 scale per group of input
columns (absmax / 127, groups of 128, as in LLM.int8()'s and GPTQ's weight-only storage), everything
else as it was. Loading turns them back into floating weights, so the model code never sees int8: the
gain is the download and the repository (a 26M-parameter model is 26 MB instead of 52 MB in bf16), not
the arithmetic.

A quantized tensor W [out, in] is saved as `W` (int8, same shape) and `W.qscale` (bf16 [out, in/g]).
"""

from __future__ import annotations

import torch

SCALE = ".qscale"
GROUP = 128


def _group(cols: int) -> int:
    return GROUP if cols % GROUP == 0 else cols  # a row whose width is no multiple of 128: one group


def quantize_int8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """int8 matrices with group scales; 1-D tensors (norm weights, biases) and non-float ones unchanged."""
    out: dict[str, torch.Tensor] = {}
    for k, w in tensors.items():
        if not (w.is_floating_point() and w.dim() == 2):
            out[k] = w
            continue
        rows, cols = w.shape
        g = _group(cols)
        wg = w.float().reshape(rows, cols // g, g)  # [out, groups, g]
        scale = (wg.abs().amax(-1) / 127.0).clamp(min=1e-12).to(torch.bfloat16)  # [out, groups]
        q = torch.round(wg / scale.float()[..., None]).clamp(-127, 127).to(torch.int8)
        out[k], out[k + SCALE] = q.reshape(rows, cols).contiguous(), scale.contiguous()
    return out


def is_quantized(tensors: dict[str, torch.Tensor]) -> bool:
    return any(k.endswith(SCALE) for k in tensors)


def dequantize(tensors: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Floating weights again (dtype) from quantize_int8's output; other tensors pass through."""
    out: dict[str, torch.Tensor] = {}
    for k, w in tensors.items():
        if k.endswith(SCALE):
            continue
        s = tensors.get(k + SCALE)
        if s is None:
            out[k] = w
            continue
        rows, cols = w.shape
        g = cols // s.shape[1]
        out[k] = (w.float().reshape(rows, -1, g) * s.float()[..., None]).reshape(rows, cols).to(dtype)
    return out
