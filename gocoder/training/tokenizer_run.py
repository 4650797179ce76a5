"""The tokenizer stage: train from the config with a progress bar, and evaluate on a corpus.

evaluate_tokenizer checks the byte-exact round trip (counting and showing every kind of mismatch),
measures characters per token on Go, on plans and on descriptions, and encode throughput.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeElapsedColumn

from gocoder import GocoderError
from gocoder.collect.gosources import package_of
from gocoder.collect.textparts import PART_GLOB, read_parts
from gocoder.config import TokenizerConfig
from gocoder.progress import Progress
from gocoder.record import read_records
from gocoder.splits import HELD_OUT
from gocoder.text.serialize import segments
from gocoder.text.tokenizer import Tokenizer, corpus_texts, go_files, read_go, train_tokenizer

# texts per encode_batch call: big enough for the thread pool, bounded memory
BATCH_CHARS = 4_000_000


def _progress(console: Console, what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                    console=console)


def _corpus_bytes(corpus: Path) -> int | None:
    if _is_text_parts(corpus):
        return None  # xz-compressed: the characters read are not known before
    jsonl = corpus.is_file() or any(corpus.glob("*.jsonl"))
    return _input_bytes(corpus, None) if jsonl else _input_bytes(None, corpus)


def _is_text_parts(corpus: Path) -> bool:
    return corpus.is_dir() and any(corpus.glob(PART_GLOB))


def _input_bytes(input: Path | None, go_src: Path | None) -> int:
    total = 0
    if input is not None:
        files = (
            sorted(input.glob("*.jsonl")) if input.is_dir() else [input] if input.exists() else []
        )
        total += sum(f.stat().st_size for f in files)
    if go_src is not None:
        total += sum(p.stat().st_size for p in go_files(go_src))
    return total


# Where `gocoder tokenizer train` writes without -o: never tokenizer.path, which by default is
# the shipped, tracked tokenizer/ that the default model was trained with (one run of the
# README's example replaced it).
TRAIN_OUT = Path("work/tokenizer")


def train_from_config(cfg: TokenizerConfig, input: Path | None, go_src: Path | None,
                      out_dir: Path | None = None, console: Console | None = None,
                      text: Path | None = None) -> dict[str, Any]:
    """`gocoder tokenizer train`: stream the corpus, train, save (to out_dir, else TRAIN_OUT);
    returns gocoder.json's content."""
    console = console or Console(stderr=True, soft_wrap=True)
    out = Path(out_dir or TRAIN_OUT)
    prog = _progress(console, "tokenizer: reading")
    with prog:
        # JSON escapes inflate the file size a little over the characters read: a bar, not a
        # promise; none with xz text parts, whose size says little of the text's
        total = None if text is not None else _input_bytes(input, go_src) or None
        task = prog.add_task("tokenizer: bytes read", total=total)
        model = train_tokenizer(
            train_texts(input, go_src, text, cfg.package_chars),
            out,
            cfg.vocab_size,
            cfg.model_type,
            sample_chars=cfg.sample_chars,
            progress=lambda n: prog.advance(task, n),
            max_sentence_length=cfg.max_sentence_length,
            max_piece_length=cfg.max_piece_length,
            split_digits=cfg.split_digits,
            character_coverage=cfg.character_coverage,
            sample_sentences=cfg.sample_sentences,
            threads=cfg.threads,
            source=" and ".join(str(p) for p in (input, text, go_src) if p is not None)
            or "the input",
        )
    tok = Tokenizer.load(model)
    return {"path": str(model), **tok.meta}


def train_texts(input: Path | None, go_src: Path | None, text: Path | None = None,
                package_chars: int = 0) -> Iterator[str]:
    """corpus_texts (records, then .go files) with, between them, the Go files of the train split of
    a corpus's text parts (`gocoder corpus build`).

    package_chars > 0 caps what one package of the text parts gives: its files past the cap, in the
    parts' order, are left out, as `corpus tokenize --max-package-tokens` leaves them out of the
    model's training tokens (one SDK is a fifth of the corpus's bytes).
    """
    if input is None and go_src is None and text is None:
        raise GocoderError(
            "give --input (hierarchical JSONL), --text (corpus text parts) or --go-src (.go files)"
        )
    if input is not None:
        yield from corpus_texts(input)
    if text is not None:
        taken: Counter[str] = Counter()
        for rec in read_parts(Path(text)):
            pkg, n = package_of(rec.get("package", "?")), len(rec["text"])
            if rec["split"] == "train" and not (package_chars and taken[pkg] + n > package_chars):
                taken[pkg] += n
                yield rec["text"]
    if go_src is not None:
        yield from corpus_texts(go_src=go_src)


