"""Quality of annotate's plans on real history: target F1 and intent accuracy. Run by hand.

On one real Go repository with conventional commits (a local clone, never committed here):
  1. `gocoder collect --repo` gives the raw PR records (merged and squash-merged PRs);
  2. `gocoder annotate` runs on a copy of them with every conventional-commit prefix hidden (the
     title's, and any at the start of a body line, where squash merges list their commits);
  3. targets: each record's plan targets against an independent declaration-level diff computed
     here with tree-sitter-go (annotate's come from go/parser through gocheck): micro P/R/F1 over
     (record, kind:name) pairs, records annotate skipped counting as predicting nothing;
  4. intent: the plan's intent against the one the hidden prefix names (plans.PREFIX_INTENT:
     fix -> FIX, feat -> ADD, refactor/style -> REFACTOR, perf -> OPTIMIZE, revert -> REMOVE,
     chore/docs/build/ci/test/deps -> UPDATE), over the records that had such a prefix;
  5. with --ceiling (scikit-learn, bench only): the accuracy of a classifier fitted, fold by fold,
     to this repository's own prefixed records (prefixes hidden): how far its words and diffs
     determine its prefixes at all;
  6. the plans themselves: the share of template steps ("Update func realIP": intent, kind and name
     and nothing else), of records whose intent is in none of their steps, of plans naming one
     target twice, the most steps and plan bytes (steps.plan_bytes) of a record, and how many
     records annotate split by file or dropped for its budget.
--intent-model picks annotate.intent_model ("rules", "" the shipped classifier, or a path);
--max-plan-bytes annotate.max_plan_bytes (targets of records split or dropped for the budget count
as missed: 0 measures the declaration diff alone).
Targets: F1 >= 0.9, intent accuracy >= 0.8 (issue 13: >= 0.65 on repositories the rules never saw).

    python bench/plans.py REPO [--work DIR] [--json OUT] [--ceiling] [--intent-model SPEC]
    python bench/plans.py --quality HIER_DIR    (step 6 alone, on records annotated before)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import tree_sitter as ts
import tree_sitter_go as tsg
from rich.console import Console

from gocoder.collect.annotate import SPLITS, annotate
from gocoder.collect.intents import hide_prefixes
from gocoder.collect.plans import PREFIX_INTENT, PREFIX_RE
from gocoder.collect.runner import collect
from gocoder.collect.steps import plan_bytes
from gocoder.config import load_config
from gocoder.record import Record
from gocoder.records import JsonlWriter, read_jsonl

_NO_BEHAVIOUR = ("UPDATE", "REFACTOR", "REMOVE", "PRESERVE")
_PARSER = ts.Parser(ts.Language(tsg.language()))
_TEMPLATE = re.compile(r"(Fix|Add|Refactor|Optimize|Update|Remove|Keep the behaviour of) \w+ [\w.]+")


# ---- the independent declaration diff (tree-sitter) ------------------------------------------


def _recv(node) -> str:
    """The receiver's type name, pointers and type arguments stripped."""
    t = node.named_children[0].child_by_field_name("type") if node.named_children else None
    while t is not None and t.type in ("pointer_type", "generic_type", "parenthesized_type"):
        t = t.child_by_field_name("type") or (t.named_children[0] if t.named_children else None)
    return t.text.decode() if t is not None else "?"


def _doc(node) -> str:
    """The comments right above a node (no blank line between), joined."""
    out, row, prev = [], node.start_point[0], node.prev_sibling
    while prev is not None and prev.type == "comment" and prev.end_point[0] == row - 1:
        out.insert(0, prev.text.decode("utf-8", "replace"))
        row, prev = prev.start_point[0], prev.prev_sibling
    return "\n".join(out)


def ts_decls(src: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, name) -> (text, doc) for each top-level declaration, repeated names numbered."""
    tree = _PARSER.parse(src.encode("utf-8", "surrogatepass"))
    out: dict[tuple[str, str], tuple[str, str]] = {}

    def add(kind: str, name: str, node) -> None:
        key, n = (kind, name), 2
        while key in out:
            key, n = (kind, f"{name}#{n}"), n + 1
        out[key] = (node.text.decode("utf-8", "replace"), _doc(node))

    for d in tree.root_node.named_children:
        if d.type == "function_declaration":
            add("func", d.child_by_field_name("name").text.decode(), d)
        elif d.type == "method_declaration":
            recv = _recv(d.child_by_field_name("receiver"))
            add("method", f"{recv}.{d.child_by_field_name('name').text.decode()}", d)
        elif d.type in ("type_declaration", "var_declaration", "const_declaration"):
            grouped = any(c.type == "(" for c in d.children) or any(c.type.endswith("_list") for c in d.children)
            specs = [c for c in d.named_children if c.type.endswith(("_spec", "_alias"))]
            specs += [s for c in d.named_children if c.type.endswith("_spec_list") for s in c.named_children
                      if s.type.endswith("_spec")]  # fmt: skip
            for s in specs:
                node = s if grouped else d
                if d.type == "type_declaration":
                    t = s.child_by_field_name("type")
                    kind = {"struct_type": "struct", "interface_type": "interface"}.get(
                        t.type if t is not None and s.type == "type_spec" else "", "type")
                    add(kind, s.child_by_field_name("name").text.decode(), node)
                else:
                    kind = "var" if d.type == "var_declaration" else "const"
                    for i in range(s.child_count):
                        if s.field_name_for_child(i) == "name" and s.children[i].text != b"_":
                            add(kind, s.children[i].text.decode(), node)
    return out


def ts_changes(rec: dict) -> list[tuple[str, str, str]]:
    """(kind, name@file, change) of every declaration the record's Go files add, remove or change (text
    or doc), by the tree-sitter declaration diff; repeated names keep their #2 suffix."""
    out = []
    for f in rec["files_changed"]:
        if not f["path"].endswith(".go"):
            continue
        b, a = ts_decls(f["before"]) if f["before"] else {}, ts_decls(f["after"]) if f["after"] else {}
        for key in b.keys() | a.keys():
            if b.get(key) != a.get(key):
                out.append((key[0], f"{key[1]}@{f['path']}", "added" if key not in b else "removed" if key not in a
                            else "changed"))  # fmt: skip
    return out


