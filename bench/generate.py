"""Generation speed: gocoder's KV-cached engine against transformers' GPT2LMHeadModel.generate.

The GPT baseline through gocoder.inference.engine.Engine (`decode`: the static cache and the CUDA-graph step;
`generate`: the engine rows leave) and a GPT2LMHeadModel of the same shape (layers, width, heads, vocab,
context; SwiGLU at 8/3 d, GPT-2's 4d MLP's parameters) write greedily from the same batch of random
prompts, the same number of new tokens, no stop id (every row runs to the end), at each --batches size;
decode also samples at T 0.8, top-p 0.95. New tokens/s of each and their ratios, and the share of rows
whose greedy answers decode and generate agree on (bf16 on CUDA may tip a near tie). With --recursive,
the recursive model at the same width: its <CODE> logit is raised so that it writes code from its first
token, and every step runs every generator and planner pass (its costliest regime). fp32 on CPU, bf16
autocast on CUDA. Runs alternate and the best of --repeats counts. The last line is a one-line JSON
summary. Needs torch, transformers and the repository on PYTHONPATH (no gocoder install).

Example (the shipped shape, issue 25):  PYTHONPATH=. python bench/generate.py --device cuda
Example (a CPU smoke run):  python bench/generate.py --device cpu --layers 2 --d-model 64 --heads 4 \\
    --vocab 500 --batches 4,2 --prompt-len 8 --new 16 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import platform
import time

import torch

from gocoder.config import load_config
from gocoder.inference.engine import Engine, Sampling
from gocoder.model.model import Batch, GocoderModel, count_params

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
    ap.add_argument("--layers", type=int, default=7, help="GPT layers (both GPTs)")
    ap.add_argument("--d-model", type=int, default=448, help="width of every model")
    ap.add_argument("--heads", type=int, default=7, help="attention heads")
    ap.add_argument("--vocab", type=int, default=16000, help="vocabulary size")
    ap.add_argument("--context", type=int, default=1024, help="max_seq_len / n_positions")
    ap.add_argument("--batches", default="256,16", help="prompts in the batch, comma-separated: one run each")
    ap.add_argument("--prompt-len", type=int, default=64, help="tokens per prompt")
    ap.add_argument("--new", type=int, default=256, help="new tokens per prompt")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each model (the best counts)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    ap.add_argument("--recursive", action="store_true", help="also the recursive model (through generate)")
    ap.add_argument("--uncached-new", type=int, default=0,
                    help="with --recursive: new tokens without a cache (a full forward per token, what "
                         "train.greedy_codes did), next to the engine at as many; 0 skips it")
    ap.add_argument("--json", action="store_true", help="print the whole results as indented JSON, not a table")
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
    rec = None
    if a.recursive:
        torch.manual_seed(0)
        rec = GocoderModel(dataclasses.replace(base, type="recursive")).to(dev).eval()
        head = rec.logits
        rec.logits = lambda z: head(z) + torch.nn.functional.one_hot(torch.tensor(CODE, device=z.device),
                                                                     a.vocab).to(z) * 1e4
    greedy = Sampling(max_new_tokens=a.new)  # no stop id: every row runs to the end
    sampled = Sampling(max_new_tokens=a.new, temperature=0.8, top_p=0.95, seed=0)
    eng = Engine(gpt, code_open=CODE, device=dev)
    res = {"shape": dict(layers=a.layers, d_model=a.d_model, heads=a.heads, vocab=a.vocab, context=a.context,
                         prompt_len=a.prompt_len, new=a.new),
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__, "batches": {}}
    for n in [int(x) for x in a.batches.split(",")]:
        prompts = torch.randint(10, a.vocab, (n, a.prompt_len), generator=torch.Generator().manual_seed(0))
        ids = prompts.to(dev)
        outs: dict[str, list] = {}

        def ours(how, s, key, engine=eng, prompts=prompts, outs=outs):
            def run(m=a.new):
                comps = getattr(engine, how)(prompts.tolist(), dataclasses.replace(s, max_new_tokens=m))
                if m == a.new:
                    outs[key] = [c.tokens for c in comps]
                assert all(len(c.tokens) == m for c in comps)
            return run

        def theirs(new=a.new, ids=ids, n=n):
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
            with torch.inference_mode(), ctx:
                out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, min_new_tokens=new,
                                  do_sample=False, pad_token_id=0, eos_token_id=None, use_cache=True)
            assert out.shape == (n, a.prompt_len + new)

        runs = {"decode (gpt)": (ours("decode", greedy, "decode"), count_params(gpt), a.new),
                "decode (gpt), T 0.8 top-p 0.95": (ours("decode", sampled, "sampled"), count_params(gpt), a.new),
                "engine (gpt)": (ours("generate", greedy, "engine"), count_params(gpt), a.new),
                "GPT2LMHeadModel.generate": (theirs, count_params(hf), a.new)}
        if rec is not None:
            runs["engine (recursive)"] = (ours("generate", greedy, "rec", Engine(rec, code_open=CODE, device=dev)),
                                          count_params(rec), a.new)
            if a.uncached_new:
                u = a.uncached_new
                runs[f"full forward per token (recursive), {u} new"] = (
                    lambda new=u, prompts=prompts: uncached(rec, prompts, new), count_params(rec), u)
        best = {k: float("inf") for k in runs}
        cpu = {k: float("inf") for k in runs}
        for fn, *_ in runs.values():  # warm-up (allocators, kernels' first calls, decode's graphs)
            fn(min(4, a.new))
        for _ in range(a.repeats):
            for k, (fn, *_) in runs.items():
                wall, used = timed(fn, dev)
                best[k], cpu[k] = min(best[k], wall), min(cpu[k], used)
        rows = {k: {"params": p, "new": new, "seconds": round(best[k], 4), "tokens_per_s": round(n * new / best[k]),
                    "cpu_seconds": round(cpu[k], 4)} for k, (_, p, new) in runs.items()}
        hf_tps = rows["GPT2LMHeadModel.generate"]["tokens_per_s"]
        same = sum(x == y for x, y in zip(outs["decode"], outs["engine"], strict=True)) / n
        res["batches"][n] = {"results": rows, "decode_vs_hf": round(rows["decode (gpt)"]["tokens_per_s"] / hf_tps, 3),
                             "decode_vs_engine": round(rows["decode (gpt)"]["tokens_per_s"]
                                                       / rows["engine (gpt)"]["tokens_per_s"], 3),
                             "engine_vs_hf": round(rows["engine (gpt)"]["tokens_per_s"] / hf_tps, 3),
                             "greedy_rows_same_as_engine": same}
        if not a.json:
            print(f"{n} prompts x {a.prompt_len} tokens, {a.new} new tokens each, {res['device']}, "
                  f"{torch.get_num_threads()} threads, best of {a.repeats}")
            print("| model | params | new | wall s | new tokens/s | CPU s |\n|---|---|---|---|---|---|")
            for k, r in rows.items():
                print(f"| {k} | {r['params'] / 1e6:.2f} M | {r['new']} | {r['seconds']:.3f} | "
                      f"{r['tokens_per_s']:,.0f} | {r['cpu_seconds']:.3f} |")
    if a.json:
        print(json.dumps(res, indent=2))
    # the one-line summary (last line of the output): new tokens/s by run and batch
    print(json.dumps({"summary": {str(n): {k: r["tokens_per_s"] for k, r in b["results"].items()}
                                  | {k: v for k, v in b.items() if k != "results"} for n, b in res["batches"].items()},
                      "shape": res["shape"], "device": res["device"], "torch": res["torch"]}))


if __name__ == "__main__":
    main()
