"""Generation speed: gocoder's KV-cached engine against transformers' GPT2LMHeadModel.generate.

The GPT baseline through gocoder.engine.Engine and a GPT2LMHeadModel of the same shape (layers, width,
heads, vocab, context; SwiGLU at 8/3 d, GPT-2's 4d MLP's parameters) write greedily from the same batch
of random prompts, the same number of new tokens, no stop id (every row runs to the end): new tokens/s of
each and their ratio (target >= 1.0). The recursive model at the same width is measured beside them; its
<CODE> logit is raised so that it writes code from its first token, and every step runs every generator
and planner pass (its costliest regime). fp32 on CPU, bf16 autocast on CUDA. Runs alternate and the best
of --repeats counts (the machine is shared).

Example:  python bench/generate.py --layers 6 --d-model 256 --vocab 16000 --prompts 8 --new 128
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gocoder.config import load_config  # noqa: E402
from gocoder.engine import Engine, Sampling  # noqa: E402
from gocoder.model import Batch, GocoderModel, count_params  # noqa: E402

CODE = 5  # the id playing <CODE> (the models are random: any id will do)


def timed(fn, dev: torch.device) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of one call (on a shared CPU the second is the steadier)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0, time.process_time() - c0


def uncached(model: GocoderModel, prompts: torch.Tensor, new: int) -> None:
    """Greedy tokens by a full forward of every sequence per new token (train.greedy_codes before the
    engine); the rows open <CODE> at once, as the engine's do here."""
    (n, P), dev = prompts.shape, next(model.parameters()).device
    seq = prompts.to(dev)
    full = lambda v: torch.full((n,), v, device=dev)  # noqa: E731
    with torch.inference_mode():
        for k in range(new):
            b = Batch(seq, full(P), full(0), full(k), full(0.0), full(-1), torch.zeros(n, model.cfg.n_verdict,
                                                                                      device=dev))
            seq = torch.cat([seq, model(b, want_logits=True).last_logits.argmax(-1)[:, None]], dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6, help="GPT layers (both GPTs)")
    ap.add_argument("--d-model", type=int, default=256, help="width of every model")
    ap.add_argument("--heads", type=int, default=8, help="attention heads")
    ap.add_argument("--vocab", type=int, default=16000, help="vocabulary size")
    ap.add_argument("--context", type=int, default=512, help="max_seq_len / n_positions")
    ap.add_argument("--prompts", type=int, default=8, help="prompts in the batch")
    ap.add_argument("--prompt-len", type=int, default=64, help="tokens per prompt")
    ap.add_argument("--new", type=int, default=128, help="new tokens per prompt")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each model (the best counts)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    ap.add_argument("--no-recursive", action="store_true", help="skip the recursive model")
    ap.add_argument("--uncached-new", type=int, default=16,
                    help="new tokens of the recursive model without a cache (a full forward per token, what "
                         "train.greedy_codes did), next to the engine at as many; 0 skips it")
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from transformers import GPT2Config, GPT2LMHeadModel

    dev = torch.device(a.device)
    base = dataclasses.replace(load_config().model, d_model=a.d_model, n_heads=a.heads, vocab_size=a.vocab,
                               max_seq_len=a.context, mlp_mult=8 / 3)
    torch.manual_seed(0)
    gpt = GocoderModel(dataclasses.replace(base, type="gpt", gpt_layers=a.layers)).to(dev).eval()
    hf = GPT2LMHeadModel(GPT2Config(n_layer=a.layers, n_embd=a.d_model, n_head=a.heads, vocab_size=a.vocab,
                                    n_positions=a.context, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    bos_token_id=0, eos_token_id=0, attn_implementation="sdpa")).to(dev).eval()
    prompts = torch.randint(10, a.vocab, (a.prompts, a.prompt_len), generator=torch.Generator().manual_seed(0))
    ids = prompts.to(dev)
    sampling = Sampling(max_new_tokens=a.new)  # greedy, no stop id

    def ours(model):
        eng = Engine(model, code_open=CODE, device=dev)
        return lambda new=a.new: eng.generate(prompts.tolist(), dataclasses.replace(sampling, max_new_tokens=new))

    def theirs(new=a.new):
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                              do_sample=False, pad_token_id=0, eos_token_id=None, use_cache=True)
        assert out.shape == (a.prompts, a.prompt_len + new)

    runs = {"engine (gpt)": (ours(gpt), count_params(gpt), a.new),
            "GPT2LMHeadModel.generate": (theirs, count_params(hf), a.new)}
    if not a.no_recursive:
        torch.manual_seed(0)
        rec = GocoderModel(dataclasses.replace(base, type="recursive")).to(dev).eval()
        head = rec.logits
        rec.logits = lambda z: head(z) + torch.nn.functional.one_hot(torch.tensor(CODE, device=z.device),
                                                                     a.vocab).to(z) * 1e4
        runs["engine (recursive)"] = (ours(rec), count_params(rec), a.new)
        if a.uncached_new:
            u = a.uncached_new
            short = ours(rec)
            runs[f"engine (recursive), {u} new"] = (lambda new=u: short(new), count_params(rec), u)
            runs[f"full forward per token (recursive), {u} new"] = (lambda new=u: uncached(rec, prompts, new),
                                                                    count_params(rec), u)
    best = {k: float("inf") for k in runs}
    cpu = {k: float("inf") for k in runs}
    for fn, *_ in runs.values():  # warm-up (allocators, kernels' first calls)
        fn(4)
    for _ in range(a.repeats):
        for k, (fn, *_) in runs.items():
            wall, used = timed(fn, dev)
            best[k], cpu[k] = min(best[k], wall), min(cpu[k], used)
    rows = {k: {"params": p, "new": new, "seconds": best[k], "tokens_per_s": a.prompts * new / best[k],
                "cpu_seconds": cpu[k], "tokens_per_cpu_s": a.prompts * new / cpu[k]} for k, (_, p, new) in runs.items()}
    res = {"shape": dict(layers=a.layers, d_model=a.d_model, heads=a.heads, vocab=a.vocab, context=a.context,
                         prompts=a.prompts, prompt_len=a.prompt_len, new=a.new),
           "device": str(dev), "threads": torch.get_num_threads(), "machine": platform.machine(),
           "torch": torch.__version__, "results": rows,
           "ratio_vs_hf": rows["engine (gpt)"]["tokens_per_s"] / rows["GPT2LMHeadModel.generate"]["tokens_per_s"],
           "cpu_ratio_vs_hf": cpu["GPT2LMHeadModel.generate"] / cpu["engine (gpt)"]}
    if not a.no_recursive:
        res["recursive_config"] = {k: getattr(rec.cfg, k) for k in ("planner_layers", "generator_layers", "h_cycles",
                                                                    "l_cycles", "segments")}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{a.prompts} prompts x {a.prompt_len} tokens, {a.new} new tokens each, greedy, {dev}, "
          f"{torch.get_num_threads()} threads, best of {a.repeats}")
    print("| model | params | new | wall s | new tokens/s | CPU s | new tokens/CPU s |\n|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        print(f"| {k} | {r['params'] / 1e6:.2f} M | {r['new']} | {r['seconds']:.3f} | {r['tokens_per_s']:,.0f} | "
              f"{r['cpu_seconds']:.3f} | {r['tokens_per_cpu_s']:,.0f} |")
    print(f"engine / GPT2LMHeadModel.generate: {res['ratio_vs_hf']:.2f}x (wall), {res['cpu_ratio_vs_hf']:.2f}x (CPU)")


if __name__ == "__main__":
    main()
