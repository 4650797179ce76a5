"""The import graph of gocoder's modules: no circle, every import up the stage table, and inference never
imports training (STYLE.md 16).

The stages are folders (gocoder/check/, text/, model/, ...) beside a few base modules at the top. A module
is named by its dotted path under gocoder ("check.validate", "config", "eval" for eval/__init__.py). Every
import counts, a lazy one inside a function too: it still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "gocoder"
# the stages of docs/ARCHITECTURE.md's table, top to bottom, by folder (or base module): a module imports
# its own row or rows above
LAYERS = [
    {"__init__", "config", "fsio", "record", "records", "splits", "progress"},
    {"check"},  # Go and gocheck, the checker client, `gocoder check`, the sandbox
    {"text", "model"},  # the contract (serialize, tokenizer) and the network (model, quant, checkpoint)
    {"collect"},
    {"inference"},
    {"training"},
    {"eval"},
    {"cli", "__main__"},
]
# the generation side: what `gocoder generate` loads, which must run with no optimizer, shard or data code
INFERENCE = {"inference", "model", "text", "check"}
TRAINING = {"training", "collect"}


def module_name(path: Path, pkg: Path = PKG) -> str:
    """gocoder/check/validate.py -> "check.validate"; gocoder/eval/__init__.py -> "eval"."""
    parts = list(path.relative_to(pkg).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def graph(pkg: Path = PKG) -> dict[str, set[str]]:
    """module -> the gocoder modules it imports (`gocoder` itself, the package's __init__, left out)."""
    files = {module_name(p, pkg): p for p in sorted(pkg.rglob("*.py"))}
    files.pop("__init__", None)
    files.pop("__main__", None)
    mods = set(files)

    def resolve(dotted: str) -> str | None:
        """gocoder.a.b.c -> the longest known module it names ("a.b" when c is a name inside a.b)."""
        parts = dotted.split(".")[1:]
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in mods:
                return ".".join(parts[:n])
        return None

    edges: dict[str, set[str]] = {}
    for m, path in files.items():
        names = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names += [f"{node.module}.{a.name}" for a in node.names]  # a module, or a name inside one
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names]
        edges[m] = {r for n in names if n.startswith("gocoder.") and (r := resolve(n))} - {m}
    return edges


def stage(module: str) -> str:
    """The row key of a module: its folder, or its own name at the top."""
    return module.split(".")[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_a_circle_a_lazy_import_and_a_folder(tmp_path):
    (tmp_path / "a.py").write_text("from gocoder.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from gocoder import a\n")
    (tmp_path / "c.py").write_text("import gocoder.a\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "__init__.py").write_text("")
    (tmp_path / "d" / "e.py").write_text("from gocoder.d import f\nfrom gocoder.c import g\n")
    (tmp_path / "d" / "f.py").write_text("from gocoder.d.e import h\n")
    edges = graph(tmp_path)
    assert edges == {"a": {"b"}, "b": {"a"}, "c": {"a"}, "d": set(), "d.e": {"d.f", "c"}, "d.f": {"d.e"}}
    assert cycles(edges) == [["a", "b"], ["d.e", "d.f"]]


def test_no_import_circle():
    assert cycles(graph()) == []


def test_every_import_goes_up_the_stage_table():
    edges = graph()
    layer = {s: i for i, ss in enumerate(LAYERS) for s in ss}
    missing = sorted({stage(m) for m in edges} - set(layer))
    assert not missing, f"missing from LAYERS: {missing}"
    down = sorted(f"{m} -> {d}" for m, ds in edges.items() for d in ds if layer[stage(d)] > layer[stage(m)])
    assert down == []


def test_the_folders_are_the_stages():
    """LAYERS names exactly the folders of gocoder/ that hold Python and the modules at its top."""
    folders = {p.parent.name for p in PKG.glob("*/__init__.py")}
    top = {p.stem for p in PKG.glob("*.py")}
    assert folders | top == {s for row in LAYERS for s in row}
    assert not folders & top  # no module beside a folder of its name


def test_inference_imports_no_training_module():
    edges = graph()
    assert {"inference.generate", "inference.engine", "model.checkpoint", "check.validate"} <= edges.keys()
    bad = sorted(f"{m} -> {d}" for m in edges if stage(m) in INFERENCE for d in edges[m] if stage(d) in TRAINING)
    assert bad == []


def test_a_module_over_400_lines_says_why_at_its_top():
    """Issue 27: no module over ~400 lines without its reason, the docstring's second paragraph."""
    silent = []
    for p in sorted(PKG.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        paragraphs = (ast.get_docstring(ast.parse(text)) or "").split("\n\n")
        says_why = len(paragraphs) > 1 and paragraphs[1].startswith("Over ~400 lines on purpose: ")
        if text.count("\n") > 400 and not says_why:
            silent.append(str(p.relative_to(PKG)))
    assert silent == []
