"""Config: small frozen dataclasses, fed by an optional TOML file and `--set a.b=v` overrides.

Over ~400 lines on purpose: every section and the one loader that checks them, so the whole
configuration surface (what `gocoder config show` prints) reads in one file.

Each pipeline stage owns one section. The defaults are a working tiny run. An unknown key or a
value of the wrong type is a GocoderError naming the key (nanoGPT's configurator, torchtitan's
JobConfig); so is a value out of its range (RULES, next to the sections) or sections that disagree
(d_model and n_heads).
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError


@dataclass(frozen=True)
class ValidateConfig:
    """The gocheck client: a pool of servers and their deadlines."""

    servers: int = 2  # gocheck server processes in the pool
    timeout_s: float = 10.0  # per request, syntax check
    # per request with a type check (first stdlib imports are slow)
    typecheck_timeout_s: float = 120.0
    # past its deadline plus this, a silent server is taken as hung and restarted
    hang_grace_s: float = 5.0


@dataclass(frozen=True)
class BenchConfig:
    """`gocoder bench`: public Go benchmarks scored in the sandbox
    (gocoder/eval/benchrun.py, sandbox.py)."""

    samples: int = 1  # > 1: also draw this many sampled answers a problem for pass@k (n)
    ks: tuple[int, ...] = (1, 10)  # pass@k reported for each k that every problem has samples for
    # > 0: also score the refinement loop (solve) with this many rounds at most
    refine_iters: int = 0
    temperature: float = 0.8  # the sampled answers (Chen et al. 2021 draw pass@10/100 at 0.8)
    top_p: float = 0.95
    seed: int = 0  # the sampled answers: the same seed and batch, the same answers
    # "record": the problem as a gocoder record (plan, then code); "complete": the harness's prompt
    # read as a Go file and continued to the function's closing brace (how base code models are
    # scored; the model reads it as pretraining read whole files)
    mode: typing.Literal["record", "complete"] = "record"
    # problems per engine call (with the sampled answers: batch_size * samples rows)
    batch_size: int = 64
    workers: int = 2  # problems built and run at once
    wall_s: float = 10.0  # per run of a built program
    cpu_s: int = 10
    memory_mb: int = 2048  # address space; Go's runtime alone reserves ~650 MB
    build_s: float = 120.0  # per build
    # a program go/types rejects is a build error without a build (scoring.score)
    typecheck_first: bool = True
    # the answer's program gets goimports' standard-library fix (imports added
    # and removed) before it is built
    fix_imports: bool = True
    out: str = "work/bench"


@dataclass(frozen=True)
class ModelConfig:
    """The model (gocoder/model/model.py): shapes, the HRM/TRM recursion and
    halting; `type` picks the family."""

    type: typing.Literal["recursive", "gpt"] = "recursive"
    vocab_size: int = 0  # 0: taken from the tokenizer
    d_model: int = 64
    n_heads: int = 4
    planner_layers: int = 2  # H, slow: prefix-LM over prompt + plan (+ code positions, causally)
    generator_layers: int = 2  # L, fast: causal over the code, cross-attends the planner
    gpt_layers: int = 0  # gpt only; 0: as many as give the recursive model's parameter count
    mlp_mult: float = 2.6667  # SwiGLU hidden = mlp_mult * d_model, rounded up to a multiple of 32
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    h_cycles: int = 2
    l_cycles: int = 2
    grad: typing.Literal["last", "last_k", "one_step"] = "last"  # gradient through which cycles
    grad_k: int = 1  # with grad = "last_k": how many final H cycles carry gradient
    segments: int = 2  # deep-supervision segments (the state is detached between them)
    halting: typing.Literal["bce", "q", "none"] = "bce"  # TRM's BCE head, HRM's Q-learning, or off
    halt_explore: float = 0.1  # q only: chance a sample gets a random minimum number of segments
    halt_acc: float = 1.0  # a sample "is correct" (BCE target) when this share of answer tokens is
    # validator verdict features fed to the controller (see validate.verdict_features)
    n_verdict: int = 6
    tie_embeddings: bool = True
    # What the fixed-budget record keepers use (modded-nanogpt,
    # openai/parameter-golf; BENCHMARKS.md, Go golf):
    qk_norm: bool = False  # RMS-normalize queries and keys per head before the rotary (QK-norm)
    # relu2: relu(x)^2 with hidden = mlp_mult * d_model
    mlp: typing.Literal["swiglu", "relu2"] = "swiglu"
    logit_softcap: float = 0.0  # > 0: logits = cap * tanh(logits / cap) (modded-nanogpt: 15 to 30)
    # [a, b]: the layers a..b-1 of a stack run twice once looping is on (depth recurrence of the
    # middle layers: parameter-golf's records switch it on after ~35% of training; train.loop_start)
    loop: tuple[int, ...] = ()


@dataclass(frozen=True)
class StageConfig:
    """One curriculum stage: which examples it admits, and when training moves on."""

    name: str = "all"
    max_plan_steps: int = 0  # 0: no limit; 1 admits single-function changes only
    max_tokens: int = 0  # 0: no limit (prompt + plan + code tokens)
    until_step: int = 0  # move on at this optimizer step (0: never, by step)
    until_metric: str = ""  # or when this validation metric (e.g. "val_code_loss") ...
    until_below: float = 0.0  # ... drops below this value
    data: str = ""  # this stage's data: a shard folder (`gocoder shards`) or pretraining tokens
    #                 (`gocoder corpus tokenize`); "" = train.data


@dataclass(frozen=True)
class TrainConfig:
    """`gocoder train`: data, optimisation, checkpoints, logging."""

    data: str = "data/shards"  # shard folder written by `gocoder shards`
    tokenizer: str = "tokenizer"  # tokenizer folder or .model file
    out: str = "work/tiny"
    seed: int = 1234
    steps: int = 200
    batch_size: int = 8  # examples per micro-batch (per process)
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    beta2: float = 0.95
    # adamw | muon: Muon (torch.optim.Muon) on the hidden matrices, AdamW on the rest
    optimizer: str = "adamw"
    grad_clip: float = 1.0
    w_plan: float = 0.4
    w_code: float = 0.4
    w_ctrl: float = 0.2
    w_halt: float = 0.5
    ema_decay: float = 0.999  # 0: no EMA
    device: str = "auto"  # auto: cuda when available, else cpu
    compile: bool = False
    ddp: bool = False  # through torchrun: reads RANK / WORLD_SIZE / LOCAL_RANK
    ddp_backend: str = "auto"  # auto: nccl on cuda, gloo on cpu
    log_every: int = 10
    eval_every: int = 100  # 0: never
    eval_batches: int = 4
    # greedy samples checked by gocheck per evaluation (generate.max_new_tokens each)
    eval_samples: int = 8
    ckpt_every: int = 100
    # stop (with a checkpoint) once a run has trained this long; 0: no limit
    time_limit_s: float = 0.0
    # record batches pad lengths to multiples of this (a few shapes: compile settles); 0: off
    bucket: int = 64
    prefetch: int = 4  # batches prepared ahead on a background thread (pinned memory on a GPU)
    stages: tuple[StageConfig, ...] = (StageConfig(),)
    # a model folder (a run, a checkpoint or an export, int8 too) whose weights a fresh run
    # starts from, with a new optimizer at step 0: a later stage continued in another
    # session; "": random initialisation
    init: str = ""
    # "time": the schedule runs over time_limit_s (a fixed wall-time budget ends with the
    # learning rate decayed; the budget counts from the end of the first, compiling,
    # step), "steps": over train.steps
    schedule: typing.Literal["steps", "time"] = "steps"
    # the share of the schedule that decays (1.0: cosine from the warm-up on; < 1:
    cooldown: float = 1.0
    #                        constant, then a linear cool-down over this
    #                        last share, as modded-nanogpt)
    # model.loop switches on at this share of the schedule (0: from the start)
    loop_start: float = 0.0
    # quantization-aware training (gocoder/model/quant.py): every matrix's forward
    # sees it as `gocoder export --quantize intB` will store it (straight-through
    # gradient); 0: off, else 4, 6 or 8
    qat_bits: int = 0
    # input columns per scale; 0: the export default for the bits (64 for int4, else 128)
    qat_group: int = 0
    # the embedding / tied head's bits (export's --embed-bits); 0: as the matrices
    qat_embed_bits: int = 8
    # QAT switches on after this share of train.steps (of the time, by schedule)
    qat_start: float = 0.0


@dataclass(frozen=True)
class CollectConfig:
    """`gocoder collect`: where raw PR records go and how sources are read."""

    out_dir: str = "data/raw"  # default output folder: OUT_DIR/SOURCE-REPO.jsonl
    workers: int = 2  # threads running cat-file / HTTP / gocheck requests
    max_file_bytes: int = 1_000_000  # larger Go files are skipped as oversized
    rev: str = "HEAD"  # --repo: the branch whose first-parent history is mined
    github_api: str = "https://api.github.com"  # --github: REST base URL (a local server in tests)
    github_cache: str = ".cache/github"  # ETag cache of GET responses
    github_max_wait_s: float = 3600.0  # longest total sleep for rate limits before giving up
    github_retries: int = 5  # per request, on 5xx, secondary limits and network errors
    github_timeout_s: float = 30.0  # per HTTP request


@dataclass(frozen=True)
class TokenizerConfig:
    """`gocoder tokenizer train/eval`: the SentencePiece model and its training sample."""

    path: str = "tokenizer"  # the tokenizer folder (gocoder.model, .vocab, .json) read and written
    vocab_size: int = 16000
    model_type: typing.Literal["bpe", "unigram"] = "bpe"
    # stop streaming training text after this many characters (0: all)
    sample_chars: int = 200_000_000
    # `tokenizer train --text`: at most this many characters of one package (0: no cap); ~4M tokens
    # at 3.37 bytes a token, the cap of `corpus tokenize --max-package-tokens` when the candidate
    # tokenizer was measured (BENCHMARKS.md; runs/default.sh has used 16M since)
    package_chars: int = 13_000_000
    sample_sentences: int = 0  # SentencePiece's own random sample of chunks (0: every chunk)
    max_sentence_length: int = 65536  # bytes per training chunk; longer texts are cut at line ends
    max_piece_length: int = 16  # longest piece in characters
    split_digits: bool = False
    character_coverage: float = 0.9995  # rarer characters go to byte fallback
    threads: int = 2


@dataclass(frozen=True)
class SynthConfig:
    """`gocoder synth`: bugs planted in real Go functions by gocheck's mutate op."""

    per_func: int = 1  # mutants per function, each of a different edit
    seed: int = 0  # with the function's name, picks the mutants and their phrasing
    kinds: tuple[str, ...] = ()  # bug kinds to plant; empty: all seven
    # per file: its first type check imports standard-library packages from source
    timeout_s: float = 120.0


