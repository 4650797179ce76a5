"""Go benchmarks offline: MBXP, MultiPL-E, HumanEval-X, HumanEvalPack, synth-fix, one Problem shape.

Over ~400 lines on purpose: each format's class reads beside the Problem it builds and the record
and completion it falls back to, so a new format is one class in this one file.

Each format is one small Harness class, registered in HARNESSES (which `--format` lists): how a
record of its file loads, how its official harness assembles the Go program for a completion (the
sandbox runs it the same way, offline), which checks a loop may see, and, where they differ, the
record the model reads and how its code becomes a completion. HumanEval-X and HumanEvalPack tests
import testify's assert: the sandbox resolves it to gocoder/check/gotestify.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from gocoder import GocoderError
from gocoder.eval.checks import mbxp_checks, visible_test
from gocoder.record import Context, Plan, Record, Related
from gocoder.record import Problem as Ask  # the record's problem: what the model is asked
from gocoder.records import read_jsonl_numbered
from gocoder.text.gosource import Func, body_open, imports, skip_balanced, split_list
from gocoder.text.gosource import funcs as top_funcs

# Harnesses that never compile whatever the completion (untyped nil, int
# overflow, a NUL byte): excluded.
MBXP_EXCLUDED = frozenset(
    f"MBGP/{n}" for n in (67, 217, 395, 431, 452, 539, 546, 746, 755, 761, 954)
)
# The packages the HumanEval-X / HumanEvalPack harnesses import when the completion uses them.
GO_HELPER_IMPORTS = (
    "math",
    "strings",
    "fmt",
    "strconv",
    "time",
    "bytes",
    "regexp",
    "sort",
    "math/rand",
    "crypto/md5",
)


@dataclass(frozen=True)
class Problem:
    id: str
    format: str  # one of FORMATS (its Harness: HARNESSES[format])
    prompt: str  # the file head the model continues: ends with the entry point's signature and "{"
    entry_point: str
    description: str
    test: str
    setup: str = ""  # HumanEval-X / Pack test_setup: package clause and imports, placed first
    buggy: str = ""  # HumanEvalPack: prompt + buggy_solution (shown by the fix task)
    excluded: str = ""  # why this problem is never scored ("" = scored)
    # synth-fix (gocoder/eval/synthfix.py): the package's files, the buggy
    # file's name, the bug report's body
    files: tuple[tuple[str, str], ...] = ()
    path: str = ""
    details: str = ""
    # the benchmark's own solution (the body after the prompt), where it ships one (HumanEval-X,
    # HumanEvalPack): whether the problem's test compiles is decided with it (scoring.excluded_why)
    reference: str = ""
    # bench.fix_imports: the answer's file gets goimports' standard-library fix before it
    # is built, so an answer right but for an unused or missing import is scored on its
    # code (gocoder/check/validate.py)
    fix_imports: bool = False
    # bench --retrieve: declarations retrieved for the problem (gocoder/inference/retrieve.py), as
    # (file, code) pairs that the record's context.related carries into the prompt
    related: tuple[tuple[str, str], ...] = ()

    @property
    def harness(self) -> Harness:
        """Its format's harness: how it loads, builds, shows its checks and reads an answer."""
        return HARNESSES[self.format]

    @property
    def mode(self) -> str:
        """How the sandbox runs it: "run" (go build, then the binary) or "test" (go test -c)."""
        return self.harness.mode

    def visible(self) -> Problem:
        """This problem with its visible checks only: what a loop may run before it submits an
        answer (docs/BENCHMARKS.md; each format's rule is its Harness.visible)."""
        return self.harness.visible(self)

    def program(self, completion: str) -> dict[str, str]:
        """The files of the harness's program for one completion (the body after the
        prompt's signature), the answer's file with its imports fixed when fix_imports (no
        other line moves: gofmt is off)."""
        files = self.harness.program(self, completion)
        if self.fix_imports:
            from gocoder.check.validate import fix_imports

            name = self.harness.answer_file(self)
            files[name] = fix_imports(files[name], gofmt=False)
        return files


