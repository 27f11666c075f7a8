"""The benchmark harness: statistics against numpy, the timing loop, compare mode, and a real
``benchmarks/latency.py --quick`` subprocess whose JSON, Markdown and PNG are checked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cptr.bench import report
from cptr.bench.cli import main
from cptr.bench.measure import InputPool, Settings, measure, measure_interleaved, output_error
from cptr.bench.stats import percentile, summarize
from cptr.bench.targets import Engine
from cptr.bench.workloads import build_workload
from cptr.io import sha256_file

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("n", [1, 2, 7, 100, 1001])
def test_percentiles_match_numpy(n: int) -> None:
    xs = np.random.default_rng(n).lognormal(size=n)
    for q in (0, 1, 25, 50, 90, 95, 99, 99.9, 100):
        assert percentile(xs.tolist(), q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12, abs=1e-15)


def test_summarize_values() -> None:
    lat = [0.010, 0.020, 0.030, 0.040]  # seconds
    s = summarize(lat, batch=4)
    assert s["median_ms"] == pytest.approx(25.0)
    assert s["mean_ms"] == pytest.approx(25.0)
    assert s["std_ms"] == pytest.approx(float(np.std(np.array(lat) * 1e3, ddof=1)))
    assert s["p95_ms"] == pytest.approx(float(np.percentile(np.array(lat) * 1e3, 95)))
    assert s["throughput_ips"] == pytest.approx(4 * 4 / 0.1)
    # overlapping requests: throughput from the wall time of the run, not the sum of latencies
    assert summarize(lat, batch=4, wall_s=0.05)["throughput_ips"] == pytest.approx(4 * 4 / 0.05)
    with pytest.raises(ValueError):
        summarize([], batch=1)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_output_error_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    refs = [rng.standard_normal((2, 3, 4, 4)).astype(np.float32) for _ in range(2)]
    outs = [r + rng.normal(0, 1e-3, r.shape).astype(np.float32) for r in refs]
    e = output_error(outs, refs)
    diff = np.abs(np.stack(outs).astype(np.float64) - np.stack(refs))
    assert e["max_abs"] == pytest.approx(diff.max()) and e["mean_abs"] == pytest.approx(diff.mean())
    assert e["n_images"] == 4
    with pytest.raises(ValueError, match="differs from the reference"):
        output_error([refs[0][:1]], [refs[0]])


# --------------------------------------------------------------------------- timing loop


class _SleepEngine(Engine):
    """A stand-in service with a fixed 20 ms service time that releases the GIL (like a server call)."""

    name, target, concurrent = "sleep", "test", True

    def __init__(self, workload, delay: float = 0.02, name: str = "sleep"):
        self.module, self.delay, self.name = workload.module, delay, name
        self._lock, self.in_flight, self.most_in_flight = threading.Lock(), 0, 0

    def run(self, feeds):
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self._lock:
            self.in_flight -= 1
        return feeds

    def to_numpy(self, feeds):  # untimed: the real output, so the error check has something to compare
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(feeds["z"])).numpy()  # the served mapping: truncation fixed


def test_concurrency_overlaps_requests_and_errors_are_exact() -> None:
    wl = build_workload("mapping", "tiny")
    pool = InputPool(wl, Settings(iters=12, warmup=1, pool=3, check=2))
    engine = _SleepEngine(wl)
    one = measure(engine, pool, batch=2, concurrency=1, settings=pool.settings)
    four = measure(engine, pool, batch=2, concurrency=4, settings=pool.settings)
    assert one.status == four.status == "ok", (one.reason, four.reason)
    assert one.error["max_abs"] == 0.0  # same module, same inputs
    assert len(one.latencies_ms) == 12 and len(four.latencies_ms) == 4 * 12  # iters per client thread
    assert one.stats["median_ms"] >= 19  # every call sleeps 20 ms; no upper bound: the machine may be busy
    assert engine.most_in_flight == 4  # the four clients' calls overlapped (counted by the engine, not timed)


def test_time_budget_and_failures_are_reported() -> None:
    wl = build_workload("mapping", "tiny")
    pool = InputPool(wl, Settings(iters=1, seconds=0.15, warmup=0, pool=2, check=1))
    row = measure(_SleepEngine(wl), pool, 1, 1, pool.settings)
    assert row.status == "ok" and 4 <= row.stats["n"] <= 10

    class Broken(_SleepEngine):
        name = "broken"

        def run(self, feeds):
            raise RuntimeError("engine exploded")

    bad = measure(Broken(wl), pool, 1, 1, pool.settings)
    assert bad.status == "failed" and "engine exploded" in bad.reason


def test_interleaved_rounds_time_every_engine() -> None:
    wl = build_workload("mapping", "tiny")
    pool = InputPool(wl, Settings(iters=8, warmup=1, pool=3, check=1))

    class Broken(_SleepEngine):
        def run(self, feeds):
            raise RuntimeError("engine exploded")

    engines = [_SleepEngine(wl, 0.01, "fast"), _SleepEngine(wl, 0.03, "slow"), Broken(wl, 0, "broken")]
    rows = measure_interleaved(engines, pool, 2, pool.settings)
    fast, slow, broken = rows
    assert fast.status == slow.status == "ok" and broken.status == "failed" and "exploded" in broken.reason
    assert fast.stats["n"] == slow.stats["n"] == 8 and fast.error["max_abs"] == 0.0
    assert slow.stats["median_ms"] > 1.5 * fast.stats["median_ms"] and slow.stats["min_ms"] >= 30
    assert report.ratios([r.to_dict() for r in rows], "fast")[1] == pytest.approx(fast.stats["median_ms"] / slow.stats["median_ms"])


# --------------------------------------------------------------------------- compare mode


def _row(engine: str, target: str, batch: int, median: float, conc: int = 1) -> dict:
    return {
        "engine": engine,
        "target": target,
        "stage": "synthesis",
        "batch": batch,
        "concurrency": conc,
        "status": "ok",
        "reason": "",
        "precision": "fp32",
        "stats": {"median_ms": median},
    }


def _run(rows: list[dict]) -> dict:
    return {"schema": report.SCHEMA, "results": rows, "config": {}, "machine": {}}


def test_compare_runs_and_baseline(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _run([_row("torch-fp32", "torch", 1, 10.0), _row("onnx-fp32", "onnx", 1, 2.5), _row("onnx-fp32", "onnx", 4, 8.0)])
    b = _run([_row("torch-fp32", "torch", 1, 20.0), _row("onnx-fp32", "onnx", 1, 2.0)])
    assert report.compare_runs(a, b) == [
        ["torch-fp32", "synthesis", "1", "1", "10", "20", "0.50x"],
        ["onnx-fp32", "synthesis", "1", "1", "2.5", "2", "1.25x"],
    ]
    assert report.compare_baseline(a, "torch") == [["onnx-fp32", "synthesis", "1", "1", "10", "2.5", "4.00x"]]
    assert report.ratios(a["results"], "torch") == {0: 1.0, 1: 4.0}

    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    report.save_json(a, pa)
    report.save_json(b, pb)
    assert main(["--compare", str(pa), str(pb)]) == 0
    out = capsys.readouterr().out
    assert "1.25x" in out and "0.50x" in out
    assert main(["--compare", str(pa), "--baseline", "torch"]) == 0
    assert "4.00x" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="baseline 'trt' was not measured"):
        main(["--compare", str(pa), "--baseline", "trt"])
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a benchmark results file"):
        main(["--compare", str(tmp_path / "junk.json"), str(pb)])


# --------------------------------------------------------------------------- the real script


def test_quick_run_writes_sane_results(tmp_path: Path) -> None:
    committed = ROOT / "benchmarks" / "RESULTS.md"
    before = sha256_file(committed) if committed.is_file() else None
    record = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--quick", "--results-dir", str(tmp_path), "--record-to", str(record)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    # exit 1 = some engine failed; every failure must then be reported on stderr (checked below)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    jsons = list(tmp_path.glob("*.json"))
    assert len(jsons) == 1, list(tmp_path.iterdir())
    run = json.loads(jsons[0].read_text())
    assert run["schema"] == report.SCHEMA and "--quick" in run["command"]
    assert run["machine"]["cpu"]["logical_cores"] >= 1 and run["machine"]["libraries"]["torch"]
    rows = {(r["engine"], r["batch"], r["concurrency"]): r for r in run["results"]}
    for engine in ("torch-fp32", "onnx-fp32"):
        for batch in (1, 2):
            r = rows[(engine, batch, 1)]
            assert r["status"] == "ok", r["reason"]
            s = r["stats"]
            assert len(r["latencies_ms"]) == s["n"] == 5
            assert 0 < s["min_ms"] <= s["median_ms"] <= s["p95_ms"] <= s["p99_ms"] <= s["max_ms"] < 10_000
            assert s["median_ms"] == pytest.approx(float(np.median(r["latencies_ms"])), rel=1e-3)
            assert s["throughput_ips"] > 0
    assert rows[("torch-fp32", 1, 1)]["error"]["max_abs"] == 0.0
    assert rows[("onnx-fp32", 1, 1)]["error"]["max_abs"] < 1e-3
    failed = [r for r in run["results"] if r["status"] == "failed"]
    assert (proc.returncode == 1) == bool(failed)
    for r in failed:
        assert r["target"] not in ("torch", "onnx", "triton"), r  # the engines this machine must run
        assert f"FAILED {r['engine']}" in proc.stderr and r["reason"]
    triton = [r for r in run["results"] if r["target"] == "triton" and r["status"] == "ok"]
    if triton:  # the embedded server ran: concurrency 2 overlaps requests, outputs match torch
        assert {(r["batch"], r["concurrency"]) for r in triton} == {(1, 1), (1, 2), (2, 1), (2, 2)}
        assert all(r["error"]["max_abs"] < 1e-3 and r["info"]["server_version"] for r in triton)
    # engines that cannot run here say why instead of crashing
    for r in run["results"]:
        if r["status"] == "unavailable":
            assert r["reason"]
    md = record.read_text()
    assert "| onnx-fp32 | 1 | 1 |" in md and "Command: `python benchmarks/latency.py --quick" in md
    png = jsons[0].with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*.tmp")), "artifacts must be written atomically"
    after = sha256_file(committed) if committed.is_file() else None
    assert before == after, "the test run must not touch the committed RESULTS.md"


def test_bad_arguments_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    common = ["--results-dir", str(tmp_path), "--no-record", "--quiet"]
    with pytest.raises(SystemExit, match="unknown target.*choose from torch, onnx"):
        main(["--target", "torch,bogus", *common])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--target gpu: torch sees no CUDA device.*use --target all"):
            main(["--target", "gpu", *common])
    with pytest.raises(SystemExit):
        main(["--batch", "1,x", *common])
    assert "comma-separated integers" in capsys.readouterr().err
    assert main(["--stage", "synthesis", "--model", str(tmp_path / "missing.pt"), *common]) == 2
    assert "neither one of demo, ffhq256, tiny nor an existing checkpoint" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing is written when the workload cannot be built"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_kernel_engines_are_unavailable_not_failed_where_they_cannot_be_built(tmp_path: Path) -> None:
    """A machine that lacks what the CUDA kernels need reports them unavailable (exit 0), not failed."""
    from cptr.bench.targets import Context, TorchTarget, Unavailable

    wl = build_workload("synthesis", "tiny")
    rows = list(TorchTarget()._kernel_engines(wl, Context(device="cuda", workdir=tmp_path)))
    assert [r.name for r in rows] == ["torch-kernels-fp32", "torch-kernels-fp16"]
    assert all(isinstance(r, Unavailable) and not r.failed and "cuda.is_available() is False" in r.reason for r in rows)


def test_terminal_table_fits_80_columns_and_keeps_every_column_when_wide() -> None:
    import io

    from rich.console import Console

    from cptr.bench import report

    stats = {
        "median_ms": 431.234,
        "p95_ms": 455.1,
        "p99_ms": 460.2,
        "mean_ms": 433.3,
        "std_ms": 9.87,
        "min_ms": 420.0,
        "throughput_ips": 2.319,
    }
    rows = [
        {
            "engine": name,
            "stage": "synthesis",
            "batch": 4,
            "concurrency": 16,
            "status": "ok",
            "reason": "",
            "stats": stats,
            "error": {"max_abs": 1.2e-5, "mean_abs": 3.4e-7},
        }
        for name in ("torch-eager-fp32", "onnxruntime-fp32-plugins")
    ]
    run = {"config": {"stage": "synthesis", "model": "ffhq256"}, "results": rows}
    for width, columns in ((80, report.COMPACT_COLUMNS), (200, report.COLUMNS)):
        out = io.StringIO()
        report.print_table(run, Console(file=out, width=width, color_system=None), "torch-eager-fp32")
        text = out.getvalue()
        assert max(len(line) for line in text.splitlines()) <= width, text
        for c in columns:
            assert c.split()[0] in text, (c, text)
        assert "onnxruntime-fp32-plugins" in text and "431" in text
