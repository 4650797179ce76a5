"""Public Go benchmarks, offline: MBXP, MultiPL-E, HumanEval-X and HumanEvalPack as one Problem shape.

How each official harness assembles and runs a Go program (the sandbox does the same, offline):
- MBXP (amazon-science/mxeval): prompt + completion + test, one `package main` file, `go run`;
  exit 0 without a panic passes. Eleven harnesses never compile (see MBXP_EXCLUDED).
- MultiPL-E (nuprl/MultiPL-E, eval_go.py): prompt + completion + "\\n" + tests in a `*_test.go` file of
  package `NAME_test`, `go test`.
- HumanEval-X (THUDM/CodeGeeX, evaluate_humaneval_x.py): test_setup + "\\n" + [imports of helper packages
  the completion uses] + prompt (its import block removed) + completion + "\\n" + test, as main_test.go.
- HumanEvalPack (bigcode-evaluation-harness, humanevalpack.py): test_setup (minus imports the code
  already has) + [helper imports] + prompt + completion + "\\n" + test; the `fix` task shows
  prompt + buggy_solution and asks for the function fixed.
HumanEval-X and HumanEvalPack tests import testify's assert: the sandbox resolves it to gocoder/check/gotestify.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from gocoder import GocoderError
from gocoder.record import Context, Plan, Record, Related
from gocoder.record import Problem as Ask  # the record's problem: what the model is asked
from gocoder.records import body_open, read_jsonl_numbered, skip_balanced

FORMATS = ("mbxp", "multipl-e", "humaneval-x", "humanevalpack", "synth-fix")
# Harnesses that never compile whatever the completion (untyped nil, int overflow, a NUL byte): excluded.
MBXP_EXCLUDED = frozenset(f"MBGP/{n}" for n in (67, 217, 395, 431, 452, 539, 546, 746, 755, 761, 954))
# The packages the HumanEval-X / HumanEvalPack harnesses import when the completion uses them.
GO_HELPER_IMPORTS = ("math", "strings", "fmt", "strconv", "time", "bytes", "regexp", "sort", "math/rand", "crypto/md5")
_FUNC = re.compile(r"^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)\s*[\[(]", re.M)


@dataclass(frozen=True)
class Problem:
    id: str
    format: str  # one of FORMATS
    prompt: str  # the file head the model continues: ends with the entry point's signature and "{"
    entry_point: str
    description: str
    test: str
    setup: str = ""  # HumanEval-X / Pack test_setup: package clause and imports, placed first
    buggy: str = ""  # HumanEvalPack: prompt + buggy_solution (shown by the fix task)
    excluded: str = ""  # why this problem is never scored ("" = scored)
    # synth-fix (gocoder/eval/synthfix.py): the package's files, the buggy file's name, the bug report's body
    files: tuple[tuple[str, str], ...] = ()
    path: str = ""
    details: str = ""
    # the benchmark's own solution (the body after the prompt), where it ships one (HumanEval-X, HumanEvalPack):
    # whether the problem's test compiles is decided with it (benchrun.excluded_why)
    reference: str = ""
    # bench.fix_imports: the answer's file gets goimports' standard-library fix before it is built, so an
    # answer right but for an unused or missing import is scored on its code (gocoder/check/validate.py)
    fix_imports: bool = False
    # bench --retrieve: declarations retrieved for the problem (gocoder/inference/retrieve.py), as (file, code)
    # pairs that the record's context.related carries into the prompt
    related: tuple[tuple[str, str], ...] = ()

    @property
    def mode(self) -> str:
        """How the sandbox runs it: "run" (go build, then the binary) or "test" (go test -c)."""
        return "run" if self.format == "mbxp" else "test"

    def visible(self) -> Problem:
        """This problem with its visible checks only: what a loop may run before it submits an answer.

        The rule (docs/BENCHMARKS.md): MBXP's `func main` is a run of checks, each ending in a
        `deepCompare(...)` call (see mbxp_checks); the visible checks are the first one, the hidden
        checks all of them. Other formats have no split: their visible harness is empty
        (the loop judges with gocheck only), so nothing hidden can leak into a repair prompt; synth-fix's
        checks are the package's tests, visible and hidden both (gocoder/eval/synthfix.py).
        """
        if self.format == "synth-fix":  # the package's own tests, as a user's `--tests` are
            return self
        from gocoder.eval.checks import visible_test

        return dataclasses.replace(self, test=visible_test(self.test) if self.format == "mbxp" else "")

    def program(self, completion: str) -> dict[str, str]:
        """The files of the harness's program for one completion (the body after the prompt's signature),
        the answer's file with its imports fixed when fix_imports (no other line moves: gofmt is off)."""
        files = self._program(completion)
        if self.fix_imports:
            from gocoder.check.validate import fix_imports

            name = self.path if self.format == "synth-fix" else next(iter(files))
            files[name] = fix_imports(files[name], gofmt=False)
        return files

    def _program(self, completion: str) -> dict[str, str]:
        if self.format == "mbxp":
            return {"main.go": self.prompt + completion + self.test}
        if self.format == "synth-fix":  # the completion is the whole fixed file
            return {**dict(self.files), self.path: completion}
        if self.format == "multipl-e":
            return {"main_test.go": self.prompt + completion + "\n" + self.test}
        setup = self.setup
        if self.format == "humanevalpack":  # drop setup imports the prompt already has (Go rejects duplicates)
            for line in setup.splitlines():
                quoted = line.replace("import", "").replace("(", "").replace(")", "").strip()
                if quoted.startswith('"') and quoted in self.prompt:
                    setup = setup.replace(quoted, "")
        code = self.prompt + completion
        extra = _helper_imports(setup + code, completion if self.format == "humaneval-x" else code)
        head = setup + "\n" + (f"import (\n{extra})\n" if extra else "")
        return {"main_test.go": head + code + "\n" + self.test}


