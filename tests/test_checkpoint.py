"""gocoder/model/checkpoint.py: inference reads weights and config only; a bad training state is one line."""

from __future__ import annotations

import datetime

import pytest
import torch

from gocoder import GocoderError
from gocoder.config import ModelConfig, to_dict
from gocoder.model.checkpoint import export_model, load_checkpoint, load_model, load_train_state, save_checkpoint
from gocoder.model.model import GocoderModel

CFG = ModelConfig(vocab_size=40, d_model=32, n_heads=4, planner_layers=1, generator_layers=1, max_seq_len=32)


@pytest.fixture()
def ckpt(tmp_path):
    torch.manual_seed(0)
    model = GocoderModel(CFG)
    state = {"step": 7, "flops": 1.5e9, "tokens": 640.0, "seconds": 2.0, "rng_cpu": torch.get_rng_state()}
    final = save_checkpoint(tmp_path / "run", 7, model, None, state, {"model": to_dict(CFG)})
    return tmp_path / "run", final, model


def test_the_folder_describes_itself_and_resume_reads_the_state(ckpt):
    run, final, model = ckpt
    meta, weights, ema, state = load_checkpoint(run)
    assert (meta["step"], meta["flops"], meta["tokens"], meta["seconds"]) == (7, 1.5e9, 640.0, 2.0)
    assert ema is None and state["step"] == 7
    assert torch.equal(weights["embed.weight"], model.state_dict()["embed.weight"])


@pytest.mark.parametrize("content", [b"not a pickle at all", "object"])
def test_inference_never_opens_state_pt(ckpt, tmp_path, content):
    run, final, model = ckpt
    if content == "object":  # a pickle of something the weights_only loader refuses
        torch.save({"when": datetime.date(2026, 11, 30)}, final / "state.pt")
    else:
        (final / "state.pt").write_bytes(content)
    loaded, meta = load_model(run)
    assert torch.equal(loaded.state_dict()["embed.weight"], model.state_dict()["embed.weight"])
    out = export_model(run, tmp_path / "model", dtype="float32")
    assert load_model(out)[1]["step"] == 7 and load_model(out)[1]["flops"] == 1.5e9
    with pytest.raises(GocoderError) as e:  # resume is the one reader, and it says so in one line
        load_train_state(run)
    msg = str(e.value)
    assert msg.startswith(str(final / "state.pt")) and "\n" not in msg and "weights_only" not in msg


def test_no_state_is_an_empty_state(ckpt):
    _, final, _ = ckpt
    (final / "state.pt").unlink()
    assert load_train_state(final) == {}


def test_a_gpt_sized_by_the_recursive_model_loads_from_its_json(tmp_path):
    # gpt_layers 0 sizes the GPT from the recursive shape (a cached function of the config), and
    # config.json holds model.loop as a list: the config read back must hash
    from dataclasses import replace

    cfg = replace(CFG, type="gpt", gpt_layers=0, loop=())
    model = GocoderModel(cfg)
    save_checkpoint(tmp_path / "run", 1, model, None, {"step": 1}, {"model": to_dict(cfg)})
    loaded, _ = load_model(tmp_path / "run")
    assert loaded.cfg.loop == () and len(loaded.gpt.blocks) == len(model.gpt.blocks) > 1