@dataclass(frozen=True)
class SplitsConfig:
    """Train, valid and test by Go package (gocoder/splits.py): one
    value for every stage that splits."""

    # train, valid, test shares of Go packages: annotate's records, the
    # corpus's files, the fix benchmark
    shares: tuple[float, ...] = (0.9, 0.05, 0.05)


@dataclass(frozen=True)
class AnnotateConfig:
    """`gocoder annotate`: raw PR records to hierarchical plans, split
    by Go package (splits.shares)."""

    out_dir: str = "data/hierarchical"
    batch: int = 64  # records whose files go to gocheck in one pipelined batch
    # A record whose plan and solution run past this many UTF-8 bytes is split by file, or dropped
    # when no file's part fits (0: no limit). 7,168 = 2,048 tokens at 3.5 bytes a token (the shipped
    # tokenizer's 3.57 characters a token on Go, BENCHMARKS.md): the plan and code one 2,048-token
    # context holds once its prompt is cut to a head and tail.
    max_plan_bytes: int = 7168
    # The intent of a record without a conventional-commit prefix: "" the shipped learned classifier
    # (gocoder/collect/intent_model.json: 0.661 against the rules' 0.625 on three
    # held-out repositories, BENCHMARKS.md), "rules" (gocoder/collect/plans.py), or the
    # path of a model from train-intents.
    intent_model: str = ""


