"""The import graph of gocoder/*.py: no circle, and inference never imports training (STYLE.md 16).

Every import counts, a lazy one inside a function too: it still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "gocoder"
# the generation side: what `gocoder generate` loads, which must run with no optimizer, shard or data code
INFERENCE = {"generate", "candidates", "engine", "search", "kvcache", "checkpoint", "serialize", "validate",
             "incremental", "patch", "answers", "retrieve"}
TRAINING = {"train", "data", "collect", "github", "gitlog", "gosrc", "synth", "annotate", "plans", "decontam",
            "tokenizer_run", "steps", "intents", "intents_train", "corpus", "gosources", "textparts",
            "functions", "golf", "quality"}
# the stages of docs/ARCHITECTURE.md's table, top to bottom: a module imports its own row or rows above
LAYERS = [
    {"__init__", "config", "fsio", "records", "splits", "toolchain", "progress"},
    {"validate", "check", "confine", "sandbox"},
    {"serialize", "tokenizer", "model", "quant", "checkpoint"},
    {"collect", "gitlog", "github", "gosrc", "synth", "decontam", "annotate", "plans", "steps", "intents",
     "intents_train", "corpus", "gosources", "textparts", "functions", "quality"},
    {"kvcache", "engine", "incremental", "candidates", "search", "generate", "patch", "retrieve"},
    {"tokenizer_run", "data", "train"},
    {"benchmarks", "checks", "synthfix", "evaluate", "answers", "benchrun", "report", "golf", "prbench"},
    {"cli", "__main__"},
]


def graph(pkg: Path = PKG) -> dict[str, set[str]]:
    """module -> the gocoder modules it imports (by short name; `gocoder` itself, the package, left out)."""
    mods = {p.stem for p in pkg.glob("*.py")} - {"__init__", "__main__"}
    edges: dict[str, set[str]] = {}
    for m in mods:
        out: set[str] = set()
        for node in ast.walk(ast.parse((pkg / f"{m}.py").read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "gocoder" else [f"gocoder.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            out |= {n.split(".")[1] for n in names if n.startswith("gocoder.") and n.split(".")[1] in mods}
        edges[m] = out - {m}
    return edges


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


def test_the_walker_sees_a_circle_and_a_lazy_import(tmp_path):
    (tmp_path / "a.py").write_text("from gocoder.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from gocoder import a\n")
    (tmp_path / "c.py").write_text("import gocoder.a\n")
    edges = graph(tmp_path)
    assert edges == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(edges) == [["a", "b"]]


def test_no_import_circle():
    assert cycles(graph()) == []


def test_every_import_goes_up_the_stage_table():
    edges = graph()
    layer = {m: i for i, ms in enumerate(LAYERS) for m in ms}
    assert set(edges) <= set(layer), f"modules missing from LAYERS: {sorted(set(edges) - set(layer))}"
    down = sorted(f"{m} -> {d}" for m, ds in edges.items() for d in ds if layer[d] > layer[m])
    assert down == []


def test_inference_imports_no_training_module():
    edges = graph()
    assert INFERENCE & edges.keys() >= {"generate", "engine", "checkpoint", "validate"}  # the names are real
    bad = sorted(f"{m} -> {d}" for m in INFERENCE & edges.keys() for d in edges[m] & TRAINING)
    assert bad == []
