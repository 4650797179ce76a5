"""Completions of a public Go benchmark by a model, generated in batches (on a GPU), for
`gocoder bench --completions` to score in the sandbox where Go is (a GPU machine may have none).

The same prompts and decoding as `gocoder bench` without the loop (`Generator.sample`: greedy, 256 new
tokens, stop at </CODE>), but many prompts per engine call instead of one.

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
    from gocoder.benchmarks import completion_from_code, load_problems, problem_record
    from gocoder.engine import Sampling
    from gocoder.generate import Generator, decode_output

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
    ap.add_argument("--seed", type=int, default=0, help="with --samples > 1: each batch draws from seed + its index")
    ap.add_argument("--out", required=True, help="completions JSONL (task_id, completion, code)")
    a = ap.parse_args()
    problems = load_problems(a.file, a.format)
    gen = Generator.load(a.checkpoint, device=a.device)
    sampled = a.samples > 1
    t0, rows = time.perf_counter(), []
    for i in range(0, len(problems), a.batch):
        chunk = problems[i: i + a.batch]
        s = Sampling(max_new_tokens=a.max_new, stop=(gen.code_close,), temperature=a.temperature if sampled else 0.0,
                     top_p=a.top_p if sampled else 1.0, seed=a.seed + i if sampled else None)
        prompts = [gen.prompt_ids(problem_record(p), s.max_new_tokens) for p in chunk]
        done = gen.engine.generate(prompts, s, samples=a.samples)
        for c in done:
            p = chunk[c.prompt_index]
            _, code, _ = decode_output(gen.tok.decode(c.tokens))
            rows.append({"task_id": p.id, "completion": completion_from_code(p, code), "code": code})
        print(f"{len(rows)}/{len(problems) * a.samples} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    Path(a.out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