@dataclass(frozen=True)
class ShardsConfig:
    """`gocoder shards`: hierarchical records tokenized into training shards
    (gocoder/training/data.py). Where they go and the tokenizer they are cut with are train's
    (train.data, train.tokenizer): train reads them."""

    # refinement drafts per record, each a judge and a repair example (0: clean ones only)
    rollouts: int = 1
    max_len: int = 0  # store examples cut to this many tokens, as training cuts them (0: whole)
    # with each record's id, picks its drafts (1234: shards took train.seed's default before)
    seed: int = 1234


@dataclass(frozen=True)
class GenerateConfig:
    """`gocoder generate` and `gocoder eval`: the refinement loop, the search and the sampler."""

    max_iters: int = 3  # refinement rounds per problem
    samples: int = 1  # candidates per round (best-of) or root candidates (tree)
    search: typing.Literal["best-of", "tree"] = "best-of"
    budget: int = 0  # tree search: candidates generated at most (0: samples * max_iters)
    ucb_c: float = 1.0  # tree search: UCB exploration constant
    # plan + code tokens per candidate; also bench's answers and train's eval samples
    max_new_tokens: int = 256
    # several candidates a round, or a tree (1 sample: greedy); 0.3 beat 0.8 (BENCHMARKS.md)
    temperature: float = 0.3
    top_p: float = 0.95
    top_k: int = 0
    seed: int = 0
    # > 0: never repeat an n-gram of generated ids (gocoder/inference/engine.py ban_repeats); 12
    # took MBXP Go builds from 15.6% to 20.3% and passes from 1 to 2 of 928 (BENCHMARKS.md), and the
    # README example from a loop to Go
    no_repeat_ngram: int = 12
    # a plan longer than this closes and code starts (the records' plans: 99% under 112 tokens)
    max_plan_tokens: int = 128
    typecheck: bool = False  # also judge candidates with go/types
    device: str = "cpu"


