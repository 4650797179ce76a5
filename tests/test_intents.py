"""The learned intent classifier: features, fitting, the weights file, and its place in annotate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_annotate import V1, V2, raw, run, write
from test_plans import AFTER, BEFORE, diff

from gocoder import GocoderError
from gocoder.collect.intents import SHIPPED, IntentModel, classify, features, fit, hide_prefixes, label_of, load_model


def test_labels_and_hidden_prefixes() -> None:
    assert [label_of(t) for t in ("fix(http): x", "feat!: y", "chore: z", "Add z", "wip: z")] == [
        "FIX", "ADD", "UPDATE", None, None]  # fmt: skip
    rec = hide_prefixes({"title": "feat(api): add X (#3)", "body": "* fix: a\n* docs: b\nplain: c"})
    assert rec["title"] == "add X (#3)" and rec["body"] == "* a\n* b\nc"


def test_features_read_words_rules_and_the_diff() -> None:
    changes = diff("srv/server.go", BEFORE, AFTER)
    f = features("transport/http: add graceful Close (#9)", "", changes)
    assert {"first:add", "w:graceful", "b:graceful_close", "rule:ADD", "n:added:1", "x:added:1",
            "kind:method:added", "aside:False"} <= set(f)  # fmt: skip
    assert not any(x.startswith("w:transport") or x == "w:9" for x in f)  # component and PR number dropped


def test_fit_save_load_and_predict(tmp_path: Path) -> None:
    xs = [["bias", "w:crash"], ["bias", "w:panic"], ["bias", "w:new"], ["bias", "w:support"]] * 5
    ys = ["FIX", "FIX", "ADD", "ADD"] * 5
    m = fit(xs, ys, steps=100)
    words = ("w:crash", "w:panic", "w:new", "w:support")
    assert [m.predict(["bias", w]) for w in words] == ["FIX", "FIX", "ADD", "ADD"]
    m.save(tmp_path / "m.json")
    back = IntentModel.load(tmp_path / "m.json")
    assert back.classes == ("ADD", "FIX") and back.predict(["bias", "w:crash", "w:unseen"]) == "FIX"
    (tmp_path / "bad.json").write_text(json.dumps({"classes": ["ADD", "NOPE"], "weights": {}}))
    for bad in ("bad.json", "missing.json"):
        with pytest.raises(GocoderError, match=bad):
            IntentModel.load(tmp_path / bad)


def test_every_repository_weighs_the_same() -> None:
    # Repository a (10 commits) says FIX 9 times in 10, b (4 commits) always says ADD.
    xs, ys = [["bias"]] * 14, ["FIX"] * 9 + ["ADD"] * 5
    groups = ["a"] * 10 + ["b"] * 4
    assert fit(xs, ys, steps=100).predict(["bias"]) == "FIX"  # 9 commits against 5
    assert fit(xs, ys, steps=100, groups=groups).predict(["bias"]) == "ADD"  # 0.9 + 0 against 0.1 + 1


def test_the_prefix_outranks_the_model() -> None:
    changes = diff("srv/server.go", BEFORE, AFTER)
    always_add = IntentModel(("ADD", "FIX"), {"bias": [1.0, 0.0]})
    assert classify("fix: Close", "", changes, 0, always_add) == "FIX"  # the author's own label
    assert classify("Close", "", changes, 0, always_add) == "ADD"
    assert classify("fix Close", "", changes, 0, None) == "FIX"  # no model: the rules
    assert load_model("rules") is None and load_model("").classes == IntentModel.load(SHIPPED).classes


def test_the_shipped_model_reads_plain_titles() -> None:
    m = load_model("")
    added = [c for c in diff("srv/server.go", BEFORE, AFTER) if c.change == "added"]
    modified = [c for c in diff("srv/server.go", BEFORE, AFTER) if c.change == "modified"]
    assert m.predict(features("support graceful shutdown", "", added)) == "ADD"
    assert m.predict(features("nil pointer panic when the mux is empty", "", modified)) == "FIX"


def test_train_intents_command_and_annotate_use(tmp_path: Path) -> None:
    recs = [raw(f"fix: Handle returned {i}", V1, V1.replace("return 1", f"return {i + 2}")) for i in range(6)]
    recs += [raw(f"feat: add Close {i}", V1, V2.replace("Max = 3", f"Max = {i}")) for i in range(6)]
    train = write(tmp_path / "train.jsonl", recs)
    held = write(tmp_path / "held.jsonl", recs[:2] + recs[-2:])
    cmd = [sys.executable, "-m", "gocoder", "train-intents", str(train), "--held-out", str(held),
           "-o", str(tmp_path / "m.json"), "--json"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["train_records"] == 12 and res["train"] == {"FIX": 6, "ADD": 6}
    assert res[str(held)]["records"] == 4 and res[str(held)]["learned"] == 1.0
    # annotate with that model: an unprefixed title gets the model's intent.
    plain = raw("Handle and Close", V1, V2)
    out = tmp_path / "h"
    run(write(tmp_path / "in.jsonl", [plain]), out, split="1,0,0", intent_model=str(tmp_path / "m.json"))
    (rec,) = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert rec["plan"]["intent"] == "ADD"
    bad = subprocess.run([sys.executable, "-m", "gocoder", "annotate", "-i", str(tmp_path / "in.jsonl"), "-o",
                          str(tmp_path / "h2"), "--set", f"annotate.intent_model={tmp_path / 'nope.json'}"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 2 and "nope.json" in bad.stderr and bad.stderr.strip().count("\n") == 0
