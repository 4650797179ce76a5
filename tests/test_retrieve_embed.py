"""Retrieval by the model's own embeddings (gocoder/inference/embed.py, retrieve.py): vectors, their cache in
the index, the per-file update, and the [retrieve] config that picks the ranking. Random-weight tiny models
and a byte tokenizer: no training, each test in about a second."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import STACK
from typer.testing import CliRunner

from gocoder import GocoderError
from gocoder.cli import app
from gocoder.config import ModelConfig, RetrieveConfig, load_config
from gocoder.inference.embed import Embedder
from gocoder.inference.retrieve import build_index, embed_text, fuse, open_index
from gocoder.model.model import GocoderModel


class ByteTok:
    """A tokenizer of bytes: all Embedder asks of one."""

    @staticmethod
    def encode_batch(texts, threads=-1):
        return [[3 + b for b in t.encode()] for t in texts]


class FakeGen:
    """What embedder_for takes from a Generator: its model and tokenizer."""

    def __init__(self, model):
        self.model, self.tok = model, ByteTok()


def tiny_model(kind: str = "gpt") -> GocoderModel:
    torch.manual_seed(0)
    cfg = ModelConfig(type=kind, vocab_size=300, d_model=32, n_heads=4, planner_layers=1, generator_layers=1,
                      gpt_layers=2, max_seq_len=256, segments=1, h_cycles=1)
    return GocoderModel(cfg).eval()


class Counting(Embedder):
    """An Embedder that counts the texts it embeds."""

    texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return super().embed(texts)



@pytest.fixture
def repo(decl_repo):
    return decl_repo

@pytest.mark.parametrize("kind", ["gpt", "recursive"])
@pytest.mark.parametrize("pooling", ["hidden", "embedding"])
def test_vectors_are_unit_length_and_do_not_depend_on_the_batch(kind, pooling, one_torch_thread):
    emb = Embedder(tiny_model(kind), ByteTok(), pooling, max_tokens=64, batch=4)
    texts = ["func Push(x int)", "// Stack is a LIFO of ints.\ntype Stack struct{ items []int }", "x", ""]
    both = emb.embed(texts)
    assert both.shape == (4, 32) and np.allclose(np.linalg.norm(both[:3], axis=1), 1, atol=1e-5)
    assert not both[3].any()  # no tokens: no vector
    for i, t in enumerate(texts[:3]):  # padded beside longer texts or alone: the same vector
        assert np.allclose(emb.embed([t])[0], both[i], atol=1e-5)
    assert not np.allclose(both[0], both[1])
    assert emb.key != Embedder(tiny_model(kind), ByteTok(), "embedding" if pooling == "hidden" else "hidden").key


def test_embedded_index_round_trips_and_finds_a_declaration_by_its_own_text(repo, tmp_path, one_torch_thread):
    emb = Embedder(tiny_model(), ByteTok())
    out = tmp_path / "idx.json"
    idx, st = build_index(repo, out, embedder=emb)
    assert idx.method == "embed" and sorted(st.embedded) == ["conf/parse.go", "ds/stack.go"]
    saved = json.loads(out.read_text())
    assert saved["embed_key"] == emb.key and all("vecs" in f for f in saved["files"].values())
    again = open_index(out, retrieve=RetrieveConfig(method="embed"), gen=FakeGen(emb.model))
    assert np.allclose(again.vectors(), idx.vectors(), atol=1e-3)  # float16 in the file
    q = embed_text("method", "Push puts x on top of the stack.\n", STACK.splitlines()[-1])
    top = again.search(q, k=3)
    assert top[0].name == "Stack.Push" and top[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.name for h in idx.search(q, k=3)] == [h.name for h in top]
    assert [h.name for h in again.search(q, k=3, exclude=["ds/stack.go"])] == ["ParseDuration"]
    # a BM25 search of the same index needs no model
    assert open_index(out).search("duration config")[0].name == "ParseDuration"


def test_a_rerun_embeds_only_the_changed_file_and_another_model_embeds_all(repo, tmp_path, one_torch_thread):
    model, out = tiny_model(), tmp_path / "idx.json"
    first = Counting(model, ByteTok())
    build_index(repo, out, embedder=first)
    assert first.texts == 3
    kept = json.loads(out.read_text())["files"]["conf/parse.go"]["vecs"]
    emb = Counting(model, ByteTok())
    _, st = build_index(repo, out, embedder=emb)
    assert st.embedded == [] and emb.texts == 0
    p = repo / "ds" / "stack.go"
    p.write_text(STACK + "\n// Pop takes the top off.\nfunc (s *Stack) Pop() int { return 0 }\n")
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    idx, st = build_index(repo, out, embedder=emb)
    assert st.reread == st.embedded == ["ds/stack.go"] and emb.texts == 3  # Stack, Push, Pop
    assert json.loads(out.read_text())["files"]["conf/parse.go"]["vecs"] == kept
    assert idx.vectors().shape == (4, 32)
    # a BM25 rerun keeps the vectors; a file changed meanwhile is embedded on the next embedding run
    (repo / "conf" / "more.go").write_text("package conf\n\n// Max of two.\nfunc Max(a, b int) int { return a }\n")
    _, st = build_index(repo, out)
    assert st.reread == ["conf/more.go"] and "vecs" in json.loads(out.read_text())["files"]["ds/stack.go"]
    _, st = build_index(repo, out, embedder=emb)
    assert st.reread == [] and st.embedded == ["conf/more.go"]
    other = Counting(model, ByteTok(), pooling="hidden")
    _, st = build_index(repo, out, embedder=other)
    assert st.reread == [] and len(st.embedded) == 3 and other.texts == 5


def test_the_retrieve_config_picks_the_ranking(repo, tmp_path, one_torch_thread):
    gen = FakeGen(tiny_model())
    cfg = load_config(None, ['retrieve.method="embed"', 'retrieve.pooling="hidden"']).retrieve
    idx = open_index(repo / "ds", retrieve=cfg, gen=gen)  # a folder: indexed and embedded
    assert idx.method == "embed" and idx.embedder.pooling == "hidden" and len(idx.vectors()) == 2
    assert (load_config().retrieve.method, load_config().retrieve.pooling) == ("hybrid", "embedding")  # measured
    bm25 = open_index(repo, retrieve=load_config(None, ['retrieve.method="bm25"']).retrieve, gen=gen)
    assert bm25.method == "bm25" and bm25.embedder is None
    with pytest.raises(GocoderError, match="has no model to embed"):
        bm25.search("stack", method="embed")
    saved = tmp_path / "bm25.json"
    build_index(repo, saved)
    with pytest.raises(GocoderError, match="not embedded by this model"):
        open_index(saved, retrieve=cfg, gen=gen)
    with pytest.raises(GocoderError, match="retrieve.method"):
        load_config(None, ['retrieve.method="dense"'])
    # reciprocal rank fusion: agreement on top wins, then the better of the ranks
    assert [i for i, _ in fuse([[(1, 9.0), (2, 5.0), (3, 1.0)], [(1, 0.9), (3, 0.8), (2, 0.1)]])] == [1, 2, 3]
    assert [i for i, _ in fuse([[(5, 1.0)], [(6, 1.0), (5, 0.5)]])] == [5, 6]


def test_index_cli_embeds_with_the_method_and_reports_it(repo, tmp_path, monkeypatch, one_torch_thread):
    from gocoder.inference.generate import Generator

    gen = FakeGen(tiny_model())
    monkeypatch.setattr(Generator, "load", classmethod(lambda cls, *a, **k: gen))
    out = tmp_path / "idx.json"
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), "--method", "hybrid", "--query",
                                 "parse a duration", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["method"] == "hybrid" and got["embedded"] == 2 and got["hits"]
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), "--set", 'retrieve.method="embed"', "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["embedded"] == 0
    r = CliRunner().invoke(app, ["index", str(repo), "--out", str(out), "--method", "dense"])
    assert r.exit_code == 2 or isinstance(r.exception, GocoderError)


def test_generate_ranks_the_repository_as_the_retrieve_config_says(repo, monkeypatch, one_torch_thread):
    import gocoder.inference.generate as g
    from gocoder.config import GenerateConfig
    from gocoder.inference.retrieve import with_related

    class Gen(FakeGen):
        def with_related(self, rec, index, max_new, exclude=()):
            return with_related(rec, index, lambda r: True, k=1, exclude=exclude)

    seen = {}
    monkeypatch.setenv("GOCODER_CACHE", str(repo / ".cache-test"))
    monkeypatch.setattr(g.Generator, "load", classmethod(lambda cls, *a, **k: Gen(tiny_model())))
    monkeypatch.setattr(g, "solve", lambda gen, rec, **k: seen.setdefault("rec", rec) and g.Result(
        "", [], 1, False, None, None, False, []))
    ask = "Qqq zzz"  # no term of any declaration: BM25 finds nothing, the embeddings rank everything
    g.generate_for_pr(GenerateConfig(), ask, repo / "ds" / "stack.go", repo=repo)
    assert not seen.pop("rec").context.related
    g.generate_for_pr(GenerateConfig(), ask, repo / "ds" / "stack.go", repo=repo, retrieval=RetrieveConfig("embed"))
    assert [r.file for r in seen.pop("rec").context.related] == ["conf/parse.go"]
