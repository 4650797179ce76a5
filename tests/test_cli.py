"""The CLI surface: pinned, documented, and with the exit codes the style guide promises."""

from __future__ import annotations

import subprocess
import sys

import typer.main

from gocoder import __version__
from gocoder.cli import app


def _commands(group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        if hasattr(cmd, "commands"):  # a group (Typer vendors its own click)
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_command_has_a_summary_an_example_and_helped_options():
    root = typer.main.get_command(app)
    for name, cmd in _commands(root):
        assert cmd.help and "Example: gocoder " in cmd.help, f"{name}: docstring needs a summary and an example"
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option" and p.name != "help":
                assert p.help, f"{name} {p.opts}: option without help="


def test_version_and_help():
    p = subprocess.run([sys.executable, "-m", "gocoder", "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == f"gocoder {__version__}"
    p = subprocess.run([sys.executable, "-m", "gocoder", "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "check" in p.stdout


def test_config_show_resolves_overrides():
    p = subprocess.run(
        [sys.executable, "-m", "gocoder", "config", "show", "--set", "validate.servers=3"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0 and "[validate]\nservers = 3\n" in p.stdout


def test_unknown_key_is_one_line_exit_2():
    p = subprocess.run(
        [sys.executable, "-m", "gocoder", "config", "show", "--set", "validate.nope=1"], capture_output=True, text=True
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: unknown config key 'validate.nope' in section [validate]; "
                                             "known: hang_grace_s, servers, timeout_s, typecheck_timeout_s"]


def test_torch_threads_default_option_and_environment(monkeypatch):
    import os

    import torch
    from typer.testing import CliRunner

    from gocoder.cli import DEFAULT_THREADS

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "GOCODER_THREADS"):
        monkeypatch.setenv(var, "")  # restored after the test
        monkeypatch.delenv(var)
    try:
        assert CliRunner().invoke(app, ["config", "show"]).exit_code == 0
        assert os.environ["OMP_NUM_THREADS"] == str(DEFAULT_THREADS) and torch.get_num_threads() == DEFAULT_THREADS
        assert CliRunner().invoke(app, ["--threads", "3", "config", "show"]).exit_code == 0
        assert os.environ["OMP_NUM_THREADS"] == "3" and torch.get_num_threads() == 3
        r = CliRunner().invoke(app, ["config", "show"], env={"GOCODER_THREADS": "2"})
        assert r.exit_code == 0 and torch.get_num_threads() == 2
        # torchrun (or the user) set OMP_NUM_THREADS: it stands
        assert CliRunner().invoke(app, ["config", "show"], env={"OMP_NUM_THREADS": "4"}).exit_code == 0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    p = subprocess.run([sys.executable, "-m", "gocoder", "--threads", "0", "config", "show"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == "error: --threads 0 (or GOCODER_THREADS): expected 1 or more"


def test_flags_and_set_become_one_config_and_validate_reaches_the_shared_checker():
    """One helper turns flags into overrides (a flag given wins over --set, None changes nothing), and
    --set validate.* reaches the process-wide checker that shards, generate and eval use."""
    from gocoder.check.validate import get_checker, use_config
    from gocoder.cli import _config
    from gocoder.config import ValidateConfig

    cfg = _config(None, ["generate.samples=2", "generate.seed=9", "validate.servers=1"], "generate",
                  samples=4, search="tree", seed=None)
    assert (cfg.generate.samples, cfg.generate.search, cfg.generate.seed) == (4, "tree", 9)
    try:
        assert get_checker().cfg.servers == 1 and get_checker().check("package p\n").ok
        assert _config(None, None, "bench", ks=(1, 5)).bench.ks == (1, 5)
        assert get_checker().cfg == ValidateConfig()  # the next command's config replaces it
    finally:
        use_config(ValidateConfig())


def test_a_moved_config_key_is_one_line_exit_2(tmp_path):
    f = tmp_path / "old.toml"
    f.write_text("[train]\neval_max_new = 96\n")
    p = subprocess.run([sys.executable, "-m", "gocoder", "config", "show", "-c", str(f)],
                       capture_output=True, text=True)  # fmt: skip
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "'train.eval_max_new' moved to 'generate.max_new_tokens'" in p.stderr
