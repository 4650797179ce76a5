"""`gocoder report`: plots and a Markdown summary of a training run, for a person to read.

Reads what `gocoder train` writes into its run folder (metrics.jsonl: `train-N` and `eval-N` rows;
the newest checkpoint's config.json) and, when there is one, the per-item results of `gocoder eval`
(a JSONL of `Result`s: iterations, first_try_ok, syntax_ok, trace). Writes PNGs and report.md.

Plots are drawn on matplotlib's Agg canvas without pyplot: no display, no global figure state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gocoder import GocoderError
from gocoder.fsio import need
from gocoder.records import read_jsonl

LOSSES = ("loss", "plan_loss", "code_loss", "ctrl_loss", "halt_loss")


@dataclass
class Report:
    out: Path
    markdown: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was skipped, and why


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) of a run folder, each sorted by step; a missing folder or one without
    metrics is a GocoderError."""
    run = Path(run_dir)
    if not run.is_dir():
        raise GocoderError(f"{run}: no such run folder")
    f = run / "metrics.jsonl"
    if not f.is_file():
        raise GocoderError(f"{f}: no metrics (is {run} a folder written by gocoder train?)")
    rows: dict[str, dict] = {}
    for r in read_jsonl(f):
        rows.setdefault(str(r.get("id", "")), r)  # first write wins, as JsonlWriter keeps it
    train = sorted((r for k, r in rows.items() if k.startswith("train-")), key=lambda r: r["step"])
    evals = sorted((r for k, r in rows.items() if k.startswith("eval-")), key=lambda r: r["step"])
    if not train and not evals:
        raise GocoderError(f"{f}: no train-N or eval-N rows (the run logged nothing yet)")
    return train, evals


def read_eval(path: str | Path) -> tuple[list[dict], str | None]:
    """The per-item results of `gocoder eval` that carry `iterations`, and a note when the file is
    missing or holds none (the refinement plot is then skipped, never guessed)."""
    p = Path(path)
    if not p.is_file():
        return (
            [],
            f"no eval results at {p}: the valid-rate-by-iteration plot is skipped "
            "(run gocoder eval)",
        )
    items = []
    for r in read_jsonl(p):
        r = r.get("result", r) if isinstance(r.get("result"), dict) else r
        if isinstance(r.get("iterations"), int):
            items.append(r)
    if not items:
        return (
            [],
            f"{p}: no per-item results with `iterations`: the valid-rate-by-iteration "
            "plot is skipped",
        )
    return items, None


def _step_valid(step: dict) -> bool | None:
    """Whether one trace step's code parsed, from whichever verdict form it carries."""
    for d in (step, step.get("verdict") if isinstance(step.get("verdict"), dict) else {}):
        for k in ("syntax_ok", "ok", "parses"):
            if isinstance(d.get(k), bool):
                return d[k]
    v = step.get("verdict")
    # gocoder.check.validate.verdict_features
    if isinstance(v, list) and v and isinstance(v[0], int | float):
        return v[0] > 0.5
    return None


def item_validity(item: dict) -> list[bool]:
    """Validity of an item's code after each iteration 1..iterations: from its trace when every step
    says (a `Result`), else from the first-try and final flags (an eval row: first_try_valid,
    syntax_valid), the iterations between counting as invalid. Exact when the loop stops at the
    first code that parses, as it does without tests; with tests, a middle round may have parsed."""
    n = item["iterations"]
    steps = [s for s in item.get("trace") or [] if isinstance(s, dict)]
    per = [_step_valid(s) for s in steps]
    if steps and all(v is not None for v in per):
        return [bool(v) for v in per]
    first = bool(item.get("first_try_valid", item.get("first_try_ok")))
    final = bool(item.get("syntax_valid", item.get("syntax_ok")))
    return [first] + [False] * max(n - 2, 0) + ([final] if n > 1 else [])


