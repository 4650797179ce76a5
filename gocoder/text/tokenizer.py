"""The SentencePiece tokenizer, byte-exact on Go, with the special tokens as single pieces.

Training streams multi-line chunks through `sentence_iterator` (SentencePiece's file reader is
line-based, so newlines and tabs would never reach training otherwise) with the settings that keep
Go exact: identity normalization, no whitespace collapsing, no dummy prefix, whitespace-only pieces,
byte fallback (so there is no <unk>), and the special tokens of tokenizer/special_tokens.json as
user-defined symbols (matched whole in text; control symbols would never be). A model folder holds
gocoder.model, gocoder.vocab and gocoder.json (settings + the model's sha256, checked on load).
nanochat's tok_train.py is the model: stream, train, save, check a round trip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm

from gocoder import GocoderError
from gocoder.record import read_records
from gocoder.text.serialize import SPECIAL_TOKENS, SYMBOL_GROUPS, load_vocab, serialize

STEM = "gocoder"  # gocoder.model, gocoder.vocab, gocoder.json in a tokenizer folder
# SentencePiece turns a space into U+2581 and decodes every U+2581 back to a space, so a literal
# U+2581 in the text would come back as a space. Tokenizer.encode writes it as its three byte
# pieces instead, which decode to the character itself.
META = "\u2581"
# SentencePiece's encode is superlinear in the length of one text (BPE: 3.3 MB/s on 1 KB, 0.56 MB/s
# on 140 KB of Go, measured), so long texts are encoded in pieces of ENCODE_PIECE+ chars, cut
# where no vocabulary piece can cross: before a space that follows a non-space. Training splits
# words there (split_by_whitespace), so no piece holds a non-space then a space; Tokenizer checks
# this of its vocabulary and encodes whole texts if it ever fails. The ids are the same either way.
ENCODE_PIECE = 256
_CUT = re.compile(r"[^ ] ")


def chunks(text: str, max_bytes: int) -> Iterator[str]:
    """text cut into pieces of at most max_bytes UTF-8 bytes, at a line end where there is one.

    Training skips any sentence over max_sentence_length, so a long file is chunked, never dropped.
    """
    if len(text.encode("utf-8", "surrogatepass")) <= max_bytes:
        yield text
        return
    data = text.encode("utf-8", "surrogatepass")
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        if end < len(data):
            nl = data.rfind(b"\n", start, end)
            if nl > start:
                end = nl + 1
            else:  # one line longer than the limit: cut at a character boundary
                while end > start and (data[end] & 0xC0) == 0x80:
                    end -= 1
        yield data[start:end].decode("utf-8", "surrogatepass")
        start = end


def go_files(root: str | Path) -> list[Path]:
    """Every .go file under root, sorted (symlinks to files included, as `find` lists them)."""
    root = Path(root)
    if not root.is_dir():
        raise GocoderError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*.go") if p.is_file())


def corpus_texts(
    input: str | Path | None = None, go_src: str | Path | None = None
) -> Iterator[str]:
    """Training text: serialized hierarchical records (a .jsonl file or folder), then raw .go files.

    Records of the valid and test splits are left out: the tokenizer must not see held-out text.
    """
    if input is None and go_src is None:
        raise GocoderError("give --input (hierarchical JSONL) or --go-src (a folder of .go files)")
    if input is not None:
        for _, rec in read_records(input):
            if rec.split not in ("valid", "test"):
                yield serialize(rec)
    if go_src is not None:
        for p in go_files(go_src):
            yield read_go(p)


def read_go(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise GocoderError(f"{path}: not UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise GocoderError(f"{path}: cannot read: {e.strerror}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def trainer_settings(vocab_size: int, model_type: str, max_sentence_length: int = 65536,
                     max_piece_length: int = 16, split_digits: bool = False,
                     character_coverage: float = 0.9995, sample_sentences: int = 0,
                     threads: int = 2) -> dict[str, Any]:
    """The SentencePieceTrainer arguments (all recorded in gocoder.json)."""
    if model_type not in ("bpe", "unigram"):
        raise GocoderError(f"--model-type {model_type!r}: must be bpe or unigram")
    v = load_vocab()
    floor = len(v.symbols) + 4 + 256 + 1  # specials + control + bytes + at least one learned piece
    if vocab_size < floor:
        raise GocoderError(f"--vocab-size {vocab_size}: must be at least {floor}")
    c = v.control
    return dict(
        model_type=model_type, vocab_size=vocab_size,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        allow_whitespace_only_pieces=True, byte_fallback=True, split_digits=split_digits,
        max_sentence_length=max_sentence_length, max_sentencepiece_length=max_piece_length,
        character_coverage=character_coverage, input_sentence_size=sample_sentences,
        shuffle_input_sentence=True, num_threads=threads,
        user_defined_symbols=list(v.symbols),
        pad_id=0, unk_id=1, bos_id=2, eos_id=3,
        pad_piece=c["pad"], unk_piece=c["unk"], bos_piece=c["bos"], eos_piece=c["eos"],
    )


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 16000,
                    model_type: str = "bpe", *, sample_chars: int = 0, progress: Any = None,
                    verbose: bool = False, source: str = "the input", **settings: Any) -> Path:
    """Train on texts (each cut into chunks), save to out_dir; returns the .model path.

    sample_chars caps the characters streamed (0: all); settings go to trainer_settings. The
    files are written to temporary names and renamed, gocoder.json last: an interrupted run leaves
    the previous tokenizer, if any, whole.
    """
    args = trainer_settings(vocab_size, model_type, **settings)
    stats = {"texts": 0, "chunks": 0, "chars": 0}

    def stream() -> Iterator[str]:
        for t in texts:
            stats["texts"] += 1
            for c in chunks(t, args["max_sentence_length"]):
                stats["chunks"] += 1
                stats["chars"] += len(c)
                yield c
            if progress is not None:
                progress(len(t))
            if sample_chars and stats["chars"] >= sample_chars:
                return

    model = io.BytesIO()
    t0 = time.perf_counter()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=stream(), model_writer=model,
                                       minloglevel=0 if verbose else 2, **args)
    except RuntimeError as e:
        if stats["chunks"] == 0:  # SentencePiece's own words for it are an internal assertion
            raise GocoderError(f"{source}: no training text (empty)") from None
        raise GocoderError(f"sentencepiece training failed: {str(e).strip()}") from None
    seconds = time.perf_counter() - t0
    if stats["chunks"] == 0:
        raise GocoderError(f"{source}: no training text (empty)")
    data = model.getvalue()
    sp = spm.SentencePieceProcessor(model_proto=data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n" for i in range(sp.get_piece_size()))
    special = json.loads(SPECIAL_TOKENS.read_text(encoding="utf-8"))
    meta = {
        "hash": _sha256(data),
        "model": f"{STEM}.model",
        "settings": args,
        "sample_chars": sample_chars,
        "sample": stats,
        "train_seconds": round(seconds, 2),
        "sentencepiece": spm.__version__,
        "special_tokens": {g: special[g] for g in ("control", *SYMBOL_GROUPS)},
    }
    for name, blob in (
        (f"{STEM}.model", data),
        (f"{STEM}.vocab", vocab.encode("utf-8")),
        (f"{STEM}.json", (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode()),
    ):
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(blob)
        os.replace(tmp, out / name)
    return out / f"{STEM}.model"


class Tokenizer:
    """Text <-> ids, byte-exact; the special-token ids the model and
    the engine use come from here."""

    def __init__(self, model: bytes, meta: dict[str, Any], path: Path | None = None):
        self._model, self.meta, self.path = model, meta, path
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=model)
        except RuntimeError as e:  # SentencePiece reports a proto it cannot parse as RuntimeError
            raise GocoderError(
                f"{path or 'tokenizer'}: not a SentencePiece model ({str(e).strip()[:80]})"
            ) from None
        if self._sp.get_piece_size() == 0:  # SentencePiece loads an empty proto without a word
            raise GocoderError(
                f"{path or 'tokenizer'}: empty SentencePiece model (no pieces): retrain it"
            )
        self._meta_ids = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in META.encode("utf-8")]
        crossing = re.compile(f"[^{META}]{META}")
        # NOTE(gocoder): cutting long texts is exact for BPE (checked on all of GOROOT/src) but not
        # for unigram, whose ids differed from SentencePiece's on GOROOT/src: unigram encodes whole.
        self._cuttable = meta.get("settings", {}).get("model_type", "bpe") == "bpe" and not any(
            crossing.search(self._sp.id_to_piece(i)) for i in range(self.vocab_size)
        )
        v = load_vocab()
        self._special = {s: self._sp.piece_to_id(s) for s in (*v.control.values(), *v.symbols)}
        stale = [s for s, i in self._special.items() if self._sp.id_to_piece(i) != s]
        if stale:
            raise GocoderError(
                f"{path}: tokenizer lacks special tokens {stale[:3]} of "
                f"{SPECIAL_TOKENS}: retrain it"
            )

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """From a tokenizer folder or its .model file; the model's
        sha256 must match gocoder.json."""
        path = Path(path)
        model_path = path / f"{STEM}.model" if path.is_dir() else path
        meta_path = model_path.with_suffix(".json")
        try:
            model = model_path.read_bytes()
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except OSError as e:
            raise GocoderError(f"{e.filename}: cannot read tokenizer: {e.strerror}") from None
        except UnicodeDecodeError:
            raise GocoderError(f"{meta_path}: not UTF-8") from None
        except json.JSONDecodeError as e:
            raise GocoderError(f"{meta_path}: malformed JSON: {e.msg} (line {e.lineno})") from None
        if not isinstance(meta, dict) or _sha256(model) != meta.get("hash"):
            raise GocoderError(f"{model_path}: sha256 does not match the hash in {meta_path}")
        return cls(model, meta, model_path)

    def __getstate__(self) -> dict[str, Any]:  # picklable, for DataLoader workers
        return {"model": self._model, "meta": self.meta, "path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["model"], state["meta"], state["path"])

    @property
    def hash(self) -> str:
        return self.meta["hash"]

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self._sp.pad_id()

    @property
    def bos_id(self) -> int:
        return self._sp.bos_id()

    @property
    def eos_id(self) -> int:
        return self._sp.eos_id()

    @property
    def special_ids(self) -> dict[str, int]:
        """Every special token of special_tokens.json (control pieces included) -> its id."""
        return dict(self._special)

    def token_id(self, piece: str) -> int:
        """The id of a special token, e.g. "<CODE>" or "</s>"; a GocoderError for anything else."""
        try:
            return self._special[piece]
        except KeyError:
            raise GocoderError(f"{piece!r} is not a special token of {SPECIAL_TOKENS}") from None

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(i)

    def _pieces(self, text: str) -> list[tuple[str, bool]]:
        """(piece, whether U+2581 follows it): text split at U+2581 (see META), long runs cut."""
        parts = text.split(META) if META in text else [text]
        out = []
        for j, part in enumerate(parts):
            start = 0
            while self._cuttable and len(part) - start > 2 * ENCODE_PIECE:
                m = _CUT.search(part, start + ENCODE_PIECE)
                if m is None:
                    break
                out.append((part[start:m.start() + 1], False))
                start = m.start() + 1
            out.append((part[start:], j + 1 < len(parts)))
        return out

    def encode(self, text: str) -> list[int]:
        return self.encode_batch([text], threads=1)[0]

    def encode_batch(self, texts: Sequence[str], threads: int = -1) -> list[list[int]]:
        """encode over a list, in SentencePiece's own thread pool (threads=-1: all cores)."""
        flat: list[str] = []
        spans = []  # per text: (index of its first piece in flat, its pieces)
        for t in texts:
            p = self._pieces(t) if len(t) > 2 * ENCODE_PIECE or META in t else [(t, False)]
            spans.append((len(flat), p))
            flat.extend(x for x, _ in p)
        ids = self._sp.encode(flat, num_threads=threads)
        out = []
        for start, p in spans:
            if len(p) == 1:
                out.append(ids[start])
                continue
            row: list[int] = []
            for k, (_, meta_after) in enumerate(p):
                row.extend(ids[start + k])
                if meta_after:
                    row.extend(self._meta_ids)
            out.append(row)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return self._sp.decode(list(ids))