class Answer(str):
    """An answer as the harness scores it, with `raw`: the answer as the model wrote it, before the
    harness closed it (complete mode closes a function the token budget cut: close_function in
    gocoder/inference/incremental.py). bench's summary reports both parse rates: "parsed" (as
    scored) and "parsed_raw" (as written)."""

    raw: str

    def __new__(cls, text: str, raw: str) -> Answer:
        obj = super().__new__(cls, text)
        obj.raw = raw
        return obj


class Harness(abc.ABC):
    """One benchmark format. The defaults: the model writes a function after the prompt's open
    signature, in one main_test.go that `go test` runs (MultiPL-E, HumanEval-X, HumanEvalPack)."""

    name: ClassVar[str]
    # how the sandbox runs the program: "run" (go build, then the binary) or "test" (go test -c)
    mode: ClassVar[str] = "test"
    file: ClassVar[str] = "main_test.go"  # the answer's file in the program
    tasks: ClassVar[tuple[str, ...]] = ("synthesize",)  # what --task may ask of its problems
    # whether building the benchmark file showed every problem's test
    # compiles (scoring.excluded_why)
    test_builds: ClassVar[bool] = False

    @abc.abstractmethod
    def load(self, r: dict, task: str) -> Problem:
        """The Problem of one record of the file (a missing field raises KeyError)."""

    @abc.abstractmethod
    def program(self, p: Problem, completion: str) -> dict[str, str]:
        """The files of the program for one completion, as the official harness writes them."""

    def answer_file(self, p: Problem) -> str:
        """The program's file that holds the answer."""
        return self.file

    def visible(self, p: Problem) -> Problem:
        """No split of the checks: the visible harness is empty (the loop judges with gocheck
        only), so nothing hidden can leak into a repair prompt."""
        return dataclasses.replace(p, test="")

    def record(self, p: Problem, task: str) -> Record:
        """The record the model reads (problem_record)."""
        return _function_record(p, task)

    def completion(self, p: Problem, code: str) -> str:
        """What the harness scores for the model's code (completion_from_code)."""
        return _function_completion(p, code)

    def failed_check(self, p: Problem, panic: str) -> str | None:
        """The check (its source) whose failure a run's first panic line reports; None: unknown."""
        return None


class Mbxp(Harness):
    """MBXP (amazon-science/mxeval): prompt + completion + test, one `package main` file, `go run`;
    exit 0 without a panic passes. Eleven harnesses never compile (see MBXP_EXCLUDED)."""

    name, mode, file = "mbxp", "run", "main.go"

    def load(self, r: dict, task: str) -> Problem:
        tid = r["task_id"]
        excluded = (
            "its harness never compiles (shared/bench/README.md)" if tid in MBXP_EXCLUDED else ""
        )
        desc = r.get("description") or _doc_of(r["prompt"])
        return Problem(tid, self.name, r["prompt"], r["entry_point"], desc, r["test"],
                       excluded=excluded, reference=r.get("canonical_solution") or "")

    def program(self, p: Problem, completion: str) -> dict[str, str]:
        return {self.file: p.prompt + completion + p.test}

    def visible(self, p: Problem) -> Problem:
        """The rule (docs/BENCHMARKS.md): MBXP's `func main` is a run of checks, each ending in a
        `deepCompare(...)` call (see mbxp_checks); the visible checks are the first one, the hidden
        checks all of them."""
        return dataclasses.replace(p, test=visible_test(p.test))

    def failed_check(self, p: Problem, panic: str) -> str | None:
        """deepCompare panics with its message: the check that calls it with that message."""
        msg = json.dumps(panic.removeprefix("panic: ").removesuffix(" [recovered]").strip())
        return next((c for c in mbxp_checks(p.test)[1] if msg in c), None)


class MultiplE(Harness):
    """MultiPL-E (nuprl/MultiPL-E, eval_go.py): prompt + completion + "\\n" + tests in a `*_test.go`
    file of package `NAME_test`, `go test`."""

    name = "multipl-e"

    def load(self, r: dict, task: str) -> Problem:
        m = re.search(r"candidate := (\w+)", r["tests"])
        entry = m.group(1) if m else _entry(r["prompt"], "prompt")
        return Problem(r["name"], self.name, r["prompt"], entry, _doc_of(r["prompt"]), r["tests"])

    def program(self, p: Problem, completion: str) -> dict[str, str]:
        return {self.file: p.prompt + completion + "\n" + p.test}