def _helper_imports(have: str, code: str) -> str:
    """Imports for helper packages the code uses (`strings.`) outside comments and does not import."""
    lines = [ln for ln in code.splitlines() if not ln.strip().startswith("//")]
    out = ""
    for pkg in GO_HELPER_IMPORTS:
        name = pkg.rsplit("/", 1)[-1]
        if f'"{pkg}"' not in have and any(re.search(rf"\b{name}\.", ln) for ln in lines):
            out += f'    "{pkg}"\n'
    return out


def load_problems(path: str | Path, fmt: str, *, task: str = "synthesize") -> list[Problem]:
    """Read a benchmark JSONL file of the given format; a record missing a field is an error naming its line."""
    if fmt not in FORMATS:
        raise GocoderError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if task not in ("synthesize", "fix"):
        raise GocoderError(f"--task {task!r}: expected synthesize or fix")
    if task == "fix" and fmt != "humanevalpack":
        raise GocoderError(f"--task fix: only humanevalpack ships buggy solutions, not {fmt}")
    problems, seen = [], set()
    for lineno, rec in read_jsonl_numbered(path):
        try:
            p = _PARSERS[fmt](rec, task)
        except KeyError as e:
            raise GocoderError(f"{path}:{lineno}: not a {fmt} record: missing field {e.args[0]!r}") from None
        if p.id in seen:
            raise GocoderError(f"{path}:{lineno}: duplicate problem id {p.id!r}")
        seen.add(p.id)
        problems.append(p)
    if not problems:
        raise GocoderError(f"{path}: no problems")
    return problems


def _doc_of(prompt: str) -> str:
    """The // comment block right above the prompt's last func: the problem in words."""
    head = prompt[: last_func(prompt).start()] if last_func(prompt) else prompt
    block: list[str] = []
    for line in reversed(head.rstrip("\n").splitlines()):
        if not line.startswith("//"):
            break
        block.append(line[2:].strip())
    return "\n".join(reversed(block)).strip()


def last_func(src: str) -> re.Match | None:
    found = list(_FUNC.finditer(src))
    return found[-1] if found else None


def _entry(prompt: str, where: str) -> str:
    m = last_func(prompt)
    if m is None:
        raise KeyError(where)
    return m.group(1)


def _mbxp(r: dict, task: str) -> Problem:
    tid = r["task_id"]
    excluded = "its harness never compiles (shared/bench/README.md)" if tid in MBXP_EXCLUDED else ""
    desc = r.get("description") or _doc_of(r["prompt"])
    return Problem(tid, "mbxp", r["prompt"], r["entry_point"], desc, r["test"], excluded=excluded,
                   reference=r.get("canonical_solution") or "")


