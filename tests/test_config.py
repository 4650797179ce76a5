"""Config: defaults, TOML files, --set overrides, and one-line errors naming the key."""

from __future__ import annotations

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
