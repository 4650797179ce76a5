"""Completions of a public Go benchmark by a model, generated in batches (on a GPU), for
`gocoder bench --completions` to score in the sandbox where Go is (a GPU machine may have none).

The same prompts, batching and decoding as `gocoder bench` (gocoder/benchrun.py `generate_codes`: greedy,
or --samples sampled answers seeded as bench seeds them), written to a file instead of scored, because the
machine with the GPU may have no Go to build the programs with.

    python3 bench/complete.py --file mbxp_go.jsonl --format mbxp --checkpoint models/default \\
        --device cuda --out completions.jsonl
    gocoder bench --file mbxp_go.jsonl --format mbxp --completions completions.jsonl --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from gocoder.benchmarks import completion_from_code, load_problems
    from gocoder.benchrun import answer_codes, batch_seed
    from gocoder.engine import Sampling
    from gocoder.generate import Generator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True, help="benchmark file (JSONL)")
    ap.add_argument("--format", default="mbxp", help="mbxp, multipl-e, humaneval-x or humanevalpack")
    ap.add_argument("--checkpoint", default=None, help="model folder (default: the shipped default model)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=64, help="prompts per engine call")
    ap.add_argument("--max-new", type=int, default=256, help="new tokens per prompt")
    ap.add_argument("--samples", type=int, default=1, help="completions per problem (1: greedy)")
    ap.add_argument("--temperature", type=float, default=0.8, help="with --samples > 1")
    ap.add_argument("--top-p", type=float, default=0.95, help="with --samples > 1")
    ap.add_argument("--seed", type=int, default=0, help="with --samples > 1: seeds as gocoder bench's (batch_seed)")
    ap.add_argument("--mode", default="record", help="record or complete (gocoder bench --mode)")
    ap.add_argument("--no-repeat-ngram", type=int, default=0, help="generate.no_repeat_ngram (0: off)")
    ap.add_argument("--out", required=True, help="completions JSONL (task_id, completion, code)")
    a = ap.parse_args()
    problems = load_problems(a.file, a.format)
    gen = Generator.load(a.checkpoint, device=a.device)
    t0, rows = time.perf_counter(), []
    for i in range(0, len(problems), a.batch):
        chunk = problems[i: i + a.batch]
        s = Sampling(max_new_tokens=a.max_new, no_repeat_ngram=a.no_repeat_ngram)  # greedy, as bench's first answer
        if a.samples > 1:
            s = Sampling(max_new_tokens=a.max_new, temperature=a.temperature, top_p=a.top_p,
                         seed=batch_seed(a.seed, chunk), no_repeat_ngram=a.no_repeat_ngram)
        # the same batched decoding as gocoder bench (gocoder/benchrun.py answer_codes)
        for p, codes in zip(chunk, answer_codes(gen, chunk, "synthesize", a.samples, s, a.mode), strict=True):
            rows += [{"task_id": p.id, "completion": completion_from_code(p, c), "code": c} for c in codes]
        print(f"{len(rows)}/{len(problems) * a.samples} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    Path(a.out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