@dataclass(frozen=True)
class RetrieveConfig:
    """How `gocoder index`, `generate --repo`, `bench --retrieve` and `prbench run --retrieve`
    rank a repository's declarations (gocoder/inference/ranking.py)."""

    # bm25: terms of names, doc comments, signatures; embed: cosine of the model's own vectors;
    # hybrid: both, fused by rank. On the PR benchmark hybrid with token embeddings put a needed
    # declaration first in 8 of 45 problems, bm25 in 3, the final hidden states alone in 0
    # (BENCHMARKS.md, retrieval recall)
    method: typing.Literal["bm25", "embed", "hybrid"] = "hybrid"
    # final hidden states or token embeddings
    pooling: typing.Literal["hidden", "embedding"] = "embedding"
    # embed: tokens of a declaration (doc comment + signature) or query the model reads
    max_tokens: int = 128


@dataclass(frozen=True)
class Config:
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    annotate: AnnotateConfig = field(default_factory=AnnotateConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)


# The allowed range of each field, checked where a section is built (a file, --set, or a
# library caller through check()): name -> (test, the range as the error states it). A key left
# out takes any value of its type.
def _ge(n: float) -> tuple[typing.Callable[[Any], bool], str]:
    return (lambda v: v >= n), f">= {n}"


def _gt0() -> tuple[typing.Callable[[Any], bool], str]:
    return (lambda v: v > 0), "> 0"


def _within(
    lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
) -> tuple[typing.Callable, str]:
    def test(v: float) -> bool:
        return (lo < v if lo_open else lo <= v) and (v < hi if hi_open else v <= hi)

    return test, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