class HumanEvalX(Harness):
    """HumanEval-X (THUDM/CodeGeeX, evaluate_humaneval_x.py): test_setup + "\\n" + [imports of
    helper packages the completion uses] + prompt (its import block removed) + completion + "\\n" +
    test, as main_test.go."""

    name = "humaneval-x"

    def load(self, r: dict, task: str) -> Problem:
        prompt = r["prompt"].replace(r.get("import", ""), "") if r.get("import") else r["prompt"]
        entry = r.get("entry_point") or _entry(prompt, "prompt")
        return Problem(r["task_id"], self.name, prompt, entry, _doc_of(prompt), r["test"],
                       setup=r["test_setup"],
                       reference=r.get("canonical_solution") or "")  # fmt: skip

    def program(self, p: Problem, completion: str) -> dict[str, str]:
        return {self.file: _with_setup(p, p.setup, completion, completion)}


class HumanEvalPack(Harness):
    """HumanEvalPack (bigcode-evaluation-harness, humanevalpack.py): test_setup (minus imports
    the code already has) + [helper imports] + prompt + completion + "\\n" + test; the `fix` task
    shows prompt + buggy_solution and asks for the function fixed."""

    name, tasks = "humanevalpack", ("synthesize", "fix")

    def load(self, r: dict, task: str) -> Problem:
        entry = r["entry_point"]
        if task == "fix":
            desc = f"Fix bugs in {entry}."  # HumanEvalFix's instruction
            buggy = r["prompt"] + r["buggy_solution"]
        else:
            desc, buggy = (r.get("docstring") or _doc_of(r["prompt"])).strip(), ""
        return Problem(r["task_id"], self.name, r["prompt"], entry, desc, r["test"],
                       setup=r["test_setup"], buggy=buggy,
                       reference=r.get("canonical_solution") or "")  # fmt: skip

    def program(self, p: Problem, completion: str) -> dict[str, str]:
        setup = p.setup  # less the imports the prompt already has (Go rejects duplicates)
        for line in setup.splitlines():
            quoted = line.replace("import", "").replace("(", "").replace(")", "").strip()
            if quoted.startswith('"') and quoted in p.prompt:
                setup = setup.replace(quoted, "")
        return {self.file: _with_setup(p, setup, completion, p.prompt + completion)}


class SynthFix(Harness):
    """synth-fix (gocoder/eval/synthfix.py): a bug report and the standard-library file it is in;
    the answer is the file fixed, judged by the package's own tests, visible and hidden both (as a
    user's `--tests`)."""

    name = "synth-fix"
    test_builds = True  # its build ran the package's tests on the original

    def load(self, r: dict, task: str) -> Problem:
        from gocoder.eval.synthfix import load_record

        return Problem(format=self.name, test="", **load_record(r))

    def program(self, p: Problem, completion: str) -> dict[str, str]:
        return {**dict(p.files), p.path: completion}  # the completion is the whole fixed file

    def answer_file(self, p: Problem) -> str:
        return p.path

    def visible(self, p: Problem) -> Problem:
        return p

    def record(self, p: Problem, task: str) -> Record:
        """A bug report and the file it is in, as `gocoder generate --context`."""
        return Record(id=p.id, split="test", source="bench:synth-fix",
                      problem=Ask(description=p.description, details=p.details),
                      context=Context(file=p.path, before=p.prompt), plan=Plan())

    def completion(self, p: Problem, code: str) -> str:
        """The answer put into the buggy file; one that cannot go in leaves the file as it is."""
        from gocoder.inference.patch import apply_code, gofmt

        try:
            return gofmt(apply_code(p.prompt, code), p.path)
        except GocoderError:
            return p.prompt


