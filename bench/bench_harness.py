"""Measure the benchmark harness itself on MBXP: a trivial completion (return the zero values) for
every problem, scored by `gocoder bench --completions`. Prints seconds per problem and how many
harnesses compile and run to a verdict (the README says 928 of 939; the other 11 are excluded).

Usage: python bench/bench_harness.py [--file ../shared/bench/mbxp_go.jsonl] [--out out/bench-harness] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gocoder.eval.benchmarks import load_problems, zero_completion


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(Path(__file__).resolve().parents[2] / "shared/bench/mbxp_go.jsonl"))
    ap.add_argument("--out", default="out/bench-harness")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)  # a measurement starts from nothing (no resume)
    out.mkdir(parents=True)
    problems = load_problems(args.file, "mbxp")
    comps = out / "zero_completions.jsonl"
    comps.write_text("".join(json.dumps({"task_id": p.id, "completion": zero_completion(p)}) + "\n" for p in problems))
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "gocoder", "bench", "--file", args.file, "--format", "mbxp", "--completions",
           str(comps), "--k", "1", "--workers", str(args.workers), "--out", str(out / "run"), "--json"]
    summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    wall = time.monotonic() - t0
    counts = summary["status_counts"]
    verdicts = sum(n for s, n in counts.items() if s != "build_error")
    rows = [json.loads(line) for line in (out / "run" / "results.jsonl").read_text().splitlines()]
    build = sorted(s["build_s"] for r in rows for s in r["samples"])
    run = sorted(s["wall_s"] for r in rows for s in r["samples"])
    print(f"problems {summary['problems']}, scored {summary['scored']}, excluded {len(summary['excluded'])}")
    print(f"ran to a verdict: {verdicts} (statuses {counts})")
    print(f"wall {wall:.1f} s with {args.workers} workers: {wall / summary['scored']:.3f} s per problem")
    print(f"per problem, median: build {build[len(build) // 2]:.3f} s, run {run[len(run) // 2]:.3f} s; "
          f"p95 build {build[int(len(build) * 0.95)]:.3f} s")
    print(f"pass@1 of the trivial completions: {summary['given']['pass@k'].get('pass@1')}")


if __name__ == "__main__":
    main()
