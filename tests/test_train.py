"""gocoder train on CPU: shards from real Go, overfitting, exact resume, checkpoints, DDP (gloo, world 1)."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from tinycorpus import FUNCS

from gocoder import GocoderError
from gocoder.config import ShardsConfig, load_config
from gocoder.model.checkpoint import export_model, load_checkpoint, load_model
from gocoder.model.model import CONTINUE, DONE, REFINE
from gocoder.record import Record
from gocoder.training.data import (
    Shard,
    before_draft,
    build_shards,
    epoch_batches,
    partial_draft,
    syntax_draft,
    wrong_draft,
)
from gocoder.training.train import lr_at, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def corpus(tiny_corpus):
    """The shared tiny corpus (tests/conftest.py): 16 train and 4 valid records, tokenizer, shards."""
    return tiny_corpus


def tiny(d, **sets) -> object:
    base = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.out": str(d / "run"),
            "train.eval_every": 0, "train.log_every": 1, "train.ema_decay": 0.0}
    base.update(sets)
    return load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in base.items()])


def losses(run) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["id"].startswith("train-")]


def test_drafts_are_real_edits():
    import random

    code = FUNCS[0][2]
    rng = random.Random(0)
    assert syntax_draft(code, rng) != code
    assert wrong_draft(code, rng) != code and wrong_draft("func f() {}\n", rng) is None
    assert partial_draft(code, rng) and code.startswith(partial_draft(code, rng))


def test_before_draft_is_the_old_declaration():
    from gocoder.check.validate import get_checker

    before = "package p\n\ntype T struct{}\n\n// Get gets.\nfunc (t T) Get(a int) int {\n\treturn a + 1 // é\n}\n"
    rec = {"id": "r", "problem": {"description": "d"}, "context": {"before": before},
           "plan": {"steps": [{"intent": "FIX", "target": "method:T.Get"}]}}
    assert before_draft(Record.from_dict(rec), get_checker()) == "func (t T) Get(a int) int {\n\treturn a + 1 // é\n}"
    rec["plan"]["steps"][0]["target"] = "func:Missing"
    assert before_draft(Record.from_dict(rec), get_checker()) is None


def test_shards_hold_clean_judge_and_repair_rows(corpus):
    d, tok, counts = corpus
    sh = Shard(d / "shards", "train")
    assert counts["valid"] >= 4 and len(sh) == counts["train"] >= 16
    kind, ctrl, loss = (sh.index[:, sh.col[c]] for c in ("kind", "ctrl", "code_loss"))
    assert (kind == 0).sum() == 16 and ((kind == 0) <= (ctrl == DONE)).all()
    assert set(ctrl[kind == 1]) <= {REFINE, CONTINUE} and (loss[kind == 1] == 0).all()
    assert (loss[kind == 2] == 1).all() and (ctrl[kind == 2] == DONE).all()
    tokens, P, Q, C = sh.example(0, 10_000)
    assert len(tokens) == P + Q + C and tokens[P + Q] == tok.token_id("<CODE>")
    assert tokens[P] == tok.token_id("<PLAN>")
    # the verdict of a clean row says "parses"; at least one judge row says it does not
    assert sh.verdict[kind == 0][:, 0].all() and not sh.verdict[kind == 1][:, 0].all()


def test_example_cut_keeps_problem_plan_and_code(corpus):
    d, tok, _ = corpus
    sh = Shard(d / "shards", "train")
    full, P, Q, C = sh.example(0, 10_000)
    cut, P2, Q2, C2 = sh.example(0, Q + C + 10)
    assert (Q2, C2, P2) == (Q, C, 10) and len(cut) == Q + C + 10
    assert cut[0] == full[0] and (cut[P2:] == full[P:]).all()


def test_shards_stored_cut_read_as_training_cuts_them(corpus, tmp_path):
    d, tok, counts = corpus
    full = Shard(d / "shards", "train")
    n = int(full.lengths().max()) - 5  # cuts at least the longest row
    assert build_shards(ShardsConfig(seed=0, max_len=n), d / "h.jsonl", tok, tmp_path / "cut") == counts
    cut = Shard(tmp_path / "cut", "train")
    assert cut.lengths().max() <= n < full.lengths().max()
    assert cut.tokens.nbytes < full.tokens.nbytes
    for i in range(len(full)):
        a, b = full.example(i, n), cut.example(i, n)
        assert (a[0] == b[0]).all() and a[1:] == b[1:]


def test_shards_flags_and_set_become_the_shards_section(corpus, tmp_path):
    from typer.testing import CliRunner

    from gocoder.cli import app

    d, _, counts = corpus
    r = CliRunner().invoke(app, ["shards", "-i", str(d / "h.jsonl"), "-o", str(tmp_path / "s"), "--max-len", "64",
                                 "--set", "shards.seed=0", "--set", f"train.tokenizer={json.dumps(str(d / 'tok'))}",
                                 "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.splitlines()[-1]) == counts  # the fixture's seed (0), the same drafts
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert (meta["rollouts"], meta["seed"], meta["max_len"]) == (1, 0, 64)  # the default seed is 1234


def test_batch_order_is_deterministic_and_whole(corpus):
    d, *_ = corpus
    sh = Shard(d / "shards", "train")
    rows = sh.eligible(0, 0)
    a, b = epoch_batches(sh, rows, 4, 7, 0), epoch_batches(sh, rows, 4, 7, 0)
    assert all((x == y).all() for x, y in zip(a, b, strict=True)) and all(len(x) == 4 for x in a)
    assert not all((x == y).all() for x, y in zip(a, epoch_batches(sh, rows, 4, 7, 1), strict=True))


def test_lr_schedule():
    t = load_config(None, ["train.steps=100", "train.warmup_steps=10", "train.min_lr_ratio=0.1"]).train
    assert lr_at(0, t) == pytest.approx(0.1) and lr_at(9, t) == pytest.approx(1.0)
    assert lr_at(100, t) == pytest.approx(0.1) and lr_at(55, t) == pytest.approx(0.55)


def test_resume_gives_the_same_losses(corpus, tmp_path):
    # Q-learning halting draws random exploration: equality needs the RNG state restored too
    d, *_ = corpus
    sets = {"train.steps": 4, "train.ckpt_every": 100, "train.batch_size": 4, "model.halting": "q",
            "model.halt_explore": 0.5, "model.segments": 3, "train.ema_decay": 0.9}
    straight = train(tiny(d, **sets, **{"train.out": str(tmp_path / "a")}))
    cfg = tiny(d, **sets, **{"train.out": str(tmp_path / "b")})
    train(cfg, stop_after=2)
    assert load_checkpoint(tmp_path / "b")[3]["step"] == 2
    resumed = train(cfg, resume=True)
    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "a")) == 4
    assert straight["loss"] == resumed["loss"] and straight["flops"] == resumed["flops"]
    ema_a, ema_b = load_checkpoint(tmp_path / "a")[2], load_checkpoint(tmp_path / "b")[2]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_muon_trains_resumes_exactly_and_keeps_to_its_matrices(corpus, tmp_path):
    d, *_ = corpus
    sets = {"train.steps": 30, "train.ckpt_every": 100, "train.batch_size": 4, "train.optimizer": "muon",
            "train.ema_decay": 0.9}
    straight = train(tiny(d, **sets, **{"train.out": str(tmp_path / "a")}))
    got = losses(tmp_path / "a")
    assert straight["loss"] < 0.7 * got[0]  # it learns
    st = load_checkpoint(tmp_path / "a")[3]
    adamw, muon = st["optimizer"]
    # Muon keeps one momentum buffer a matrix, AdamW two moments a tensor; no tensor is in both
    assert all(set(v) == {"momentum_buffer"} for v in muon["state"].values())
    assert all({"exp_avg", "exp_avg_sq"} <= set(v) for v in adamw["state"].values())
    n_params = sum(1 for _ in load_model(tmp_path / "a")[0].parameters())
    assert len(muon["state"]) + len(adamw["state"]) == n_params and len(muon["state"]) > 0
    cfg = tiny(d, **sets, **{"train.out": str(tmp_path / "b")})
    train(cfg, stop_after=12)
    resumed = train(cfg, resume=True)
    assert losses(tmp_path / "b") == got and straight["loss"] == resumed["loss"]
    with pytest.raises(GocoderError, match="holds 2 optimizer"):  # a Muon checkpoint resumed as AdamW
        train(tiny(d, **{**sets, "train.optimizer": "adamw", "train.out": str(tmp_path / "b")}), resume=True)


def test_missing_or_corrupt_checkpoint_is_one_line_error(corpus, tmp_path):
    d, *_ = corpus
    with pytest.raises(GocoderError, match="no checkpoint"):
        train(tiny(d, **{"train.out": str(tmp_path / "none")}), resume=True)
    cfg = tiny(d, **{"train.out": str(tmp_path / "c"), "train.steps": 1})
    train(cfg)
    ck = tmp_path / "c" / (tmp_path / "c" / "latest").read_text().strip()
    (ck / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(GocoderError, match="model.safetensors: corrupt checkpoint") as e:
        train(cfg, resume=True)
    assert "\n" not in str(e.value)


def test_checkpoint_describes_itself(corpus, tmp_path):
    d, tok, _ = corpus
    train(tiny(d, **{"train.out": str(tmp_path / "m"), "train.steps": 2, "train.ema_decay": 0.9}))
    model, meta = load_model(tmp_path / "m")
    assert meta["tokenizer_hash"] == tok.hash and meta["step"] == 2 and meta["model"]["vocab_size"] == tok.vocab_size
    assert not model.training


def test_ddp_world_size_one_matches_plain(corpus, tmp_path, monkeypatch):
    d, *_ = corpus
    plain = train(tiny(d, **{"train.out": str(tmp_path / "p"), "train.steps": 2}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(k, v)
    ddp = train(tiny(d, **{"train.out": str(tmp_path / "q"), "train.steps": 2, "train.ddp": True,
                          "train.ddp_backend": "gloo"}))
    assert not torch.distributed.is_initialized()  # torn down at the end
    assert losses(tmp_path / "p") == losses(tmp_path / "q") and plain["grad_norm"] == ddp["grad_norm"]


@pytest.mark.slow  # two processes that import torch
def test_cli_trains_then_fails_in_one_line(corpus, tmp_path):
    d, *_ = corpus
    sets = [f"train.data={d / 'shards'}", f"train.tokenizer={d / 'tok'}", "train.eval_every=0", "train.batch_size=4"]
    argv = [sys.executable, "-m", "gocoder", "train", "-c", "configs/tiny.toml", "--stop-after", "1"]
    for s in sets + [f"train.out={tmp_path / 'r'}"]:
        argv += ["--set", s]
    p = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0 and p.stdout.startswith("step 1: loss "), p.stderr
    p = subprocess.run(argv[:-2] + ["--set", f"train.out={tmp_path / 'none'}", "--resume"], capture_output=True,
                       text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "no checkpoint" in p.stderr


def test_ddp_without_torchrun_env_is_an_error(corpus, monkeypatch):
    d, *_ = corpus
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(GocoderError, match="torchrun"):
        train(tiny(d, **{"train.ddp": True}))


def test_curriculum_moves_on_by_step(corpus, tmp_path):
    d, *_ = corpus
    stages = '[{name="short", max_tokens=1, until_step=2}, {name="all"}]'
    with pytest.raises(GocoderError, match="short"):
        train(load_config("configs/tiny.toml", [f"train.stages={stages}", f"train.data={d / 'shards'}",
                                                f"train.tokenizer={d / 'tok'}"]))
    stages = '[{name="one", max_plan_steps=1, until_step=2}, {name="all"}]'
    cfg = tiny(d, **{"train.out": str(tmp_path / "s"), "train.steps": 3})
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stages=load_config(
        None, [f"train.stages={stages}"]).train.stages))
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows] == ["one", "one", "all"]  # steps 1-2 in "one"


@pytest.mark.slow
def test_tiny_model_overfits_16_examples_and_writes_go(corpus, tmp_path):
    d, tok, _ = corpus
    cfg = tiny(d, **{"train.out": str(tmp_path / "o"), "train.steps": 150, "train.eval_every": 150,
                     "train.eval_samples": 4, "generate.max_new_tokens": 80})
    last = train(cfg)
    first = losses(tmp_path / "o")[0]
    assert last["code_loss"] < 0.1 * first and last["plan_loss"] < 0.5
    assert last["val_syntax_valid"] >= 0.5, last


def test_time_limit_stops_with_a_checkpoint(corpus, tmp_path):
    d, *_ = corpus
    cfg = tiny(d, **{"train.steps": 50, "train.time_limit_s": 1e-6, "train.out": str(tmp_path / "run"),
                     "train.ckpt_every": 100})
    train(cfg)
    assert load_checkpoint(tmp_path / "run")[3]["step"] == 1  # one step, then the limit; saved


def test_the_progress_bar_on_a_terminal_waits_for_the_first_log(corpus, tmp_path, monkeypatch):
    # on a TTY the bar showed the last metrics from step 1 on: with log_every > 1 there were none (KeyError)
    import rich.console

    monkeypatch.setattr(rich.console.Console, "is_terminal", property(lambda self: True))
    d, *_ = corpus
    last = train(tiny(d, **{"train.steps": 3, "train.log_every": 2, "train.out": str(tmp_path / "run")}),
                 progress=True)
    assert last["step"] == 3


def test_export_keeps_ema_weights_in_bf16_and_loads(corpus, tmp_path):
    d, *_ = corpus
    train(tiny(d, **{"train.steps": 3, "train.ema_decay": 0.5, "train.out": str(tmp_path / "run")}))
    out = export_model(tmp_path / "run", tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json",
                                                     "tokenizer.model"]
    _, weights, ema, _ = load_checkpoint(tmp_path / "run")
    model, meta = load_model(out)
    assert meta["weights"] == "ema" and meta["step"] == 3
    k = "embed.weight"
    assert torch.equal(model.state_dict()[k], ema[k].to(torch.bfloat16).float())
    assert not torch.equal(ema[k], weights[k])
    fp32 = next((tmp_path / "run").glob("ckpt-*/model.safetensors")).stat().st_size
    assert (out / "model.safetensors").stat().st_size < 0.6 * fp32  # half the bytes, plus the header
    with pytest.raises(GocoderError, match="--dtype"):
        export_model(tmp_path / "run", tmp_path / "x", dtype="int8")


def test_init_starts_a_new_run_from_exported_int8_weights(corpus, tmp_path):
    d, *_ = corpus
    sets = {"train.steps": 30, "train.batch_size": 4, "train.ckpt_every": 100}
    train(tiny(d, **sets, **{"train.out": str(tmp_path / "a")}))
    first = losses(tmp_path / "a")
    model = export_model(tmp_path / "a", tmp_path / "m", quantize="int8")
    train(tiny(d, **{**sets, "train.steps": 2, "train.out": str(tmp_path / "b"), "train.init": str(model)}))
    st = load_checkpoint(tmp_path / "b")[3]
    assert st["step"] == 2  # a new run: its own step count and optimizer
    assert losses(tmp_path / "b")[0] < 0.5 * first[0]  # it starts where the exported model left off
    with pytest.raises(GocoderError, match=r"m/config.json: train.init's model config differs .*d_model"):
        train(tiny(d, **{"train.steps": 1, "model.d_model": 32, "model.n_heads": 2,
                         "train.out": str(tmp_path / "c"), "train.init": str(model)}))
