"""The tokenizer: byte-exact round trips, one id per special token, hash-checked loading, eval, CLI."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokfixtures import GO_TRICKY, tiny_records, train_tiny_tokenizer

from gocoder import GocoderError
from gocoder.text.serialize import load_vocab, serialize
from gocoder.text.tokenizer import Tokenizer, chunks, train_tokenizer
from gocoder.training.tokenizer_run import evaluate_tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def gocoder(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gocoder", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("i", range(len(GO_TRICKY)))
def test_tricky_go_round_trips(tiny_tokenizer, i):
    ids = tiny_tokenizer.encode(GO_TRICKY[i])
    assert tiny_tokenizer.decode(ids) == GO_TRICKY[i]
    assert tiny_tokenizer.encode_batch([GO_TRICKY[i]]) == [ids]


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_any_text_round_trips(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_each_special_token_is_one_distinct_id(tiny_tokenizer):
    tok = tiny_tokenizer
    ids = {s: tok.token_id(s) for s in load_vocab().symbols}
    assert len(set(ids.values())) == len(ids) == len(load_vocab().symbols)
    for s, i in ids.items():
        assert tok.encode(s) == [i] and tok.decode([i]) == s
    assert {tok.pad_id, tok.bos_id, tok.eos_id}.isdisjoint(ids.values())
    assert len({tok.pad_id, tok.bos_id, tok.eos_id}) == 3
    assert tok.decode([tok.bos_id, *tok.encode("x"), tok.eos_id, tok.pad_id]) == "x"
    assert (tok.token_id("<pad>"), tok.token_id("<s>"), tok.token_id("</s>")) == (tok.pad_id, tok.bos_id, tok.eos_id)
    with pytest.raises(GocoderError, match="not a special token"):
        tok.token_id("<NOPE>")


def test_escaped_tag_in_code_is_not_the_special_id(tiny_tokenizer):
    rec = tiny_records(6)[5]  # its code holds "</CODE><CODE> <STEP>"
    ids = tiny_tokenizer.encode(serialize(rec))
    assert ids.count(tiny_tokenizer.token_id("</CODE>")) == 1
    assert ids.count(tiny_tokenizer.token_id("<STEP>")) == len(rec["plan"]["steps"])
    assert tiny_tokenizer.decode(ids) == serialize(rec)


def test_encode_batch_matches_encode_with_u2581(tiny_tokenizer):
    texts = ["\u2581", "a \u2581b\u2581", "", "\t\t\n", "plain"]
    assert tiny_tokenizer.encode_batch(texts) == [tiny_tokenizer.encode(t) for t in texts]
    assert [tiny_tokenizer.decode(x) for x in tiny_tokenizer.encode_batch(texts)] == texts


def test_long_texts_encode_in_pieces_to_the_same_ids(tiny_tokenizer):
    # encode cuts long texts before a space that follows a non-space (no piece crosses there)
    long = "".join(GO_TRICKY[i % 3] for i in range(40)) + "x" * 3000 + "  y"
    assert len(tiny_tokenizer._pieces(long)) > 10
    assert tiny_tokenizer.encode(long) == tiny_tokenizer._sp.encode(long)
    assert tiny_tokenizer.encode_batch([long, "a b", long]) == tiny_tokenizer._sp.encode([long, "a b", long])


def test_load_checks_hash_and_accepts_model_path(tiny_tokenizer, tmp_path):
    src = tiny_tokenizer.path.parent
    assert Tokenizer.load(tiny_tokenizer.path).hash == Tokenizer.load(src).hash == tiny_tokenizer.hash
    for name in ("gocoder.model", "gocoder.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    model = tmp_path / "gocoder.model"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(GocoderError, match="sha256 does not match"):
        Tokenizer.load(tmp_path)
    with pytest.raises(GocoderError, match="cannot read tokenizer"):
        Tokenizer.load(tmp_path / "nothing")


def test_pickles(tiny_tokenizer):
    t = pickle.loads(pickle.dumps(tiny_tokenizer))
    assert t.encode(GO_TRICKY[4]) == tiny_tokenizer.encode(GO_TRICKY[4]) and t.hash == tiny_tokenizer.hash


def test_chunks_cut_at_line_ends_and_never_lose_bytes():
    text = "".join(f"line {i} é世\n" for i in range(200)) + "x" * 50 + "世" * 40
    parts = list(chunks(text, 64))
    assert "".join(parts) == text
    assert all(len(p.encode()) <= 64 for p in parts)
    assert all(p.endswith("\n") for p in parts if "line" in p)
    assert list(chunks("short", 64)) == ["short"]


def test_long_text_is_chunked_not_skipped(tmp_path):
    long_go = "package big\n\n" + "".join(f"func f{i}() int {{ return {i} }}\n" for i in range(400))
    tok = Tokenizer.load(train_tokenizer([long_go], tmp_path, 400, "bpe", max_sentence_length=1024))
    sample = tok.meta["sample"]
    assert sample["texts"] == 1 and sample["chunks"] > 10 and sample["chars"] == len(long_go)
    assert tok.decode(tok.encode(long_go)) == long_go


def test_unigram_trains_and_round_trips(tmp_path):
    tok = Tokenizer.load(train_tokenizer(GO_TRICKY * 4, tmp_path, 380, "unigram"))
    assert tok.meta["settings"]["model_type"] == "unigram"
    long = "".join(g for g in GO_TRICKY if "\u2581" not in g) * 40  # long enough that BPE would cut it
    assert tok.encode_batch([long]) == [tok._sp.encode(long)]  # unigram: whole-text ids, as SentencePiece
    assert all(tok.decode(tok.encode(g)) == g for g in GO_TRICKY)


def test_bad_training_input_is_an_error(tmp_path):
    with pytest.raises(GocoderError, match="--vocab-size 100: must be at least"):
        train_tokenizer(GO_TRICKY, tmp_path, 100, "bpe")
    with pytest.raises(GocoderError, match="--model-type 'wordpiece'"):
        train_tokenizer(GO_TRICKY, tmp_path, 400, "wordpiece")
    with pytest.raises(GocoderError):
        train_tokenizer([], tmp_path, 400, "bpe")
    assert not (tmp_path / "gocoder.json").exists()


def test_eval_on_records_and_go_folder(tiny_tokenizer, tmp_path):
    jl = tmp_path / "h.jsonl"
    jl.write_text("".join(json.dumps(r) + "\n" for r in tiny_records(6)))
    rep = evaluate_tokenizer(tiny_tokenizer, jl)
    assert rep.items == 6 and rep.mismatches == 0
    assert set(rep.chars_per_token) == {"all", "go", "plan", "description"}
    assert all(v > 1 for v in rep.chars_per_token.values())
    for i, g in enumerate(GO_TRICKY):
        (tmp_path / f"f{i}.go").write_text(g, newline="")
    (tmp_path / "h.jsonl").unlink()
    rep = evaluate_tokenizer(tiny_tokenizer, tmp_path)
    assert rep.items == len(GO_TRICKY) and rep.mismatches == 0 and rep.chars_per_token["plan"] is None


def test_eval_counts_and_shows_mismatches(tiny_tokenizer, tmp_path, monkeypatch):
    (tmp_path / "a.go").write_text("package a\n\tx\n")
    (tmp_path / "b.go").write_text("package b\n")
    broken = pickle.loads(pickle.dumps(tiny_tokenizer))
    monkeypatch.setattr(broken, "decode", lambda ids: tiny_tokenizer.decode(ids).replace("\t", "    "))
    rep = evaluate_tokenizer(broken, tmp_path)
    assert rep.mismatches == 1
    assert rep.examples[0]["item"].endswith("a.go") and rep.examples[0]["char"] == 10


def test_cli_train_and_eval(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, g in enumerate(GO_TRICKY):
        (src / f"f{i}.go").write_text(g, newline="")
    jl = tmp_path / "h.jsonl"
    held_out = [dict(r, split=s) for r, s in zip(tiny_records(2), ("valid", "test"), strict=True)]
    jl.write_text("".join(json.dumps(r) + "\n" for r in tiny_records(6) + held_out))
    out = tmp_path / "tok"
    p = gocoder("tokenizer", "train", "--input", str(jl), "--go-src", str(src), "-o", str(out),
                "--vocab-size", "400", "--json")
    assert p.returncode == 0, p.stderr
    meta = json.loads(p.stdout)
    assert meta["sample"]["texts"] == 6 + len(GO_TRICKY) and meta["settings"]["vocab_size"] == 400
    p = gocoder("tokenizer", "eval", "--corpus", str(src), "-t", str(out))
    assert p.returncode == 0 and f"{len(GO_TRICKY)} exact, 0 mismatched" in p.stdout, p.stderr
    p = gocoder("tokenizer", "eval", "--corpus", str(tmp_path / "none"), "-t", str(out))
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0 and "--corpus" in p.stderr


def test_cli_trains_on_text_parts_train_split_capped_and_evals_their_valid_split(tmp_path):
    from gocoder.collect.textparts import PartWriter

    recs = [("big", "train", g) for g in GO_TRICKY]
    recs += [("small", "train", GO_TRICKY[0]), ("held", "valid", GO_TRICKY[1]), ("held", "valid", GO_TRICKY[2])]
    with PartWriter(tmp_path / "text", 24 << 20) as w:
        for i, (pkg, split, text) in enumerate(recs):
            w.write({"id": str(i), "package": pkg, "license": "MIT", "path": f"f{i}.go", "split": split, "text": text})
    cap = sum(len(g) for g in GO_TRICKY[:3])  # "big" gives its first three files: each later one passes the cap
    out = tmp_path / "tok"
    p = gocoder("tokenizer", "train", "--text", str(tmp_path / "text"), "-o", str(out), "--vocab-size", "400",
                "--set", f"tokenizer.package_chars={cap}", "--json")
    assert p.returncode == 0, p.stderr
    sample = json.loads(p.stdout)["sample"]
    assert sample["texts"] == 3 + 1 and sample["chars"] == cap + len(GO_TRICKY[0])  # no valid text, "big" capped
    p = gocoder("tokenizer", "eval", "--corpus", str(tmp_path / "text"), "-t", str(out), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["items"] == 2 and rep["mismatches"] == 0 and rep["chars"] == len(GO_TRICKY[1]) + len(GO_TRICKY[2])


def test_train_without_out_leaves_the_shipped_tokenizer_alone(tmp_path):
    # run where a checkout's tracked tokenizer/ is: the README's `tokenizer train` has no -o
    shipped = tmp_path / "tokenizer"
    shipped.mkdir()
    (shipped / "gocoder.model").write_bytes(b"shipped")
    src = tmp_path / "src"
    src.mkdir()
    for i, g in enumerate(GO_TRICKY):
        (src / f"f{i}.go").write_text(g, newline="")
    p = gocoder("tokenizer", "train", "--go-src", "src", "--vocab-size", "400", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert [f.name for f in shipped.iterdir()] == ["gocoder.model"]
    assert (shipped / "gocoder.model").read_bytes() == b"shipped"
    assert p.stdout.startswith("work/tokenizer/") and Tokenizer.load(tmp_path / "work" / "tokenizer").vocab_size == 400


def test_shipped_tokenizer_loads_and_round_trips():
    from gocoder.text.serialize import SPECIAL_TOKENS

    tok = Tokenizer.load(SPECIAL_TOKENS.parent)  # tokenizer/: hash checked against gocoder.json
    assert tok.vocab_size == tok.meta["settings"]["vocab_size"]
    assert all(tok.encode(s) == [tok.token_id(s)] for s in load_vocab().symbols)
    for text in [*GO_TRICKY, serialize(tiny_records(6)[5])]:
        assert tok.decode(tok.encode(text)) == text
