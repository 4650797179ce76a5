"""`gocoder prbench run`: answer a benchmark of real changes with the model, and score the answers.

What `gocoder generate --pr-desc` is for, measured: a problem is one commit (or merged PR) of a
local git clone the model never saw, mined by gocoder/eval/prmine.py (`gocoder prbench build`): its
description, the file it changes at the parent commit, and the declarations the change added or
modified there. Each is answered as generate answers (with or without the repository's retrieved
declarations) and scored against the real change, at the parent commit's tree.

Scores (docs/PRBENCH.md), each a mean over the problems:
- parses: the answer is Go declarations gocheck parses;
- typechecks: the answer, put into the file (gocoder/inference/patch.py put_in: declarations
  replaced or appended, imports fixed, gofmt), type-checks with the rest of its package at the
  parent commit (gocheck's typecheck_package, imports resolved offline from GOROOT and the module);
  counted only where the package at the parent commit type-checks as it is (`baseline_typechecks`),
  and the real change's rate beside it;
- edit_similarity: 1 - Levenshtein distance / the longer length, between the gofmt'ed answer and the
  gofmt'ed real declarations (CodeXGLUE's and RepoBench's edit similarity, on characters);
- exact: the two are equal after gofmt;
- tests_pass: where the commit added or changed Test functions in the changed file's package and
  those tests pass at the commit (run offline in the sandbox, gocoder/check/sandbox.py), they pass
  with the answer put into the file at the parent instead (over those `tests_problems`), the real
  declarations' rate, put in the same way, beside it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError
from gocoder.check.confine import Limits
from gocoder.eval.prmine import build_prbench, git, git_dir, show  # noqa: F401 (re-exported)
from gocoder.fsio import atomic_write
from gocoder.record import Context, Problem, Record
from gocoder.records import JsonlWriter, read_jsonl, read_jsonl_numbered
from gocoder.text.gosource import func_body, funcs

# a package's test binary: the limits `gocoder generate --tests` runs a package's tests under, with
# room for the threads of a concurrency library's tests
TEST_LIMITS = Limits(wall_s=60.0, cpu_s=60, procs=256)
_MODULE = re.compile(r"^module\s+\"?([^\s\"]+)", re.M)  # go.mod's module path


def edit_similarity(a: str, b: str) -> float:
    """1 - Levenshtein(a, b) / max(len): 1.0 for equal texts. Row by row in numpy: a
    row's insertions are a running minimum (D[j] = min_k<=j (T[k] + j - k)), so each
    row is a few vector operations."""
    if not a and not b:
        return 1.0
    x, y = (
        np.frombuffer(a.encode("utf-32-le"), np.uint32),
        np.frombuffer(b.encode("utf-32-le"), np.uint32),
    )
    idx = np.arange(len(y) + 1)
    prev = idx.copy()
    for i in range(1, len(x) + 1):
        t = np.empty_like(prev)
        t[0] = i
        t[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (y != x[i - 1]))  # deletion, substitution
        prev = np.minimum.accumulate(t - idx) + idx  # insertion
    return 1.0 - float(prev[-1]) / max(len(x), len(y))


def tree_at(repo: Path, sha: str, dest: Path) -> Path:
    """The files of sha, unpacked (once) under dest/sha."""
    d = dest / sha
    if not d.exists():
        data = subprocess.run(
            ["git", "--git-dir", str(git_dir(repo)), "archive", "--format=tar", sha],
            capture_output=True,
            check=True,
        ).stdout
        # a folder of this process's own, renamed into place: two runs sharing dest (plain
        # and --retrieve side by side) never see a half-written tree, and the loser of the
        # rename race keeps the winner's
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{sha}.", dir=dest))
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                tar.extractall(tmp, filter="data")
            tmp.rename(d)
        except OSError:
            if not d.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return d


def module_root(tree: Path, path: str) -> Path:
    """The folder of the go.mod nearest above tree/path (tree itself when none)."""
    for d in (tree / path).parents:
        if (d / "go.mod").exists() or d == tree:
            return d
    return tree


def typechecks(tree: Path, path: str, text: str) -> bool:
    """Whether the package of tree/path type-checks with text as that
    file (its _test files left out)."""
    from gocoder.check.validate import get_checker

    pkg = (tree / path).parent
    files = [
        {
            "name": p.name,
            "src": text
            if p.name == Path(path).name
            else p.read_text(encoding="utf-8", errors="replace"),
        }
        for p in sorted(pkg.glob("*.go"))
        if not p.name.endswith("_test.go")
    ]
    resp = get_checker().request(
        {"op": "typecheck_package", "files": files, "dir": str(module_root(tree, path))},
        timeout_s=120,
    )
    return "error" not in resp and not resp.get("file_errors")


def _test_funcs(src: str) -> dict[str, str]:
    """A _test.go file's top-level Test functions: name -> its text (to the end of src where
    its body never closes)."""
    out = {}
    for f in funcs(src):
        if not f.recv and f.name.startswith("Test"):
            end = func_body(src, f)[1]
            out[f.name] = src[f.start : end if end >= 0 else len(src)]
    return out


def changed_tests(repo: Path, p: dict[str, Any]) -> list[str]:
    """The Test functions the commit added or changed in the _test.go
    files of the changed file's folder."""
    names = git(
        repo, "diff-tree", "-r", "--no-commit-id", "--name-only", p["parent"], p["sha"]
    ).splitlines()
    folder = Path(p["path"]).parent
    out = set()
    for name in names:
        if not name.endswith("_test.go") or Path(name).parent != folder:
            continue
        before, after = (_test_funcs(show(repo, sha, name)) for sha in (p["parent"], p["sha"]))
        out |= {t for t, body in after.items() if before.get(t) != body}
    return sorted(out)


