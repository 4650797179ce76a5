"""A harness's checks and what a run of them says: MBXP's visible and hidden checks, and the
feedback a repair round reads (a gocoder.eval.benchmarks.Problem's; this module imports none
of it, benchmarks imports it).

The split rule (docs/BENCHMARKS.md): MBXP's `func main` is a run of checks, each ending in a
`deepCompare(...)` call; the visible checks are the first one, the hidden checks all of them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gocoder import GocoderError

if TYPE_CHECKING:
    from gocoder.check.sandbox import SandboxResult

OUTPUT_KEEP = 2000  # characters of output a feedback keeps at most
# file.go:line[:col]: message
GO_POS = re.compile(r"^\s*\S*?(\w+\.go):(\d+):(?:(\d+):)? ?(.*)$", re.M)


def mbxp_checks(test: str) -> tuple[str, list[str]]:
    """(the test up to and with `func main() {`, its checks in order): a check is the
    lines of main up to and with a `deepCompare(` call (MBXP's `actual_N := ...`,
    `expected_N := ...`, `deepCompare(...)`)."""
    at = test.index("func main() {") + len("func main() {")
    body = test[at:].rstrip()
    if not body.endswith("}"):
        raise GocoderError("an MBXP test must end with func main's closing brace")
    checks, cur = [], []
    for line in body[:-1].splitlines():
        cur += [line] if line.strip() else []
        if "deepCompare(" in line:
            checks.append("\n".join(cur))
            cur = []
    return test[:at], checks


def visible_test(test: str) -> str:
    """An MBXP test whose main runs only its first check (the visible one)."""
    head, checks = mbxp_checks(test)
    return head + "\n" + "\n\n".join(checks[:1]) + "\n}\n"


def feedback(problem: Any, completion: str, res: SandboxResult) -> str:
    """What a repair round reads: the first compiler error with its line and source, or the failing
    check's message and the check itself (a visible one), or the run's first panic line."""
    files = problem.program(completion)

    def at(m: re.Match) -> str:
        n, lines = int(m.group(2)), files.get(m.group(1), "").splitlines()
        code = lines[n - 1].strip() if 0 < n <= len(lines) else ""
        return f"{m.group(1)}:{n}: {m.group(4).strip()}" + (f"\n\t{code}" if code else "")

    if res.status == "build_error":
        m = GO_POS.search(res.build_output)
        return "compile error: " + (at(m) if m else res.build_output.strip()[:OUTPUT_KEEP])
    out = res.stderr + res.stdout
    if res.passed:
        return ""
    panic = next(
        (ln for ln in out.splitlines() if ln.startswith(("panic:", "--- FAIL", "fatal error:"))), ""
    )
    check = problem.harness.failed_check(problem, panic) if panic.startswith("panic: ") else None
    if check is not None:  # MBXP's deepCompare panics with its message
        return f"check failed: {panic}\n{check.strip()}"
    # a test's message or a frame
    frame = next((m for m in GO_POS.finditer(out) if m.group(1) in files), None)
    where = f"\nat {at(frame)}" if frame else ""
    return f"{res.status}: {panic or out.strip()[:OUTPUT_KEEP]}{where}"[:OUTPUT_KEEP]
