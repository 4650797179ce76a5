"""Texts as vectors from a gocoder model's own weights, for retrieval
(gocoder/inference/ranking.py).

No model trained for retrieval: the model that writes the answer reads the declarations and the
query, and its states, mean-pooled, are the vectors (the simplest of sentence embeddings; SGPT,
Muennighoff 2022, pools a decoder's last states the same way). BENCHMARKS.md (retrieval recall)
measures them against BM25 on the PR benchmark.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from gocoder import GocoderError

EMBED_TOKENS = 128  # tokens of a declaration's text or a query the model reads (the rest is cut)
POOLINGS = ("hidden", "embedding")


class Embedder:
    """Texts as vectors from a gocoder model's own weights: pooling "hidden" averages the
    final hidden states (a GPT's stack; a recursive model's planner after its passes over a
    prompt, as the engine's prefill computes them: gocoder/inference/kvcache.py), "embedding"
    the input token embeddings; both over the text's first max_tokens tokens, L2-normalized.
    No training: the model as it generates."""

    def __init__(
        self,
        model: Any,
        tok: Any,
        pooling: str = "embedding",
        max_tokens: int = EMBED_TOKENS,
        batch: int = 32,
    ):
        if pooling not in POOLINGS:
            raise GocoderError(f"retrieve.pooling {pooling!r}: one of {', '.join(POOLINGS)}")
        self.model, self.tok, self.pooling, self.max_tokens, self.batch = (
            model,
            tok,
            pooling,
            max_tokens,
            batch,
        )
        w = model.embed.weight.detach().float().cpu().numpy()
        # the index's vectors are this model's: a model with other weights (or pooling) embeds again
        self.key = hashlib.sha256(w.tobytes() + f"{pooling}:{max_tokens}".encode()).hexdigest()[:16]

    @classmethod
    def of(cls, gen: Any, pooling: str = "embedding", max_tokens: int = EMBED_TOKENS) -> Embedder:
        """The embedder of a loaded Generator: the model that answers is the one that ranks."""
        return cls(gen.model, gen.tok, pooling, max_tokens)

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), d_model] float32 unit vectors (a text without tokens: zeros)."""
        import torch

        m = self.model
        ids = (
            [t[: self.max_tokens] for t in self.tok.encode_batch(texts, threads=1)] if texts else []
        )
        out = np.zeros((len(texts), m.cfg.d_model), np.float32)
        # like lengths batched: little padding
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        dev = m.embed.weight.device
        with torch.inference_mode():
            for b in range(0, len(order), self.batch):
                rows = [i for i in order[b : b + self.batch] if ids[i]]
                if not rows:
                    continue
                T = max(len(ids[i]) for i in rows)
                # [B, T]
                tokens = torch.tensor([ids[i] + [0] * (T - len(ids[i])) for i in rows], device=dev)
                lens = torch.tensor([len(ids[i]) for i in rows], device=dev)
                valid = torch.arange(T, device=dev)[None] < lens[:, None]  # [B, T]
                z = self._states(tokens, valid)  # [B, T, d]
                v = (z * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)  # [B, d]
                out[rows] = torch.nn.functional.normalize(v.float(), dim=-1).cpu().numpy()
        return out

    def _states(self, tokens: Any, valid: Any) -> Any:
        """The per-token states [B, T, d] that pooling averages."""
        if self.pooling == "embedding":
            return self.model.embed(tokens)
        return self.model.prompt_states(tokens, valid)
