"""`gocoder corpus functions`: documented functions that type-check alone, as small package main files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gocoder.collect.functions import extract, standalone
from gocoder.collect.textparts import PartWriter, read_parts
from gocoder.text.gosource import imports

REPO = Path(__file__).resolve().parents[1]

LIB = '''package strs

import (
	"fmt"
	str "strings"
	"testing"
)

// Shout returns s in upper case with an exclamation mark.
func Shout(s string) string {
	return str.ToUpper(s) + "!"
}

// Twice doubles n through a helper of the package.
func Twice(n int) int {
	return helper(n) * 2
}

func helper(n int) int { return n }

func undocumented(s string) string { return fmt.Sprint(s) }

// Describe is a method: it needs its type.
func (t T) Describe() string { return "t" }

type T struct{}

// TestShout is a test.
func TestShout(t *testing.T) {}
'''
COPY = '''package other

import "strings"

// Shout returns s in upper case with an exclamation mark.
func Shout(s string) string {
	return strings.ToUpper(s) + "!"
}
'''
HELD_OUT = '''package held

// Sum adds the numbers of xs.
func Sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}
'''


def write_parts(folder: Path) -> None:
    with PartWriter(folder, 24 << 20) as w:
        files = [("golang-strs-dev", "train", LIB), ("golang-strs-dev", "train", LIB),
                 ("golang-other-dev", "train", COPY), ("golang-held-dev", "valid", HELD_OUT)]
        for i, (pkg, split, text) in enumerate(files):
            w.write({"id": f"f{i}", "package": pkg, "license": "MIT", "path": f"{i}.go", "split": split, "text": text})


def test_imports_and_the_standalone_file():
    assert [i[:3] for i in imports(LIB)] == [("fmt", "fmt", ""), ("str", "strings", "str"), ("testing", "testing", "")]
    assert [i[:3] for i in imports('package a\n\nimport "os"\nimport x "net/http"\n')] == [
        ("os", "os", ""), ("x", "net/http", "x")]
    src = standalone("Shout shouts.\n\nLoudly.\n", 'func Shout(s string) string {\n\treturn str.ToUpper(s)\n}',
                     imports(LIB))
    assert src == ('package main\n\nimport (\n\tstr "strings"\n)\n\n// Shout shouts.\n//\n// Loudly.\n'
                   'func Shout(s string) string {\n\treturn str.ToUpper(s)\n}\n')


def test_keeps_what_type_checks_alone_once_and_resumes(tmp_path):
    write_parts(tmp_path / "text")
    summary = extract(tmp_path / "text", tmp_path / "out")
    recs = list(read_parts(tmp_path / "out" / "text"))
    assert [(r["id"], r["split"], r["package"]) for r in recs] == [
        ("f0#Shout", "train", "golang-strs-dev"), ("f2#Shout", "train", "golang-other-dev"),
        ("f3#Sum", "valid", "golang-held-dev")]
    assert recs[0]["text"] == ('package main\n\nimport (\n\tstr "strings"\n)\n\n'
                               '// Shout returns s in upper case with an exclamation mark.\n'
                               'func Shout(s string) string {\n\treturn str.ToUpper(s) + "!"\n}\n')
    total = summary["total"]
    # f1 is f0 again; f2's Shout says strings, not the alias str: another text, kept
    assert total["kept train"] == 2 and total["kept valid"] == 1
    assert total["exact copy"] == 1  # f1's Shout
    assert total["needs its package or a module (type errors alone)"] == 2  # Twice, twice
    assert total["undocumented"] == 4 and total["test, example, main or init"] == 2
    parts = {p.name: p.read_bytes() for p in (tmp_path / "out" / "text").iterdir()}
    again = extract(tmp_path / "text", tmp_path / "out")  # every part done: nothing is redone or repeated
    assert again["total"] == total
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "text").iterdir()} == parts


def test_cli_and_bad_input(tmp_path):
    write_parts(tmp_path / "text")
    cmd = [sys.executable, "-m", "gocoder", "corpus", "functions", "-o", str(tmp_path / "o")]
    p = subprocess.run([*cmd, "--text", str(tmp_path / "text")], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("kept 2 train, 1 valid and 0 test functions")
    assert json.loads((tmp_path / "o/summary.json").read_text())["total"]["kept valid"] == 1
    p = subprocess.run([*cmd, "--text", str(tmp_path / "nope")], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2 and p.stderr.strip() == f"error: {tmp_path / 'nope'}: no part-*.jsonl.xz files"