def valid_by_iteration(items: list[dict]) -> list[tuple[int, float, float, int]]:
    """Per iteration k: (k, share of all items with a parsing candidate by iteration k (an item that
    stopped earlier keeps what it had), share parsing among the items
    that ran iteration k, items run)."""
    vals = [item_validity(it) for it in items]
    top = max((len(v) for v in vals), default=0)
    out = []
    for k in range(1, top + 1):
        ran = [v for v in vals if len(v) >= k]
        by_k = sum(any(v[:k]) for v in vals) / len(vals)
        out.append((k, by_k, sum(v[k - 1] for v in ran) / len(ran), len(ran)))
    return out


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (6.4, 4.0)):
    # matplotlib is optional (the `report` extra); build_report says so in one line before any plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _steps_axis(a) -> None:
    from matplotlib.ticker import MaxNLocator

    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel("step")
    a.grid(alpha=0.3)


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def plot_losses(train: list[dict], evals: list[dict], path: Path) -> None:
    """One panel per loss (train, and validation where the trainer
    measures it), and the learning rate."""
    fig, ax = _figure(2, 3, (12, 6.5))
    for a, key in zip(ax.flat, LOSSES, strict=False):
        a.plot(*_series(train, key), label="train", lw=1.2)
        xs, ys = _series(evals, f"val_{key}")
        if xs:
            a.plot(xs, ys, "o-", label="validation", lw=1.2, ms=4)
        a.set_title(key.replace("_", " "))
        _steps_axis(a)
        a.legend(fontsize=8)
    a = ax.flat[-1]
    a.plot(*_series(train, "lr"), color="tab:green")
    a.set_title("learning rate")
    _steps_axis(a)
    fig.savefig(path)


def plot_syntax_valid(evals: list[dict], path: Path) -> None:
    fig, ax = _figure()
    a = ax[0, 0]
    a.plot(*_series(evals, "val_syntax_valid"), "o-", color="tab:purple")
    a.set(
        title="validation: greedy samples gocheck accepts",
        ylabel="syntax-valid rate",
        ylim=(-0.02, 1.02),
    )
    _steps_axis(a)
    fig.savefig(path)


def plot_halting(train: list[dict], evals: list[dict], path: Path) -> None:
    """Left: segments run per validation example at the last evaluation that counted them; right:
    the mean segments over steps (train and validation)."""
    fig, ax = _figure(1, 2, (11, 4))
    hists = [r for r in evals if isinstance(r.get("val_segments_hist"), list)]
    a = ax[0, 0]
    if hists:
        h = hists[-1]["val_segments_hist"]  # h[i]: examples that halted after i + 1 segments
        a.bar(range(1, len(h) + 1), h, color="tab:orange")
        a.set(
            title=f"halting: segments per example (eval at step {hists[-1]['step']})",
            xlabel="segments run",
            ylabel="examples",
            xticks=range(1, len(h) + 1),
        )
    else:
        a.text(
            0.5,
            0.5,
            "no val_segments_hist in metrics",
            ha="center",
            va="center",
            transform=a.transAxes,
        )
        a.set_axis_off()
    a = ax[0, 1]
    a.plot(*_series(train, "halt_segments"), label="train", lw=1.2)
    xs, ys = _series(evals, "val_segments")
    if xs:
        a.plot(xs, ys, "o-", label="validation", ms=4)
    a.set_title("mean segments run")
    a.set_ylim(0, max([*ys, *_series(train, "halt_segments")[1], 1.0]) * 1.1)
    _steps_axis(a)
    a.legend(fontsize=8)
    fig.savefig(path)


def plot_refinement(curve: list[tuple[int, float, float, int]], path: Path) -> None:
    fig, ax = _figure()
    a = ax[0, 0]
    ks = [c[0] for c in curve]
    a.plot(ks, [c[1] for c in curve], "o-", label="valid by iteration k (all items)")
    a.plot(ks, [c[2] for c in curve], "s--", label="valid at iteration k (items that ran it)")
    a.set(
        title="refinement: syntax-valid rate by iteration",
        xlabel="iteration (items that ran it)",
        ylabel="valid rate",
        ylim=(-0.05, 1.05),
        xticks=ks,
    )
    a.set_xticklabels([f"{k}\n(n={n})" for k, _, _, n in curve])
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.savefig(path)


def _checkpoint_meta(run: Path) -> dict[str, Any] | None:
    """config.json of the newest checkpoint (read as JSON: no weights, no torch)."""
    latest = run / "latest"
    folder = run / latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
    if folder is None:
        found = sorted(run.glob("ckpt-*/config.json"))
        folder = found[-1].parent if found else None
    if folder is None or not (folder / "config.json").is_file():
        return None
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise GocoderError(f"{folder / 'config.json'}: unreadable: {e}") from None


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def _duration(s: float) -> str:
    m, s = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {s:02d} s" if m else f"{s} s")