def ts_shape(rec: dict, changes: list[tuple[str, str, str]]) -> list[float]:
    """The diff's shape: how many declarations are added, removed and changed, how many of those are
    exported, whether only tests change, whether a file is renamed."""
    n: Counter[str] = Counter()
    for _, name, change in changes:
        n[change] += 1
        n[change + "_exported"] += name.split("@")[0].split(".")[-1][:1].isupper()
    files = [f for f in rec["files_changed"] if f["path"].endswith(".go")]
    tests = bool(files) and all(f["path"].endswith("_test.go") for f in files)
    keys = ("added", "removed", "changed", "added_exported", "removed_exported", "changed_exported")
    return [math.log1p(n[k]) for k in keys] + [float(tests), float(any(f["status"] == "renamed" for f in files))]


def ceiling(records: list[dict], shapes: list[list[float]], golds: list[str], folds: int = 5) -> float:
    """What a classifier that learns this repository's own use of the prefixes reaches: logistic
    regression over the words of the title (twice) and body and the diff's shape, trained on the
    other folds of the same records (prefixes hidden), scored on each fold. Nothing is kept: it
    shows how far the words and the diff determine the prefix at all."""
    from scipy.sparse import csr_matrix, hstack  # bench-only: pip install scikit-learn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    texts = [f"{r['title']} {r['title']} {(r.get('body') or '')[:2000]}" for r in records]
    x = hstack([words.fit_transform(texts), csr_matrix(shapes)]).tocsr()
    common = Counter(golds)
    keep = [i for i, g in enumerate(golds) if common[g] >= folds]  # a class needs a member in each fold
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    pred = cross_val_predict(LogisticRegression(C=3, max_iter=2000), x[keep], [golds[i] for i in keep], cv=cv)
    return sum(p == golds[i] for p, i in zip(pred, keep, strict=True)) / len(golds)  # the rare classes count as misses


def ts_targets(changes: list[tuple[str, str, str]]) -> Counter[str]:
    """kind:name@file of every declaration a record changes (ts_changes), repeated names counted."""
    return Counter(f"{kind}:{re.sub(r'#[0-9]+@', '@', name)}" for kind, name, _ in changes)


# ---- the run -----------------------------------------------------------------------------------


