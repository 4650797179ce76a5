"""A small learned intent classifier, trained by `gocoder train-intents` on prefixed commits.

The rules of gocoder/collect/plans.py were written on a few repositories; on others the words of
a title say less than they did there ("feat: update go version", verb-less "feat: multiple
nfpm"). Projects that title their changes with conventional-commit prefixes (`fix:`, `feat:`)
label them for free: hide the prefix, and the title's words and the diff's shape must give it
back. This module learns that mapping as multinomial logistic regression over sparse binary
features (the subject's words and word pairs, the rules' own verdicts, the declaration diff's
shape), fitted by full-batch gradient descent with numpy; the weights are a small JSON file, read
with no scikit-learn at runtime.

Annotate uses it only for records without a prefix (a prefix is the author's own label); the rules
stay the fallback and the features; gocoder/collect/intents_train.py fits it from raw records. The
shipped weights (gocoder/collect/intent_model.json) are a model of public commit titles and diffs;
no code of those repositories is in it, only feature weights.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gocoder import GocoderError
from gocoder.collect.plans import (
    INTENTS,
    PREFIX_INTENT,
    PREFIX_RE,
    DeclChange,
    _aside,
    diff_intent,
    intent_of,
    text_intent,
)

SHIPPED = Path(__file__).resolve().parent / "intent_model.json"
_BODY_PREFIX = re.compile(r"^(\s*(?:[-*+]\s*)?)[A-Za-z]+(\([^)\n]*\))?!?:\s*", re.M)


def label_of(title: str) -> str | None:
    """The intent a conventional-commit prefix names (fix -> FIX, feat -> ADD ...), or None."""
    m = PREFIX_RE.match(title)
    return PREFIX_INTENT.get(m.group(1).lower()) if m else None


def hide_prefixes(rec: dict[str, Any]) -> dict[str, Any]:
    """rec with the title's prefix and any at the start of a body line (squash merges list their
    commits there) removed: what a record of a project without prefixes looks like."""
    return {**rec, "title": PREFIX_RE.sub("", rec["title"], count=1),
            "body": _BODY_PREFIX.sub(r"\1", rec.get("body") or "")}  # fmt: skip


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1" if n == 1 else "2-4" if n < 5 else "5+"


def features(title: str, body: str, changes: list[DeclChange], renamed: int = 0) -> list[str]:
    """Sparse binary features of a change whose prefix is hidden (the rules read the same input)."""
    subject = re.sub(r"\s*\(#\d+\)\s*$", "", title)
    subject = re.sub(r"^[\w./-]+:\s*", "", subject)  # a component prefix: "transport/http: add x"
    words = re.findall(r"[a-z]+", subject.lower())[:16]
    out = ["bias", f"rule:{intent_of(title, body, changes, renamed)}",
           f"text:{text_intent(title, body)}", f"diff:{diff_intent(changes, renamed)}",
           f"first:{words[0] if words else ''}"]  # fmt: skip
    out += [f"w:{w}" for w in words] + [
        f"b:{a}_{b}" for a, b in zip(words, words[1:], strict=False)
    ]
    n = Counter(c.change for c in changes)
    exported = Counter(c.change for c in changes if c.name.split(".")[-1][:1].isupper())
    out += [f"n:{k}:{_bucket(n[k])}" for k in ("added", "removed", "modified", "touched")]
    out += [f"x:{k}:{_bucket(exported[k])}" for k in ("added", "removed", "modified")]
    out += [f"kind:{c.kind}:{c.change}" for c in changes]
    files = {c.file for c in changes}
    out += [f"files:{_bucket(len(files))}", f"aside:{all(_aside(c.file) for c in changes)}",
            f"tests:{any(c.file.endswith('_test.go') for c in changes)}",
            f"renamed:{bool(renamed)}", f"body:{bool((body or '').strip())}",
            f"issue:{bool(re.search(r'#[0-9]+', body or ''))}"]  # fmt: skip
    return sorted(set(out))


@dataclass(frozen=True)
class IntentModel:
    classes: tuple[str, ...]
    weights: dict[str, list[float]]  # feature -> one weight per class

    def scores(self, feats: Iterable[str]) -> list[float]:
        s = [0.0] * len(self.classes)
        for f in feats:
            for i, w in enumerate(self.weights.get(f, ())):
                s[i] += w
        return s

    def predict(self, feats: Iterable[str]) -> str:
        s = self.scores(feats)
        return self.classes[max(range(len(s)), key=s.__getitem__)]

    def save(self, path: Path) -> None:
        # One feature a line, so that a retrained model's diff reads feature by feature.
        rows = ",\n".join(f"{json.dumps(f)}: {json.dumps([round(w, 3) for w in ws])}"
                          for f, ws in sorted(self.weights.items()))  # fmt: skip
        Path(path).write_text(
            f'{{"classes": {json.dumps(list(self.classes))}, "weights": {{\n{rows}\n}}}}\n'
        )

    @staticmethod
    def load(path: Path) -> IntentModel:
        try:
            data = json.loads(Path(path).read_text())
            classes = tuple(data["classes"])
            weights = {f: [float(w) for w in ws] for f, ws in data["weights"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise GocoderError(f"{path}: not an intent model ({e})") from e
        if not set(classes) <= set(INTENTS) or any(
            len(ws) != len(classes) for ws in weights.values()
        ):
            raise GocoderError(
                f"{path}: not an intent model (classes {classes}, or a row of the wrong width)"
            )
        return IntentModel(classes, weights)


def fit(
    xs: list[list[str]],
    ys: list[str],
    l2: float = 1e-2,
    steps: int = 300,
    lr: float = 0.5,
    min_count: int = 2,
    groups: list[str] | None = None,
) -> IntentModel:
    """Multinomial logistic regression, full-batch gradient descent with Adam's step sizes:
    for a few thousand commits and a few thousand features, seconds on one core. Features
    seen fewer than min_count times are left out (a word of one title is its label, not a
    rule). With groups (each example's repository), every group weighs the same in the
    loss, however many commits it has."""
    if not xs:
        raise GocoderError("no prefixed records to train on")
    seen = Counter(f for x in xs for f in x)
    vocab = sorted(f for f, c in seen.items() if c >= min_count or f == "bias")
    col = {f: i for i, f in enumerate(vocab)}
    classes = tuple(sorted(set(ys)))
    # X is binary and sparse (~40 of thousands of features a commit): kept as (row,
    # col) pairs; X @ W is a segment sum of W's rows over each row's pairs, X.T @ G one
    # of G's rows over each column's.
    cols = [[col[f] for f in x if f in col] for x in xs]
    rows = np.repeat(np.arange(len(xs)), [len(c) for c in cols])  # [nnz]
    flat = np.fromiter((c for cs in cols for c in cs), dtype=np.int64, count=len(rows))  # [nnz]
    # [N]; every row holds "bias", none is empty
    starts = np.cumsum([0] + [len(c) for c in cols[:-1]])
    # the same pairs, each column's together (each is seen)
    by_col = np.argsort(flat, kind="stable")
    col_starts = np.searchsorted(flat[by_col], np.arange(len(vocab)))  # [F]
    Y = np.zeros((len(xs), len(classes)), dtype=np.float64)  # [N, C] one-hot
    Y[np.arange(len(ys)), [classes.index(y) for y in ys]] = 1.0
    size = Counter(groups or [""] * len(xs))
    w = np.array([1 / size[g] for g in groups or [""] * len(xs)])[:, None]  # [N, 1]
    w /= w.sum()
    W = np.zeros((len(vocab), len(classes)), dtype=np.float64)  # [F, C]
    m, v = np.zeros_like(W), np.zeros_like(W)
    for t in range(1, steps + 1):
        Z = np.add.reduceat(W[flat], starts, axis=0)  # [N, C] = X @ W
        P = np.exp(Z - Z.max(1, keepdims=True))
        P /= P.sum(1, keepdims=True)
        # X.T @ (w * (P - Y))
        g = np.add.reduceat(((P - Y) * w)[rows[by_col]], col_starts, axis=0) + l2 * W
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        W -= lr / math.sqrt(t) * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return IntentModel(classes, {f: W[i].tolist() for f, i in col.items()})


def classify(
    title: str, body: str, changes: list[DeclChange], renamed: int, model: IntentModel | None
) -> str:
    """The change's intent: the prefix when there is one (the author's own label), else the model's,
    else (no model) the rules'."""
    if model is None or label_of(title):
        return intent_of(title, body, changes, renamed)
    return model.predict(features(title, body, changes, renamed))


def load_model(spec: str) -> IntentModel | None:
    """annotate.intent_model: "rules" for none, "" for the shipped weights, else a path."""
    if spec == "rules":
        return None
    return IntentModel.load(Path(spec) if spec else SHIPPED)
