"""gocoder report: plots and report.md from a tiny run trained here and from hand-written metrics."""

from __future__ import annotations

import contextlib
import json
import struct
import subprocess
import sys

import pytest
import torch

from gocoder import GocoderError
from gocoder.config import load_config
from gocoder.eval.report import build_report, item_validity, read_metrics, valid_by_iteration
from gocoder.model.checkpoint import load_checkpoint
from gocoder.training.train import train


def config(d, out: str):
    sets = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.out": str(d / out),
            "train.steps": 6, "train.log_every": 1, "train.eval_every": 3, "train.eval_samples": 2,
            "generate.max_new_tokens": 12, "train.eval_batches": 1, "train.ckpt_every": 3, "train.warmup_steps": 2,
            "model.d_model": 32, "model.max_seq_len": 128}
    return load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in sets.items()])


@pytest.fixture(scope="module")
def run(tiny_corpus, tmp_path_factory):
    """A 6-step tiny run on the shared corpus with two evaluations (losses, syntax-valid rate, segment
    histograms); its data and tokenizer are the session's (read only)."""
    d = tmp_path_factory.mktemp("report")
    for name in ("shards", "tok"):
        (d / name).symlink_to(tiny_corpus[0] / name)
    with one_thread():
        train(config(d, "run"))
    return d


@contextlib.contextmanager
def one_thread():
    """One torch thread: 2 cores shared with other work, where oversubscribed threads are far slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_trainer_logs_tokens_time_and_segment_histograms(run):
    train_rows, evals = read_metrics(run / "run")
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6] and [r["step"] for r in evals] == [3, 6]
    tokens = [r["tokens"] for r in train_rows]
    assert tokens[0] > 0 and all(b > a for a, b in zip(tokens, tokens[1:], strict=False))
    assert all(b["train_s"] > a["train_s"] > 0 for a, b in zip(train_rows, train_rows[1:], strict=False))
    for ev in evals:  # one count per segment; every validation example evaluated is counted once
        assert len(ev["val_segments_hist"]) == 2 and sum(ev["val_segments_hist"]) > 0
        mean = sum((i + 1) * c for i, c in enumerate(ev["val_segments_hist"])) / sum(ev["val_segments_hist"])
        assert mean == pytest.approx(ev["val_segments"], abs=0.5)  # a mean of per-batch means vs the pooled one
    _, _, _, state = load_checkpoint(run / "run")
    assert state["tokens"] == tokens[-1] and state["seconds"] >= train_rows[-1]["train_s"]


@pytest.mark.slow
def test_resume_continues_tokens_and_time(run):
    with one_thread():
        train(config(run, "cut"), stop_after=4)
        train(config(run, "cut"), resume=True)
    full, _ = read_metrics(run / "run")
    cut, _ = read_metrics(run / "cut")
    assert cut[-1]["tokens"] == full[-1]["tokens"]  # the same batches, counted across the two runs
    assert cut[-1]["train_s"] > cut[3]["train_s"]


@pytest.mark.slow
def test_report_of_a_trained_run(run, tmp_path):
    rep = build_report(run / "run", tmp_path / "rep")
    names = sorted(p.name for p in rep.images)
    assert names == ["halting.png", "losses.png", "syntax_valid.png"]
    for p in rep.images:
        w, h = png_size(p)
        assert 500 <= w <= 2000 and 300 <= h <= 1200 and p.stat().st_size > 10_000
    md = rep.markdown.read_text()
    train_rows, evals = read_metrics(run / "run")
    meta, *_ = load_checkpoint(run / "run")
    assert f"| loss | {train_rows[-1]['loss']:.4g} | 6 |" in md
    assert f"| val_code_loss | {evals[-1]['val_code_loss']:.4g} | 6 |" in md
    assert f"{meta['params']:,} parameters" in md and "| steps | 6 of 6 |" in md
    assert f"| tokens trained on | {int(train_rows[-1]['tokens']):,} |" in md
    assert all(f"]({n})" in md for n in names)
    assert any("no eval results" in n for n in rep.notes) and "no eval results" in md


def test_refinement_curve_and_plot_from_eval_results(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    rows = [{"id": f"train-{s}", "step": s, "loss": 3.0 / s, "plan_loss": 1.0, "code_loss": 2.0 / s,
             "ctrl_loss": 0.5, "halt_loss": 0.7, "lr": 1e-3, "tokens_per_s": 100.0} for s in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = [  # iteration validity from the trace: [F, T], [T], [F, F, F]; the last from summary fields only
        {"iterations": 2, "trace": [{"verdict": {"syntax_ok": False}}, {"verdict": {"syntax_ok": True}}]},
        {"iterations": 1, "trace": [{"syntax_ok": True}]},
        {"iterations": 3, "trace": [{"verdict": [0.0] * 6}, {"verdict": [0.0] * 6}, {"verdict": [0.0] * 6}]},
        {"result": {"iterations": 2, "first_try_ok": False, "syntax_ok": True, "trace": []}},
        {"id": "e", "iterations": 3, "first_try_valid": False, "syntax_valid": True},  # a gocoder eval row
    ]
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    assert item_validity(items[3]["result"]) == [False, True]
    assert item_validity(items[4]) == [False, False, True]
    curve = valid_by_iteration([items[0], items[1], items[2], items[3]["result"], items[4]])
    # validity per item: FT, T, FFF, FT, FFT.  by k: 1/5, 3/5, 4/5.  at k: 1 of 5, 2 of 4, 1 of 2
    assert curve == [(1, 0.2, 0.2, 5), (2, 0.6, 0.5, 4), (3, 0.8, 0.5, 2)]
    rep = build_report(run)
    assert rep.out == run / "report" and (run / "report" / "refinement.png") in rep.images
    png_size(run / "report" / "refinement.png")
    md = rep.markdown.read_text()
    assert "| 2 | 0.600 | 0.500 | 4 |" in md and "no checkpoint" in md and "| steps | 3 |" in md


def test_missing_or_empty_run_is_one_line_exit_2(tmp_path):
    with pytest.raises(GocoderError, match="no such run folder"):
        build_report(tmp_path / "nope")
    with pytest.raises(GocoderError, match="metrics.jsonl: no metrics"):
        build_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(GocoderError, match="no train-N or eval-N rows"):
        build_report(tmp_path)
    p = subprocess.run([sys.executable, "-m", "gocoder", "report", str(tmp_path / "nope")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run folder"


def test_without_matplotlib_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(GocoderError, match=r"pip install 'gocoder\[report\]'"):
        build_report(tmp_path)
