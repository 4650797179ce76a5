"""Bad input to every subcommand: exit 2, one line on stderr, no traceback, nothing left behind.

Each case runs the CLI in-process through gocoder.cli.main (the console script's entry, where the
expected failures of the libraries become one line) in a fresh folder holding the inputs below; after
it, that folder must hold exactly what it held before (outputs and their folders included).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from gocoder.cli import main
from gocoder.records import make_record

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "default"  # the shipped model: a real checkpoint and tokenizer
TOK = MODEL / "tokenizer.model"
MBXP = REPO / "tests" / "data" / "bench" / "mbxp.jsonl"
GO = "package a\n\nfunc A() int { return 1 }\n"
RECORD = {"id": "r1", "problem": {"description": "p"}, "repo": "o/n"}  # a valid record: each case breaks one other input

# name | argv ({placeholders}: the inputs fixture) | what the one error line must say (the file or option at fault)
def _table(text: str) -> dict[str, tuple[str, str]]:
    rows = [[cell.strip() for cell in line.split(" | ")] for line in text.strip().splitlines() if line.strip()]
    return {name: (argv, expected) for name, argv, expected in rows}


CASES = _table("""
config-missing | config show -c {missing} | {missing}: cannot read config
config-folder | config show -c {dir} | {dir}: cannot read config
config-malformed | config show -c {bad} | {bad}: bad TOML
config-non-utf8 | config show -c {latin} | {latin}: config is not UTF-8
config-out-of-range | config show --set train.batch_size=0 | 'train.batch_size' must be >= 1
config-inconsistent | config show --set model.n_heads=3 | multiple of model.n_heads=3
config-unknown-key | config show --set train.nope=1 | unknown config key 'train.nope'

check-missing | check {missing} | {missing}
check-bad-format | check {gofile} --format xml | --format 'xml'
check-bad-kind | check {gofile} --kind nope | --kind 'nope'
check-no-go-files | check {dir} | {dir}: no .go files

collect-no-source | collect | --repo, --github, --go-src
collect-repo-missing | collect --repo {missing} | {missing}
collect-repo-not-git | collect --repo {dir} -o {out}/c.jsonl | {dir}: not a git repository
collect-repo-a-file | collect --repo {empty} -o {out}/c.jsonl | {empty}: not a git repository
collect-go-src-missing | collect --go-src {missing} -o {out}/c.jsonl | --go-src {missing}
collect-workers-0 | collect --go-src {godir} --workers 0 -o {out}/c.jsonl | --workers 0
collect-out-a-folder | collect --go-src {godir} -o {dir} | {dir}: is a folder
collect-blocklist-missing | collect --go-src {godir} --decontaminate {missing} -o {out}/c.jsonl | {missing}: cannot read
collect-blocklist-non-utf8 | collect --go-src {godir} --decontaminate {latin} -o {out}/c.jsonl | {latin}:1: not UTF-8
collect-bad-github-slug | collect --github nope -o {out}/c.jsonl | --github 'nope'

synth-go-src-missing | synth --go-src {missing} -o {out}/s.jsonl | --go-src {missing}
synth-workers-0 | synth --go-src {godir} --workers 0 -o {out}/s.jsonl | --workers 0
synth-per-func-0 | synth --go-src {godir} --per-func 0 -o {out}/s.jsonl | 'synth.per_func' must be >= 1
synth-seed-negative | synth --go-src {godir} --seed -1 -o {out}/s.jsonl | 'synth.seed' must be >= 0
synth-out-a-folder | synth --go-src {godir} -o {dir} | {dir}: is a folder

annotate-missing | annotate -i {missing} -o {out}/h | {missing}
annotate-malformed | annotate -i {bad} -o {out}/h | {bad}:1: malformed JSON
annotate-non-utf8 | annotate -i {latin} -o {out}/h | {latin}:1: not UTF-8
annotate-empty-folder | annotate -i {dir} -o {out}/h | {dir}: no .jsonl files
annotate-bad-split | annotate -i {empty} -o {out}/h --split 1,1,1 | --split '1,1,1'
annotate-out-a-file | annotate -i {raw} -o {empty} | {empty}
annotate-empty | annotate -i {empty} -o {out}/h | {empty}: no records