@dataclass
class _Count:
    chars: int = 0
    tokens: int = 0

    def add(self, text: str, ids: list[int]) -> None:
        self.chars += len(text)
        self.tokens += len(ids)


@dataclass
class EvalReport:
    corpus: str
    tokenizer: str  # its hash
    vocab_size: int
    items: int = 0
    mismatches: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # the first mismatches, shown
    chars_per_token: dict[str, float | None] = field(default_factory=dict)
    tokens: int = 0
    chars: int = 0
    bytes: int = 0  # UTF-8
    encode_seconds: float = 0.0
    encode_mb_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def corpus_items(corpus: Path) -> Iterator[tuple[str, str, dict[str, list[str]]]]:
    """(name, text to round-trip, {category: texts}) for each record or .go file of a corpus.

    A .jsonl file or a folder holding .jsonl files is hierarchical records (the text is the
    serialized record; Go is its context and code); a folder of text parts (`gocoder corpus build`)
    gives the Go files of its held-out splits (valid and test packages: the train split is what a
    tokenizer is trained on); any other folder is walked for .go files.
    """
    if _is_text_parts(corpus):
        for rec in read_parts(corpus):
            if rec["split"] in HELD_OUT:
                name = f"{rec.get('package', '?')}/{rec.get('path', rec.get('id', '?'))}"
                yield name, rec["text"], {"go": [rec["text"]]}
        return
    if corpus.is_dir() and not any(corpus.glob("*.jsonl")):
        for p in go_files(corpus):
            text = read_go(p)
            yield str(p), text, {"go": [text]}
        return
    for f, rec in read_records(corpus):
        seg = segments(rec)
        go, desc = [rec.context.before, rec.code], [rec.problem.description, rec.problem.details]
        yield (
            f"{f}:{rec.id}",
            "".join(seg.values()),
            {"go": go, "plan": [seg["plan"]], "description": desc},
        )


def _first_diff(a: str, b: str) -> dict[str, Any]:
    i = next((k for k in range(min(len(a), len(b))) if a[k] != b[k]), min(len(a), len(b)))
    return {"char": i, "expected": a[max(0, i - 20):i + 20], "decoded": b[max(0, i - 20):i + 20]}


def evaluate_tokenizer(tok: Tokenizer, corpus: str | Path, show: int = 5, threads: int = -1,
                       console: Console | None = None) -> EvalReport:
    """Round-trip every item of corpus through encode_batch/decode;
    measure chars/token and speed."""
    corpus = Path(corpus)
    if not corpus.exists():
        raise GocoderError(f"--corpus {corpus}: no such file or folder")
    console = console or Console(stderr=True, soft_wrap=True)
    rep = EvalReport(corpus=str(corpus), tokenizer=tok.hash, vocab_size=tok.vocab_size)
    counts = {"go": _Count(), "plan": _Count(), "description": _Count()}
    total = _Count()
    batch: list[tuple[str, str, dict[str, list[str]]]] = []

    def flush() -> None:
        texts = [t for _, t, _ in batch]
        t0 = time.perf_counter()
        ids = tok.encode_batch(texts, threads=threads)
        rep.encode_seconds += time.perf_counter() - t0
        for (name, text, parts), row in zip(batch, ids, strict=True):
            total.add(text, row)
            back = tok.decode(row)
            if back != text:
                rep.mismatches += 1
                if len(rep.examples) < show:
                    rep.examples.append({"item": name, **_first_diff(text, back)})
            for cat, texts_ in parts.items():
                for t in texts_:
                    # a .go file is its own Go text: reuse its ids instead of encoding it twice
                    counts[cat].add(t, row if t is text else tok.encode(t))
        n = sum(len(t.encode("utf-8")) for t in texts)
        rep.bytes += n
        prog.advance(task, n)
        batch.clear()

    prog = _progress(console, "tokenizer eval")
    with prog:
        task = prog.add_task("tokenizer eval: bytes read", total=_corpus_bytes(corpus) or None)
        size = 0
        for item in corpus_items(corpus):
            batch.append(item)
            rep.items += 1
            size += len(item[1])
            if size >= BATCH_CHARS:
                flush()
                size = 0
        if batch:
            flush()
    if rep.items == 0:
        raise GocoderError(f"--corpus {corpus}: no records or .go files")
    rep.chars, rep.tokens = total.chars, total.tokens
    rep.chars_per_token = {"all": _ratio(total), **{k: _ratio(c) for k, c in counts.items()}}
    rep.encode_mb_per_s = (
        round(rep.bytes / rep.encode_seconds / 1e6, 3) if rep.encode_seconds else 0.0
    )
    rep.encode_seconds = round(rep.encode_seconds, 3)
    return rep


def _ratio(c: _Count) -> float | None:
    return round(c.chars / c.tokens, 4) if c.tokens else None
