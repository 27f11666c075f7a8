"""Results on the terminal (rich), in JSON, in Markdown and as a PNG plot; comparison of runs.

A run is one JSON document: ``{"schema", "command", "machine", "config", "results": [rows]}``, each
row a :class:`~cptr.bench.measure.Measurement` with its raw latencies. Ratios are always the
baseline's median over the engine's median at the same stage, batch and concurrency (``3.0x`` =
three times faster than the baseline).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cptr.bench.machine import describe
from cptr.io import atomic_write_bytes, atomic_write_text

SCHEMA = "cptr-bench/1"
DEFAULT_BASELINE = "torch-fp32"


# --------------------------------------------------------------------------- files


def save_json(run: dict[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(run, indent=1, sort_keys=False) + "\n")
    return path


def load_run(path: str | Path) -> dict[str, Any]:
    """Read a results JSON, checking that it is one of ours."""
    p = Path(path)
    try:
        run = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"results file {p} does not exist") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"{p} is not valid JSON ({e}); pass a file written by benchmarks/latency.py") from None
    if not isinstance(run, dict) or run.get("schema") != SCHEMA or not isinstance(run.get("results"), list):
        raise SystemExit(f"{p} is not a benchmark results file (schema {SCHEMA!r})")
    return run


# --------------------------------------------------------------------------- ratios


def _key(row: dict[str, Any]) -> tuple:
    return row["stage"], row["batch"], row["concurrency"]


def resolve_baseline(rows: Sequence[dict[str, Any]], baseline: str) -> str | None:
    """The engine name a ``--baseline`` refers to: an engine name, or a target's first fp32 engine."""
    ok = [r for r in rows if r["status"] == "ok"]
    names = [r["engine"] for r in ok]
    if baseline in names:
        return baseline
    for r in ok:
        if r["target"] == baseline and r.get("precision") == "fp32":
            return r["engine"]
    for r in ok:
        if r["target"] == baseline:
            return r["engine"]
    return None


def ratios(rows: Sequence[dict[str, Any]], baseline: str) -> dict[int, float]:
    """``{row index: baseline median / row median}`` for rows that have a baseline at the same point."""
    name = resolve_baseline(rows, baseline)
    if name is None:
        return {}
    base = {_key(r): r["stats"]["median_ms"] for r in rows if r["engine"] == name and r["status"] == "ok"}
    out = {}
    for i, r in enumerate(rows):
        if r["status"] == "ok" and _key(r) in base and r["stats"]["median_ms"] > 0:
            out[i] = base[_key(r)] / r["stats"]["median_ms"]
    return out


# --------------------------------------------------------------------------- formatting


def _f(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}g}"