def plan_quality(written: list[dict]) -> dict:
    """How much a record's steps say beyond their intents and targets (see the module docstring)."""
    plans = {r["id"]: r for r in written}
    steps = [s for p in plans.values() for s in p["plan"]["steps"]]
    dup = sum(len({s["target"] for s in p["plan"]["steps"]}) < len(p["plan"]["steps"]) for p in plans.values())
    lost = sum(p["plan"]["intent"] not in {s["intent"] for s in p["plan"]["steps"]} for p in plans.values())
    return {"steps": len(steps), "template_steps": round(sum(bool(_TEMPLATE.fullmatch(s["description"]))
                                                             for s in steps) / max(len(steps), 1), 4),
            "intent_not_in_steps": f"{lost}/{len(plans)}", "duplicate_target_plans": f"{dup}/{len(plans)}",
            "max_steps": max((len(p["plan"]["steps"]) for p in plans.values()), default=0),
            "max_plan_bytes": max((plan_bytes(Record.from_dict(p)) for p in plans.values()), default=0)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="a local git clone of a Go repository with conventional commits")
    ap.add_argument("--work", type=Path, help="folder for the raw and annotated records (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--ceiling", action="store_true",
                    help="also fit a classifier on the repository's own prefixes (5-fold; needs scikit-learn)")
    ap.add_argument("--max-plan-bytes", type=int, default=None,
                    help="annotate.max_plan_bytes (0: no budget, so that target F1 sees every record whole)")
    ap.add_argument("--intent-model", default=None,
                    help='annotate.intent_model: "rules", "" (the shipped classifier) or a weights JSON')
    ap.add_argument("--quality", action="store_true",
                    help="REPO is a folder of annotated records (any version's): print only their plan quality")
    args = ap.parse_args()
    if args.quality:
        print(json.dumps(plan_quality([r for s in SPLITS for r in read_jsonl(args.repo / f"{s}.jsonl")])))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-plans-"))
    for sub in ("raw.jsonl", "raw.jsonl.done", "hidden", "hier"):  # a fresh measurement, not a resume
        p = work / sub
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    cfg, quiet = load_config(), Console(stderr=True, quiet=True)

    t0 = time.perf_counter()
    collect(cfg.collect, repo=args.repo, out=work / "raw.jsonl", console=quiet)
    raw = {r["id"]: r for r in read_jsonl(work / "raw.jsonl")}
    with JsonlWriter(work / "hidden" / "raw.jsonl") as w:
        w.write_all(hide_prefixes(r) for r in raw.values())
    t1 = time.perf_counter()
    over = {k: v for k, v in (("intent_model", args.intent_model), ("max_plan_bytes", args.max_plan_bytes))
            if v is not None}  # fmt: skip
    acfg = dataclasses.replace(cfg.annotate, **over)
    done = annotate(acfg, work / "hidden", work / "hier", console=quiet)
    t2 = time.perf_counter()
    written = [r for s in SPLITS for r in read_jsonl(work / "hier" / f"{s}.jsonl")]
    quality = plan_quality(written)
    plans: dict[str, dict] = {}  # by raw id: the parts of a record split by file (ID@path) joined again
    for r in written:
        rid = r["id"].split("@")[0]
        if rid in plans:
            plans[rid]["plan"]["steps"] += r["plan"]["steps"]
            plans[rid]["solution"]["code"] += "\n\n" + r["solution"]["code"]
        else:
            plans[rid] = r

    diffs = {rid: ts_changes(rec) for rid, rec in raw.items()}  # one tree-sitter pass: targets and shapes
    tp = fp = fn = 0
    kinds: Counter[str] = Counter()
    for rid in raw:
        gold = ts_targets(diffs[rid])
        pred = Counter(s["target"] for s in plans[rid]["plan"]["steps"]) if rid in plans else Counter()
        tp += sum((gold & pred).values())
        fp += sum((pred - gold).values())
        fn += sum((gold - pred).values())
        kinds.update(t.split(":")[0] for t in pred)
    prec, rec_ = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    f1 = 2 * prec * rec_ / max(prec + rec_, 1e-9)

    confusion: Counter[tuple[str, str]] = Counter()
    by_type: dict[str, list[int]] = {}
    scored: list[tuple[dict, str]] = []
    for rid, rec in raw.items():
        m = PREFIX_RE.match(rec["title"])
        if not m or m.group(1).lower() not in PREFIX_INTENT or rid not in plans:
            continue
        gold, pred = PREFIX_INTENT[m.group(1).lower()], plans[rid]["plan"]["intent"]
        scored.append((hide_prefixes(rec), ts_shape(rec, diffs[rid]), gold))
        confusion[(gold, pred)] += 1
        by_type.setdefault(m.group(1).lower(), [0, 0])
        by_type[m.group(1).lower()][0] += gold == pred
        by_type[m.group(1).lower()][1] += 1
    n_intent = sum(confusion.values())
    acc = sum(v for (g, p), v in confusion.items() if g == p) / max(n_intent, 1)
    # Secondary figure: maintenance prefixes (chore, docs, test, ci...) name no single intent
    # ("chore: refactor cache", "chore: remove legacy code"); there any intent that changes no
    # behaviour counts. The target is judged on the strict figure above.
    lenient = sum(v for (g, p), v in confusion.items() if g == p or (g == "UPDATE" and p in _NO_BEHAVIOUR))
    lenient /= max(n_intent, 1)

    res = {
        "repo": str(args.repo), "records": len(raw), "annotated": len(plans),
        "target_precision": round(prec, 4), "target_recall": round(rec_, 4), "target_f1": round(f1, 4),
        "target_pairs": tp + fn, "target_kinds": dict(kinds), "intent_records": n_intent,
        "intent_accuracy": round(acc, 4), "intent_accuracy_lenient": round(lenient, 4),
        "intent_by_prefix": {k: f"{c}/{n}" for k, (c, n) in sorted(by_type.items())},
        "confusions": {f"{g}->{p}": v for (g, p), v in confusion.most_common() if g != p},
        "intent_model": acfg.intent_model, "max_plan_bytes_budget": acfg.max_plan_bytes, **quality,
        "split_by_file": dict(done.split), "over_budget": done.skipped.get("over-budget", 0),
        "collect_s": round(t1 - t0, 2), "annotate_s": round(t2 - t1, 2), "machine": platform.platform(),
    }  # fmt: skip
    if args.ceiling:
        records, shapes, golds = (list(col) for col in zip(*scored, strict=True))
        res["intent_ceiling_in_repo_cv"] = round(ceiling(records, shapes, golds), 4)
    for k, v in res.items():
        print(f"{k:18} {v}")
    print(f"target F1 {f1:.3f} (target >= 0.9): {'PASS' if f1 >= 0.9 else 'FAIL'}; "
          f"intent accuracy {acc:.3f} (target >= 0.8): {'PASS' if acc >= 0.8 else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