def run_tests(tree: Path, path: str, text: str, tests: Sequence[str], module_path: str = "",
              limits: Limits = TEST_LIMITS) -> str:
    """The sandbox status ("ok", "fail", "build_error", "timeout", ...) of the Test functions
    tests of tree/path's package with text as that file, on a copy of its module: its go.mod cut
    to the module and go lines (the rule admits only repositories whose code needs no module),
    plus our offline testify where a test imports it. A tree without go.mod (before modules) is
    given one naming module_path; "no-go-mod" where that is empty too."""
    from gocoder.check.sandbox import TESTIFY_DIR, run_package_tests

    root = module_root(tree, path)
    gomod = (
        (root / "go.mod").read_text(encoding="utf-8", errors="replace")
        if (root / "go.mod").exists()
        else ""
    )
    module = (
        m.group(1) if (m := _MODULE.search(gomod)) else module_path
    )
    if not module:
        return "no-go-mod"
    go = re.search(r"^go\s+(\S+)", gomod, re.M)
    tmp = Path(tempfile.mkdtemp(prefix="gocoder-prtest-"))
    try:
        mod = tmp / "m"
        shutil.copytree(root, mod, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        (mod / "go.sum").unlink(missing_ok=True)
        rel = (tree / path).relative_to(root)
        (mod / rel).write_text(text, encoding="utf-8")
        lines = [f"module {module}", "", f"go {go.group(1) if go else '1.16'}", ""]
        if any("github.com/stretchr/testify" in f.read_text(encoding="utf-8", errors="replace")
               for f in mod.rglob("*_test.go")):
            lines += ["require github.com/stretchr/testify v1.8.4", "",
                      f"replace github.com/stretchr/testify => {TESTIFY_DIR}", ""]
        (mod / "go.mod").write_text("\n".join(lines))
        args = [f"-test.run=^({'|'.join(tests)})$"]
        return run_package_tests(mod, rel.parent.as_posix(), args=args, limits=limits).status
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def head_module(repo: Path) -> str:
    """The module path of the clone's HEAD go.mod without its major-version suffix: the import
    path a commit from before go.mod was written used ("" where HEAD has no go.mod)."""
    m = _MODULE.search(show(repo, "HEAD", "go.mod"))
    return re.sub(r"/v\d+$", "", m.group(1)) if m else ""


def score_tests(p: dict[str, Any], code: str, repo: Path, trees: Path) -> dict[str, Any]:
    """The tests score of one answer (docs/PRBENCH.md). `tests` says whether they apply: "ok", or
    why not ("no-test-change": the commit changed no Test function of the package;
    "at-commit-STATUS": those Test functions do not pass at the commit, run as below). Where they
    apply: whether they pass with the answer put into the file at the parent (`tests_pass`), with
    the real declarations put in the same way (`reference_tests_pass`), and whether they fail
    with the file at the parent (`tests_fail_before`). What does not depend on the answer is
    worked out once a problem and kept beside its trees (trees/SHA.tests.json), so that every
    run of the benchmark after the first builds one test binary a problem, not four."""
    memo = trees / f"{p['sha']}.tests.json"
    if memo.exists():
        ref = json.loads(memo.read_text(encoding="utf-8"))
    else:
        ref = _reference_tests(p, repo, trees)
        atomic_write(memo, json.dumps(ref))
    if ref["tests"] != "ok":
        return ref
    child = tree_at(repo, p["sha"], trees)
    return {**ref, "tests_pass": _passes(p, code, child, ref["test_funcs"], head_module(repo))}


def _reference_tests(p: dict[str, Any], repo: Path, trees: Path) -> dict[str, Any]:
    """score_tests's part that holds for every answer: whether the tests apply, and how the real
    declarations and the parent's file do."""
    tests = changed_tests(repo, p)
    if not tests:
        return {"tests": "no-test-change"}
    child, module = tree_at(repo, p["sha"], trees), head_module(repo)
    status = run_tests(child, p["path"], p["after"], tests, module)
    if status != "ok":
        return {"tests": f"at-commit-{status}", "test_funcs": tests}
    return {"tests": "ok", "test_funcs": tests,
            "reference_tests_pass": _passes(p, p["answer"], child, tests, module),
            "tests_fail_before": not _passes(p, None, child, tests, module)}


def _passes(p: dict[str, Any], answer: str | None, child: Path, tests: list[str],
            module: str) -> bool:
    """The tests pass with answer put into the file at the parent (None: the parent's file)."""
    from gocoder.inference.patch import put_in

    try:
        text = put_in(p["before"], answer, p["path"]) if answer is not None else p["before"]
    except GocoderError:
        return False
    return run_tests(child, p["path"], text, tests, module) == "ok"


def _gofmt(code: str) -> str | None:
    from gocoder.inference.patch import gofmt

    try:
        return gofmt(code)
    except GocoderError:
        return None


def score(p: dict[str, Any], code: str, tree: Path) -> dict[str, Any]:
    """The scores of one answer (docs/PRBENCH.md)."""
    from gocoder.check.validate import check
    from gocoder.inference.patch import put_in

    r = check(code, kind="auto", gofmt=False)
    parses = bool(r.ok and r.decls)
    formatted, ref = _gofmt(code), _gofmt(p["answer"]) or p["answer"]
    mine = formatted or code
    row = {
        "id": p["id"],
        "parses": parses,
        "edit_similarity": round(edit_similarity(mine.strip(), ref.strip()), 4),
        "exact": formatted is not None and mine.strip() == ref.strip(),
    }
    try:
        after = put_in(p["before"], code, p["path"]) if parses else None
    except GocoderError:
        after = None
    row["typechecks"] = after is not None and typechecks(tree, p["path"], after)
    return row


def run_prbench(
    file: Path,
    repos_dir: Path,
    out: Path,
    *,
    generate: Any,
    checkpoint: str | None = None,
    retrieve: bool = False,
    limit: int | None = None,
    tests: bool = True,
    log: Callable[[str], None] = lambda s: None,
    retrieval: Any = None,
) -> dict[str, Any]:
    """Answer each problem of file with the model (one greedy candidate, the loop's first answer,
    imports fixed as generate hands it over), with or without retrieval from the repository at
    the parent commit, and score it (with the repository's tests unless tests is False); rows go
    to out/results.jsonl (a rerun resumes), the means to out/summary.json. retrieval: how the
    repository's declarations are ranked (a RetrieveConfig; None: bm25)."""
    from gocoder.check.validate import fix_imports
    from gocoder.inference.generate import Generator, sampling_from, solve
    from gocoder.inference.retrieve import build_index, embedder_for

    problems = [rec for _, rec in read_jsonl_numbered(file)][:limit]
    gen = Generator.load(checkpoint, device=generate.device)
    emb = embedder_for(retrieval, gen) if retrieve else None
    out.mkdir(parents=True, exist_ok=True)
    res_path = out / "results.jsonl"
    trees, t0 = out.parent / "trees", time.perf_counter()
    base: dict[str, bool] = {}
    with JsonlWriter(res_path) as f:
        for i, p in enumerate(problems):
            if p["id"] in f.seen:
                continue
            repo = repos_dir / p["repo"]
            tree = tree_at(repo, p["parent"], trees / p["repo"])
            rec = Record(
                id=p["id"],
                problem=Problem(description=p["description"], details=p["details"]),
                context=Context(file=Path(p["path"]).name, before=p["before"]),
            )
            if retrieve:
                idx, _ = build_index(
                    tree,
                    trees / p["repo"] / f"{p['parent']}.index.json",
                    embedder=emb,
                    method=retrieval.method if retrieval is not None else None,
                )
                rec = gen.with_related(rec, idx, generate.max_new_tokens, exclude=(p["path"],))
            t = time.perf_counter()
            res = solve(gen, rec, samples=1, max_iters=1, sampling=sampling_from(generate, 1))
            code = fix_imports(res.code) if res.syntax_ok else res.code
            key = f"{p['repo']}@{p['parent']}"
            if key not in base:
                base[key] = typechecks(tree, p["path"], p["before"])
            row = {**score(p, code, tree), "baseline_typechecks": base[key],
                   "reference_typechecks": base[key] and typechecks(tree, p["path"], p["after"]),
                   "related": len(rec.context.related), "gen_s": round(time.perf_counter() - t, 2)}
            if tests:
                row.update(score_tests(p, code, repo, trees / p["repo"]))
            row["code"] = code
            f.write(row)
            log(
                f"prbench: {i + 1}/{len(problems)} {p['id']}: parses={row['parses']} "
                f"typechecks={row['typechecks']} sim={row['edit_similarity']} "
                f"tests={row.get('tests', 'not run')}"
                f"{' pass=' + str(row['tests_pass']) if 'tests_pass' in row else ''}"
            )
    done = {r["id"]: r for r in read_jsonl(res_path)} if res_path.exists() else {}
    rows = [done[p["id"]] for p in problems if p["id"] in done]
    summary = summarize(rows, retrieve, time.perf_counter() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def summarize(rows: list[dict[str, Any]], retrieve: bool, seconds: float) -> dict[str, Any]:
    """Means over the problems; the type-check rates over those whose package type-checks at the
    parent, the tests rates over those whose tests apply (row "tests" == "ok")."""
    n = len(rows)
    tc = [r for r in rows if r["baseline_typechecks"]]
    tp = [r for r in rows if r.get("tests") == "ok"]

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    return {
        "problems": n,
        "retrieve": retrieve,
        "repos": dict(Counter(r["id"].split("@")[0] for r in rows)),
        "parses": mean([r["parses"] for r in rows]),
        "typechecks": mean([r["typechecks"] for r in tc]),
        "typecheck_problems": len(tc),
        "reference_typechecks": mean([r["reference_typechecks"] for r in tc]),
        "edit_similarity": mean([r["edit_similarity"] for r in rows]),
        "exact": mean([r["exact"] for r in rows]),
        "tests_pass": mean([r["tests_pass"] for r in tp]),
        "tests_problems": len(tp),
        "reference_tests_pass": mean([r["reference_tests_pass"] for r in tp]),
        "tests_fail_before": mean([r["tests_fail_before"] for r in tp]),
        "tests_skipped": dict(
            Counter(r.get("tests", "not-run") for r in rows if r.get("tests") != "ok")
        ),
        "related_mean": mean([r["related"] for r in rows]),
        "seconds": round(seconds, 1),
    }
