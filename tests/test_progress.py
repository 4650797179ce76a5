"""Long commands off a terminal: plain progress lines instead of rich's bars, which draw nothing there."""

from __future__ import annotations

import io

from rich.console import Console

from gocoder.progress import Progress


def test_plain_lines_off_a_terminal():
    buf = io.StringIO()
    with Progress(console=Console(file=buf, force_terminal=False), every=3600) as bar:
        task = bar.add_task("bench", total=10, completed=2)  # 2 done by an earlier run
        bar.advance(task)  # the first item this run: a line at once, with the time left
        bar.advance(task)  # within `every` of the last line: none
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("bench: 3/10 (30%) in ") and ", about " in lines[0] and lines[0].endswith(" left")
    assert lines[1].startswith("bench: 4/10 (40%) in ") and lines[1].endswith(", stopped")


def test_every_interval_and_no_total():
    buf = io.StringIO()
    with Progress(console=Console(file=buf, force_terminal=False), every=0) as bar:
        task = bar.add_task("shards", total=None)
        for _ in range(3):
            bar.advance(task, 5)
    lines = buf.getvalue().splitlines()
    assert [ln.split(" in ")[0] for ln in lines] == ["shards: 5", "shards: 10", "shards: 15", "shards: 15"]
    assert lines[-1].endswith(", done") and "left" not in "".join(lines)  # no total, no time left


def test_a_terminal_gets_the_bar_and_no_lines():
    buf = io.StringIO()
    with Progress(console=Console(file=buf, force_terminal=True, width=100), every=0) as bar:
        bar.advance(bar.add_task("eval", total=2))
    assert "eval: 1/2" not in buf.getvalue()
