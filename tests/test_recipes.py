"""The recipes and the commands the docs give: runs/*.sh parse, the shipped model's recipe
(runs/default-model.sh) prints commands that exist, and every `gocoder ...` command in README.md and
models/default/MODEL_CARD.md names a command and options the CLI has. Static checks, in a second."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import types
from pathlib import Path

import pytest
import typer.main

from gocoder.cli import app

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "runs" / "default-model.sh"
DOCS = [REPO / "README.md", REPO / "models" / "default" / "MODEL_CARD.md"]
HELP = types.SimpleNamespace(is_flag=True)  # every command and group takes --help
OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "2>", "&", "(", ")"}


@functools.cache
def _root():
    return typer.main.get_command(app)  # built once: it takes ~0.3 s


def cli_problems(argv: list[str]) -> list[str]:
    """What in a gocoder command line (argv[0] == "gocoder") the CLI does not have: an unknown command,
    or an option its command does not take. Positional arguments and values are not checked."""
    cmd = _root()
    where, i = "gocoder", 1
    while hasattr(cmd, "commands"):  # a group: its own options, then a command of it
        while i < len(argv) and argv[i].startswith("-"):
            opt = _option(cmd, argv[i])
            if opt is None:
                return [f"{where}: no option {argv[i]}"]
            i += 1 if opt.is_flag or "=" in argv[i] else 2
        if i == len(argv):
            return []  # the group alone: it prints its help
        if argv[i] not in cmd.commands:
            return [f"{where}: no command {argv[i]!r}"]
        cmd, where, i = cmd.commands[argv[i]], f"{where} {argv[i]}", i + 1
    return [f"{where}: no option {a}" for a in argv[i:]
            if a.startswith("-") and a != "-" and not re.fullmatch(r"-\d.*", a) and _option(cmd, a) is None]


def _option(cmd, token: str):
    name = token.strip("[]").split("=")[0]
    if name == "--help":
        return HELP
    return next((p for p in cmd.params if name in (*p.opts, *p.secondary_opts)), None)


def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line, each as its words (operators and redirections split off)."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = "#"
    out, cur = [], []
    try:
        words = list(lex)
    except ValueError:  # an unclosed quote in a prose fragment: split it plainly
        words = text.split()
    for w in words:
        if w in OPERATORS or set(w) <= set("&|;<>()"):
            out.append(cur)
            cur = []
        else:
            cur.append(w)
    out.append(cur)
    return [c for c in out if c]


def gocoder_argv(words: list[str]) -> list[str] | None:
    """The words from "gocoder" on, when the command runs gocoder (after environment assignments, or
    under torchrun / python -m); None otherwise."""
    if "gocoder" not in words:
        return None
    i = words.index("gocoder")
    head = [w for w in words[:i] if not re.fullmatch(r"[A-Za-z_]\w*=.*", w)]
    if head and head[0] not in ("torchrun", "python", "python3"):
        return None  # e.g. `pip install gocoder`
    return words[i:]


def doc_commands(text: str) -> list[str]:
    """The shell lines of a Markdown text: its fenced blocks' lines (continuations joined) and its code
    spans (which may wrap across lines)."""
    lines = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        lines += block.replace("\\\n", " ").splitlines()
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    return lines


def test_every_recipe_parses():
    for sh in sorted((REPO / "runs").glob("*.sh")):
        p = subprocess.run(["bash", "-n", str(sh)], capture_output=True, text=True)
        assert p.returncode == 0, f"{sh.name}: {p.stderr}"


def test_the_recipe_has_a_usage_and_refuses_unknown_steps():
    p = subprocess.run([str(RECIPE), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("Usage: runs/default-model.sh [--dry-run] [STEP...]")
    p = subprocess.run([str(RECIPE), "--dry-run", "nope"], capture_output=True, text=True)
    assert p.returncode == 2 and "no step nope" in p.stderr


def _dry_run(*steps: str, **env: str) -> dict[str, str]:
    p = subprocess.run([str(RECIPE), "--dry-run", *steps], capture_output=True, text=True, check=True,
                       env={"PATH": "/usr/bin:/bin", **env})
    lines = p.stdout.splitlines()
    assert [x[2:] for x in lines[::2]] == list(steps or ("corpus", "data", "files", "export1", "records",
                                                         "export2", "again", "ship"))
    return dict(zip([x[2:] for x in lines[::2]], lines[1::2], strict=True))


def test_the_recipe_runs_the_cards_steps_with_its_settings():
    lines = _dry_run(WORK="/w")
    # the card's three training runs (MODEL_CARD.md, "Training"), as runs/default.sh was called for them
    assert "LIMIT=400 GPT_FILES=7600 GPT_RECORDS=600 REC_FILES=1500 REC_RECORDS=250" in lines["files"]
    assert lines["records"].endswith("runs/default.sh continue gpt /w/gpt-files /w/gpt-cont")
    assert "CONT_RECORDS=120 CONT_FUNC_EPOCHS=0 CONT_LR=0.0003 CONT_WARMUP=5 CONT_EMA=0 CONT_BATCH=8 " \
           "SETS='--set train.compile=false' runs/default.sh continue gpt /w/gpt-cont-int8 /w/gpt-final" \
           in lines["again"]
    assert lines["ship"].endswith("runs/default.sh ship gpt-final")


def test_the_recipes_commands_exist_and_its_knobs_are_read():
    default_sh = (REPO / "runs" / "default.sh").read_text()
    subcommands = re.findall(r"^  (\w+)\) ", default_sh, flags=re.M)
    for step, line in _dry_run(WORK="/w", GOCODER="python3 -m gocoder").items():
        words = shlex.split(line)
        knobs = [w.split("=")[0] for w in words if re.fullmatch(r"[A-Z_]+=.*", w)]
        cmd = words[len(knobs):]
        if cmd[0] == "runs/default.sh":
            assert cmd[1] in subcommands, f"{step}: runs/default.sh has no {cmd[1]}"
            for k in knobs:  # a knob runs/default.sh does not read would be ignored without a word
                assert re.search(rf"\$\{{{k}\b|\${k}\b", default_sh), f"{step}: runs/default.sh reads no {k}"
        else:
            assert cmd[:3] == ["python3", "-m", "gocoder"], line
            assert cli_problems(cmd[2:]) == [], line


def test_the_checker_finds_what_is_gone():
    # the test above and the docs test below pass only if this one can fail
    assert cli_problems(["gocoder", "bench", "--file", "x", "--no-repeat-ngram", "12"]) == \
        ["gocoder bench: no option --no-repeat-ngram"]
    assert cli_problems(["gocoder", "complete", "--file", "x"]) == ["gocoder: no command 'complete'"]
    assert cli_problems(["gocoder", "--threads", "4", "tokenizer", "train", "-o", "t", "--vocab-size", "9"]) == []
    assert cli_problems(["gocoder", "corpus", "--help"]) == [] == cli_problems(["gocoder", "--help"])
    assert gocoder_argv(shlex.split("pip install gocoder")) is None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_gocoder_command_of_the_docs_exists(doc):
    text = doc.read_text(encoding="utf-8")
    found, problems = 0, []
    for line in doc_commands(text):
        for words in simple_commands(line):
            argv = gocoder_argv(words)
            if argv is not None:
                found += 1
                problems += [f"{doc.name}: {p} (in: {line[:120]})" for p in cli_problems(argv)]
    assert found >= 5 and problems == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_script_the_docs_name_exists(doc):
    text = doc.read_text(encoding="utf-8")
    named = set(re.findall(r"\b((?:bench|runs)/[\w.-]+\.(?:py|sh))\b", text))
    assert named and sorted(p for p in named if not (REPO / p).exists()) == []


def _stub_repo(tmp_path: Path) -> Path:
    """A copy of the recipe beside a runs/default.sh that only logs its calls (and fails on FAIL_AT)."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "default-model.sh").write_text(RECIPE.read_text())
    (tmp_path / "runs" / "default.sh").write_text(
        '#!/usr/bin/env bash\necho "default.sh $* LIMIT=${LIMIT:-} CONT_RECORDS=${CONT_RECORDS:-}" >> "$WORK/log"\n'
        '[[ "$*" != "${FAIL_AT:-none}" ]]\n')
    for f in ("default-model.sh", "default.sh"):
        (tmp_path / "runs" / f).chmod(0o755)
    return tmp_path


