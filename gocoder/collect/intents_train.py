"""`gocoder train-intents`: raw records with conventional-commit prefixes to a fitted intent model.

Each prefixed record's declarations are diffed as annotate diffs them (annotate.check_batch and
changes_of), its prefixes hidden, and its features (gocoder/collect/intents.py) labelled
by the prefix. Apart from intents.py because it needs annotate, which needs the model:
one direction of imports each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gocoder.collect.annotate import changes_of, check_batch, read_raw
from gocoder.collect.intents import features, fit, hide_prefixes, label_of
from gocoder.collect.plans import intent_of


def examples(
    paths: list[Path], checker: Any, batch: int = 64
) -> Iterator[tuple[str, list[str], str, str]]:
    """(repo, features, label, the rules' intent) of every raw record with a conventional-commit
    prefix, the prefixes hidden; declarations diffed as annotate does
    (one gocheck batch at a time)."""

    def done(recs: list[dict[str, Any]]) -> Iterator[tuple[str, list[str], str, str]]:
        for rec, checked in zip(recs, check_batch(recs, checker), strict=True):
            files = [f for f in rec["files_changed"] if f["path"].endswith(".go")]
            got = changes_of(files, checked)
            # annotate skips a record that changes no declaration: so does training
            if not isinstance(got, str):
                renamed = sum(f.get("status") == "renamed" for f in files)
                h = hide_prefixes(rec)
                yield (rec["repo"], features(h["title"], h["body"], got[0], renamed), rec["label"],
                       intent_of(h["title"], h["body"], got[0], renamed))  # fmt: skip

    for path in paths:
        recs = []
        for _, rec in read_raw(path):
            label = label_of(rec["title"])
            if label:
                recs.append({**rec, "label": label})
            if len(recs) >= batch:
                yield from done(recs)
                recs = []
        yield from done(recs)


def train_intents(
    inputs: list[Path], out: Path | None, checker: Any, held_out: list[Path] = (), l2: float = 3e-3
) -> dict[str, Any]:
    """Fit the classifier on the prefixed records of inputs (raw JSONL, prefixes hidden), save it to
    out, and score it against the rules on each held_out file, which it never saw."""
    train = list(examples(list(inputs), checker))
    # Each repository weighs the same: one project's habits ("chore: refactor x") should not become
    # the rule because it has the most commits (leave-one-repository-out on eleven: 0.701 vs 0.695).
    model = fit(
        [x for _, x, _, _ in train],
        [y for _, _, y, _ in train],
        l2=l2,
        groups=[r for r, *_ in train],
    )
    if out is not None:
        model.save(out)
    res: dict[str, Any] = {"train_records": len(train), "features": len(model.weights),
                           "train": dict(Counter(y for _, _, y, _ in train))}  # fmt: skip
    for path in held_out:
        ex = list(examples([path], checker))
        n = max(len(ex), 1)
        res[str(path)] = {"records": len(ex),
                          "rules": round(sum(r == y for _, _, y, r in ex) / n, 4),
                          "learned": round(sum(model.predict(x) == y for _, x, y, _ in ex) / n,
                                           4)}  # fmt: skip
    return res