HARNESSES: dict[str, Harness] = {
    h.name: h for h in (Mbxp(), MultiplE(), HumanEvalX(), HumanEvalPack(), SynthFix())
}
FORMATS = tuple(HARNESSES)


def _with_setup(p: Problem, setup: str, completion: str, uses: str) -> str:
    """HumanEval-X's and HumanEvalPack's file: setup, imports of the helper packages `uses` needs,
    the code, the test."""
    code = p.prompt + completion
    extra = _helper_imports(setup + code, uses)
    head = setup + "\n" + (f"import (\n{extra})\n" if extra else "")
    return head + code + "\n" + p.test


def _helper_imports(have: str, code: str) -> str:
    """Imports for helper packages the code uses (`strings.`)
    outside comments and does not import."""
    lines = [ln for ln in code.splitlines() if not ln.strip().startswith("//")]
    out = ""
    for pkg in GO_HELPER_IMPORTS:
        name = pkg.rsplit("/", 1)[-1]
        if f'"{pkg}"' not in have and any(re.search(rf"\b{name}\.", ln) for ln in lines):
            out += f'    "{pkg}"\n'
    return out


def load_problems(path: str | Path, fmt: str, *, task: str = "synthesize") -> list[Problem]:
    """Read a benchmark JSONL file of the given format; a record missing a
    field is an error naming its line."""
    if fmt not in FORMATS:
        raise GocoderError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if task not in ("synthesize", "fix"):
        raise GocoderError(f"--task {task!r}: expected synthesize or fix")
    harness = HARNESSES[fmt]
    if task not in harness.tasks:
        ships = " and ".join(h.name for h in HARNESSES.values() if task in h.tasks)
        raise GocoderError(f"--task fix: only {ships} ships buggy solutions, not {fmt}")
    problems, seen = [], set()
    for lineno, rec in read_jsonl_numbered(path):
        try:
            p = harness.load(rec, task)
        except KeyError as e:
            raise GocoderError(
                f"{path}:{lineno}: not a {fmt} record: missing field {e.args[0]!r}"
            ) from None
        if p.id in seen:
            raise GocoderError(f"{path}:{lineno}: duplicate problem id {p.id!r}")
        seen.add(p.id)
        problems.append(p)
    if not problems:
        raise GocoderError(f"{path}: no problems")
    return problems


def _doc_of(prompt: str) -> str:
    """The // comment block right above the prompt's last func: the problem in words."""
    f = last_func(prompt)
    head = prompt[: f.start] if f else prompt
    block: list[str] = []
    for line in reversed(head.rstrip("\n").splitlines()):
        if not line.startswith("//"):
            break
        block.append(line[2:].strip())
    return "\n".join(reversed(block)).strip()


def last_func(src: str) -> Func | None:
    """The last top-level function of src (a prompt's: the entry point, its signature left open)."""
    found = top_funcs(src)
    return found[-1] if found else None


def _entry(prompt: str, where: str) -> str:
    f = last_func(prompt)
    if f is None:
        raise KeyError(where)
    return f.name


def problem_record(problem: Problem, task: str = "synthesize") -> Record:
    """The hierarchical record the model reads for a problem
    (docs/FORMATS.md; no plan or solution)."""
    return problem.harness.record(problem, task)


def _function_record(problem: Problem, task: str) -> Record:
    """A function to write. synthesize: the description, the prompt file head up to the signature as
    context, the signature in the details. fix: "Fix bugs in NAME." with the file holding the buggy
    function as context."""
    f = last_func(problem.prompt)
    cut = f.start if f else len(problem.prompt)
    head, signature = problem.prompt[:cut], problem.prompt[cut:].strip().rstrip("{").strip()
    first, _, rest = problem.description.strip().partition("\n")
    if task == "fix":
        if not problem.buggy:
            raise GocoderError(
                f"{problem.id}: the fix task needs a buggy solution ({problem.format} has none)"
            )
        before, details = problem.setup + problem.buggy, ""
    else:
        before, details = (
            problem.setup + head,
            (rest + "\n\n" if rest else "") + f"Signature: {signature}",
        )
    return Record(
        id=problem.id,
        split="test",
        source=f"bench:{problem.format}",
        problem=Ask(description=first, details=details),
        context=Context(
            file=problem.harness.file,
            before=before,
            related=tuple(Related(file=f, code=c) for f, c in problem.related),
        ),
        plan=Plan(),
    )


