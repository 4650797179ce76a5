"""A benchmark's answer run in the sandbox and judged: where `gocoder bench` says pass or fail.

A completion becomes its harness's Go program (gocoder/eval/benchmarks.py), which is built and run
offline in the sandbox (gocoder/check/sandbox.py); it passes only where its checks ran to their
end, never on exit 0 alone. A problem whose test never compiles is set aside once, from the problem
alone (`excluded_why`), before any answer is run. gocoder/eval/benchrun.py produces the answers,
runs the loop on the visible checks and writes the rows.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from gocoder import GocoderError
from gocoder.check.sandbox import Limits, SandboxResult, run_go
from gocoder.eval.benchmarks import Answer, Problem, zero_completion
from gocoder.eval.checks import GO_POS, mbxp_checks

OUTPUT_KEEP = 2000  # characters of failing output kept per sample in results.jsonl
# how a run that exited 0 without running its checks says why it failed
NO_CHECK = "gocoder: no pass"
NO_TESTS = "testing: warning: no tests to run"  # Go's test binary, which then exits 0
_PASS = re.compile(r"^PASS$", re.M)  # the test binary's last word when every test it ran passed


def score(
    problem: Problem, completion: str, limits: Limits, typecheck_first: bool = False
) -> SandboxResult:
    """Run the harness's program for one completion. typecheck_first: a one-file program that
    gocheck's parser or go/types rejects is a build error without a build (the compiler's errors are
    go/types': on 9,280 sampled MBXP answers go/types rejected 8,085 of the 8,086 that failed to
    build and none that built, in 16 s where the builds took 27 minutes; BENCHMARKS.md), its first
    errors as the build output. go/types resolves the standard library only: a program with an
    import it cannot resolve (HumanEval-X's testify, which the sandbox's go.mod maps to
    gocoder/check/gotestify) goes to the build, which resolves it.
    A program passes only if its checks ran (`checks_ran`): exit 0 alone is not a pass."""
    prog = problem.program(completion)
    if typecheck_first and len(prog) == 1:
        from gocoder.check.validate import check

        (name, src), = prog.items()
        r = check(src, typecheck=True, gofmt=False, decls=False)
        errs = (
            sorted(r.errors or r.type_errors, key=lambda d: (d.line, d.col))[:10]
            if not r.error
            else ()
        )
        if errs and not any("could not import" in d.msg for d in r.type_errors):
            out = "".join(f"./{name}:{d.line}:{d.col}: {d.msg}\n" for d in errs)
            return SandboxResult(status="build_error", build_output=f"# go/types (gocheck)\n{out}")
    if problem.mode == "run":
        if not _check_count(problem.test):
            return SandboxResult(
                status="fail", stderr=f"{NO_CHECK}: its main calls no deepCompare\n"
            )
        # a mark printed after main's last check: a program that exits 0 before it (os.Exit in the
        # answer) ran no check to the end; a fresh random mark each run, so no answer can print it
        mark = f"gocoder-checks-done-{secrets.token_hex(8)}"
        (name, src), = prog.items()
        end = src.rstrip().rindex("}")
        prog = {name: f"{src[:end]}\tprintln({json.dumps(mark)})\n{src[end:]}"}
        res = run_go(prog, mode="run", limits=limits)
        if res.passed and mark not in res.stderr:
            res.status, res.stderr = (
                "fail",
                res.stderr + f"{NO_CHECK}: it exited before main's checks ended\n",
            )
        res.stderr = res.stderr.replace(mark + "\n", "")
        return res
    res = run_go(prog, mode=problem.mode, limits=limits)
    if res.passed and (NO_TESTS in res.stdout + res.stderr or not _PASS.search(res.stdout)):
        res.status, res.stderr = (
            "fail",
            res.stderr + f"{NO_CHECK}: the test binary ran no test to its end\n",
        )
    return res


def _check_count(test: str) -> int:
    """How many checks an MBXP test's main runs (0 when it has no main to run them)."""
    try:
        return len(mbxp_checks(test)[1])
    except (ValueError, GocoderError):
        return 0


def excluded_why(problem: Problem, limits: Limits) -> str:
    """Why the problem's test never compiles ("" when it does), decided from the problem alone,
    once: its reference solution where the benchmark ships one (HumanEval-X, HumanEvalPack), else a
    zero-value body, which builds everywhere a right answer would, built by the compiler
    (typecheck_first plays no part).
    A build error inside the test's own lines is then the harness's, never an answer's: an
    answer that leaves out a package the test needs (HumanEval-X imports math for the test
    only if the answer uses it) fails."""
    if problem.harness.test_builds:  # synth-fix: its build (gocoder/eval/synthfix.py) ran the tests
        return ""
    comp = problem.reference or zero_completion(problem)
    (_, src), = problem.program(comp).items()
    res = score(problem, comp, limits, False)
    if res.status != "build_error":
        return ""
    first_test_line = (
        src[: src.rindex(problem.test)].count("\n") + 1 if problem.test in src else 1 << 30
    )
    m = GO_POS.search(res.build_output)
    if m and int(m.group(2)) >= first_test_line:
        return f"its test never compiles ({m.group(1)}:{m.group(2)}: {m.group(4).strip()})"
    return ""


def parses(problem: Problem, completion: str) -> bool:
    """Whether the program of a completion parses (go/parser through gocheck): the floor under
    every answer, apart from whether it builds or passes."""
    from gocoder.check.validate import check

    return all(check(src, typecheck=False, gofmt=False, decls=False).ok
               for name, src in problem.program(completion).items() if name.endswith(".go"))


def scored(
    problem: Problem, comps: list[str], limits: Limits, typecheck_first: bool
) -> dict[str, Any]:
    """Each completion's verdict; equal completions are run once (a small model repeats
    itself often, and n = 100 samples of 928 problems is 92,800 programs to build), and what
    go/types rejects is not built."""
    seen: dict[str, dict[str, Any]] = {}
    for comp in comps:
        if comp in seen:
            continue
        res = score(problem, comp, limits, typecheck_first)
        ok = parses(problem, comp)
        row = {
            "status": res.status,
            "parses": ok,
            "wall_s": round(res.wall_s, 3),
            "build_s": round(res.build_s, 3),
            "parses_raw": parses(problem, comp.raw) if isinstance(comp, Answer) else ok,
        }
        if not res.passed:
            out = res.build_output if res.status == "build_error" else res.stderr + res.stdout
            row["output"] = out[-OUTPUT_KEEP:]
        seen[comp] = row
    rows = [seen[c] for c in comps]
    return {
        "n": len(rows),
        "c": sum(r["status"] == "ok" for r in rows),
        "samples": rows,
        "completions": comps,
    }