def _err(v: float | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return "0" if v == 0 else f"{v:.2e}"


COLUMNS = [
    "engine",
    "batch",
    "conc.",
    "median ms",
    "p95 ms",
    "p99 ms",
    "mean ± std ms",
    "min ms",
    "img/s",
    "ratio",
    "max abs err",
    "mean abs err",
    "PSNR dB",
]


def _psnr(e: dict[str, Any]) -> str:
    """PSNR of an image output against fp32 torch ("inf": identical; "-": not an image, or not checked)."""
    if "psnr_db" not in e:
        return "-"
    return "inf" if e["psnr_db"] is None else f"{e['psnr_db']:.1f}"


def table_rows(run: dict[str, Any], baseline: str = DEFAULT_BASELINE) -> list[list[str]]:
    rows = run["results"]
    ratio = ratios(rows, baseline)
    out = []
    for i, r in enumerate(rows):
        if r["status"] != "ok":
            continue
        s, e = r["stats"], r.get("error") or {}
        out.append(
            [
                r["engine"],
                str(r["batch"]),
                str(r["concurrency"]),
                _f(s["median_ms"]),
                _f(s["p95_ms"]),
                _f(s["p99_ms"]),
                f"{_f(s['mean_ms'])} ± {_f(s['std_ms'], 2)}",
                _f(s["min_ms"]),
                _f(s["throughput_ips"]),
                f"{ratio[i]:.2f}x" if i in ratio else "-",
                _err(e.get("max_abs")),
                _err(e.get("mean_abs")),
                _psnr(e),
            ]
        )
    return out


def not_measured(run: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(engine, status, reason) of rows that did not run; one entry per engine and reason."""
    seen, out = set(), []
    for r in run["results"]:
        if r["status"] != "ok" and (r["engine"], r["reason"]) not in seen:
            seen.add((r["engine"], r["reason"]))
            out.append((r["engine"], r["status"], r["reason"]))
    return out


# The columns kept on a terminal narrower than WIDE_TABLE (the Markdown report always has all of them).
COMPACT_COLUMNS = ["engine", "batch", "conc.", "median ms", "p95 ms", "img/s", "ratio", "max abs err"]
WIDE_TABLE = 140


def print_table(run: dict[str, Any], console: Any, baseline: str = DEFAULT_BASELINE) -> None:
    from rich.table import Table

    cfg = run["config"]
    base = resolve_baseline(run["results"], baseline) or baseline
    columns = COLUMNS if console.width >= WIDE_TABLE else COMPACT_COLUMNS
    keep = [COLUMNS.index(c) for c in columns]
    table = Table(
        title=f"{cfg['stage']} · {cfg['model']} · ratio = {base} median / engine median (higher is faster)",
        padding=(0, 1) if columns is COLUMNS else (0, 0),
    )
    for c in columns:
        table.add_column(c, justify="left" if c == "engine" else "right")
    for row in table_rows(run, baseline):
        table.add_row(*(row[i] for i in keep))
    console.print(table)
    for name, status, reason in not_measured(run):
        console.print(f"[yellow]{name}: {status}: {reason}[/yellow]")


def markdown(run: dict[str, Any], baseline: str = DEFAULT_BASELINE, json_path: str | None = None, plot_path: str | None = None) -> str:
    """A Markdown section for RESULTS.md: machine, load, command, table, ratios, what did not run."""
    cfg, m = run["config"], run["machine"]
    model = cfg.get("model_info", {})
    load0, load1 = m.get("load_average_start"), m.get("load_average_end")
    lines = [
        f"### {cfg['stage']} · `{cfg['model']}` · {m.get('time', '?')} · {m.get('host', '?')}",
        "",
        f"- Machine: {describe(m)}; torch {m['libraries'].get('torch')}, onnxruntime {m['libraries'].get('onnxruntime')}, "
        + (f"openvino {m['libraries']['openvino']}, " if m["libraries"].get("openvino") else "")
        + f"threads {m.get('threads', {}).get('torch_threads', '?')} (torch).",
        f"- Load average (1/5/15 min) at start {load0}, at end {load1}{_load_note(m)}.",
        f"- Command: `{run['command']}`",
        f"- Model: {model.get('description', cfg['model'])}"
        + (f", {model['gflop_per_image']} GFLOP/image" if model.get("gflop_per_image") else "")
        + (f", {model['parameters'] / 1e6:.1f} M parameters" if model.get("parameters") else "")
        + ".",
        f"- Method: warm-up runs excluded ({cfg['warmup']} per point), "
        + (f"{cfg['seconds']} s per point" if cfg.get("seconds") else f"{cfg['iters']} timed runs per point")
        + f", inputs cycled from a pool of {cfg['pool']} random batches; output errors vs fp32 torch on the first {cfg['check']} of them.",
    ]
    if json_path:
        lines.append(f"- Raw timings: `{json_path}`" + (f"; plot: `{plot_path}`" if plot_path else ""))
    base = resolve_baseline(run["results"], baseline)
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(run, baseline)]
    lines.append("")
    if base:
        lines.append(
            f"Ratio = `{base}` median / engine median at the same batch and concurrency (higher is faster);"
            " ratios within one run are the figures to trust on a shared machine."
        )
    missing = not_measured(run)
    if missing:
        lines.append("")
        lines.append("Not measured: " + "; ".join(f"`{n}` ({s}: {r})" for n, s, r in missing) + ".")
    return "\n".join(lines) + "\n"


def _load_note(m: dict[str, Any]) -> str:
    cores = m.get("cpu", {}).get("usable_cores") or 1
    loads = [v for v in (m.get("load_average_start") or [])[:1] + (m.get("load_average_end") or [])[:1]]
    if loads and max(loads) > 0.5 * cores + 0.5:
        return f" — the machine was busy (load above half of its {cores} cores): absolute times are inflated, compare ratios"
    return ""


def append_markdown(path: Path, section: str) -> None:
    """Append ``section`` to ``path`` atomically (the file is rewritten whole, never half)."""
    old = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmark results\n"
    if not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + "\n" + section)


# --------------------------------------------------------------------------- plot


def plot(runs: Sequence[dict[str, Any]], path: Path, title: str | None = None) -> Path:
    """Median latency vs batch per engine, and throughput vs concurrency (or vs batch) per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for run in runs:  # several runs: label each line with its stage and model
        suffix = f" · {run['config']['stage']}/{run['config']['model']}" if len(runs) > 1 else ""
        rows += [{**r, "engine": r["engine"] + suffix} for r in run["results"] if r["status"] == "ok"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    for name in engines:
        pts = sorted(
            (r["batch"], r["stats"]["median_ms"], r["stats"]["p95_ms"]) for r in rows if r["engine"] == name and r["concurrency"] == 1
        )
        if pts:
            xs, med, p95 = zip(*pts)
            ax1.errorbar(xs, med, yerr=[[0] * len(med), [b - a for a, b in zip(med, p95)]], marker="o", capsize=3, label=name)
    ax1.set(xlabel="batch size", ylabel="median latency per request (ms), bar to p95", title="latency vs batch")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.grid(True, which="both", alpha=0.3)
    concurrent = [r for r in rows if r["concurrency"] > 1]
    if concurrent:
        for name in engines:
            for batch in sorted({r["batch"] for r in rows if r["engine"] == name}):
                pts = sorted((r["concurrency"], r["stats"]["throughput_ips"]) for r in rows if r["engine"] == name and r["batch"] == batch)
                if len(pts) > 1:
                    xs, ys = zip(*pts)
                    ax2.plot(xs, ys, marker="o", label=f"{name} (batch {batch})")
        ax2.set(xlabel="concurrent requests", ylabel="images / s", title="throughput vs concurrency")
    else:
        for name in engines:
            pts = sorted((r["batch"], r["stats"]["throughput_ips"]) for r in rows if r["engine"] == name)
            if pts:
                xs, ys = zip(*pts)
                ax2.plot(xs, ys, marker="o", label=name)
        ax2.set(xlabel="batch size", ylabel="images / s", title="throughput vs batch (concurrency 1)")
    ax2.set_xscale("log", base=2)
    ax2.grid(True, which="both", alpha=0.3)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax in (ax1, ax2):
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ticks = sorted({int(x) for line in ax.get_lines() for x in line.get_xdata()})
        if ticks:
            ax.set_xticks(ticks)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


# --------------------------------------------------------------------------- compare


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> list[list[str]]:
    """Rows measured in both runs: A median, B median and A/B (> 1: B is faster)."""
    index = {(r["engine"], *_key(r)): r for r in b["results"] if r["status"] == "ok"}
    out = []
    for r in a["results"]:
        if r["status"] != "ok":
            continue
        k = (r["engine"], *_key(r))
        if k in index:
            ma, mb = r["stats"]["median_ms"], index[k]["stats"]["median_ms"]
            out.append(
                [r["engine"], r["stage"], str(r["batch"]), str(r["concurrency"]), _f(ma), _f(mb), f"{ma / mb:.2f}x" if mb > 0 else "-"]
            )
    return out


def compare_baseline(run: dict[str, Any], baseline: str) -> list[list[str]]:
    """Every engine of one run against ``baseline`` at the same point: medians and ratio."""
    rows = run["results"]
    name = resolve_baseline(rows, baseline)
    if name is None:
        known = sorted({r["engine"] for r in rows if r["status"] == "ok"} | {r["target"] for r in rows if r["status"] == "ok"})
        raise SystemExit(f"baseline {baseline!r} was not measured in this run; known: {', '.join(known)}")
    base = {_key(r): r["stats"]["median_ms"] for r in rows if r["engine"] == name and r["status"] == "ok"}
    out = []
    for r in rows:
        if r["status"] == "ok" and _key(r) in base and r["engine"] != name:
            m = r["stats"]["median_ms"]
            out.append(
                [
                    r["engine"],
                    r["stage"],
                    str(r["batch"]),
                    str(r["concurrency"]),
                    _f(base[_key(r)]),
                    _f(m),
                    f"{base[_key(r)] / m:.2f}x" if m > 0 else "-",
                ]
            )
    return out