def completion_from_code(problem: Problem, code: str) -> str:
    """What the harness scores for the model's code (its format's Harness.completion); for an
    Answer, an Answer whose raw is the completion of the code as the model wrote it."""
    comp = problem.harness.completion(problem, code)
    raw = getattr(code, "raw", None)
    if raw is None or raw == code:
        return comp
    return Answer(comp, problem.harness.completion(problem, raw))


def _function_completion(problem: Problem, code: str) -> str:
    """What the harness appends after the prompt's open signature, from the model's code.

    The code is usually the whole entry-point function (maybe with helpers, maybe a whole file): the
    completion is that function's body with its closing brace, then the helper declarations (not
    `main`, and nothing the prompt or test already declares). Code whose one function is not named
    as the entry point gives that function's body: the prompt has already written the signature, so
    the body is what the model answered (small models rarely copy a snake_case name); of several
    such functions, the one the others serve (no other calls it) answers and the rest are its
    helpers. Code with only methods or types gives a body that panics, then those declarations.
    Other code is taken as the body itself, closed with a brace when it parses as statements.
    """
    from gocoder.check.validate import get_checker

    res = get_checker().check(code, kind="auto")
    raw = code.encode()
    taken = {f.name for f in top_funcs(problem.prompt + "\n" + problem.test)} | {"main", "init"}
    funcs = [d for d in res.decls if d.kind == "func"]
    entry = next((d for d in funcs if d.name == problem.entry_point), None) or _root_func(
        [d for d in funcs if d.name not in taken], raw)
    if entry is None and res.ok and res.decls and res.kind in ("file", "decls"):
        # only methods or types: nothing answers the signature; the declarations still go after the
        # closed function so that the program builds and the answer is judged wrong, not unbuildable
        entry_body = (
            '\n\tpanic("gocoder: the answer declares no function for the entry point")\n}\n'
        )
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
    """The function that answers when none has the entry point's name: the one no
    other function calls (the others are its helpers), the last such one when
    several are; None without functions."""
    texts = {d.name: raw[d.start : d.end].decode() for d in funcs}
    roots = [d for d in funcs
             if not any(re.search(rf"\b{re.escape(d.name)}\s*\(", t[max(body_open(t), 0) :])
                        for name, t in texts.items() if name != d.name)]  # fmt: skip
    return (roots or funcs)[-1] if funcs else None


def zero_completion(problem: Problem) -> str:
    """A trivial completion that returns the zero values of the
    signature's results (for harness checks)."""
    f = last_func(problem.prompt)
    sig = problem.prompt[f.start :] if f else ""
    at = body_open(sig)
    params_end = skip_balanced(sig, f.params - f.start, "()") if f else 0
    results = sig[params_end : at - 1].strip() if at > 0 else ""
    if results.startswith("("):
        results = results[1:-1]
    types = split_list(results)  # (int, map[string]int): two
    decls = "".join(f"\tvar z{i} {t}\n" for i, t in enumerate(types))
    body = (
        decls
        + ("\treturn " + ", ".join(f"z{i}" for i in range(len(types))) + "\n" if types else "")
        + "}\n"
    )
    # The prompt's imports must be used or the file does not compile;
    # the test uses json and reflect.
    imported = {i.path for i in imports(problem.prompt)}
    uses = [
        f"var _ = {ref}\n"
        for pkg, ref in _IMPORT_REFS.items()
        if pkg in imported and ref not in problem.test
    ]
    return body + ("\n" + "".join(uses) if uses else "")


# A symbol of each package that MBXP prompts import, to reference it from a trivial completion.
_IMPORT_REFS = {"math": "math.Pi", "sort": "sort.Ints", "strings": "strings.Contains",
                "strconv": "strconv.Itoa", "fmt": "fmt.Sprint", "regexp": "regexp.MustCompile",
                "bytes": "bytes.Equal"}  # fmt: skip