def _recipe(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(repo / "runs" / "default-model.sh"), *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "WORK": str(repo / "w"), "GOCODER": "echo gocoder", **env})


def _stamped(tmp_path: Path) -> list[str]:
    return sorted(x.name for x in (tmp_path / "w" / ".recipe").iterdir() if not x.name.startswith("."))


def test_the_recipe_skips_done_steps_and_redoes_the_ones_after_a_rerun_step(tmp_path):
    repo, log = _stub_repo(tmp_path), tmp_path / "w" / "log"
    (tmp_path / "w" / "gpt-cont").mkdir(parents=True)  # a cut run of the step that fails below
    p = _recipe(repo, FAIL_AT=f"continue gpt {tmp_path}/w/gpt-files {tmp_path}/w/gpt-cont")
    assert p.returncode != 0 and not (tmp_path / "w" / "gpt-cont").exists()  # started afresh
    assert log.read_text().splitlines() == [
        "default.sh corpus LIMIT= CONT_RECORDS=", "default.sh data LIMIT= CONT_RECORDS=",
        "default.sh train LIMIT=400 CONT_RECORDS=",
        f"default.sh continue gpt {tmp_path}/w/gpt-files {tmp_path}/w/gpt-cont LIMIT= CONT_RECORDS=300"]
    assert _stamped(tmp_path) == ["corpus", "data", "export1", "files"]
    log.unlink()
    p = _recipe(repo)  # goes on from the step that failed
    assert p.returncode == 0, p.stderr
    assert [x.split()[1] for x in log.read_text().splitlines()] == ["continue", "continue", "ship"]
    assert f"gocoder export {tmp_path}/w/gpt -o {tmp_path}/w/gpt-files --quantize int8" not in p.stdout
    assert f"gocoder export {tmp_path}/w/gpt-cont -o {tmp_path}/w/gpt-cont-int8 --quantize int8" in p.stdout
    log.unlink()
    assert _recipe(repo).returncode == 0 and not log.exists()  # all done: nothing runs
    assert _recipe(repo, "data").returncode == 0  # a named step runs, and the steps after it are undone
    assert _stamped(tmp_path) == ["corpus", "data"]
