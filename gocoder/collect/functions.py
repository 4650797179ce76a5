"""`gocoder corpus functions`: the corpus's documented functions that stand
alone, one small Go file each.

A file of the corpus teaches the language; a benchmark problem asks for something narrower: a doc
comment and a signature, then the body, in a file of its own that imports only the standard library.
This pass finds that shape inside the corpus: every top-level function with a doc comment (no
methods, no tests, examples, benchmarks, `main` or `init`; declarations up to `max_bytes`) is
written as `package main`, the imports of its file that it uses, its doc comment as `//` lines and
its declaration, and kept only when go/types accepts that file on its own, so it needs nothing from
its package and no module outside the standard library. Exact copies are kept once.

Input and output are text parts (gocoder/collect/textparts.py): OUT/text/part-NNNNN.jsonl.xz
holds the functions of the input's part-NNNNN, each record keeping its file's package, license,
path and split, so `gocoder corpus tokenize` turns them into a training stage's tokens and the
held-out packages stay held out. A part is written whole (to a temporary name, then renamed), so
an interrupted run resumes at the first part it had not finished. OUT/summary.json counts
functions kept and dropped, by reason.
"""

from __future__ import annotations

import json
import lzma
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.collect.textparts import PART_GLOB, read_parts
from gocoder.records import content_hash
from gocoder.text.gosource import Import, imports

SKIP_NAMES = ("main", "init")
SKIP_PREFIXES = ("Test", "Benchmark", "Fuzz", "Example")
def standalone(doc: str, decl: str, file_imports: list[Import]) -> str:
    """The file a function would be on its own: package main, the
    imports it names, its doc, itself."""
    used, seen = [], set()
    for name, path, alias, *_ in file_imports:
        if (
            name in ("_", ".")
            or path in seen
            or not re.search(rf"(?<![\w.]){re.escape(name)}\.", decl)
        ):
            continue
        seen.add(path)
        used.append(f'\t{alias + " " if alias else ""}"{path}"\n')
    head = "package main\n\n" + (f"import (\n{''.join(used)})\n\n" if used else "")
    comment = "".join(f"// {line}".rstrip() + "\n" for line in doc.rstrip("\n").split("\n"))
    return f"{head}{comment}{decl}\n"


def _candidates(
    rec: dict[str, Any], res: Any, max_bytes: int, why: Counter[str]
) -> list[tuple[str, str]]:
    """(name, standalone file) for each documented top-level function of one parsed corpus file."""
    if not res.ok:
        why["file does not parse"] += 1
        return []
    data = rec["text"].encode("utf-8")
    file_imports = imports(rec["text"])
    out = []
    for d in res.decls:
        if d.kind != "func":
            continue
        if d.name in SKIP_NAMES or d.name.startswith(SKIP_PREFIXES):
            why["test, example, main or init"] += 1
        elif not d.doc.strip():
            why["undocumented"] += 1
        elif d.end - d.start > max_bytes:
            why["longer than max_bytes"] += 1
        else:
            decl = data[d.start : d.end].decode("utf-8")
            out.append((d.name, standalone(d.doc, decl, file_imports)))
    return out


def extract(text_dir: Path, out: Path, *, max_bytes: int = 2048, batch: int = 256,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write OUT/text/part-*.jsonl.xz and OUT/summary.json from the corpus
    parts in text_dir (see above)."""
    from gocoder.check.validate import get_checker

    parts = sorted(Path(text_dir).glob(PART_GLOB))
    if not parts:
        raise GocoderError(f"{text_dir}: no {PART_GLOB} files")
    (out / "text").mkdir(parents=True, exist_ok=True)
    checker = get_checker()
    seen: set[str] = set()
    summary_path = out / "summary.json"
    done = json.loads(summary_path.read_text()) if summary_path.exists() else {"parts": {}}
    for i, part in enumerate(parts):
        dest = out / "text" / part.name
        if part.name in done["parts"] and dest.exists():
            # the exact-copy filter spans parts, resumed runs included
            for rec in read_parts(dest.parent, [dest]):
                seen.add(content_hash(rec["text"]))
            if progress:
                progress(i + 1, len(parts))
            continue
        why: Counter[str] = Counter()
        tmp = dest.with_name(dest.name + ".tmp")
        with lzma.open(tmp, "wt", encoding="utf-8", preset=6) as f:
            recs = list(read_parts(part.parent, [part]))
            for lo in range(0, len(recs), batch):
                chunk = recs[lo : lo + batch]
                parsed = checker.check_many(
                    [r["text"] for r in chunk], kind="file", docs=True, gofmt=False
                )
                cands = [(r, name, src) for r, res in zip(chunk, parsed, strict=True)
                         for name, src in _candidates(r, res, max_bytes, why)]
                typed = checker.check_many(
                    [src for _, _, src in cands],
                    kind="file",
                    typecheck=True,
                    gofmt=False,
                    decls=False,
                )
                for (r, name, src), res in zip(cands, typed, strict=True):
                    if not (res.ok and res.type_ok):
                        why["needs its package or a module (type errors alone)"] += 1
                        continue
                    h = content_hash(src)
                    if h in seen:
                        why["exact copy"] += 1
                        continue
                    seen.add(h)
                    why[f"kept {r['split']}"] += 1
                    row = {
                        "id": f"{r.get('id', '?')}#{name}",
                        "package": r.get("package", "?"),
                        "license": r.get("license", ""),
                        "path": r.get("path", ""),
                        "split": r["split"],
                        "text": src,
                    }
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.rename(dest)
        done["parts"][part.name] = dict(why)
        summary_path.write_text(json.dumps(done, indent=1) + "\n")
        if progress:
            progress(i + 1, len(parts))
    total: Counter[str] = Counter()
    for counts in done["parts"].values():
        total.update(counts)
    done["total"] = dict(sorted(total.items()))
    summary_path.write_text(json.dumps(done, indent=1) + "\n")
    return done
