"""The shared tiny corpus and checkpoint of the tests (tests/conftest.py's session fixtures build them
once): 16 small Go functions with one-step plans, a tokenizer trained on their records, their shards,
and a checkpoint trained a few steps on them."""
# ruff: noqa: E501 (the Go corpus below is one function a line)

from __future__ import annotations

import json
from pathlib import Path

# Small Go functions written for these tests (never copied from elsewhere), with a one-step plan each.
FUNCS = [
    ("Max", "returns the larger of two ints", "func Max(a, b int) int {\n\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"),
    ("Min", "returns the smaller of two ints", "func Min(a, b int) int {\n\tif a < b {\n\t\treturn a\n\t}\n\treturn b\n}\n"),
    ("Abs", "returns the absolute value", "func Abs(x int) int {\n\tif x < 0 {\n\t\treturn -x\n\t}\n\treturn x\n}\n"),
    ("Sum", "adds the numbers", "func Sum(xs []int) int {\n\tt := 0\n\tfor _, x := range xs {\n\t\tt += x\n\t}\n\treturn t\n}\n"),
    ("Count", "counts x in xs", "func Count(xs []int, x int) int {\n\tn := 0\n\tfor _, v := range xs {\n\t\tif v == x {\n\t\t\tn++\n\t\t}\n\t}\n\treturn n\n}\n"),
    ("Reverse", "reverses s in place", "func Reverse(s []int) {\n\tfor i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {\n\t\ts[i], s[j] = s[j], s[i]\n\t}\n}\n"),
    ("IsEven", "reports whether n is even", "func IsEven(n int) bool {\n\treturn n%2 == 0\n}\n"),
    ("Clamp", "limits x to [lo, hi]", "func Clamp(x, lo, hi int) int {\n\tif x < lo {\n\t\treturn lo\n\t}\n\tif x > hi {\n\t\treturn hi\n\t}\n\treturn x\n}\n"),
    ("Contains", "reports whether s holds x", "func Contains(s []string, x string) bool {\n\tfor _, v := range s {\n\t\tif v == x {\n\t\t\treturn true\n\t\t}\n\t}\n\treturn false\n}\n"),
    ("Index", "finds x in s", "func Index(s []int, x int) int {\n\tfor i, v := range s {\n\t\tif v == x {\n\t\t\treturn i\n\t\t}\n\t}\n\treturn -1\n}\n"),
    ("Fact", "computes n factorial", "func Fact(n int) int {\n\tr := 1\n\tfor i := 2; i <= n; i++ {\n\t\tr *= i\n\t}\n\treturn r\n}\n"),
    ("Fib", "computes the n-th Fibonacci number", "func Fib(n int) int {\n\ta, b := 0, 1\n\tfor i := 0; i < n; i++ {\n\t\ta, b = b, a+b\n\t}\n\treturn a\n}\n"),
    ("Square", "squares x", "func Square(x int) int {\n\treturn x * x\n}\n"),
    ("Mean", "averages xs", "func Mean(xs []float64) float64 {\n\tif len(xs) == 0 {\n\t\treturn 0\n\t}\n\tt := 0.0\n\tfor _, x := range xs {\n\t\tt += x\n\t}\n\treturn t / float64(len(xs))\n}\n"),
    ("Keys", "lists the keys of m", "func Keys(m map[string]int) []string {\n\tks := make([]string, 0, len(m))\n\tfor k := range m {\n\t\tks = append(ks, k)\n\t}\n\treturn ks\n}\n"),
    ("Repeat", "repeats s n times", "func Repeat(s string, n int) string {\n\tr := \"\"\n\tfor i := 0; i < n; i++ {\n\t\tr += s\n\t}\n\treturn r\n}\n"),
]


def record(i: int, split: str = "train") -> dict:
    name, what, code = FUNCS[i % len(FUNCS)]
    return {"id": f"r{i}", "split": split, "source": "synth", "repo": "tests",
            "problem": {"description": f"Add {name}", "details": f"{name} {what}."},
            "context": {"file": "util.go", "before": "package util\n"},
            "plan": {"steps": [{"intent": "ADD", "target": f"func:{name}", "description": what}]},
            "solution": {"code": code, "validation": {"syntax": True, "tests": None}}}


def build_corpus(d: Path):
    """16 train and 4 valid records in d/h.jsonl, a tokenizer trained on them (d/tok), their shards."""
    from gocoder.config import ShardsConfig
    from gocoder.text.serialize import serialize
    from gocoder.text.tokenizer import Tokenizer, train_tokenizer
    from gocoder.training.data import build_shards

    recs = [record(i) for i in range(16)] + [record(i, "valid") for i in range(4)]
    (d / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    train_tokenizer([serialize(r) for r in recs] * 4, d / "tok", vocab_size=420)
    tok = Tokenizer.load(d / "tok")
    counts = build_shards(ShardsConfig(seed=0), d / "h.jsonl", tok, d / "shards")
    return d, tok, counts


def train_tiny(corpus: Path, out: Path) -> Path:
    """A run folder trained 6 steps on the corpus (configs/tiny.toml, no evaluation, no EMA)."""
    from gocoder.config import load_config
    from gocoder.training.train import train

    sets = {"train.data": str(corpus / "shards"), "train.tokenizer": str(corpus / "tok"), "train.out": str(out),
            "train.eval_every": 0, "train.steps": 6, "train.ema_decay": 0.0}
    train(load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in sets.items()]))
    return out
