"""The `gocoder` command line: the only module that imports Typer.

Over ~400 lines on purpose: one thin wrapper per command, all of them here.

Each subcommand is a thin wrapper: parse options, build the config, call one library function,
render the result. Results go to stdout, progress and logs to stderr. Exit 0 success, 1 a negative
verdict (code that does not parse), 2 usage or input error (a GocoderError, one line).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gocoder import GocoderError, __version__
from gocoder.config import Config, load_config, to_dict, to_toml
from gocoder.eval.benchmarks import HARNESSES

app = typer.Typer(
    name="gocoder",
    help="Train small hierarchical-recursive models that write Go, checked by Go's own parser.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

# progress and logs; rich styles only on a TTY. soft_wrap: a log line stays one line
# whatever the width (rich wraps at 80 columns where stderr is not a terminal, which broke
# every long line of a CI log in two)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file; its keys override the defaults."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", help="Override one config key, e.g. --set validate.servers=4 (repeatable)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DecontaminateOpt = Annotated[
    Path | None,
    typer.Option("--decontaminate", help="Blocklist of hashes, or a benchmark .jsonl to hash."),
]


def _config(path: Path | None, sets: list[str] | None, section: str = "", **flags: Any) -> Config:
    """The one way from options to a config: defaults, the TOML file, the --set overrides, then the
    command's own flags as overrides of its section (a flag left out is None and changes nothing; a
    flag given wins over --set). The process-wide gocheck client takes the result's [validate]."""
    from gocoder.check.validate import use_config

    given = [f"{section}.{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}"
             for k, v in flags.items() if v is not None]
    cfg = load_config(path, [*(sets or ()), *given])
    use_config(cfg.validate)
    return cfg


def _version(value: bool) -> None:
    if value:
        print(f"gocoder {__version__}")
        raise typer.Exit()


# torch's CPU threads when neither --threads, GOCODER_THREADS nor OMP_NUM_THREADS says
# otherwise. torch's own default is one per core, and its threads spin while they wait: on a
# 2-core machine shared with other work that made `gocoder generate` 3-6x slower than one
# thread (README, Configuration).
DEFAULT_THREADS = 1


def _threads(n: int | None) -> None:
    """Set torch's CPU threads for this command: through the environment, read when
    torch is first imported (the commands import it lazily, `check` never does),
    and directly if it already is."""
    if n is not None and n < 1:
        raise GocoderError(f"--threads {n} (or GOCODER_THREADS): expected 1 or more")
    if n is None and os.environ.get("OMP_NUM_THREADS"):  # torchrun sets it per process: keep it
        return
    n = n or DEFAULT_THREADS
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            envvar="GOCODER_THREADS",
            show_envvar=True,
            help=f"torch CPU threads (default: OMP_NUM_THREADS if set, else {DEFAULT_THREADS}).",
        ),
    ] = None,
) -> None:
    """Train small hierarchical-recursive models that write Go, checked by Go's own parser."""
    _threads(threads)


