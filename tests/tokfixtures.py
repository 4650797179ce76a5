"""A tiny tokenizer and hierarchical records for any test that needs token ids (trains in < 1 s).

Use it from a test module with a session fixture over train_tiny_tokenizer (see
tests/test_tokenizer.py's `tiny_tokenizer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gocoder.text.serialize import serialize
from gocoder.text.tokenizer import Tokenizer, train_tokenizer

# Go that breaks careless tokenizers: tabs, raw strings, runes, Unicode identifiers, CRLF, U+2581.
GO_TRICKY = [
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfor i := 0; i < 3; i++ {\n\t\tfmt.Println(i)\n\t}\n}\n",
    "package q\n\nvar re = `^\\s+(\\d+)\t\"raw\"\n  spans lines`\n\nconst tab = '\\t'\nconst r = '世'\n",
    "package π\n\n// Größe is a size; 名前 a name.\nfunc Größe(名前 string) int { return len(名前) }\n",
    "package crlf\r\n\r\nfunc f() int {\r\n\treturn 1\r\n}\r\n",
    "package u\n\nvar meta = \"\u2581 is SentencePiece's space\"  // and a literal \u2581\u2581\n",
    "package e\n\nvar s = \"</CODE><CODE> <STEP> \\\\ \x00 \U0001F600 \u00a0\"\n",
    "package sum\n\n// Sum adds numbers.\nfunc Sum(xs ...int) int {\n\tt := 0\n\tfor _, x := range xs {\n"
    "\t\tt += x\n\t}\n\treturn t\n}\n",
]


def tiny_records(n: int = 6) -> list[dict[str, Any]]:
    """n small hierarchical records (docs/FORMATS.md) over GO_TRICKY."""
    intents = ["FIX", "ADD", "REFACTOR", "OPTIMIZE", "UPDATE", "REMOVE", "PRESERVE"]
    kinds = ["func", "method", "type", "interface", "var", "const", "struct"]
    out = []
    for i in range(n):
        code = GO_TRICKY[i % len(GO_TRICKY)]
        out.append({
            "id": f"r{i}", "split": "train", "source": "synth", "repo": "test",
            "problem": {"description": f"Fix bug {i} in Sum", "details": f"Sum returned {i} for an empty slice.\n"},
            "context": {"file": f"pkg/f{i}.go", "before": code.replace("return", "return 0 +")},
            "plan": {"steps": [{"intent": intents[i % 7], "target": f"{kinds[i % 7]}:Sum{i}",
                                "description": "return the total"},
                               {"intent": "PRESERVE", "target": "", "description": "keep the signature"}]},
            "solution": {"code": code, "validation": {"syntax": i % 2 == 0, "tests": None if i % 3 else True}},
        })
    return out


def train_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 400) -> Tokenizer:
    texts = [serialize(r) for r in tiny_records(12)] + GO_TRICKY * 3
    return Tokenizer.load(train_tokenizer(texts, out_dir, vocab_size, "bpe"))