_DEVICE = (
    (lambda v: re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None),
    "auto, cpu, mps, cuda or cuda:N",
)
_CPU_DEVICE = (
    (lambda v: re.fullmatch(r"cpu|mps|cuda(:\d+)?", v) is not None),
    "cpu, mps, cuda or cuda:N",
)
_NONEMPTY = (lambda v: bool(v)), "not empty"
_EACH_GE1 = (lambda v: len(v) > 0 and min(v) >= 1), "a non-empty list of integers >= 1"
_FRACTION = _within(0, 1)
# Go's runtime reserves ~650 MB of address space before main
# (sandbox.MIN_MEMORY_MB; kept equal by a test).
_GO_MIN_MEMORY_MB = 768
RULES: dict[type, dict[str, tuple[typing.Callable[[Any], bool], str]]] = {
    ValidateConfig: {"servers": _ge(1), "timeout_s": _gt0(), "typecheck_timeout_s": _gt0(),
                     "hang_grace_s": _ge(0)},
    BenchConfig: {"samples": _ge(1), "ks": _EACH_GE1, "refine_iters": _ge(0), "workers": _ge(1),
                  "wall_s": _gt0(), "cpu_s": _ge(1), "memory_mb": _ge(_GO_MIN_MEMORY_MB),
                  "build_s": _gt0(), "out": _NONEMPTY},
    ModelConfig: {"vocab_size": _ge(0), "d_model": _ge(1), "n_heads": _ge(1),
                  "planner_layers": _ge(1), "generator_layers": _ge(1), "gpt_layers": _ge(0),
                  "mlp_mult": _gt0(), "max_seq_len": _ge(1), "rope_theta": _gt0(),
                  "h_cycles": _ge(1), "l_cycles": _ge(1), "grad_k": _ge(1), "segments": _ge(1),
                  "halt_explore": _FRACTION, "halt_acc": _within(0, 1, lo_open=True),
                  "n_verdict": _ge(1), "logit_softcap": _ge(0),
                  "loop": ((lambda v: v == () or (len(v) == 2 and 0 <= v[0] < v[1])),
                           "[] or [a, b] with 0 <= a < b")},
    StageConfig: {"name": _NONEMPTY, "max_plan_steps": _ge(0), "max_tokens": _ge(0),
                  "until_step": _ge(0)},
    TrainConfig: {"data": _NONEMPTY, "tokenizer": _NONEMPTY, "out": _NONEMPTY, "seed": _ge(0),
                  "steps": _ge(1), "batch_size": _ge(1), "grad_accum": _ge(1), "lr": _gt0(),
                  "min_lr_ratio": _FRACTION, "warmup_steps": _ge(0), "weight_decay": _ge(0),
                  "beta2": _within(0, 1, hi_open=True), "grad_clip": _gt0(), "w_plan": _ge(0),
                  "w_code": _ge(0), "w_ctrl": _ge(0), "w_halt": _ge(0),
                  "ema_decay": _within(0, 1, hi_open=True), "device": _DEVICE,
                  "ddp_backend": ((lambda v: v in ("auto", "nccl", "gloo")), "auto, nccl or gloo"),
                  "log_every": _ge(1), "eval_every": _ge(0), "eval_batches": _ge(1),
                  "eval_samples": _ge(0), "ckpt_every": _ge(1), "time_limit_s": _ge(0),
                  "bucket": _ge(0), "prefetch": _ge(0), "cooldown": _within(0, 1, lo_open=True),
                  "loop_start": _FRACTION,
                  "optimizer": ((lambda v: v in ("adamw", "muon")), "adamw or muon"),
                  "qat_bits": ((lambda v: v in (0, 4, 6, 8)), "0 (off), 4, 6 or 8"),
                  "qat_embed_bits": ((lambda v: v in (0, 4, 6, 8)),
                                     "0 (as train.qat_bits), 4, 6 or 8"),
                  "qat_group": _ge(0), "qat_start": _within(0, 1, hi_open=True),
                  "stages": ((lambda v: len(v) > 0), "at least one stage")},
    CollectConfig: {"out_dir": _NONEMPTY, "workers": _ge(1), "max_file_bytes": _ge(1),
                    "rev": _NONEMPTY,
                    "github_api": ((lambda v: v.startswith(("http://", "https://"))),
                                   "an http(s):// URL"),
                    "github_cache": _NONEMPTY, "github_max_wait_s": _ge(0),
                    "github_retries": _ge(0), "github_timeout_s": _gt0()},
    TokenizerConfig: {"path": _NONEMPTY, "vocab_size": _ge(1), "sample_chars": _ge(0),
                      "sample_sentences": _ge(0), "max_sentence_length": _ge(1),
                      "max_piece_length": _within(1, 16),
                      "character_coverage": _within(0, 1, lo_open=True), "threads": _ge(1)},
    SynthConfig: {"per_func": _ge(1), "seed": _ge(0), "timeout_s": _gt0()},
    SplitsConfig: {"shares": ((lambda v: len(v) == 3 and min(v) >= 0 and abs(sum(v) - 1) < 1e-6),
                              "three shares >= 0 that sum to 1")},
    AnnotateConfig: {"out_dir": _NONEMPTY, "batch": _ge(1)},
    ShardsConfig: {"rollouts": _ge(0), "max_len": _ge(0), "seed": _ge(0)},
    GenerateConfig: {"max_iters": _ge(1), "samples": _ge(1), "budget": _ge(0), "ucb_c": _ge(0),
                     "max_new_tokens": _ge(1), "temperature": _ge(0),
                     "top_p": _within(0, 1, lo_open=True), "top_k": _ge(0), "seed": _ge(0),
                     "no_repeat_ngram": _ge(0), "max_plan_tokens": _ge(0), "device": _CPU_DEVICE},
    RetrieveConfig: {"max_tokens": _ge(1)},
}  # fmt: skip


