"""Close the budget-cut answers of a complete-mode completions file as `gocoder bench --mode complete` now
does (gocoder/incremental.py close_function), for files that bench/complete.py wrote before it did.

    python bench/reclose.py --file mbxp_go.jsonl --format mbxp IN.jsonl OUT.jsonl

An answer that does not parse (cut by the token budget, or broken before its end) is closed at its last line
between statements that leaves it parsing; one that parses stays. Prints how many were closed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from gocoder.benchmarks import completion_from_code, load_problems
    from gocoder.incremental import close_function

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True)
    ap.add_argument("--format", default="mbxp")
    ap.add_argument("inp")
    ap.add_argument("out")
    a = ap.parse_args()
    problems = {p.id: p for p in load_problems(a.file, a.format)}
    rows, closed = [], 0
    for line in Path(a.inp).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        code = close_function(r["code"]) if r["code"].startswith("func") else r["code"]
        if code != r["code"]:
            r["code"], r["completion"] = code, completion_from_code(problems[r["task_id"]], code)
            closed += 1
        rows.append(r)
    Path(a.out).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{closed} of {len(rows)} answers closed")


if __name__ == "__main__":
    main()
