"""What a fresh `pip install .` gives a user: every import of the package declared, and the Go check
path free of torch (CI and pre-commit run `gocoder check` and nothing else)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules() -> dict[str, str]:
    """Top-level module name -> the first file importing it, over every import in gocoder/ (lazy ones too)."""
    found: dict[str, str] = {}
    for f in sorted((ROOT / "gocoder").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for n in names:
                found.setdefault(n.split(".")[0], str(f.relative_to(ROOT / "gocoder")))
    return found


# distributions a module may import from an extra: the commands that need them say which extra to install
OPTIONAL = {"datasketch", "matplotlib"}


def _declared() -> set[str]:
    """What a plain `pip install .` brings, plus the extras of OPTIONAL's distributions: an import on the
    generation path (tree-sitter once sat in an extra) must be a core dependency, or the README's first
    command fails on a bare machine."""
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name = lambda r: re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower().replace("_", "-")  # noqa: E731
    extras = {name(r) for extra in proj["optional-dependencies"].values() for r in extra}
    return {name(r) for r in proj["dependencies"]} | (extras & OPTIONAL)


def test_every_third_party_import_is_declared():
    dists = packages_distributions()
    declared = _declared()
    missing = []
    for mod, where in sorted(_imported_modules().items()):
        if mod in sys.stdlib_module_names or mod == "gocoder":
            continue
        names = {d.lower().replace("_", "-") for d in dists.get(mod, [mod])}
        if not names & declared:
            missing.append(f"{mod} (gocoder/{where}; distribution {', '.join(sorted(names))})")
    assert not missing, "imported but not in pyproject.toml: " + "; ".join(missing)


def test_check_never_imports_torch(tmp_path):
    # torch is a dependency of the model, not of the checker: this path must run where torch cannot import
    (tmp_path / "a.go").write_text("package a\n\nfunc F() int { return 1 }\n")
    (tmp_path / "b.go").write_text("package a\n\nfunc G() int { return 1 +\n")
    guard = ("import sys, importlib.abc\n"
             "class NoTorch(importlib.abc.MetaPathFinder):\n"
             "    def find_spec(self, name, path, target=None):\n"
             "        if name.split('.')[0] in ('torch', 'numpy'):\n"
             "            raise ImportError(f'{name} imported on the check path')\n"
             "sys.meta_path.insert(0, NoTorch())\n"
             "sys.argv = ['gocoder', 'check', '--kind', 'auto', '--typecheck', sys.argv[1]]\n"
             "from gocoder.cli import main\n"
             "main()\n")
    p = subprocess.run([sys.executable, "-c", guard, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith("b.go:4:1: expected ") and "a.go" not in p.stdout


def test_the_gocheck_hook_needs_only_go(tmp_path):
    from gocoder.check.validate import find_go

    goroot = subprocess.run([find_go()[0], "env", "GOROOT"], capture_output=True, text=True).stdout.strip()
    go = Path(goroot) / "bin" / "go"  # the toolchain itself, not a shim that needs more of PATH
    entry = next(ln.split(":", 1)[1].strip() for ln in (ROOT / ".pre-commit-hooks.yaml").read_text().splitlines()
                 if ln.strip().startswith("entry: hooks/"))
    env = {"PATH": f"{go.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "GOCODER_CACHE": str(tmp_path / "cache"),
           "GOCACHE": str(Path.home() / ".cache" / "go-build"), "GOPROXY": "off"}
    # no python on this PATH at all: pre-commit runs the script as it is
    ok = subprocess.run([str(ROOT / entry), "examples/reverse.go"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert ok.returncode == 0 and ok.stdout == "", ok.stderr
    bad = subprocess.run([str(ROOT / entry), "examples/broken.go", "examples/reverse.go"], capture_output=True,
                         text=True, cwd=ROOT, env=env)
    assert bad.returncode == 1 and bad.stdout.startswith("examples/broken.go:"), bad.stderr
    assert len(list((tmp_path / "cache").glob("gocheck-hook-*"))) == 1  # built once, then reused


def test_every_subpackage_ships():
    """A non-editable `pip install .` ships only the packages pyproject.toml names: every stage folder."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    folders = {"gocoder." + p.parent.name for p in (ROOT / "gocoder").glob("*/__init__.py")}
    assert folders and folders <= listed, sorted(folders - listed)
