"""Config: defaults, TOML files, --set overrides, and one-line errors naming the key."""

from __future__ import annotations

import re

import pytest

from gocoder import GocoderError
from gocoder.config import Config, load_config, to_toml


def test_defaults_are_a_config():
    assert isinstance(load_config(), Config)


def test_file_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("[validate]\nservers = 3\ntimeout_s = 2\n")
    cfg = load_config(f, ["validate.servers=5"])
    assert cfg.validate.servers == 5
    assert cfg.validate.timeout_s == 2.0 and isinstance(cfg.validate.timeout_s, float)


def test_toml_round_trip(tmp_path):
    cfg = load_config(overrides=["validate.servers=7"])
    f = tmp_path / "out.toml"
    f.write_text(to_toml(cfg))
    assert load_config(f) == cfg


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("validate.nope=1", "unknown config key 'validate.nope'"),
        ("nope.x=1", "unknown config key 'nope'"),
        ("validate.servers=many", "'validate.servers' must be int"),
        ("validate.servers=true", "'validate.servers' must be int"),
        ("validate.timeout_s=\"10\"", "'validate.timeout_s' must be float"),
        ("validate=1", "'validate' is a section"),
        ("novalue", "expected KEY=VALUE"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(GocoderError, match=message.replace("(", r"\(")):
        load_config(overrides=[override])


def test_bad_toml_names_the_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[validate\n")
    with pytest.raises(GocoderError, match="bad.toml"):
        load_config(f)


def test_frozen():
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.validate.servers = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.batch_size=0", "'train.batch_size' must be >= 1, got 0"),
        ("model.d_model=0", "'model.d_model' must be >= 1"),
        ("train.lr=-1", "'train.lr' must be > 0"),
        ("train.ckpt_every=0", "'train.ckpt_every' must be >= 1"),
        ("train.seed=-1", "'train.seed' must be >= 0"),
        ("train.grad_accum=0", "'train.grad_accum' must be >= 1"),
        ("bench.wall_s=-1", "'bench.wall_s' must be > 0"),
        ("bench.ks=[0]", "'bench.ks' must be a non-empty list"),
        ("bench.memory_mb=100", "'bench.memory_mb' must be >= 768"),
        ("collect.workers=0", "'collect.workers' must be >= 1"),
        ("generate.top_p=0", "'generate.top_p' must be in (0, 1]"),
        ("generate.device=\"tpu\"", "'generate.device' must be cpu, mps, cuda or cuda:N"),
        ("train.device=\"tpu\"", "'train.device' must be auto, cpu"),
        ("train.ema_decay=1", "'train.ema_decay' must be in [0, 1)"),
        ("splits.shares=[0.5, 0.5, 0.5]", "'splits.shares' must be three shares"),
        ("train.stages=[{until_step = -1}]", r"'train.stages\[0\].until_step' must be >= 0"),
        ("model.n_heads=3", "model.d_model=64 must be a multiple of model.n_heads=3"),
        ("model.n_heads=64", "head dimension must be even"),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(override, message):
    with pytest.raises(GocoderError) as e:
        load_config(overrides=[override])
    assert message in str(e.value) or re.search(message, str(e.value)), str(e.value)


def test_go_memory_floor_matches_the_sandbox():
    from gocoder import config
    from gocoder.check import sandbox

    assert config._GO_MIN_MEMORY_MB == sandbox.MIN_MEMORY_MB


def test_non_utf8_config_names_the_file(tmp_path):
    f = tmp_path / "latin1.toml"
    f.write_bytes(b"# caf\xe9\n")
    with pytest.raises(GocoderError, match="latin1.toml: config is not UTF-8"):
        load_config(f)


@pytest.mark.parametrize("key", ["bench.max_new_tokens", "train.eval_max_new"])
def test_a_moved_key_says_where_it_went(tmp_path, key):
    """One home for the token budget: an old file or --set naming a key that moved fails, naming both keys."""
    section, name = key.split(".")
    f = tmp_path / "old.toml"
    f.write_text(f"[{section}]\n{name} = 96\n")
    for args in ((f, ()), (None, [f"{key}=96"])):
        with pytest.raises(GocoderError) as e:
            load_config(*args)
        assert str(e.value).startswith(f"config key {key!r} moved to 'generate.max_new_tokens'"), str(e.value)
    assert load_config(overrides=["generate.max_new_tokens=96"]).generate.max_new_tokens == 96


def test_annotate_split_moved_to_the_one_split_setting():
    """annotate.split became splits.shares (issue 26): every stage splits by the same value."""
    with pytest.raises(GocoderError, match="'annotate.split' moved to 'splits.shares'"):
        load_config(overrides=["annotate.split=[0.8, 0.1, 0.1]"])
    assert load_config(overrides=["splits.shares=[0.8, 0.1, 0.1]"]).splits.shares == (0.8, 0.1, 0.1)
