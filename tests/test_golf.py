"""gocoder golf: a fixed wall-time run, exported under a cap, scored in bits per byte held out; and the
golf options of the model (QK-norm, ReLU^2, soft-capped logits, looped middle layers) and the schedule."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from tokfixtures import GO_TRICKY, train_tiny_tokenizer

from gocoder import GocoderError
from gocoder.collect.textparts import PartWriter, tokenize
from gocoder.config import ModelConfig, TrainConfig, load_config
from gocoder.model.model import GocoderModel
from gocoder.training.data import TokenShard
from gocoder.training.golf import bits_per_byte, byte_lengths, golf
from gocoder.training.train import lr_at


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    d = tmp_path_factory.mktemp("golf")
    tok = train_tiny_tokenizer(d / "tok")
    with PartWriter(d / "text", 24 << 20) as w:
        for i in range(60):
            split = "valid" if i % 6 == 0 else "train"
            w.write({"id": str(i), "package": f"p{i % 6}", "license": "MIT", "path": f"{i}.go", "split": split,
                     "text": GO_TRICKY[i % len(GO_TRICKY)] + f"\n// file {i}\n"})
    tokenize(d / "text", tok, d / "tokens", workers=1)
    return d, tok


def _cfg(d, *sets):
    return load_config(None, [f"train.tokenizer={json.dumps(str(d / 'tok'))}", "model.type=\"gpt\"",
                              "model.max_seq_len=64", "model.d_model=32", "model.n_heads=2", "model.gpt_layers=2",
                              "train.batch_size=4", "train.warmup_steps=2", "train.log_every=5", "train.lr=0.01",
                              "train.ema_decay=0.9", *sets])


def test_byte_lengths_spell_the_text(tokens):
    d, tok = tokens
    nb = byte_lengths(tok)
    for text in GO_TRICKY:
        ids = tok.encode(text)
        assert nb[ids].sum() == len(text.encode("utf-8"))  # byte-fallback pieces, U+2581 and tabs included
    assert nb[tok.eos_id] == 0 and nb[tok.pad_id] == 0


def test_bits_per_byte_is_the_summed_cross_entropy_over_the_bytes(tokens):
    d, tok = tokens
    cfg = _cfg(d)
    torch.manual_seed(0)
    model = GocoderModel(dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)).eval()
    shard = TokenShard(d / "tokens", "valid", 64)
    got = bits_per_byte(model, shard, byte_lengths(tok), torch.device("cpu"), max_tokens=10**6, batch_size=3)
    # by hand: every row's logits, the cross-entropy of each next token, summed
    T, nats = 64, 0.0
    for r in range(len(shard)):
        b = shard.batch([r])
        x = model.embed(b.tokens) * math.sqrt(cfg.model.d_model)
        h = model.gpt(x, model._gpt_mask(b), model._rope(T, torch.device("cpu")))
        logits = model.logits(h)[0, :-1]
        nats += torch.nn.functional.cross_entropy(logits.float(), b.tokens[0, 1:], reduction="sum").item()
    toks = np.asarray(shard.tokens[: len(shard) * T]).reshape(-1, T)[:, 1:]
    assert got["tokens"] == toks.size and got["bytes"] == byte_lengths(tok)[toks].sum()
    assert got["bits_per_byte"] == pytest.approx(nats / math.log(2) / got["bytes"], rel=1e-4)


def test_golf_trains_for_its_budget_exports_and_scores(tokens, tmp_path):
    d, tok = tokens
    cfg = _cfg(d, "train.time_limit_s=4", "model.qk_norm=true", 'model.mlp="relu2"', "model.logit_softcap=15",
               "model.loop=[0, 1]", "train.loop_start=0.3", "train.cooldown=0.5")
    rec = golf(cfg, d / "tokens", tmp_path / "g", quantize="int8", max_mb=1.0, eval_tokens=10**6)
    assert 4.0 <= rec["train_s"] < 60 and rec["steps"] >= 2
    assert rec["model_bytes"] == (tmp_path / "g/model/model.safetensors").stat().st_size < 1e6
    uniform = math.log2(tok.vocab_size) * rec["eval_tokens"] / rec["eval_bytes"]
    assert 0 < rec["bits_per_byte"] < uniform  # it learned something in 4 s
    assert json.loads((tmp_path / "g/golf.json").read_text()) == rec
    assert rec["model"]["loop"] == [0, 1] and rec["train"]["schedule"] == "time"
    # a second call reads the score, trains nothing
    assert golf(cfg, d / "tokens", tmp_path / "g") == rec


def test_golf_refuses_what_it_cannot_do(tokens, tmp_path):
    d, _ = tokens
    with pytest.raises(GocoderError, match="wall-time budget"):
        golf(_cfg(d), d / "tokens", tmp_path / "a")
    with pytest.raises(GocoderError, match="over --max-mb"):
        golf(_cfg(d, "train.time_limit_s=1"), d / "tokens", tmp_path / "b", max_mb=0.001)


def test_looped_layers_run_twice_and_the_cache_agrees():
    cfg = ModelConfig(type="gpt", vocab_size=50, d_model=32, n_heads=2, gpt_layers=3, max_seq_len=32, loop=(1, 2),
                      qk_norm=True, mlp="relu2", logit_softcap=10.0)
    torch.manual_seed(0)
    m = GocoderModel(cfg).eval()
    assert m.gpt.order() == [0, 1, 1, 2]
    m.gpt.looping = False
    assert m.gpt.order() == [0, 1, 2]
    m.gpt.looping = True
    from gocoder.inference.engine import Engine, Sampling

    prompt = [[5, 6, 7, 8, 9]]
    out = Engine(m, code_open=49, device="cpu").generate(prompt, Sampling(max_new_tokens=6))[0].tokens
    # greedy by hand with full forwards: the cached engine must agree token for token
    ids = list(prompt[0])
    with torch.inference_mode():
        for _ in range(6):
            x = m.embed(torch.tensor([ids])) * math.sqrt(32)
            h = m.gpt(x, None, m._rope(len(ids), torch.device("cpu")))
            ids.append(int(m.logits(h)[0, -1].argmax()))
    assert out == ids[5:]


def test_schedule_by_time_warms_holds_and_cools_down():
    t = TrainConfig(schedule="time", time_limit_s=100.0, warmup_steps=10, steps=10**7, cooldown=0.4,
                    min_lr_ratio=0.0)
    assert lr_at(4, t, 1.0) == pytest.approx(0.5)
    assert lr_at(500, t, 50.0) == 1.0  # stable until 60% of the time
    assert lr_at(500, t, 80.0) == pytest.approx(0.5)  # half-way down the cool-down
    assert lr_at(500, t, 100.0) == pytest.approx(0.0)
    cos = dataclasses.replace(t, cooldown=1.0, schedule="steps", steps=110)
    assert lr_at(60, cos, 0.0) == pytest.approx(0.5)  # cosine by steps, as before


def test_quality_prefers_documented_logic_over_plumbing():
    from gocoder.collect.quality import score

    good = ("package s\n\n// Sum adds the numbers of xs.\nfunc Sum(xs []int) int {\n\tt := 0\n"
            "\tfor _, x := range xs {\n\t\tif x > 0 {\n\t\t\tt += x\n\t\t}\n\t}\n\treturn t\n}\n")
    fields = "".join(f'\tF{i} string `json:"f{i}"`\n' for i in range(30))
    plumbing = "package api\n\ntype Req struct {\n" + fields + "}\n"
    table = "package t\n\nvar codes = map[string]int{\n" + "".join(f'\t"k{i}": {i},\n' for i in range(30)) + "}\n"
    assert score(good) > score(good, "s_test.go") > score(plumbing)
    assert score(good) > score(table) and score(plumbing) < 0 and score(table) < 0


def test_select_keeps_the_best_under_the_budget_and_the_held_out_beside(tmp_path):
    from gocoder.collect.quality import select
    from gocoder.collect.textparts import read_parts

    good = "package s\n\n// F does it.\nfunc F(x int) int {\n\tif x > 0 {\n\t\treturn x\n\t}\n\treturn -x\n}\n"
    bad = "package api\n\ntype R struct {\n" + "".join(f'\tF{i} string `json:"f{i}"`\n' for i in range(8)) + "}\n"
    with PartWriter(tmp_path / "text", 24 << 20) as w:
        for i in range(40):
            split = ("valid", "test")[i % 2] if i % 10 == 0 else "train"
            w.write({"id": str(i), "package": f"p{i % 3}", "path": f"d{i}/f.go", "split": split,
                     "text": (good if i % 2 else bad) + f"// {i:02d}\n"})
    budget = 10 * (len(good.encode()) + 6) / 1e6
    s = select(tmp_path / "text", tmp_path / "q", budget, "quality", valid_mb=1, per_package_mb=1)
    recs = list(read_parts(tmp_path / "q" / "text"))
    train = [r for r in recs if r["split"] == "train"]
    assert s["train_files"] == len(train) == 10 and all(r["text"].startswith(good) for r in train)
    assert {r["split"] for r in recs} == {"train", "valid"} and s["held_out_files"] == 4  # test stays home
    r = select(tmp_path / "text", tmp_path / "r", budget, "random", valid_mb=1, per_package_mb=1, seed=3)
    picked = [x for x in read_parts(tmp_path / "r" / "text") if x["split"] == "train"]
    assert r["train_bytes"] <= budget * 1e6 and any(x["text"].startswith(bad) for x in picked)
    with pytest.raises(GocoderError, match="--how"):
        select(tmp_path / "text", tmp_path / "x", 1, "best")
