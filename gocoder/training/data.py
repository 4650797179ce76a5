"""Training data: hierarchical records -> tokenized shards on disk
(memory-mapped) -> padded batches.

Over ~400 lines on purpose: the shards' one writer (`build_shards`) and their reader (`Shard`)
share COLUMNS and `cut_example`, and the pretraining reader (`TokenShard`) answers Shard's calls
for the one batch order, so the format is written and read in one file.

Each record gives one clean example and, per draft, two refinement examples (docs/FORMATS.md,
"Training shards"). The drafts: per rollout one planted syntax error, operator misuse
or partial solution, and the target declaration as it was before the change (for
synth records, the planted bug):
- judge:  prompt ++ plan ++ the draft as code, no code loss; the
  controller learns REFINE (a draft with
          a syntax error, or valid but wrong) or CONTINUE (a partial solution);
- repair: the prompt with the draft and its first diagnostic in a
  refine block, the right code as the
          answer, controller DONE: the generator learns to repair.
Every draft is checked by gocheck, whose verdict becomes the controller's verdict features.

A shard folder holds per split `tokens.bin` (all examples back to back: uint16 up to 65,536 pieces,
else uint32), `index.npy` (int64 [N, len(COLUMNS)]), `verdict.npy` (float32 [N, N_VERDICT]), and one
`meta.json`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gocoder import GocoderError, fsio
from gocoder.check.validate import verdict_features
from gocoder.config import ShardsConfig
from gocoder.fsio import output_lock, replace_dir, write_error
from gocoder.model.model import CONTINUE, DONE, REFINE, Batch
from gocoder.record import Record, Solution, Validation, read_records
from gocoder.text.serialize import cut_points

COLUMNS = ("offset", "prompt", "plan", "code", "code_loss", "ctrl", "steps", "kind")
KINDS = ("clean", "judge", "repair")
N_VERDICT = 6  # len(gocoder.check.validate.verdict_features(...))
SPLITS = ("train", "valid", "test")


# ---------------------------------------------------------------------------------------- drafts

_SYNTAX_EDITS = (
    (re.compile(r"\}"), ""),  # a lost closing brace
    (re.compile(r"\)"), ""),  # a lost closing paren
    (re.compile(r"\{\n"), "{{\n"),  # a doubled opening brace
    (re.compile(r":="), ":"),  # a broken short declaration
    (re.compile(r"\n"), "\n)\n"),  # a stray paren on its own line
)
_WRONG_EDITS = (
    ("<=", "<"),
    ("<", "<="),
    (">=", ">"),
    ("==", "!="),
    ("!=", "=="),
    ("&&", "||"),
    ("||", "&&"),
    (" + ", " - "),
    (" - ", " + "),
    ("+= 1", "-= 1"),
    ("return nil", "return err"),
)


def syntax_draft(code: str, rng: random.Random) -> str | None:
    """code with one syntax error planted (gocheck then tells whether it really broke)."""
    edits = [(rx, rep, m) for rx, rep in _SYNTAX_EDITS for m in rx.finditer(code)]
    if not edits:
        return None
    rx, rep, m = rng.choice(edits)
    return code[: m.start()] + rep + code[m.end():]


def wrong_draft(code: str, rng: random.Random) -> str | None:
    """code with one operator or value misused (HumanEvalFix's bug kinds); it must still parse."""
    sites = [(a, b, m.start()) for a, b in _WRONG_EDITS for m in re.finditer(re.escape(a), code)]
    if not sites:
        return None
    a, b, at = rng.choice(sites)
    return code[:at] + b + code[at + len(a):]


def partial_draft(code: str, rng: random.Random) -> str | None:
    """The first 30-80% of code's lines: a solution still being written."""
    lines = code.splitlines(keepends=True)
    if len(lines) < 3:
        return None
    return "".join(lines[: max(1, int(len(lines) * rng.uniform(0.3, 0.8)))])


def before_draft(rec: Record, checker: Any) -> str | None:
    """The target declaration as it was before the change (one-step plans): valid Go that does
    not yet do what the plan asks; for a synth record, the planted bug itself."""
    steps, before = rec.steps, rec.context.before
    if len(steps) != 1 or not before:
        return None
    name = steps[0].target.partition(":")[2].partition("@")[0]  # kind:name@file
    raw = before.encode("utf-8")
    for d in checker.check(before, kind="auto", gofmt=False).decls if name else ():
        if d.name == name:  # offsets are UTF-8 bytes
            return raw[d.start: d.end].decode("utf-8", "replace")
    return None


def cut_example(
    tok: np.ndarray, P: int, Q: int, C: int, max_len: int
) -> tuple[np.ndarray, int, int, int]:
    """An example of prompt/plan/code lengths P, Q, C cut to max_len: the prompt loses its middle
    (the problem at its head and the refine block at its tail stay), then the code its end."""
    if max_len and P + Q + C > max_len:
        keep = max(1, max_len - Q - C)
        if keep < P:
            # as inference cuts its prompt (gocoder/text/serialize.py)
            head, tail = cut_points(P, keep)
            tok = np.concatenate([tok[:head], tok[tail:]])
            P = keep
        C = min(C, max_len - P - Q)
        tok = tok[: P + Q + C]
    return tok, P, Q, max(C, 0)


# ------------------------------------------------------------------------------------ building

def _examples(rec: Record, rollouts: int, checker: Any, rng: random.Random) -> list[dict[str, Any]]:
    """The clean example and the judge/repair pairs of one record, as text segments."""
    # the serializer loads the vocabulary lazily
    from gocoder.text.serialize import repair_record, segments

    code, steps = rec.code, len(rec.steps)
    drafts: list[tuple[str, str]] = []
    old = before_draft(rec, checker) if rollouts else None
    if old is not None and old.strip() != code.strip():
        drafts.append((old, "wrong"))
    for _ in range(rollouts):
        kind = rng.choice(("syntax", "wrong", "partial"))
        d = {"syntax": syntax_draft, "wrong": wrong_draft, "partial": partial_draft}[kind](
            code, rng
        )
        if d is not None and d != code:
            drafts.append((d, kind))
    results = checker.check_many([code] + [d for d, _ in drafts])
    # gocheck decides: a "syntax" draft that still parses, or a
    # "wrong" one that does not, is dropped
    keep = {"syntax": lambda r: not r.ok, "wrong": lambda r: r.ok, "partial": lambda r: True}
    drafts = [(d, CONTINUE if kind == "partial" else REFINE, r)
              for (d, kind), r in zip(drafts, results[1:], strict=True) if keep[kind](r)]
    # the clean example and every repair answer with the right code: its loss, DONE, its verdict
    right = dict(code_loss=1, ctrl=DONE, steps=steps, verdict=verdict_features(code, results[0]))
    out = [dict(segments(rec), **right, kind=0)]
    for d, lab, r in drafts:
        judge = segments(
            dataclasses.replace(rec, solution=Solution(code=d, validation=Validation(syntax=r.ok)))
        )
        if lab == CONTINUE:  # unfinished: no closing tag, no verdict written yet
            judge["code"], judge["validate"] = judge["code"].removesuffix("</CODE>"), ""
        out.append(
            dict(judge, code_loss=0, ctrl=lab, steps=steps, kind=1, verdict=verdict_features(d, r))
        )
        rep = segments(repair_record(rec, d, r.errors[0] if r.errors else "", syntax=r.ok))
        out.append(dict(rep, **right, kind=2))
    return out


def build_shards(cfg: ShardsConfig, records: str | Path, tokenizer: Any, out_dir: str | Path, *,
                 checker: Any = None, progress: Any = None) -> dict[str, int]:
    """Tokenize hierarchical records (a .jsonl file or a folder of them) into shards under out_dir,
    with cfg.rollouts drafts a record drawn from cfg.seed.

    cfg.max_len > 0 stores each example already cut as training cuts it (cut_example):
    shards for a model of that context hold only the tokens it will read (a file's context
    is often thousands of tokens).

    Written to a temporary folder and renamed at the end: an interrupted build leaves the previous
    shards whole, and a rerun starts over (tokenizing is fast next to
    training). Returns rows per split.
    """
    if checker is None:
        from gocoder.check.validate import get_checker

        checker = get_checker()
    out = Path(out_dir)
    lock = output_lock(out)  # one build per output at a time: two would share the temporary folder
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    files: dict[str, Any] = {}
    rows: dict[str, list] = {s: [] for s in SPLITS}
    verdicts: dict[str, list] = {s: [] for s in SPLITS}
    offsets = dict.fromkeys(SPLITS, 0)
    # half the disk and page cache
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    try:
        for path, rec in read_records(records):
            split = rec.split if rec.split is not None else "train"
            if split not in SPLITS:
                raise GocoderError(f"{path}: record {rec.id}: unknown split {split!r}")
            rng = random.Random(f"{cfg.seed}:{rec.id}")  # per record: the same drafts on a rerun
            for ex in _examples(rec, cfg.rollouts, checker, rng):
                parts = tokenizer.encode_batch(
                    [ex["prompt"], ex["plan"], ex["code"] + ex["validate"]], threads=1
                )
                if split not in files:
                    (tmp / split).mkdir(parents=True, exist_ok=True)
                    files[split] = (tmp / split / "tokens.bin").open("wb")
                ids, *lens = cut_example(
                    np.asarray([t for p in parts for t in p], dtype=dtype),
                    *map(len, parts),
                    cfg.max_len,
                )
                fsio.write_all(files[split], ids.tobytes())  # the writers' one way to the disk
                rows[split].append(
                    [offsets[split], *lens, ex["code_loss"], ex["ctrl"], ex["steps"], ex["kind"]]
                )
                verdicts[split].append(ex["verdict"])
                offsets[split] += len(ids)
            if progress is not None:
                progress(1)
        for split, f in files.items():
            f.close()
            np.save(
                tmp / split / "index.npy",
                np.asarray(rows[split], dtype=np.int64).reshape(-1, len(COLUMNS)),
            )
            np.save(
                tmp / split / "verdict.npy",
                np.asarray(verdicts[split], dtype=np.float32).reshape(-1, N_VERDICT),
            )
        if not files:  # before anything is written: the previous shards (if any) stay whole
            raise GocoderError(f"{records}: no hierarchical records to tokenize")
        counts = {s: len(rows[s]) for s in files}
        meta = {
            "tokenizer_hash": tokenizer.hash,
            "vocab_size": tokenizer.vocab_size,
            "pad_id": tokenizer.pad_id,
            "dtype": np.dtype(dtype).name,
            "columns": COLUMNS,
            "n_verdict": N_VERDICT,
            "rows": counts,
            "rollouts": cfg.rollouts,
            "seed": cfg.seed,
            "max_len": cfg.max_len,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        for f in files.values():
            f.close()
        replace_dir(tmp, out)  # the old shards stay whole until the new ones are
    except BaseException as e:  # a full disk gets its space back; an OSError names the output
        for f in files.values():
            f.close()
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise write_error(e, out) from None
        raise
    finally:
        lock.release()
    return counts


# ------------------------------------------------------------------------------------- reading

class Shard:
    """One split of a shard folder, memory-mapped: nothing is read until an example is asked for."""

    kind = "records"

    def __init__(self, root: str | Path, split: str):
        root = Path(root)
        d = root / split
        try:
            self.meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
            self.index = np.load(d / "index.npy", mmap_mode="r")
            self.verdict = np.load(d / "verdict.npy", mmap_mode="r")
            self.tokens = np.memmap(
                d / "tokens.bin", dtype=np.dtype(self.meta.get("dtype", "uint32")), mode="r"
            )
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise GocoderError(
                f"{d}: missing or unreadable shard ({e}); build it with `gocoder shards`"
            ) from None
        if (
            self.index.ndim != 2
            or self.index.shape[1] != len(COLUMNS)
            or len(self.verdict) != len(self.index)
        ):
            raise GocoderError(
                f"{d}/index.npy: expected [N, {len(COLUMNS)}] rows matching verdict.npy"
            )
        self.col = {c: i for i, c in enumerate(COLUMNS)}

    def __len__(self) -> int:
        return len(self.index)

    def lengths(self) -> np.ndarray:
        i = self.col
        return self.index[:, i["prompt"]] + self.index[:, i["plan"]] + self.index[:, i["code"]]

    def eligible(self, max_plan_steps: int, max_tokens: int) -> np.ndarray:
        """Rows a curriculum stage admits."""
        ok = np.ones(len(self), dtype=bool)
        if max_plan_steps:
            ok &= self.index[:, self.col["steps"]] <= max_plan_steps
        if max_tokens:
            ok &= self.lengths() <= max_tokens
        return np.nonzero(ok)[0]

    def example(self, i: int, max_len: int) -> tuple[np.ndarray, int, int, int]:
        """Tokens and (prompt, plan, code) lengths of row i, cut to max_len (see cut_example)."""
        off, P, Q, C = (
            int(self.index[i, self.col[c]]) for c in ("offset", "prompt", "plan", "code")
        )
        return cut_example(
            np.asarray(self.tokens[off : off + P + Q + C], dtype=np.int64), P, Q, C, max_len
        )

    def batch(
        self, rows: list[int] | np.ndarray, max_len: int, pad_id: int, bucket: int = 0
    ) -> Batch:
        """A right-padded Batch of the given rows. bucket > 0 pads the length, and the code and plan
        spans the model allocates, up to multiples of bucket (of 16 for the plan): a few fixed
        shapes, so torch.compile makes a few graphs, and bounds known on the host, so the step
        never asks the device for a length."""
        exs = [self.example(int(r), max_len) for r in rows]
        T = max(len(t) for t, *_ in exs)
        # [B, 3] prompt, plan, code
        lens = np.asarray([e[1:] for e in exs], dtype=np.int64).reshape(-1, 3)
        code_cap = plan_cap = 0
        if bucket:
            T = _round_up(T, bucket, max_len or None)
            code_cap = _round_up(max(int(lens[:, 2].max()), 1), bucket, T)
            plan_cap = _round_up(max(int((lens[:, 1] + (lens[:, 2] > 0)).max()), 1), 16, T)
        tokens = torch.full((len(exs), T), pad_id, dtype=torch.long)
        for j, (t, *_) in enumerate(exs):
            tokens[j, : len(t)] = torch.from_numpy(t)
        lt = torch.from_numpy(lens)
        idx = np.asarray(rows, dtype=np.int64)
        return Batch(tokens, lt[:, 0], lt[:, 1], lt[:, 2],
                     torch.from_numpy(self.index[idx, self.col["code_loss"]].astype(np.float32)),
                     torch.from_numpy(self.index[idx, self.col["ctrl"]].astype(np.int64)),
                     torch.from_numpy(np.asarray(self.verdict[idx], dtype=np.float32)),
                     code_cap=code_cap, plan_cap=plan_cap)


def _round_up(n: int, m: int, cap: int | None = None) -> int:
    n = -(-n // m) * m
    return min(n, cap) if cap else n


class TokenShard:
    """One split of a pretraining token folder (`gocoder corpus tokenize`): whole Go files
    back to back, each ended by the tokenizer's eos, read as rows of seq_len tokens cut from
    the stream (nanoGPT's windows). A row may hold the end of one file and the start of the
    next; its `doc` ids keep every position inside its own file (the model masks attention by
    them), so no file sees another.

    It answers the same calls as Shard, so the loop and the batch order treat both alike: a row
    is an example whose prompt is its first token and whose code is the rest (the model predicts
    every token after the first, and nothing else differs)."""

    kind = "pretrain"

    def __init__(self, root: str | Path, split: str, seq_len: int):
        root = Path(root)
        d = root / split
        try:
            self.meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
            dtype, f = np.dtype(self.meta["dtype"]), d / "tokens.bin"
            # an empty split (a corpus with no held-out package) has no
            # rows: numpy cannot map 0 bytes
            self.tokens = (
                np.memmap(f, dtype=dtype, mode="r") if f.stat().st_size else np.empty(0, dtype)
            )
            self.eos = int(self.meta["eos_id"])
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise GocoderError(f"{d}: missing or unreadable pretraining tokens ({e}); "
                               "build them with `gocoder corpus tokenize`") from None
        self.meta.setdefault("pad_id", 0)
        self.meta.setdefault("n_verdict", N_VERDICT)
        self.seq_len = seq_len
        # 0 rows: the loop says a stage admits too few for a batch
        self.n = len(self.tokens) // seq_len

    def __len__(self) -> int:
        return self.n

    def lengths(self) -> np.ndarray:
        return np.full(self.n, self.seq_len, dtype=np.int64)

    def eligible(self, max_plan_steps: int = 0, max_tokens: int = 0) -> np.ndarray:
        return np.arange(self.n)

    def batch(
        self, rows: list[int] | np.ndarray, max_len: int = 0, pad_id: int = 0, bucket: int = 0
    ) -> Batch:
        T = self.seq_len
        idx = np.asarray(rows, dtype=np.int64)
        # [B, T]
        win = np.stack([np.asarray(self.tokens[r * T: (r + 1) * T], dtype=np.int64) for r in idx])
        tokens = torch.from_numpy(win)
        # a position belongs to the file of the last eos before it
        # (exclusive): the eos ends its own file
        ends = torch.from_numpy(win == self.eos).long()
        doc = torch.cumsum(ends, 1) - ends
        B = len(idx)
        one = torch.ones(B, dtype=torch.long)
        return Batch(
            tokens,
            one,
            torch.zeros(B, dtype=torch.long),
            torch.full((B,), T - 1, dtype=torch.long),
            torch.ones(B),
            torch.full((B,), -1, dtype=torch.long),
            torch.zeros(B, N_VERDICT),
            doc=doc,
            code_cap=T - 1,
            plan_cap=1,
        )


def open_shard(root: str | Path, split: str, seq_len: int) -> Shard | TokenShard:
    """A split of a record shard folder (`gocoder shards`) or of a pretraining
    token folder, by its meta.json."""
    try:
        kind = json.loads((Path(root) / "meta.json").read_text(encoding="utf-8")).get(
            "kind", "records"
        )
    except (OSError, ValueError):
        kind = "records"  # Shard() names the missing file
    return TokenShard(root, split, seq_len) if kind == "pretrain" else Shard(root, split)


def epoch_batches(
    shard: Shard, rows: np.ndarray, batch_size: int, seed: int, epoch: int
) -> list[np.ndarray]:
    """One epoch's batches, deterministic from (seed, epoch): shuffle, sort each window
    of 32 batches by length so a batch pads little, then shuffle the batches. Each batch
    is whole (the tail is dropped)."""
    rng = np.random.default_rng([seed, epoch])
    perm = rows[rng.permutation(len(rows))]
    lengths = shard.lengths()
    window = batch_size * 32
    out = []
    for w in range(0, len(perm), window):
        chunk = perm[w: w + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[i: i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def iter_batches(shard: Shard, rows: np.ndarray, batch_size: int, seed: int, pos: dict[str, int],
                 rank: int = 0, world: int = 1) -> Iterator[np.ndarray]:
    """Batches forever from data position pos ({epoch, cursor}, updated as batches are taken: the
    checkpoint saves it); under DDP each rank takes every world-th batch."""
    while True:
        batches = epoch_batches(shard, rows, batch_size, seed, pos["epoch"])
        if len(batches) < world:
            raise GocoderError(
                f"{len(rows)} examples make fewer than {world} batches of {batch_size}: "
                "lower train.batch_size or add data"
            )
        while pos["cursor"] + world <= len(batches):
            b = batches[pos["cursor"] + rank]
            pos["cursor"] += world
            yield b
        pos["epoch"], pos["cursor"] = pos["epoch"] + 1, 0