blocklist-missing | blocklist {missing} -o {out}/b.txt | {missing}: cannot read
blocklist-malformed | blocklist {bad} -o {out}/b.txt | {bad}:1: malformed JSON
blocklist-non-utf8 | blocklist {latin} -o {out}/b.txt | {latin}:1: not UTF-8
blocklist-empty | blocklist {empty} -o {out}/b.txt | {empty}: no Go functions
blocklist-out-a-folder | blocklist {mbxp} -o {dir} | {dir}: is a folder

tok-train-missing | tokenizer train --input {missing} -o {out}/tok | {missing}
tok-train-empty | tokenizer train --input {empty} -o {out}/tok | {empty}
tok-train-malformed | tokenizer train --input {bad} -o {out}/tok | {bad}:1: malformed JSON
tok-train-non-utf8 | tokenizer train --input {latin} -o {out}/tok | {latin}:1: not UTF-8
tok-train-vocab-0 | tokenizer train --input {records} --vocab-size 0 -o {out}/tok | 'tokenizer.vocab_size' must be >= 1
tok-train-bad-type | tokenizer train --input {records} --model-type nope -o {out}/tok | 'tokenizer.model_type' must be one of
tok-eval-corpus-missing | tokenizer eval --corpus {missing} -t {tok} | {missing}
tok-eval-tokenizer-missing | tokenizer eval --corpus {records} -t {missing} | {missing}: cannot read tokenizer
tok-eval-tokenizer-corrupt | tokenizer eval --corpus {records} -t {corrupt_tok} | {corrupt_tok}/gocoder.model: not a SentencePiece model
tok-eval-tokenizer-folder | tokenizer eval --corpus {records} -t {dir} | {dir}/gocoder.model: cannot read tokenizer
tok-eval-corpus-malformed | tokenizer eval --corpus {bad} -t {tok} | {bad}:1: malformed JSON
tok-eval-tokenizer-empty | tokenizer eval --corpus {records} -t {empty_tok} | {empty_tok}/gocoder.model: empty SentencePiece model
relate-input-missing | relate -i {missing} -o {out}/r --root {godir} --tokenizer {tok} | {missing}: no such file
relate-input-malformed | relate -i {bad} -o {out}/r.jsonl --root {godir} --tokenizer {tok} | {bad}:1: malformed JSON
relate-not-hierarchical | relate -i {records} -o {out}/r.jsonl --root {godir} --tokenizer {tok} | {records}:1: not a hierarchical record
relate-root-missing | relate -i {records} -o {out}/r.jsonl --root {missing} --tokenizer {tok} | {missing}: not a folder to index
relate-k-0 | relate -i {records} -o {out}/r.jsonl --root {godir} --k 0 --tokenizer {tok} | --k 0
relate-out-a-folder | relate -i {records} -o {dir} --root {godir} --tokenizer {tok} | {dir}: is a folder
shards-tokenizer-empty | shards -i {records} -o {out}/sh --set train.tokenizer='{empty_tok}' | {empty_tok}/gocoder.model: empty SentencePiece model

shards-tokenizer-missing | shards -i {records} -o {out}/sh --set train.tokenizer='{missing}' | {missing}: cannot read tokenizer
shards-tokenizer-corrupt | shards -i {records} -o {out}/sh --set train.tokenizer='{corrupt_tok}' | {corrupt_tok}/gocoder.model: not a SentencePiece model
shards-input-missing | shards -i {missing} -o {out}/sh --set train.tokenizer='{tok}' | {missing}
shards-input-empty | shards -i {empty} -o {out}/sh --set train.tokenizer='{tok}' | {empty}
shards-input-malformed | shards -i {bad} -o {out}/sh --set train.tokenizer='{tok}' | {bad}:1: malformed JSON
shards-input-non-utf8 | shards -i {latin} -o {out}/sh --set train.tokenizer='{tok}' | {latin}:1: not UTF-8

export-missing | export {missing} -o {out}/m | {missing}: no checkpoint there
export-not-a-checkpoint | export {dir} -o {out}/m | {dir}: no checkpoint there
export-corrupt-weights | export {corrupt_ckpt} -o {out}/m | {corrupt_ckpt}/model.safetensors: corrupt checkpoint
export-bad-dtype | export {model} -o {out}/m --dtype int3 | --dtype 'int3'
export-no-model-config | export {bad_config_ckpt} -o {out}/m | {bad_config_ckpt}/config.json: no usable model config

