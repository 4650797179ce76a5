"""Benchmark: `gocoder check --all --gofmt DIR` against `gofmt -l DIR` on the same tree, side by side.

Both walk the same files (--all: check also reads testdata/ and vendor/, as gofmt does) and report the
files gofmt would change; each round runs the two commands one after the other, alternating which goes
first, so that both see the same machine load. CPU is user + sys of the command and its children
(gocheck's servers for check), read from getrusage; wall is the command's. Prints each run, the medians
and the ratios check / gofmt (the target: below 1), and checks that both name the same files.

    python bench/check_gofmt.py [DIR (default: GOROOT/src)] [--rounds N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gocoder.check.toolchain import find_go, gocheck_binary

NOT_GOFMT = ":1:1: file is not gofmt-ed"


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(CPU s of the command and its children, wall s, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in (0, 1, 2):  # gofmt -l: 2 on a file it cannot parse; check: 1 on any finding
        sys.exit(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", type=Path, help="the tree to check (default: GOROOT/src)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each command")
    ap.add_argument("--json", type=Path, help="write the measurements here")
    a = ap.parse_args()
    go, env = find_go()
    goroot = Path(subprocess.run([go, "env", "GOROOT"], capture_output=True, text=True, env=env,
                                 check=True).stdout.strip())  # fmt: skip
    tree = (a.dir or goroot / "src").resolve()
    check = "gocoder check --all --gofmt"
    cmds = {"gofmt -l": [str(goroot / "bin" / "gofmt"), "-l", str(tree)],
            check: [sys.executable, "-m", "gocoder", "check", "--all", "--gofmt", str(tree)]}
    gocheck_binary()  # built (or found in its cache) before anything is timed
    timed(cmds["gofmt -l"])  # and the tree read once into the page cache
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    listed: dict[str, set[str]] = {}
    for r in range(a.rounds):
        for name in list(cmds)[:: 1 if r % 2 == 0 else -1]:
            cpu, wall, out = timed(cmds[name])
            runs[name].append((cpu, wall))
            print(f"round {r + 1}: {name}: {cpu:.2f} CPU s, {wall:.2f} s wall", flush=True)
            files = out.splitlines() if name == "gofmt -l" else \
                [ln.removesuffix(NOT_GOFMT) for ln in out.splitlines() if ln.endswith(NOT_GOFMT)]  # fmt: skip
            listed[name] = {str(Path(f).resolve()) for f in files}  # check's are relative to this folder
    med = {name: (statistics.median(c for c, _ in rs), statistics.median(w for _, w in rs))
           for name, rs in runs.items()}
    (fc, fw), (cc, cw) = med["gofmt -l"], med[check]
    same = listed["gofmt -l"] == listed[check]
    print(f"medians over {a.rounds} rounds: gofmt -l {fc:.2f} CPU s, {fw:.2f} s wall; "
          f"check --gofmt {cc:.2f} CPU s, {cw:.2f} s wall")
    print(f"check / gofmt: {cc / fc:.2f}x CPU, {cw / fw:.2f}x wall; "
          f"{len(listed['gofmt -l'])} files not gofmt-ed, {'the same' if same else 'NOT the same'} in both")
    if a.json:
        a.json.write_text(json.dumps({"tree": str(tree), "runs": runs, "cpu_ratio": cc / fc, "wall_ratio": cw / fw,
                                      "same_files": same}, indent=2) + "\n")  # fmt: skip
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