def _markdown(run: Path, meta: dict | None, train: list[dict], evals: list[dict], rep: Report,
              curve: list[tuple[int, float, float, int]]) -> str:
    last = train[-1] if train else {}
    cfg = (meta or {}).get("config", {})
    mcfg = (meta or {}).get("model", cfg.get("model", {}))
    planned = cfg.get("train", {}).get("steps")
    step = max([r["step"] for r in train + evals])
    rows = [
        ("run folder", f"`{run}`"),
        (
            "model",
            f"{mcfg.get('type', '?')}, {meta['params']:,} parameters"
            if meta and "params" in meta
            else "unknown (no checkpoint in the run folder)",
        ),
        ("steps", f"{step:,}" + (f" of {planned:,}" if planned else "")),
    ]
    if isinstance(last.get("tokens"), int | float):
        rows.append(("tokens trained on", f"{int(last['tokens']):,}"))
    if isinstance(last.get("train_s"), int | float):
        rows.append(
            (
                "training time",
                _duration(last["train_s"]) + " (the optimizer loop, evaluations included)",
            )
        )
    tps = [r["tokens_per_s"] for r in train if isinstance(r.get("tokens_per_s"), int | float)]
    if tps:
        rows.append(
            ("throughput", f"{sum(tps) / len(tps):,.0f} tokens/s (mean of the logged steps)")
        )
    if isinstance(last.get("flops"), int | float):
        rows.append(("training FLOPs", f"{last['flops']:.3g}"))
    if meta:
        rows += [("git", f"`{meta.get('git_sha') or '?'}`"),
                 ("tokenizer", f"`{str(meta.get('tokenizer_hash', '?'))[:16]}`")]
    md = [f"# Run report: {run.name}", "", "| | |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in rows
    ]
    md += ["", "## Final metrics", "", "| metric | value | step |", "|---|---|---|"]
    keys = [*LOSSES, "lr", "grad_norm", "tokens_per_s", "mfu", "halt_segments"]
    md += [f"| {k} | {_fmt(last[k])} | {last['step']} |" for k in keys if k in last]
    if evals:
        ev = evals[-1]
        md += [f"| {k} | {_fmt(v)} | {ev['step']} |" for k, v in ev.items()
               if k.startswith("val_") and not isinstance(v, list)]
    if curve:
        md += [
            "",
            "## Refinement (gocoder eval)",
            "",
            "| iteration | valid by it | valid at it | items run |",
            "|---|---|---|---|",
        ] + [f"| {k} | {by:.3f} | {at:.3f} | {n} |" for k, by, at, n in curve]
    md += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in rep.images]
    if rep.notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    if meta:
        shown = {k: cfg[k] for k in ("model", "train") if k in cfg}
        shown["model"] = mcfg
        md += [
            "",
            "## Config (model and train; the full config is in the checkpoint's config.json)",
            "",
            "```json",
            json.dumps(shown, indent=2),
            "```",
        ]
    return "\n".join(md) + "\n"


def build_report(
    run_dir: str | Path, out: str | Path | None = None, eval_path: str | Path | None = None
) -> Report:
    """Plots (losses.png, syntax_valid.png, halting.png, refinement.png) and report.md for a run
    folder, into out (default RUN_DIR/report). eval_path defaults to RUN_DIR/eval.jsonl."""
    need("matplotlib", "gocoder report")  # before anything is read or written
    run = Path(run_dir)
    train, evals = read_metrics(run)
    dest = Path(out) if out is not None else run / "report"
    dest.mkdir(parents=True, exist_ok=True)
    rep = Report(dest, dest / "report.md")
    meta = _checkpoint_meta(run)
    if meta is None:
        rep.notes.append(f"no checkpoint in {run}: config and parameter count unknown")

    def draw(name: str, fn, *args) -> None:
        # written to a temporary name, then renamed: a reader never sees half a PNG
        p = dest / name
        fn(*args, p.with_suffix(".tmp.png"))
        p.with_suffix(".tmp.png").replace(p)
        rep.images.append(p)

    draw("losses.png", plot_losses, train, evals)
    if any(isinstance(r.get("val_syntax_valid"), int | float) for r in evals):
        draw("syntax_valid.png", plot_syntax_valid, evals)
    elif evals:
        rep.notes.append(
            "no val_syntax_valid in the eval rows (eval_samples = 0 or no valid "
            "split): plot skipped"
        )
    draw("halting.png", plot_halting, train, evals)
    if not evals:
        rep.notes.append(
            "no evaluation rows (train.eval_every is 0, above the steps run, or "
            "there is no valid split)"
        )
    elif not any("val_segments_hist" in r for r in evals):
        rep.notes.append("no val_segments_hist in the eval rows (a run from before it was logged)")
    items, note = read_eval(eval_path if eval_path is not None else run / "eval.jsonl")
    curve = valid_by_iteration(items)
    if curve:
        draw("refinement.png", plot_refinement, curve)
    if note:
        rep.notes.append(note)
    tmp = rep.markdown.with_suffix(".md.tmp")
    tmp.write_text(_markdown(run, meta, train, evals, rep, curve), encoding="utf-8")
    tmp.replace(rep.markdown)
    return rep