generate-checkpoint-missing | generate --pr-desc x --checkpoint {missing} | {missing}: no checkpoint there
generate-checkpoint-corrupt | generate --pr-desc x --checkpoint {corrupt_ckpt} | {corrupt_ckpt}/model.safetensors: corrupt checkpoint
generate-checkpoint-bad-config | generate --pr-desc x --checkpoint {bad_config_ckpt} | {bad_config_ckpt}
generate-context-missing | generate --pr-desc x --context {missing} --checkpoint {model} | {missing}: cannot read the context file
generate-context-non-utf8 | generate --pr-desc x --context {latin} --checkpoint {model} | {latin}
generate-device-tpu | generate --pr-desc x --device tpu | 'generate.device' must be cpu
generate-device-cuda-missing | generate --pr-desc x --device cuda:7 | --device cuda:7
generate-samples-0 | generate --pr-desc x --samples 0 | 'generate.samples' must be >= 1
generate-temperature-negative | generate --pr-desc x --temperature -1 | 'generate.temperature' must be >= 0
generate-bad-search | generate --pr-desc x --search nope | 'generate.search' must be one of

eval-checkpoint-missing | eval --checkpoint {missing} --data {records} -o {out}/e.jsonl | {missing}: no checkpoint there
eval-data-missing | eval --checkpoint {model} --data {missing} -o {out}/e.jsonl | {missing}: cannot read
eval-data-empty | eval --checkpoint {model} --data {empty} -o {out}/e.jsonl | {empty}: no records
eval-data-malformed | eval --checkpoint {model} --data {bad} -o {out}/e.jsonl | {bad}:1: malformed JSON
eval-data-non-utf8 | eval --checkpoint {model} --data {latin} -o {out}/e.jsonl | {latin}:1: not UTF-8
eval-limit-0 | eval --checkpoint {model} --data {records} --limit 0 -o {out}/e.jsonl | --limit 0
eval-out-a-folder | eval --checkpoint {model} --data {records} --limit 1 -o {dir} | {dir}: is a folder
eval-margin-negative | eval --checkpoint {model} --data {records} --margin -1 -o {out}/e.jsonl | --margin -1
eval-margin-over-half | eval --checkpoint {model} --data {records} --against {model} --promote --margin 2 -o {out}/e.jsonl | --margin 2
eval-promote-without-against | eval --checkpoint {model} --data {records} --promote -o {out}/e.jsonl | --promote needs --against
eval-against-missing | eval --checkpoint {model} --data {records} --against {missing} -o {out}/e.jsonl | {missing}: no checkpoint there
eval-against-corrupt | eval --checkpoint {model} --data {records} --against {corrupt_ckpt} -o {out}/e.jsonl | {corrupt_ckpt}/model.safetensors: corrupt checkpoint

train-data-missing | train --set train.data='{missing}' --set train.tokenizer='{tok}' --set train.out='{out}/run' | {missing}
train-tokenizer-missing | train --set train.tokenizer='{missing}' --set train.out='{out}/run' | {missing}
train-batch-size-0 | train --set train.batch_size=0 --set train.out='{out}/run' | 'train.batch_size' must be >= 1
train-grad-accum-0 | train --set train.grad_accum=0 --set train.out='{out}/run' | 'train.grad_accum' must be >= 1
train-lr-negative | train --set train.lr=-1 --set train.out='{out}/run' | 'train.lr' must be > 0
train-ckpt-every-0 | train --set train.ckpt_every=0 --set train.out='{out}/run' | 'train.ckpt_every' must be >= 1
train-seed-negative | train --set train.seed=-1 --set train.out='{out}/run' | 'train.seed' must be >= 0
train-d-model-0 | train --set model.d_model=0 --set train.out='{out}/run' | 'model.d_model' must be >= 1
train-device-tpu | train --set train.device='tpu' --set train.out='{out}/run' | 'train.device' must be auto
train-config-non-utf8 | train -c {latin} | {latin}: config is not UTF-8
train-stop-after-0 | train --stop-after 0 --set train.out='{out}/run' | --stop-after 0
train-stop-after-negative | train --stop-after -1 --set train.out='{out}/run' | --stop-after -1