@config_app.command("show")
def config_show(config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Print the resolved config: defaults, then the TOML file, then --set overrides.

    Example: gocoder config show --set validate.servers=4
    """
    cfg = _config(config, set_)
    print(
        json.dumps(to_dict(cfg), indent=2) if as_json else to_toml(cfg),
        end="" if not as_json else "\n",
    )


@app.command("check")
def check_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Go files or folders to check (folders are walked).")
    ],
    typecheck: Annotated[
        bool,
        typer.Option(
            "--typecheck", help="Also type-check each package (standard-library imports resolved)."
        ),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="Output: text, json, github (Actions annotations) or sarif."
        ),
    ] = "text",
    gofmt: Annotated[
        bool, typer.Option("--gofmt", help="Also report files that gofmt would change.")
    ] = False,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="Read files as: file, or auto to accept fragments (declarations, statements).",
        ),
    ] = "file",
    all_dirs: Annotated[
        bool, typer.Option("--all", help="Also walk vendor/, testdata/ and hidden folders.")
    ] = False,
    all_errors: Annotated[
        bool,
        typer.Option(
            "--all-errors", help="Every syntax error, not the first of each line (max 10 a file)."
        ),
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Check Go files with Go's own parser; exit 0 clean, 1 findings, 2 usage error.

    Example: gocoder check generated/ --typecheck --format github
    """
    from gocoder.check.files import check_paths, render
    from gocoder.check.validate import Checker

    if fmt not in ("text", "json", "github", "sarif"):
        raise GocoderError(f"--format {fmt!r}: expected text, json, github or sarif")
    if kind not in ("file", "auto", "decls", "stmts"):
        raise GocoderError(f"--kind {kind!r}: expected file, auto, decls or stmts")
    cfg = _config(config, set_)
    checker = Checker(cfg.validate)
    try:
        report = check_paths(
            paths,
            checker,
            typecheck=typecheck,
            gofmt=gofmt,
            kind=kind,
            all_dirs=all_dirs,
            all_errors=all_errors,
        )
    finally:
        checker.close()
    sys.stdout.write(render(report, fmt))  # type: ignore[arg-type]
    n = len(report.findings)
    nf = len(report.files)
    err.print(
        f"{nf} file{'s' if nf != 1 else ''} checked, {n} finding{'s' if n != 1 else ''}",
        highlight=False,
    )
    raise typer.Exit(1 if n else 0)


@app.command("collect")
def collect_cmd(
    repo: Annotated[
        Path | None, typer.Option("--repo", help="A local git clone: one record per merged PR.")
    ] = None,
    github: Annotated[
        str | None,
        typer.Option("--github", help="OWNER/NAME on GitHub (token from $GITHUB_TOKEN)."),
    ] = None,
    go_src: Annotated[
        Path | None,
        typer.Option("--go-src", help="A Go source tree: one record per documented func."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output JSONL (default: data/raw/SOURCE-REPO.jsonl)."),
    ] = None,
    all_commits: Annotated[
        bool, typer.Option("--all-commits", help="--repo: also plain (non-PR) mainline commits.")
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Worker threads.")] = None,
    decontaminate: DecontaminateOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collect raw PR records from a git clone, GitHub, or a Go source tree; rerun to resume.

    Example: gocoder collect --repo ../cobra --workers 2 --decontaminate ../shared/bench/mbxp_go.jsonl
    """
    from gocoder.collect.runner import collect

    cfg = _config(config, set_)
    res = collect(
        cfg.collect, repo=repo, github=github, go_src=go_src, out=out, all_commits=all_commits,
        workers=workers, decontaminate=decontaminate, console=err, vcfg=cfg.validate,
    )
    _print_collected(res, "units", as_json)


def _print_collected(res, unit: str, as_json: bool) -> None:
    """The summary of collect and synth (same engine, same result)."""
    if as_json:
        print(json.dumps(res.to_dict()))
        return
    print(f"{res.written} new records in {res.out} ({res.duplicates} duplicates, "
          f"{res.units} {unit} done, {res.resumed} done before)")
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {reason}: {n}")


@app.command("synth")
def synth_cmd(
    go_src: Annotated[
        Path, typer.Option("--go-src", help="A Go source tree whose functions get planted bugs.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output JSONL, appended to (rerun to resume).")
    ] = Path("data/raw/synth.jsonl"),
    per_func: Annotated[
        int | None, typer.Option("--per-func", help="Mutants per function.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the mutant choice and phrasing.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Files mutated at once.")
    ] = None,
    decontaminate: DecontaminateOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Plant bugs (seven kinds) in real Go functions: synthetic fix records; rerun to resume.

    Example: gocoder synth --go-src "$(go env GOROOT)/src" --out data/raw/synth.jsonl --per-func 2 --seed 1
    """
    from gocoder.collect.synth import synth

    cfg = _config(config, set_, "synth", per_func=per_func, seed=seed)
    res = synth(
        cfg.collect,
        cfg.synth,
        go_src,
        out,
        workers=workers,
        decontaminate=decontaminate,
        console=err,
    )
    _print_collected(res, "files", as_json)


@app.command("synthfix")
def synthfix_cmd(
    synth: Annotated[
        Path, typer.Option("--synth", help="`gocoder synth` records (JSONL) of GOROOT/src.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The problems file (JSONL) to write.")],
    per_package: Annotated[
        int, typer.Option("--per-package", help="Problems kept per package at most.")
    ] = 20,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Sandbox runs at once.")] = 2,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build the fix benchmark: planted bugs of test-split GOROOT packages
    that the package's tests catch.

    The split is `[splits] shares`, as annotate and corpus build take it; score the file with
    `gocoder bench --format synth-fix`.

    Example: gocoder synthfix --synth synth-test.jsonl --out synthfix.jsonl --per-package 20
    """
    from gocoder.eval.synthfix import build

    cfg = _config(config, set_)
    counts = build(synth, out, shares=cfg.splits.shares, per_package=per_package, workers=workers)
    if as_json:
        print(json.dumps(dict(sorted(counts.items()))))
    else:
        print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


@app.command("annotate")
def annotate_cmd(
    input: Annotated[
        Path, typer.Option("--input", "-i", help="Raw records: a .jsonl file or a folder of them.")
    ] = Path("data/raw"),
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for train/valid/test.jsonl (default: annotate.out_dir)."
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            help="Shares of Go packages for train,valid,test, e.g. 0.9,0.05,0.05 "
            "(sets splits.shares, the one split of every stage).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn raw PR records into hierarchical plans (intent, targets, steps), split by Go package.

    Example: gocoder annotate --input data/raw/ --out data/hierarchical/ --split 0.9,0.05,0.05
    """
    from gocoder.collect.annotate import annotate
    from gocoder.splits import parse_shares

    cfg = _config(
        config, set_, "splits", shares=parse_shares(split, "--split") if split is not None else None
    )
    res = annotate(
        cfg.annotate, input, out, shares=cfg.splits.shares, vcfg=cfg.validate, console=err
    )
    if as_json:
        print(json.dumps(res.to_dict()))
        return
    splits = ", ".join(f"{n} {s}" for s, n in sorted(res.written.items())) or "none"
    print(f"{sum(res.written.values())} new records in {res.out_dir} ({splits}; "
          f"{res.resumed} done before, {res.duplicates} duplicates)")
    for reason, n in sorted(res.skipped.items()):
        print(f"  skipped {reason}: {n}")
    if res.split:
        print(
            f"  split by file (over annotate.max_plan_bytes): {res.split['records']} records into "
            f"{res.split['parts']} parts"
        )


@app.command("train-intents")
def train_intents_cmd(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Raw record JSONL files of repositories with prefixed titles."),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Weights JSON to write (annotate.intent_model)."),
    ] = None,
    held_out: Annotated[
        list[Path] | None,
        typer.Option("--held-out", help="Raw JSONL to score rules and model on (repeatable)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the intent classifier on conventional-commit prefixes
    (hidden), score it on held-out files.

    Example: gocoder train-intents data/raw/git-kratos.jsonl --held-out data/raw/git-gin.jsonl -o intents.json
    """
    from gocoder.check.validate import get_checker
    from gocoder.collect.intents_train import train_intents

    cfg = _config(config, set_)
    res = train_intents(inputs, out, get_checker(cfg.validate), held_out or [])
    if as_json:
        print(json.dumps(res))
        return
    print(f"trained on {res['train_records']} prefixed records, {res['features']} features"
          + (f"; wrote {out}" if out else ""))
    for path in held_out or []:
        r = res[str(path)]
        print(f"  {path}: {r['records']} prefixed records, intent accuracy rules {r['rules']:.3f}, "
              f"learned {r['learned']:.3f}")


@app.command("blocklist")
def blocklist_cmd(
    bench: Annotated[
        Path, typer.Argument(help="Benchmark JSONL with prompt/test fields (MBXP, HumanEval-X).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Blocklist file to write (one hash a line).")
    ],
) -> None:
    """Write the decontamination blocklist of a benchmark, for collect --decontaminate.

    Example: gocoder blocklist ../shared/bench/mbxp_go.jsonl -o data/mbxp.blocklist
    """
    from gocoder.collect.decontam import write_blocklist

    print(f"{write_blocklist(bench, out)} hashes in {out}")


tokenizer_app = typer.Typer(
    help="Train and evaluate the SentencePiece tokenizer.", no_args_is_help=True
)
app.add_typer(tokenizer_app, name="tokenizer")


@tokenizer_app.command("train")
def tokenizer_train(
    input: Annotated[
        Path | None,
        typer.Option(
            "--input", "-i", help="Hierarchical JSONL file or folder, serialized to text."
        ),
    ] = None,
    go_src: Annotated[
        Path | None,
        typer.Option("--go-src", help="A folder of .go files, each file one text (chunked)."),
    ] = None,
    text: Annotated[
        Path | None,
        typer.Option(
            "--text",
            help="Corpus text parts (corpus build): their train split, "
            "at most tokenizer.package_chars of a package.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Tokenizer folder to write (default: work/tokenizer)."),
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option("--vocab-size", help="Pieces in the vocabulary.")
    ] = None,
    model_type: Annotated[str | None, typer.Option("--model-type", help="bpe or unigram.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the tokenizer on serialized records and/or Go source; saves model, vocab and settings.

    Example: gocoder tokenizer train --input data/hierarchical/ --vocab-size 16000 --model-type bpe
    """
    from gocoder.training.tokenizer_run import train_from_config

    cfg = _config(config, set_, "tokenizer", vocab_size=vocab_size, model_type=model_type)
    meta = train_from_config(cfg.tokenizer, input, go_src, out, console=err, text=text)
    if as_json:
        print(json.dumps(meta))
        return
    s = meta["sample"]
    print(
        f"{meta['path']}: {meta['settings']['model_type']} "
        f"{meta['settings']['vocab_size']} pieces, "
        f"{s['texts']} texts ({s['chars']} chars) in {meta['train_seconds']} s, "
        f"sha256 {meta['hash'][:16]}"
    )


@tokenizer_app.command("eval")
def tokenizer_eval(
    corpus: Annotated[
        Path,
        typer.Option(
            "--corpus",
            help="Hierarchical JSONL file or folder, corpus text parts "
            "(their held-out splits), or a folder of .go.",
        ),
    ],
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", "-t", help="Tokenizer folder or .model (default: tokenizer.path)."
        ),
    ] = None,
    show: Annotated[
        int, typer.Option("--show", help="How many round-trip mismatches to print.")
    ] = 5,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Byte-exact round trip over a corpus, chars/token on Go, plans and descriptions, encode speed.

    Exit 1 if any text does not decode back to itself.
    Example: gocoder tokenizer eval --corpus "$(go env GOROOT)/src" --tokenizer tokenizer/
    """
    from gocoder.text.tokenizer import Tokenizer
    from gocoder.training.tokenizer_run import evaluate_tokenizer

    cfg = _config(config, set_)
    rep = evaluate_tokenizer(
        Tokenizer.load(tokenizer or cfg.tokenizer.path), corpus, show=show, console=err
    )
    if as_json:
        print(json.dumps(rep.to_dict(), ensure_ascii=False))
    else:
        cpt = ", ".join(f"{k} {v}" for k, v in rep.chars_per_token.items() if v is not None)
        print(f"{rep.items} texts, {rep.chars} chars, {rep.tokens} tokens; round trip: "
              f"{rep.items - rep.mismatches} exact, {rep.mismatches} mismatched")
        print(f"chars/token: {cpt}; encode {rep.encode_mb_per_s} MB/s")
        for ex in rep.examples:
            print(
                f"  mismatch {ex['item']} at char {ex['char']}: {ex['expected']!r} -> "
                f"{ex['decoded']!r}"
            )
    raise typer.Exit(1 if rep.mismatches else 0)


@app.command("shards")
def shards_cmd(
    input: Annotated[
        Path, typer.Option("--input", "-i", help="Hierarchical records: a .jsonl file or a folder.")
    ] = Path("data/hierarchical"),
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Shard folder (default: train.data).")
    ] = None,
    rollouts: Annotated[
        int | None,
        typer.Option(
            "--rollouts", help="Refinement drafts per record (judge + repair; shards.rollouts)."
        ),
    ] = None,
    max_len: Annotated[
        int | None,
        typer.Option(
            "--max-len", help="Store examples cut to this many tokens (0: whole; shards.max_len)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tokenize hierarchical records into training shards, with
    refinement rollouts checked by gocheck.

    Example: gocoder shards --input data/hierarchical/ --out data/shards --set train.tokenizer=tokenizer
    """
    from gocoder.progress import Progress
    from gocoder.text.tokenizer import Tokenizer
    from gocoder.training.data import build_shards

    cfg = _config(config, set_, "shards", rollouts=rollouts, max_len=max_len)
    tok = Tokenizer.load(cfg.train.tokenizer)
    dest = out or Path(cfg.train.data)
    with Progress(console=err) as bar:
        task = bar.add_task("shards", total=None)
        counts = build_shards(cfg.shards, input, tok, dest, progress=lambda n: bar.advance(task, n))
    print(
        json.dumps(counts) if as_json else f"{sum(counts.values())} examples in {dest} ({counts})"
    )


@app.command("relate")
def relate_cmd(
    input: Annotated[
        Path,
        typer.Option(
            "--input", "-i", help="Hierarchical records: a .jsonl file or a folder of them."
        ),
    ] = Path("data/hierarchical"),
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output: a .jsonl file, or a folder of files named as the input's."
        ),
    ] = Path("data/hierarchical-related"),
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Source tree the records' context.file paths are relative to "
            "(default: the Go distribution's GOROOT/src).",
        ),
    ] = None,
    k: Annotated[
        int,
        typer.Option(
            "--k", help="Declarations retrieved a record, kept best first while they fit."
        ),
    ] = 8,
    max_len: Annotated[
        int | None,
        typer.Option(
            "--max-len", help="Context of the model to train (default: model.max_seq_len)."
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", help="Tokenizer that measures the budget (default: train.tokenizer)."
        ),
    ] = None,
    decontaminate: Annotated[
        list[Path] | None,
        typer.Option(
            "--decontaminate",
            help="Blocklist or benchmark .jsonl whose code is never a neighbour; repeatable.",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add retrieved declarations of each record's own package
    (context.related) as inference adds them.

    The answer's own declarations are never among them, and the prompt stays within what inference
    fills (generate.max_new_tokens left of --max-len) with the whole example uncut. A rerun resumes.

    Example: gocoder relate -i data/hierarchical -o data/hierarchical-related --k 8 -c configs/go-26m.toml
    """
    from gocoder.progress import Progress
    from gocoder.text.tokenizer import Tokenizer
    from gocoder.training.related import relate

    cfg = _config(config, set_)
    if root is None:
        from gocoder.eval.synthfix import goroot_src

        root = goroot_src()
    tok = Tokenizer.load(tokenizer or cfg.train.tokenizer)
    drop, key = _decontamination(decontaminate)
    with Progress(console=err) as bar:
        task = bar.add_task("relate", total=None)
        res = relate(input, out, root, tok, k=k, max_len=max_len or cfg.model.max_seq_len,
                     max_new=cfg.generate.max_new_tokens, drop=drop, drop_key=key,
                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    d = res.to_dict()
    if as_json:
        print(json.dumps(d))
        return
    print(
        f"{res.records} records written to {out} ({res.resumed} done before): "
        f"{res.related} with neighbours, "
        f"{d['neighbours_mean']} a record ({d['neighbours_mean_related']} a related "
        "one); no source "
        f"{res.no_source}, over budget {res.over_budget}, other split key "
        f"{res.other_key}; {res.seconds} s"
    )


corpus_app = typer.Typer(
    help="Build the pretraining corpus of whole Go files and tokenize it.", no_args_is_help=True
)
app.add_typer(corpus_app, name="corpus")


def _stage_progress():
    """(progress callback, closer): a rich bar per stage on a TTY, a
    plain line each ~10% otherwise."""
    from rich.progress import Progress

    if not err.is_terminal:
        last: dict[str, int] = {}

        def plain(stage: str, done: int, total: int) -> None:
            step = max(1, total // 10)
            if done == total or done // step != last.get(stage, -1) // step:
                err.print(f"{stage}: {done}/{total}", highlight=False)
            last[stage] = done
        return plain, lambda: None
    bar = Progress(console=err)
    bar.start()
    tasks: dict[str, int] = {}

    def fancy(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)
    return fancy, bar.stop


@corpus_app.command("build")
def corpus_build_cmd(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: text/ parts and summary.json.")
    ] = Path("corpus"),
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Downloads and per-package scans (default: OUT/cache)."),
    ] = None,
    debian: Annotated[
        str,
        typer.Option(
            "--debian", help="'all' golang-*-dev packages, a file of package names, or 'none'."
        ),
    ] = "all",
    suites: Annotated[
        list[str] | None,
        typer.Option(
            "--debian-suite",
            help="Also read this Debian suite's packages (trixie, sid...), through an "
            "apt list of its own; repeatable. The system's apt sources are always read.",
        ),
    ] = None,
    mirror: Annotated[str, typer.Option("--debian-mirror", help="Mirror of --debian-suite.")] = (
        "http://deb.debian.org/debian"
    ),
    go: Annotated[
        bool, typer.Option("--go/--no-go", help="Include the Go distribution's GOROOT/src.")
    ] = True,
    unpacked: Annotated[
        Path | None,
        typer.Option(
            "--unpacked", help="Also read a folder of unpacked .debs (one folder a package)."
        ),
    ] = None,
    decontaminate: Annotated[
        list[Path] | None,
        typer.Option(
            "--decontaminate", help="Blocklist or benchmark .jsonl; repeatable, all apply at once."
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Packages scanned in parallel.")] = 2,
    part_mib: Annotated[
        float, typer.Option("--part-mib", help="Largest compressed text part, in MiB.")
    ] = 24,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", help="Estimate tokens with this tokenizer (a sample of files)."
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch, filter, deduplicate and decontaminate whole Go files into
    compressed text parts; resumable.

    Files are split train/valid/test by Go package on splits.shares, as annotate's records are.
    Example: gocoder corpus build -o /work/corpus --decontaminate ../shared/bench/mbxp_go.jsonl
    """
    from gocoder.collect.corpus import build
    from gocoder.collect.gosources import (
        AptSuite,
        DebianSource,
        GoRootSource,
        UnpackedSource,
        list_debian_packages,
    )

    cfg = _config(config, set_)
    cache = cache or out / "cache"
    sources = [GoRootSource()] if go else []
    if debian != "none":
        sources.append(DebianSource(list_debian_packages(debian), cache))
        for suite in suites or []:
            apt = AptSuite(suite, cache, mirror)
            apt.update()
            sources.append(DebianSource(list_debian_packages(debian, apt), cache, apt))
    if unpacked is not None:
        sources.append(UnpackedSource(unpacked))
    if not sources:
        raise GocoderError("--no-go with --debian none and no --unpacked: no source of Go files")
    tok = None
    if tokenizer is not None:
        from gocoder.text.tokenizer import Tokenizer

        tok = Tokenizer.load(tokenizer)
    progress, stop = _stage_progress()
    try:
        summary = build(
            sources,
            out,
            cache,
            decontaminate or [],
            workers=workers,
            part_mib=part_mib,
            progress=progress,
            tokenizer=tok,
            shares=cfg.splits.shares,
        )
    finally:
        stop()
    if as_json:
        print(json.dumps(summary))
        return
    print(
        f"kept {summary['kept']['files']} files, {summary['kept']['bytes']} bytes "
        f"of {summary['seen']['files']} files, {summary['seen']['bytes']} bytes; "
        f"{summary['parts']} parts in "
        f"{out / 'text'} ({summary['seconds']} s)"
    )
    for reason, d in summary["dropped"].items():
        print(f"  dropped {reason}: {d['files']} files, {d['bytes']} bytes")
    for split, d in summary["splits"].items():
        print(
            f"  {split}: {d.get('files', 0)} files, {d.get('bytes', 0)} bytes, "
            f"{d.get('packages', 0)} packages"
        )
    if "est_tokens" in summary:
        print(
            f"  ~{summary['est_tokens']['kept']} tokens kept "
            f"({summary['bytes_per_token']} bytes a token)"
        )
    if summary["fetch_failed"]:
        print(
            f"  not fetched: {len(summary['fetch_failed'])} packages "
            f"({', '.join(summary['fetch_failed'][:5])})"
        )


@corpus_app.command("functions")
def corpus_functions_cmd(
    text: Annotated[Path, typer.Option("--text", help="Corpus text parts (corpus build).")] = Path(
        "corpus/text"
    ),
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: text/ parts and summary.json.")
    ] = Path("corpus/functions"),
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Longest declaration kept, in bytes.")
    ] = 2048,
    as_json: JsonOpt = False,
) -> None:
    """The corpus's documented functions that type-check alone, each as a small
    `package main` file; resumable.

    A training stage of their own (tokenize them like the corpus) teaches what a benchmark problem
    asks: a doc comment and a signature, then a body that needs only the standard library.

    Example: gocoder corpus functions --text corpus/text -o corpus/functions
    """
    from gocoder.collect.functions import extract

    if max_bytes < 1:
        raise GocoderError(f"--max-bytes {max_bytes}: expected >= 1")
    progress, stop = _stage_progress()
    try:
        summary = extract(
            text, out, max_bytes=max_bytes, progress=lambda d, n: progress("functions", d, n)
        )
    finally:
        stop()
    if as_json:
        print(json.dumps(summary["total"]))
        return
    total = summary["total"]
    print(f"kept {total.get('kept train', 0)} train, {total.get('kept valid', 0)} valid and "
          f"{total.get('kept test', 0)} test functions in {out / 'text'}")
    for reason, n in total.items():
        if not reason.startswith("kept"):
            print(f"  dropped {reason}: {n}")


@corpus_app.command("select")
def corpus_select_cmd(
    text: Annotated[
        Path, typer.Option("--text", help="The corpus's text parts (`gocoder corpus build`).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: text/ parts and selection.json.")
    ],
    mb: Annotated[float, typer.Option("--mb", help="Train text to select, in MB (uncompressed).")],
    how: Annotated[str, typer.Option("--how", help="quality (best first) or random.")] = "quality",
    valid_mb: Annotated[
        float, typer.Option("--valid-mb", help="Held-out (valid) text kept beside, in MB.")
    ] = 8.0,
    per_package_mb: Annotated[
        float, typer.Option("--per-package-mb", help="At most this much of one package.")
    ] = 8.0,
    seed: Annotated[int, typer.Option("--seed", help="The random selection's seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Select the best Go of a corpus under a byte budget (what one transfer to a GPU carries).

    Files are scored from their syntax trees (documented declarations, control flow, no
    tag-and-table plumbing; gocoder/collect/quality.py) and taken best first, a package capped;
    --how random draws the same size.
    Example: gocoder corpus select --text corpus/text -o pack --mb 250
    """
    from gocoder.collect.quality import select

    summary = select(text, out, mb, how, valid_mb, per_package_mb, seed,
                     progress=lambda what, n: err.print(f"{what}: {n} files", highlight=False))
    if as_json:
        print(json.dumps(summary))
    else:
        print(
            f"{out}: {summary['train_files']} train files ({summary['train_bytes'] / 1e6:.1f} MB, "
            f"{summary['packages']} packages) and {summary['held_out_files']} "
            f"held-out files, by {how}"
        )


@corpus_app.command("tokenize")
def corpus_tokenize_cmd(
    text: Annotated[
        Path, typer.Option("--text", help="Folder of part-*.jsonl.xz text parts.")
    ] = Path("corpus/text"),
    tokenizer: Annotated[
        Path, typer.Option("--tokenizer", help="Tokenizer folder or .model file.")
    ] = Path("tokenizer"),
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Token folder: SPLIT/tokens.bin, meta.json.")
    ] = Path("corpus/tokens"),
    workers: Annotated[
        int, typer.Option("--workers", help="Encoding threads (-1: all cores).")
    ] = -1,
    max_package_tokens: Annotated[
        int,
        typer.Option("--max-package-tokens", help="Cap on one package's train tokens (0: none)."),
    ] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Encode the text parts into per-split token files, documents separated by eos; needs no Go.

    Example: gocoder corpus tokenize --text corpus/text --tokenizer tokenizer -o corpus/tokens --workers 16
    """
    from rich.progress import Progress

    from gocoder.collect.textparts import tokenize
    from gocoder.text.tokenizer import Tokenizer

    tok = Tokenizer.load(tokenizer)
    with Progress(console=err, disable=not err.is_terminal) as bar:
        task = bar.add_task("tokenize", total=None)
        if max_package_tokens < 0:
            raise GocoderError(f"--max-package-tokens {max_package_tokens}: expected >= 0")
        meta = tokenize(text, tok, out, workers=workers, progress=lambda n: bar.advance(task, n),
                        max_package_tokens=max_package_tokens)
    if as_json:
        print(json.dumps({k: v for k, v in meta.items() if k not in ("sources", "capped")}))
    else:
        sp = meta["splits"]
        print("; ".join(f"{k} {v['docs']} docs, {v['tokens']} tokens" for k, v in sp.items())
              + f" ({meta['dtype']}) in {out}")


@app.command("export")
def export_cmd(
    checkpoint: Annotated[
        Path, typer.Argument(help="A run folder (its latest checkpoint) or a checkpoint folder.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the exported model (replaced whole).")
    ],
    dtype: Annotated[
        str, typer.Option("--dtype", help="Weight dtype: bfloat16, float16 or float32.")
    ] = "bfloat16",
    raw: Annotated[
        bool, typer.Option("--raw", help="Export the raw weights instead of the EMA.")
    ] = False,
    quantize: Annotated[
        str,
        typer.Option(
            "--quantize",
            help="none, int8, int6 or int4: matrices as such, bit-packed, with a bf16 "
            "scale per group.",
        ),
    ] = "none",
    group: Annotated[
        int,
        typer.Option(
            "--group",
            help="Input columns per scale (0: 128 for int8/int6, 64 for int4, or the QAT run's).",
        ),
    ] = 0,
    embed_bits: Annotated[
        int | None,
        typer.Option(
            "--embed-bits",
            help="Bits of the embedding / tied head: 8, 6, 4, 0 as the matrices (default 8).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a checkpoint for inference: EMA weights in bf16 or int8/int6/int4, config,
    tokenizer; no optimizer state.

    Example: gocoder export work/default/run -o models/default --quantize int6
    """
    from gocoder.model.checkpoint import export_model

    dest = export_model(
        checkpoint,
        out,
        dtype=dtype,
        use_ema=not raw,
        quantize=quantize,
        group=group,
        embed_bits=embed_bits,
    )
    size = (dest / "model.safetensors").stat().st_size
    print(json.dumps({"out": str(dest), "bytes": size}) if as_json
          else f"{dest}: model.safetensors {size / 1e6:.1f} MB")


# what `gocoder generate --json` prints of the loop's Result, with or without --context's change
_RESULT_KEYS = ("code", "plan", "iterations", "syntax_ok", "type_ok", "passed", "first_try_ok",
                "trace")


@app.command("generate")
def generate_cmd(
    pr_desc: Annotated[
        str, typer.Option("--pr-desc", help="The PR description: what the change must do.")
    ],
    context: Annotated[
        Path | None,
        typer.Option(
            "--context", help="The Go file the change is made in (its text is the context)."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Checkpoint or run folder (default: models/default)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option("--samples", help="Candidates per round (tree: roots).")
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="best-of or tree.")] = None,
    max_iters: Annotated[
        int | None, typer.Option("--max-iters", help="Refinement rounds at most.")
    ] = None,
    typecheck: Annotated[
        bool, typer.Option("--typecheck", help="Also judge candidates with go/types.")
    ] = False,
    temperature: Annotated[
        float | None,
        typer.Option(
            "--temperature", help="Sampling temperature (one candidate a round is greedy)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Sampling seed: the same seed, the same code.")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu or cuda.")] = None,
    tests: Annotated[
        Path | None,
        typer.Option(
            "--tests", help="The package's tests (folder or _test.go) judge the candidates."
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write/--diff", help="With --context: write the change into FILE, or print its diff."
        ),
    ] = False,
    repo: Annotated[
        Path | None,
        typer.Option(
            "--repo",
            help="Repository whose best-matching declarations go into the prompt "
            "(default: the git repository holding --context, or the current folder).",
        ),
    ] = None,
    no_repo: Annotated[
        bool, typer.Option("--no-repo", help="Put no repository declarations into the prompt.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write Go for a PR description: plan, code, check, refine; the code (or, with --context, the
    change to the file as a unified diff) on stdout, the rest on stderr. The code comes gofmt'ed
    with its imports fixed; the declarations of the repository (`gocoder index`) that best match the
    description are in the prompt.

    Exit 0 the code passes its checks, 1 it does not parse, cannot go into the file, fails
    the tests or (with --typecheck) has type errors, 2 usage or environment (an empty
    --pr-desc, --device cuda without CUDA).
    Example: gocoder generate --pr-desc "Fix off-by-one in Sum" --context sum.go --tests . --write
    """
    from gocoder.inference.generate import generate_for_pr

    cfg = _config(config, set_, "generate", samples=samples, search=search, max_iters=max_iters,
                  temperature=temperature, seed=seed, device=device, typecheck=typecheck or None)
    gcfg = cfg.generate
    _device(gcfg.device, "--device")
    if repo is not None and not repo.is_dir():
        raise GocoderError(f"--repo {repo}: not a folder")
    if repo is None and not no_repo:
        from gocoder.inference.retrieve import repo_root

        repo = repo_root(context if context is not None else Path.cwd())
    repo = None if no_repo else repo
    if context is not None:
        _generate_change(
            gcfg, pr_desc, context, tests, checkpoint, write, as_json, repo, cfg.retrieve
        )
        return
    if tests is not None or write:
        raise GocoderError(
            "--tests and --write need --context FILE (the file the change is made in)"
        )
    res = generate_for_pr(gcfg, pr_desc, context, checkpoint, repo=repo, progress=_index_progress(),
                          retrieval=cfg.retrieve)
    if as_json:
        print(json.dumps({k: getattr(res, k) for k in _RESULT_KEYS}))
    else:
        for s in res.plan:
            err.print(
                f"plan: {s['intent']} {s['target'] or '-'}  {s['description']}",
                highlight=False,
                markup=False,
            )
        out = Console()
        if out.is_terminal:
            from rich.syntax import Syntax

            out.print(Syntax(res.code, "go"))
        else:
            sys.stdout.write(
                res.code if res.code.endswith("\n") or not res.code else res.code + "\n"
            )
        verdict = "parses" if res.syntax_ok else "does not parse"
        types = "" if res.type_ok is None else (", type-checks" if res.type_ok else ", type errors")
        err.print(
            f"{verdict}{types}; {res.iterations} iteration{'s' if res.iterations != 1 else ''}",
            highlight=False,
            markup=False,
        )
    raise typer.Exit(0 if res.syntax_ok and res.type_ok is not False else 1)


def _decontamination(lists: list[Path] | None):
    """(drop, key) for retrieval's index: drop(text) is True for code whose hashes
    are on one of the lists (blocklists or benchmark .jsonl files), key names the
    lists; (None, "") without lists."""
    if not lists:
        return None, ""
    import hashlib

    from gocoder.collect.decontam import code_hashes, load_blocklist

    block = set().union(*(load_blocklist(p) for p in lists))

    def drop(text: str) -> bool:
        return bool(code_hashes(text) & block)

    return drop, hashlib.sha256("\n".join(sorted(block)).encode()).hexdigest()[:16]


def _index_progress(what: str = "read"):
    """A progress callback for indexing a repository: a line on stderr every
    chunk of files read (embedded)."""
    return lambda done, total: err.print(
        f"index: {done}/{total} files {what}", highlight=False, markup=False
    )


def _generate_change(cfg, pr_desc: str, context: Path, tests: Path | None, checkpoint, write: bool,
                     as_json: bool, repo: Path | None = None, retrieval: Any = None) -> None:
    from gocoder.inference.patch import generate_change

    ch = generate_change(
        cfg,
        pr_desc,
        context,
        tests,
        checkpoint,
        repo=repo,
        progress=_index_progress(),
        retrieval=retrieval,
    )
    v = ch.tests
    ok = ch.result.syntax_ok and not ch.error and (v is None or v.status == "ok")
    if as_json:
        print(
            json.dumps(
                {
                    **{k: getattr(ch.result, k) for k in _RESULT_KEYS},
                    "diff": ch.diff,
                    "error": ch.error,
                    "tests": None if v is None else v.__dict__,
                }
            )
        )
    elif ch.error:
        err.print(
            f"{context}: the answer cannot go into the file: {ch.error}",
            highlight=False,
            markup=False,
        )
    elif write and ch.after != ch.before:
        context.write_text(ch.after, encoding="utf-8")
        err.print(f"wrote {context}", highlight=False, markup=False)
    elif not write:
        sys.stdout.write(ch.diff)
    if v is not None and not as_json:
        err.print(
            f"tests: {len(v.passed)} of {len(v.passed) + len(v.failed)} pass ({v.status})"
            + (f"; passing: {', '.join(v.passed)}" if v.passed else "")
            + (f"; failing: {', '.join(v.failed)}" if v.failed else ""),
            highlight=False,
            markup=False,
        )
    raise typer.Exit(0 if ok else 1)


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="Checkpoint or run folder to evaluate.")
    ],
    data: Annotated[
        Path, typer.Option("--data", help="Hierarchical records (JSONL), e.g. its test.jsonl.")
    ],
    limit: Annotated[
        int | None, typer.Option("--limit", help="Evaluate the first N records only.")
    ] = None,
    max_iters: Annotated[
        int | None, typer.Option("--max-iters", help="Refinement rounds at most.")
    ] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="Candidates per round.")] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            "--against", help="A second checkpoint: run both on the same records (arena)."
        ),
    ] = None,
    promote: Annotated[
        bool,
        typer.Option(
            "--promote", help="Copy the arena's winner to --best when it wins by --margin."
        ),
    ] = False,
    margin: Annotated[
        float, typer.Option("--margin", help="Win rate above 0.5 needed to promote (0 to 0.5).")
    ] = 0.02,
    best: Annotated[
        Path, typer.Option("--best", help="The best-checkpoint slot --promote writes.")
    ] = Path("work/best"),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Per-item JSONL (resumable; default under work/eval/)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a checkpoint on held-out records: exact match, AST
    similarity, validity, plan scores.

    Example: gocoder eval --checkpoint work/tiny --data data/hierarchical/test.jsonl --limit 50 --against work/best
    """
    from gocoder.eval.evaluate import SUMMARY, run_eval
    from gocoder.progress import Progress

    cfg = _config(config, set_, "generate", max_iters=max_iters, samples=samples)
    _device(cfg.generate.device, "generate.device")
    with Progress(console=err) as bar:
        task = bar.add_task("eval", total=None)
        rep = run_eval(
            cfg.generate,
            checkpoint,
            data,
            out=out,
            limit=limit,
            against=against,
            best=best if promote else None,
            margin=margin,
            progress=lambda n: bar.advance(task, n),
        )
    if as_json:
        print(json.dumps(rep))
        return
    for name, s in (("", rep["summary"]), ("against ", rep.get("against_summary"))):
        if s:
            print(f"{name}{s['items']} items ({s['out']}): " + ", ".join(
                f"{k} {s[k]:.3f}" for k in SUMMARY if s[k] is not None))
    if "arena" in rep:
        a = rep["arena"]
        print(
            f"arena: {a['wins']} wins, {a['losses']} losses, {a['ties']} ties; win "
            f"rate {a['win_rate']}"
        )
        if rep["promoted"]:
            print(f"promoted to {rep['promoted']}")


@app.command("train")
def train_cmd(
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the latest checkpoint in train.out.")
    ] = False,
    stop_after: Annotated[
        int | None,
        typer.Option("--stop-after", help="End this run after N optimizer steps (checkpointed)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the model on tokenized shards; checkpoints and metrics.jsonl go to train.out.

    Under torchrun with --set train.ddp=true the same command trains on N GPUs. A SIGTERM ends the
    step under way, checkpoints it and exits 143 (--resume goes on from there).
    Example: gocoder train --config configs/tiny.toml --set train.steps=50
    """
    from gocoder.training.train import train

    cfg = _config(config, set_)
    _device(cfg.train.device, "train.device")
    last = train(cfg, resume=resume, stop_after=stop_after, progress=True)
    if as_json:
        print(json.dumps(last))
    elif last:
        print(f"step {last['step']}: loss {last['loss']:.4f} (plan {last['plan_loss']:.4f}, "
              f"code {last['code_loss']:.4f}, controller {last['ctrl_loss']:.4f})")
    # stopped, not finished: a script must not read it as done (128 + SIGTERM's 15)
    if last.get("signal"):
        err.print(
            f"stopped by {last['signal']} at step {last.get('step')}, checkpointed in "
            f"{cfg.train.out}: "
            "gocoder train --resume goes on",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(143)


@app.command("golf")
def golf_cmd(
    tokens: Annotated[
        Path,
        typer.Option(
            "--tokens",
            help="Pretraining tokens (`gocoder corpus tokenize`) "
            "with a valid split of held-out packages.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder: run/, model/ and golf.json.")
    ],
    seconds: Annotated[
        float | None,
        typer.Option("--seconds", help="Wall-time budget of training (train.time_limit_s)."),
    ] = None,
    quantize: Annotated[
        str,
        typer.Option(
            "--quantize",
            help="The export scored: none, int8 (or a lower width gocoder export knows).",
        ),
    ] = "int8",
    max_mb: Annotated[
        float, typer.Option("--max-mb", help="Largest model.safetensors allowed, in MB.")
    ] = 32.0,
    eval_tokens: Annotated[int, typer.Option("--eval-tokens", help="Held-out tokens scored.")] = 4
    << 20,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model from scratch for a fixed wall time, export it under a size
    cap, score bits/byte held out.

    The score is bits per byte of the held-out packages' text under the exported (quantized) model,
    so tokenizers and widths compare fairly (gocoder/training/golf.py).
    Example: gocoder golf -c configs/golf.toml --tokens corpus/tokens -o work/golf/base --seconds 600
    """
    from gocoder.training.golf import golf

    cfg = _config(config, set_, "train", time_limit_s=seconds)
    _device(cfg.train.device, "train.device")
    rec = golf(
        cfg, tokens, out, quantize=quantize, max_mb=max_mb, eval_tokens=eval_tokens, progress=True
    )
    if as_json:
        print(json.dumps(rec))
    else:
        print(f"{out}: {rec['bits_per_byte']:.4f} bits/byte held out ({rec['quantize']}, "
              f"{rec['model_bytes'] / 1e6:.1f} MB, {rec['steps']} steps in {rec['train_s']} s)")


@app.command("report")
def report_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="Run folder written by gocoder train (holds metrics.jsonl).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for the PNGs and report.md (default: RUN_DIR/report)."
        ),
    ] = None,
    eval_file: Annotated[
        Path | None,
        typer.Option(
            "--eval", help="Per-item results of gocoder eval (default: RUN_DIR/eval.jsonl)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Plot a training run (losses, syntax-valid rate, halting, refinement) and write report.md.

    Example: gocoder report work/tiny --out work/tiny/report
    """
    from gocoder.eval.report import build_report

    rep = build_report(run_dir, out, eval_file)
    if as_json:
        print(
            json.dumps(
                {
                    "report": str(rep.markdown),
                    "images": [str(p) for p in rep.images],
                    "notes": rep.notes,
                }
            )
        )
        return
    print(f"{rep.markdown} ({len(rep.images)} plots: {', '.join(p.name for p in rep.images)})")
    for n in rep.notes:
        err.print(f"note: {n}", highlight=False, markup=False)


@app.command("index")
def index_cmd(
    path: Annotated[
        Path, typer.Argument(help="Repository or corpus folder whose Go declarations are indexed.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Index file (default: under ~/.cache/gocoder/index)."),
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="Also print the best matches for TEXT.")
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Matches printed with --query.")] = 5,
    method: Annotated[
        str | None,
        typer.Option(
            "--method",
            help="Ranking: bm25, embed (the model's own vectors, stored in the "
            "index) or hybrid (both fused); default retrieve.method.",
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Model that embeds with --method embed or hybrid (default: "
            "the shipped model; it must be the model that generates).",
        ),
    ] = None,
    decontaminate: Annotated[
        list[Path] | None,
        typer.Option(
            "--decontaminate",
            help="Blocklist or benchmark .jsonl whose code stays out of the index; "
            "repeatable, all apply at once.",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Index a folder's top-level Go declarations for retrieval (BM25, or the model's embeddings); a
    rerun re-reads (and re-embeds) only changed files.

    Example: gocoder index . --query "parse a duration from a config string" --method hybrid
    """
    from gocoder.inference.retrieve import build_index, embedder_for

    rcfg = _config(config, set_, "retrieve", method=method).retrieve
    drop, key = _decontamination(decontaminate)
    gen = None
    if rcfg.method != "bm25":
        from gocoder.inference.generate import Generator

        gen = Generator.load(checkpoint)
    emb = embedder_for(rcfg, gen)
    idx, st = build_index(
        path,
        out,
        progress=_index_progress(),
        drop=drop,
        drop_key=key,
        embedder=emb,
        method=rcfg.method,
        embed_progress=_index_progress("embedded"),
    )
    hits = idx.search(query, k=k) if query else []
    if as_json:
        print(
            json.dumps(
                {
                    "index": st.path,
                    "method": rcfg.method,
                    "files": st.files,
                    "decls": st.decls,
                    "reread": len(st.reread),
                    "embedded": len(st.embedded),
                    "removed": len(st.removed),
                    "seconds": st.seconds,
                    "embed_seconds": st.embed_seconds,
                    "hits": [h.__dict__ for h in hits],
                }
            )
        )
        return
    print(f"{st.path}: {st.decls} declarations in {st.files} files ({len(st.reread)} read, "
          f"{len(st.embedded)} embedded, {len(st.removed)} removed) in {st.seconds} s")
    for h in hits:
        print(f"{h.score:8.3f}  {h.path}  {h.kind} {h.name}")


prbench_app = typer.Typer(
    help="A benchmark of real commits from local git clones (docs/PRBENCH.md).",
    no_args_is_help=True,
)
app.add_typer(prbench_app, name="prbench")


@prbench_app.command("build")
def prbench_build_cmd(
    repo: Annotated[
        list[Path], typer.Option("--repo", help="A local git clone to mine; repeatable.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Problems JSONL (a .manifest.json beside it).")
    ] = Path("work/prbench/prbench.jsonl"),
    per_repo: Annotated[
        int, typer.Option("--per-repo", help="Problems kept of each repository at most.")
    ] = 40,
    as_json: JsonOpt = False,
) -> None:
    """Mine problems from git clones: a commit's description, its file at the
    parent, its declarations as answer.

    Example: gocoder prbench build --repo clones/deque --repo clones/pond --out work/prbench/prbench.jsonl
    """
    from gocoder.eval.prmine import build_prbench

    res = build_prbench(
        repo, out, per_repo, log=lambda s: err.print(s, highlight=False, markup=False)
    )
    print(
        json.dumps(res)
        if as_json
        else f"{out}: {res['problems']} problems from {len(res['repos'])} repositories"
    )


@prbench_app.command("run")
def prbench_run_cmd(
    file: Annotated[Path, typer.Option("--file", "-f", help="Problems JSONL (prbench build).")],
    repos_dir: Annotated[
        Path, typer.Option("--repos-dir", help="Folder holding the clones, one per repository.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for results.jsonl and summary.json.")
    ] = Path("work/prbench/plain"),
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="Model folder to generate with (default: the shipped model)."
        ),
    ] = None,
    retrieve: Annotated[
        bool,
        typer.Option(
            "--retrieve", help="Put the repository's best-matching declarations into each prompt."
        ),
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N problems of the file.")
    ] = None,
    tests: Annotated[
        bool,
        typer.Option(
            "--tests/--no-tests",
            help="Run the commit's own Test functions on each answer, in the "
            "sandbox, where they pass at the commit (tests_pass).",
        ),
    ] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer the PR benchmark with a model and score it: parses, type-checks, edit
    similarity, exact, tests pass.

    Example: gocoder prbench run -f work/prbench/prbench.jsonl --repos-dir clones --retrieve -o work/prbench/retrieve
    """
    from gocoder.eval.prbench import run_prbench

    cfg = _config(config, set_, "generate")
    _device(cfg.generate.device, "generate.device")
    res = run_prbench(
        file,
        repos_dir,
        out,
        generate=cfg.generate,
        checkpoint=checkpoint,
        retrieve=retrieve,
        limit=limit,
        tests=tests,
        log=lambda s: err.print(s, highlight=False, markup=False),
        retrieval=cfg.retrieve,
    )
    if as_json:
        print(json.dumps(res))
        return
    print(
        f"{res['problems']} problems (retrieve {res['retrieve']}): parses "
        f"{res['parses']}, type-checks "
        f"{res['typechecks']} of {res['typecheck_problems']} (the real change "
        f"{res['reference_typechecks']}), "
        f"edit similarity {res['edit_similarity']}, exact {res['exact']}, tests pass "
        f"{res['tests_pass']} of "
        f"{res['tests_problems']} (the real change {res['reference_tests_pass']})"
    )


_FIXABLE = ", ".join(n for n, h in HARNESSES.items() if "fix" in h.tasks)  # formats with a fix task


@app.command("bench")
def bench_cmd(
    file: Annotated[
        Path,
        typer.Option("--file", "-f", help="Benchmark JSONL (e.g. ../shared/bench/mbxp_go.jsonl)."),
    ],
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(HARNESSES)}.")],
    task: Annotated[
        str, typer.Option("--task", help=f"synthesize, or fix ({_FIXABLE}).")
    ] = "synthesize",
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode", help="record (plan, then code) or complete (continue the prompt file)."
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="Model folder to generate with (default: the shipped model)."
        ),
    ] = None,
    completions: Annotated[
        Path | None,
        typer.Option(
            "--completions", help="JSONL of task_id + completion to score instead of a model."
        ),
    ] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            "--samples", "-n", help="Sampled answers per problem for pass@k (n; 1: greedy only)."
        ),
    ] = None,
    k: Annotated[
        str | None, typer.Option("--k", help="pass@k to report, comma-separated, e.g. 1,10.")
    ] = None,
    refine_iters: Annotated[
        int | None,
        typer.Option(
            "--refine-iters", help="Also score the loop on the visible checks, K rounds at most."
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Temperature of the sampled answers.")
    ] = None,
    top_p: Annotated[
        float | None, typer.Option("--top-p", help="Nucleus of the sampled answers (1: off).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampled answers.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Problems per engine call.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu or cuda (the model's answers).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Only the first N problems of the file.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for results.jsonl and summary.json (--answers-only: a JSONL file).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-w", help="Problems run at once.")
    ] = None,
    answers_only: Annotated[
        bool,
        typer.Option(
            "--answers-only",
            help="Only write the model's answers to the JSONL --out, as they come.",
        ),
    ] = False,
    retrieve: Annotated[
        Path | None,
        typer.Option(
            "--retrieve",
            help="Folder or index file (gocoder index) whose best-matching "
            "declarations go into each problem's prompt (mode record).",
        ),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a Go benchmark in the sandbox: pass@1 greedy, pass@k sampled,
    pass@1 with the loop; rerun resumes.

    With --answers-only, write the answers to score later with
    --completions (where Go is), resuming too.

    Example: gocoder bench --file ../shared/bench/mbxp_go.jsonl --format mbxp --samples 10 --refine-iters 3
    """
    from gocoder.eval.benchrun import bench

    try:
        ks = None if k is None else [int(x) for x in k.split(",")]
    except ValueError:
        raise GocoderError(f"--k {k!r}: expected comma-separated integers, e.g. 1,10") from None
    sets = list(set_ or []) + (
        [f"generate.device={json.dumps(device)}"] if device is not None else []
    )
    cfg = _config(
        config,
        sets,
        "bench",
        samples=samples,
        refine_iters=refine_iters,
        workers=workers,
        ks=ks,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        batch_size=batch_size,
        mode=mode,
    )
    if completions is None:
        _device(cfg.generate.device, "generate.device")
    if answers_only:
        from gocoder.eval.answers import answers

        if out is None or completions is not None:
            raise GocoderError(
                "--answers-only: give --out FILE.jsonl (and a model, not --completions)"
            )
        res = answers(cfg.bench, file, fmt, out, task=task, checkpoint=checkpoint, limit=limit,
                      generate=cfg.generate, console=err)
        print(json.dumps(res) if as_json else f"{res['answers']} answers written to {out} "
              f"({res['generate_seconds']} s generating, {res['seconds']} s in all)")
        return
    res = bench(
        cfg.bench,
        file,
        fmt,
        task=task,
        checkpoint=checkpoint,
        completions=completions,
        limit=limit,
        out=out,
        generate=cfg.generate,
        console=err,
        retrieve=retrieve,
        retrieval=cfg.retrieve,
    )
    if as_json:
        print(json.dumps(res))
        return
    print(f"{res['scored']} problems scored, {len(res['excluded'])} excluded")
    names = {"given": "completions file", "greedy": "greedy, no feedback", "sampled": "sampled",
             "loop": "loop on the visible checks, hidden checks score"}
    for key, name in names.items():
        sec = res.get(key)
        if sec is None:
            continue
        passk = (
            ", ".join(f"{n} {v:.4f}" for n, v in sec["pass@k"].items())
            or "no pass@k (too few samples)"
        )
        budget = {
            "sampled": f"n={sec.get('n')}, T={sec.get('temperature')}, top-p={sec.get('top_p')}",
            "loop": f"{sec.get('candidates_mean')} candidates and "
            f"{sec.get('rounds_mean')} rounds a problem "
            f"(max {sec.get('rounds_max')}), "
            f"{sec.get('seconds_per_problem')} s a problem",
            "greedy": "1 candidate a problem",
        }.get(key, f"{sec['samples']} samples")
        print(
            f"{name}: {passk} ({budget}); "
            + ", ".join(f"{s} {n}" for s, n in sec["status_counts"].items())
            + f"; {sec['parsed_raw']} of {sec['samples']} parse as written, "
            f"{sec['parsed']} as scored "
            "(a cut answer closed)"
        )
    if res["excluded"]:
        print("excluded: " + "; ".join(f"{e['id']} ({e['reason']})" for e in res["excluded"][:20]))


def _device(name: str | None, option: str) -> None:
    """A GocoderError naming the option when torch here cannot use the device (a
    CPU-only build asked for cuda)."""
    if name is None or name in ("auto", "cpu"):
        return
    import torch

    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise GocoderError(
            f"{option} {name}: no CUDA device here (torch {torch.__version__}, "
            f"{'CPU-only build' if torch.version.cuda is None else 'no GPU visible'})"
        )
    if kind == "cuda" and ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
        raise GocoderError(f"{option} {name}: only {torch.cuda.device_count()} CUDA devices here")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise GocoderError(f"{option} {name}: MPS is not available here")


def _expected_failure(e: BaseException) -> str | None:
    """One line for the failures of the libraries the commands use on
    bad input, None for a real bug.

    GocoderError is ours; the rest are errors the libraries raise on a missing, unreadable,
    undecodable or corrupt file, which the library modules do not all wrap themselves.
    """
    if isinstance(e, GocoderError):
        return str(e)
    # an optional part of the install (fsio.INSTALLS) is missing
    if isinstance(e, ModuleNotFoundError):
        from gocoder.fsio import missing_dependency

        names = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
        return missing_dependency(
            e, " ".join(["gocoder", *[a for a in sys.argv[1:] if a in names][:1]])
        )
    if isinstance(e, UnicodeDecodeError):
        return f"input is not UTF-8 (byte {e.start}: {e.object[e.start:e.start + 1]!r})"
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return f"{where}{e.strerror or e}"
    # safetensors' only error type: a corrupt or truncated file
    if type(e).__name__ == "SafetensorError":
        return f"bad safetensors file: {e}"
    return None


def main() -> None:
    """Console-script entry: an expected failure (_expected_failure) becomes
    one line on stderr and exit 2.

    Typer's standalone mode already turns usage errors into exit 2 and Ctrl-C into exit 130.
    """
    try:
        app()
    except Exception as e:
        line = _expected_failure(e)
        if line is None:
            raise  # a bug: the traceback is what a bug report needs
        err.print(
            f"error: {line.splitlines()[0] if line else type(e).__name__}",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
