"""Build the synth-fix benchmark's problems file (gocoder/synthfix.py) from `gocoder synth` records of
GOROOT/src: only packages in the test split, only bugs that the package's own tests catch.

    GOSRC=$(go env GOROOT)/src
    for p in crypto/rc4 encoding/xml go/scanner html net/textproto; do   # or --go-src $GOSRC, all of it
        gocoder synth --go-src $GOSRC/$p --out synth-test.jsonl --seed 1
    done
    python3 bench/synth_fix.py --synth synth-test.jsonl --out synthfix.jsonl --per-package 20
    gocoder bench --file synthfix.jsonl --format synth-fix --refine-iters 3 --out runs/bench-synthfix
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from gocoder.eval.synthfix import build

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synth", required=True, help="`gocoder synth` records (JSONL) of GOROOT/src")
    ap.add_argument("--out", required=True, help="the problems file (JSONL) to write")
    ap.add_argument("--per-package", type=int, default=20, help="problems kept per package at most")
    ap.add_argument("--workers", type=int, default=2, help="sandbox runs at once")
    ap.add_argument("--config", help="a gocoder config whose splits.shares picks the test packages (default: the "
                    "defaults, as annotate and corpus build take them)")
    a = ap.parse_args()
    from gocoder.config import load_config

    shares = load_config(a.config).splits.shares
    counts = build(Path(a.synth), Path(a.out), shares=shares, per_package=a.per_package, workers=a.workers)
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=sys.stderr)


if __name__ == "__main__":
    main()