report-missing | report {missing} -o {out}/r | {missing}
report-a-file | report {empty} -o {out}/r | {empty}
report-no-metrics | report {dir} -o {out}/r | {dir}/metrics.jsonl

bench-file-missing | bench -f {missing} --format mbxp --completions {comp} -o {out}/b | {missing}: cannot read
bench-file-malformed | bench -f {bad} --format mbxp --completions {comp} -o {out}/b | {bad}:1: malformed JSON
bench-file-non-utf8 | bench -f {latin} --format mbxp --completions {comp} -o {out}/b | {latin}:1: not UTF-8
bench-file-empty | bench -f {empty} --format mbxp --completions {comp} -o {out}/b | {empty}: no problems
bench-bad-format | bench -f {mbxp} --format nope --completions {comp} -o {out}/b | --format 'nope'
bench-completions-missing | bench -f {mbxp} --format mbxp --completions {missing} -o {out}/b | {missing}: cannot read
bench-completions-malformed | bench -f {mbxp} --format mbxp --completions {bad} -o {out}/b | {bad}:1: malformed JSON
bench-k-negative | bench -f {mbxp} --format mbxp --completions {comp} --k -1 -o {out}/b | 'bench.ks' must be
bench-k-not-a-number | bench -f {mbxp} --format mbxp --completions {comp} --k x -o {out}/b | --k 'x'
bench-limit-0 | bench -f {mbxp} --format mbxp --completions {comp} --limit 0 -o {out}/b | --limit 0
bench-workers-0 | bench -f {mbxp} --format mbxp --completions {comp} -w 0 -o {out}/b | 'bench.workers' must be >= 1
bench-wall-negative | bench -f {mbxp} --format mbxp --completions {comp} --set bench.wall_s=-1 -o {out}/b | 'bench.wall_s' must be > 0
bench-out-a-file | bench -f {mbxp} --format mbxp --completions {comp} -o {empty} | {empty}: not a folder
""")


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The bad (and the few good) inputs, in tmp_path/in; tmp_path is the working folder."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.jsonl").write_bytes(b"")
    (d / "bad.jsonl").write_bytes(b'{"id": "r1", "problem": \n')
    (d / "latin.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    (d / "folder").mkdir()
    (d / "go").mkdir()
    (d / "go" / "a.go").write_text(GO)
    (d / "records.jsonl").write_text(json.dumps(RECORD) + "\n")
    (d / "completions.jsonl").write_text(json.dumps({"task_id": "MBGP/9001", "completion": "return 1\n}\n"}) + "\n")
    (d / "raw.jsonl").write_text(json.dumps(make_record("repo", "o/n", "Fix A", "", [
        {"path": "a.go", "status": "modified", "before": GO, "after": GO.replace("1", "2")}])) + "\n")
    tok = d / "tok"
    tok.mkdir()
    (tok / "gocoder.model").write_bytes(b"not a sentencepiece model")  # its hash is right: the bytes are wrong
    (tok / "gocoder.json").write_text(json.dumps({"hash": hashlib.sha256(b"not a sentencepiece model").hexdigest()}))
    empty_tok = d / "empty-tok"  # an empty model whose hash is right: SentencePiece loads it without a word
    empty_tok.mkdir()
    (empty_tok / "gocoder.model").write_bytes(b"")
    (empty_tok / "gocoder.json").write_text(json.dumps({"hash": hashlib.sha256(b"").hexdigest()}))
    ck = d / "ckpt"
    ck.mkdir()
    (ck / "config.json").write_text((MODEL / "config.json").read_text())
    (ck / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    bad_cfg = d / "ckpt-bad-config"
    bad_cfg.mkdir()
    (bad_cfg / "config.json").write_text('{"step": 1}')
    (bad_cfg / "model.safetensors").write_bytes((MODEL / "model.safetensors").read_bytes())
    monkeypatch.chdir(tmp_path)
    return {"missing": str(d / "missing.jsonl"), "empty": str(d / "empty.jsonl"), "bad": str(d / "bad.jsonl"),
            "latin": str(d / "latin.jsonl"), "dir": str(d / "folder"), "godir": str(d / "go"),
            "gofile": str(d / "go" / "a.go"), "records": str(d / "records.jsonl"), "raw": str(d / "raw.jsonl"),
            "out": str(tmp_path / "out"),
            "comp": str(d / "completions.jsonl"), "corrupt_tok": str(tok), "empty_tok": str(empty_tok), "corrupt_ckpt": str(ck),
            "bad_config_ckpt": str(bad_cfg),
            "model": str(MODEL), "tok": str(TOK), "mbxp": str(MBXP)}  # fmt: skip


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple:
    """main() as the console script runs it: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["gocoder", *argv])
    monkeypatch.setenv("COLUMNS", "400")  # one long line stays one line
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