def _consistent(cfg: Any, prefix: str) -> None:
    """Checks across the fields of one section."""
    if isinstance(cfg, ModelConfig):
        if cfg.d_model % cfg.n_heads:
            raise GocoderError(f"config key {prefix}d_model={cfg.d_model} must be a multiple of "
                               f"{prefix}n_heads={cfg.n_heads}")
        layers = (
            cfg.gpt_layers if cfg.type == "gpt" else min(cfg.planner_layers, cfg.generator_layers)
        )
        if cfg.loop and layers and cfg.loop[1] > layers:
            raise GocoderError(
                f"config key {prefix}loop={list(cfg.loop)} reaches past the {layers} "
                "layers of a stack"
            )
        if (cfg.d_model // cfg.n_heads) % 2:  # rotary embeddings rotate pairs of channels
            raise GocoderError(
                f"config keys {prefix}d_model/{prefix}n_heads={cfg.d_model // cfg.n_heads}: "
                "the head dimension must be even (rotary embeddings)"
            )
        if cfg.grad == "last_k" and cfg.grad_k > cfg.h_cycles:
            raise GocoderError(
                f"config key {prefix}grad_k={cfg.grad_k} must be in [1, {prefix}h_cycles="
                f"{cfg.h_cycles}]"
            )


def check(cfg: Any, prefix: str = "") -> Any:
    """cfg (a section, or the whole Config) if every field is in range, else
    a GocoderError naming the key."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            check(value, f"{prefix}{f.name}.")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, v in enumerate(value):
                check(v, f"{prefix}{f.name}[{i}].")
        rule = RULES.get(type(cfg), {}).get(f.name)
        if rule is not None and not rule[0](value):
            raise GocoderError(f"config key {prefix + f.name!r} must be {rule[1]}, got {value!r}")
    _consistent(cfg, prefix)
    return cfg


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """The defaults, updated by the TOML file at path, then by each `a.b=v` override in order."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise GocoderError(f"{path}: cannot read config: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise GocoderError(f"{path}: config is not UTF-8 (byte {e.start})") from None
        except tomllib.TOMLDecodeError as e:
            raise GocoderError(f"{path}: bad TOML: {e}") from None
    for ov in overrides:
        key, sep, raw = ov.partition("=")
        if not sep or not key.strip():
            raise GocoderError(f"--set {ov!r}: expected KEY=VALUE, e.g. --set validate.servers=4")
        *parents, leaf = key.strip().split(".")
        node: Any = data
        for p in parents:
            # an array of tables, by index: train.stages.0.until_step=900
            if isinstance(node, list):
                if not (p.isdigit() and int(p) < len(node)):
                    raise GocoderError(
                        f"--set {ov!r}: {p} is no index of that list (0..{len(node) - 1})"
                    )
                node = node[int(p)]
            else:
                node = node.setdefault(p, {})
            if not isinstance(node, dict | list):
                raise GocoderError(f"--set {ov!r}: {p} is not a section")
        node[leaf] = _parse_value(raw.strip())
    return check(_build(Config, data, ""))


def _parse_value(raw: str) -> Any:
    """A TOML value (3, 0.5, true, "s", [1, 2]); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


# Keys that once lived elsewhere: a file or --set still naming one fails saying where
# it went, rather than as an unknown key (or, worse, silently). One home a setting:
# the token budget is [generate]'s.
MOVED = {
    "bench.max_new_tokens": "generate.max_new_tokens",
    "train.eval_max_new": "generate.max_new_tokens",
    "annotate.split": "splits.shares",
}


_WHY_MOVED = {"generate.max_new_tokens": "one budget for generate, bench and train's eval samples",
              "splits.shares": "one split for annotate, the corpus and the fix benchmark"}


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if prefix + key in MOVED:
            raise GocoderError(f"config key {prefix + key!r} moved to {MOVED[prefix + key]!r} "
                               f"({_WHY_MOVED[MOVED[prefix + key]]}); set that instead")
        if key not in names:
            where = f"section [{prefix.rstrip('.')}]" if prefix else "the top level"
            raise GocoderError(
                f"unknown config key {prefix + key!r} in {where}; known: {', '.join(sorted(names))}"
            )
    kwargs = {}
    for name in names & data.keys():
        kwargs[name] = _coerce(hints[name], data[name], f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise GocoderError(
                f"config key {key!r} is a section; give it keys, e.g. {key}.NAME=VALUE"
            )
        return _build(tp, value, key + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in typing.get_args(tp):
            if alt is type(None):
                if value is None or value == "none":
                    return None
                continue
            try:
                return _coerce(alt, value, key)
            except GocoderError as e:
                errors.append(str(e))
        raise GocoderError(errors[0] if errors else f"config key {key!r}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise GocoderError(f"config key {key!r} must be a list, got {value!r}")
        (item, *_rest) = typing.get_args(tp)
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(repr(a) for a in typing.get_args(tp))
            raise GocoderError(f"config key {key!r} must be one of {choices}, got {value!r}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (
        isinstance(value, tp) and (tp is bool or not isinstance(value, bool))
    ):
        raise GocoderError(f"config key {key!r} must be {tp.__name__}, got {value!r}")
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_toml(cfg: Any) -> str:
    """The resolved config as TOML that load_config reads back to the same value."""
    lines: list[str] = []

    def emit(d: dict[str, Any], section: str) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if scalars:
            if section:
                lines.append(f"[{section}]")
            for k, v in scalars.items():
                if v is not None:  # TOML has no null: an absent key is the default None
                    lines.append(f"{k} = {_toml_value(v)}")
            lines.append("")
        for k, v in d.items():
            if isinstance(v, dict):
                emit(v, f"{section}.{k}" if section else k)

    emit(to_dict(cfg), "")
    return "\n".join(lines).rstrip() + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # a section inside a list (train.stages): an inline table
        return (
            "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
        )
    raise TypeError(f"cannot write {v!r} as TOML")