def _multiple(r: dict, task: str) -> Problem:
    m = re.search(r"candidate := (\w+)", r["tests"])
    entry = m.group(1) if m else _entry(r["prompt"], "prompt")
    return Problem(r["name"], "multipl-e", r["prompt"], entry, _doc_of(r["prompt"]), r["tests"])


def _humaneval_x(r: dict, task: str) -> Problem:
    prompt = r["prompt"].replace(r.get("import", ""), "") if r.get("import") else r["prompt"]
    entry = r.get("entry_point") or _entry(prompt, "prompt")
    return Problem(r["task_id"], "humaneval-x", prompt, entry, _doc_of(prompt), r["test"], setup=r["test_setup"],
                   reference=r.get("canonical_solution") or "")


def _humanevalpack(r: dict, task: str) -> Problem:
    entry = r["entry_point"]
    if task == "fix":
        desc = f"Fix bugs in {entry}."  # HumanEvalFix's instruction
        buggy = r["prompt"] + r["buggy_solution"]
    else:
        desc, buggy = (r.get("docstring") or _doc_of(r["prompt"])).strip(), ""
    return Problem(r["task_id"], "humanevalpack", r["prompt"], entry, desc, r["test"], setup=r["test_setup"],
                   buggy=buggy, reference=r.get("canonical_solution") or "")  # fmt: skip


def _synth_fix(r: dict, task: str) -> Problem:
    from gocoder.eval.synthfix import load_record

    return Problem(format="synth-fix", test="", **load_record(r))


_PARSERS = {"mbxp": _mbxp, "multipl-e": _multiple, "humaneval-x": _humaneval_x, "humanevalpack": _humanevalpack,
            "synth-fix": _synth_fix}  # fmt: skip


def problem_record(problem: Problem, task: str = "synthesize") -> Record:
    """The hierarchical record the model reads for a problem (docs/FORMATS.md; no plan or solution).

    synthesize: the description, the prompt file head up to the signature as context, the signature
    in the details. fix: "Fix bugs in NAME." with the file holding the buggy function as context.
    """
    if problem.format == "synth-fix":  # a bug report and the file it is in, as `gocoder generate --context`
        return Record(id=problem.id, split="test", source="bench:synth-fix",
                      problem=Ask(description=problem.description, details=problem.details),
                      context=Context(file=problem.path, before=problem.prompt), plan=Plan())
    m = last_func(problem.prompt)
    cut = m.start() if m else len(problem.prompt)
    head, signature = problem.prompt[:cut], problem.prompt[cut:].strip().rstrip("{").strip()
    first, _, rest = problem.description.strip().partition("\n")
    if task == "fix":
        if not problem.buggy:
            raise GocoderError(f"{problem.id}: the fix task needs a buggy solution ({problem.format} has none)")
        before, details = problem.setup + problem.buggy, ""
    else:
        before, details = problem.setup + head, (rest + "\n\n" if rest else "") + f"Signature: {signature}"
    return Record(id=problem.id, split="test", source=f"bench:{problem.format}",
                  problem=Ask(description=first, details=details),
                  context=Context(file="main.go" if problem.mode == "run" else "main_test.go", before=before,
                                  related=tuple(Related(file=f, code=c) for f, c in problem.related)),
                  plan=Plan())