# Checkpoint loading is train.py's (the lead's; issue 17 moves it to gocoder/model/checkpoint.py): a config.json
# without a model section is still a KeyError there. Strict, so the fix shows up here.
# Shard building is data.py's (the lead's): empty input ends in an error naming its temporary meta.json.
XFAIL: dict[str, str] = {}  # cases known to fail, with the reason (none now)


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.xfail(reason=XFAIL[c], strict=True)) if c in XFAIL else c
             for c in CASES])  # fmt: skip
def test_bad_input_is_one_line_and_leaves_nothing(case, inputs, tmp_path, capsys, monkeypatch):
    import shlex

    template, expected = CASES[case]
    argv = shlex.split(template.format(**inputs))
    before = _tree(tmp_path)
    code, out, err = run_cli(argv, capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err and len(lines) == 1, err[-2000:]
    assert expected.format(**inputs) in lines[0], lines[0]  # it names the file or the option at fault
    assert _tree(tmp_path) == before, "a refused run left files behind"
    assert not os.path.exists(inputs["out"])


# A command whose optional part is not installed: one line naming the install that brings it (fsio.INSTALLS).
# Each runs in a fresh interpreter where the modules cannot be found (_BLOCK, a finder first on sys.meta_path),
# so nothing of them is loaded already. CI is the README's torch-free install
# (`pip install --no-deps`): none of gocoder's model dependencies.
CI = "torch,numpy,sentencepiece,safetensors,git,tree_sitter,tree_sitter_go"
# name | blocked modules | argv | what the one line must say (-: the command works there)
MISSING = {name: (mods, argv, expected) for name, mods, argv, expected in (
    [cell.strip() for cell in line.split(" | ")] for line in f"""
generate-ci | {CI} | generate --pr-desc x | gocoder generate needs
train-ci | {CI} | train --set train.out='{{out}}/run' | gocoder train needs
eval-ci | {CI} | eval --checkpoint {{model}} --data {{records}} -o {{out}}/e.jsonl | gocoder eval needs
export-ci | {CI} | export {{model}} -o {{out}}/m | gocoder export needs
shards-ci | {CI} | shards -i {{records}} -o {{out}}/sh | gocoder shards needs
generate-no-torch | torch | generate --pr-desc x | gocoder generate needs torch, which is not installed here: pip install torch
corpus-no-datasketch | datasketch | corpus build --no-go --debian none --unpacked {{dir}} -o {{out}}/c | pip install 'gocoder[corpus]'
report-no-matplotlib | matplotlib | report {{run}} -o {{out}}/r | pip install 'gocoder[report]'
check-ci | {CI} | check {{gofile}} | -
""".strip().splitlines())}  # fmt: skip


_BLOCK = """import sys
class Block:
    names = set(sys.argv[1].split(","))
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())"""


@pytest.mark.parametrize("case", MISSING)
def test_a_missing_optional_part_is_one_line_naming_its_install(case, inputs, tmp_path):
    import shlex
    import subprocess

    mods, template, expected = MISSING[case]
    run = tmp_path / "in" / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"id": "train-1", "step": 1, "loss": 1.0}) + "\n")
    argv = shlex.split(template.format(run=run, **inputs))
    before = _tree(tmp_path)
    code = f"{_BLOCK}\nsys.argv = ['gocoder', *sys.argv[2:]]\nfrom gocoder.cli import main\nmain()"
    p = subprocess.run([sys.executable, "-c", code, mods, *argv], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"})
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    if expected == "-":  # the command needs none of the blocked modules
        assert p.returncode in (0, 1) and "Traceback" not in p.stderr, p.stderr[-2000:]
        return
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr and len(lines) == 1, p.stderr[-2000:]
    assert expected in lines[0], lines[0]
    assert _tree(tmp_path) == before, "a refused run left files behind"