def completion_from_code(problem: Problem, code: str) -> str:
    """What the harness appends after the prompt's open signature, from the model's code.

    The code is usually the whole entry-point function (maybe with helpers, maybe a whole file): the
    completion is that function's body with its closing brace, then the helper declarations (not
    `main`, and nothing the prompt or test already declares). Code whose one function is not named as
    the entry point gives that function's body: the prompt has already written the signature, so the
    body is what the model answered (small models rarely copy a snake_case name); of several such
    functions, the one the others serve (no other calls it) answers and the rest are its helpers. Code
    with only methods or types gives a body that panics, then those declarations. Other code is taken
    as the body itself, closed with a brace when it parses as statements.
    """
    from gocoder.check.validate import get_checker

    if problem.format == "synth-fix":  # the answer goes into the buggy file; one that cannot leaves it as it is
        from gocoder.inference.patch import apply_code, gofmt

        try:
            return gofmt(apply_code(problem.prompt, code), problem.path)
        except GocoderError:
            return problem.prompt
    res = get_checker().check(code, kind="auto")
    raw = code.encode()
    taken = {m.group(1) for m in _FUNC.finditer(problem.prompt + "\n" + problem.test)} | {"main", "init"}
    funcs = [d for d in res.decls if d.kind == "func"]
    entry = next((d for d in funcs if d.name == problem.entry_point), None) or _root_func(
        [d for d in funcs if d.name not in taken], raw)
    if entry is None and res.ok and res.decls and res.kind in ("file", "decls"):
        # only methods or types: nothing answers the signature; the declarations still go after the
        # closed function so that the program builds and the answer is judged wrong, not unbuildable
        entry_body = '\n\tpanic("gocoder: the answer declares no function for the entry point")\n}\n'
        return entry_body + "".join("\n" + raw[d.start : d.end].decode() + "\n" for d in res.decls
                                    if not (d.kind == "func" and d.name in taken))  # fmt: skip
    if entry is None:
        body = code.rstrip("\n")
        return body + "\n}\n" if res.ok and res.kind == "stmts" else body + "\n"
    fn = raw[entry.start : entry.end].decode()
    at = body_open(fn)
    if at < 0:
        return code
    helpers = [raw[d.start : d.end].decode() for d in res.decls
               if d is not entry and not (d.kind == "func" and d.name in taken)]  # fmt: skip
    if entry.name != problem.entry_point and re.search(rf"\b{re.escape(entry.name)}\s*\(", fn[at:]):
        helpers.append(fn)  # a recursive answer under its own name calls itself: keep it callable
    return fn[at:] + "\n" + "".join("\n" + h + "\n" for h in helpers)


def _root_func(funcs: list, raw: bytes) -> object | None:
    """The function that answers when none has the entry point's name: the one no other function calls
    (the others are its helpers), the last such one when several are; None without functions."""
    texts = {d.name: raw[d.start : d.end].decode() for d in funcs}
    roots = [d for d in funcs if not any(re.search(rf"\b{re.escape(d.name)}\s*\(", t.split("{", 1)[-1])
                                         for name, t in texts.items() if name != d.name)]  # fmt: skip
    return (roots or funcs)[-1] if funcs else None


def zero_completion(problem: Problem) -> str:
    """A trivial completion that returns the zero values of the signature's results (for harness checks)."""
    m = last_func(problem.prompt)
    sig = problem.prompt[m.start() :] if m else ""
    at = body_open(sig)
    params_end = skip_balanced(sig, sig.index("(", m.end() - m.start() - 1), "()") if m else 0
    results = sig[params_end : at - 1].strip() if at > 0 else ""
    if results.startswith("("):
        results = results[1:-1]
    types, depth, cur = [], 0, ""
    for ch in results:  # split on top-level commas: (int, map[string]int)
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            types.append(cur.strip())
            cur = ""
        else:
            cur += ch
    types += [cur.strip()] if cur.strip() else []
    decls = "".join(f"\tvar z{i} {t}\n" for i, t in enumerate(types))
    body = decls + ("\treturn " + ", ".join(f"z{i}" for i in range(len(types))) + "\n" if types else "") + "}\n"
    # The prompt's imports must be used or the file does not compile; the test uses json and reflect.
    m = re.search(r"^import \((.*?)^\)", problem.prompt, re.M | re.S)
    imported = set(re.findall(r'"([^"]+)"', m.group(1))) if m else set()
    uses = [f"var _ = {ref}\n" for pkg, ref in _IMPORT_REFS.items() if pkg in imported and ref not in problem.test]
    return body + ("\n" + "".join(uses) if uses else "")


# A symbol of each package that MBXP prompts import, to reference it from a trivial completion.
_IMPORT_REFS = {"math": "math.Pi", "sort": "sort.Ints", "strings": "strings.Contains", "strconv": "strconv.Itoa",
                "fmt": "fmt.Sprint", "regexp": "regexp.MustCompile", "bytes": "bytes.Equal"}  # fmt: skip
