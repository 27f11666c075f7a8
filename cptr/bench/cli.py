"""python benchmarks/latency.py: latency and throughput of every CPTR engine, measured the same way.

Examples::

    python benchmarks/latency.py --quick                       # every target, tiny model, < 1 min on CPU
    python benchmarks/latency.py --target gpu                  # the GPU run: ffhq256 synthesis, batch 1,8,32,64
    python benchmarks/latency.py --target torch,onnx --model ffhq256 --batch 1,4
    python benchmarks/latency.py --target triton --stage pipeline --concurrency 1,4,16
    python benchmarks/latency.py --target triton --url localhost:8001 --protocol grpc --shm
    python benchmarks/latency.py --compare results/A.json results/B.json
    python benchmarks/latency.py --compare results/A.json --baseline torch
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shlex
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cptr.bench import report
from cptr.bench.measure import InputPool, Settings, measure, measure_interleaved, unavailable_row
from cptr.bench.targets import Unavailable
from cptr.bench.workloads import NAMED_MODELS, STAGES, WorkloadUnavailable, build_workload

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGET_NAMES = ("torch", "onnx", "trt", "torch-engine", "triton", "cuda-graph")
# --target gpu: every GPU engine on the 256 px channel_multiplier=2 synthesis network, beside eager fp32/fp16.
GPU_PRESET = {"targets": ("torch", "cuda-graph", "torch-engine", "trt", "onnx"), "model": "ffhq256", "batch": "1,8,32,64"}
QUICK = {"model": "tiny", "batch": "1,2", "concurrency": "1,2", "iters": 5, "warmup": 1, "pool": 4, "check": 1}


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated integers, e.g. 1,8,32; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{what} values must be >= 1, got {text!r}")
    return sorted(dict.fromkeys(values))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/latency.py",
        description=__doc__.split("\n\n")[0],
        epilog="Examples:\n" + "\n".join(line.strip() for line in __doc__.split("::")[1].strip().splitlines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--target", default="all",
                   help=f"comma-separated from {', '.join(TARGET_NAMES)}; 'all' (default); or 'gpu': "
                        f"{','.join(GPU_PRESET['targets'])} on CUDA with --model {GPU_PRESET['model']} "
                        f"--batch {GPU_PRESET['batch']} unless given")
    p.add_argument("--stage", default="synthesis", choices=STAGES, help="stage of the data path to time (default synthesis)")
    p.add_argument("--model", default=None, help=f"{' | '.join(NAMED_MODELS)} | PATH to a checkpoint (default demo); "
                        "ffhq512 and ffhq1024 are the larger random-weight official architectures")
    p.add_argument("--batch", default=None, help="batch sizes, e.g. 1,8,32 (default 1,8,32)")
    p.add_argument("--concurrency", default=None, help="concurrent requests for triton, e.g. 1,4,16 (default 1,4,16)")
    p.add_argument("--iters", type=int, default=None, help="timed runs per point, per client thread at concurrency > 1 (default 30)")
    p.add_argument("--seconds", type=float, default=None, help="time budget per point instead of --iters")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs before timing (default 3)")
    p.add_argument("--pool", type=int, default=None, help="random input batches cycled per batch size (default 16)")
    p.add_argument("--check", type=int, default=None, help="batches compared with the fp32 torch reference (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs and random-weight models")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda when available")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for torch and ONNX Runtime (default: their own)")
    p.add_argument("--url", default=None, help="triton: a running server (host:port); default starts the embedded one")
    p.add_argument("--protocol", default="grpc", choices=("grpc", "http"), help="triton client protocol")
    p.add_argument("--shm", action="store_true", help="triton: return output tensors through system shared memory")
    p.add_argument("--style", default="demo", help="triton with --url: the style the server serves (default demo)")
    p.add_argument("--baseline", default="torch", help="engine or target the ratios are relative to (default torch)")
    p.add_argument("--results-dir", type=Path, default=None,
                   help="where the JSON and PNG go (default benchmarks/results; with --quick a temporary folder)")
    p.add_argument("--record-to", type=Path, default=None,
                   help="Markdown file the summary is appended to (default benchmarks/RESULTS.md; --quick records only when given)")
    p.add_argument("--no-record", action="store_true", help="do not append to the Markdown file")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: beside the JSON)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    p.add_argument("--no-interleave", action="store_true",
                   help="time engines one after another instead of in rounds (rounds keep ratios fair on a busy machine)")
    p.add_argument("--quick", action="store_true", help="smoke test: every available target on a tiny model, a few runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no table")
    p.add_argument("--compare", nargs="+", metavar="RUN.json", help="compare two runs, or one run against --baseline")
    p.add_argument("--replot", nargs="+", metavar="RUN.json", help="draw --plot from recorded runs (one figure), then exit")
    return p


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    preset: dict[str, Any] = dict(QUICK) if args.quick else {}
    gpu = args.target == "gpu"
    if gpu:  # --quick still wins: a GPU smoke test
        args.target = ",".join(GPU_PRESET["targets"])
        args.device = "cuda"
        preset = {**GPU_PRESET, **preset}
    defaults = {"model": "demo", "batch": "1,8,32", "concurrency": "1,4,16", "iters": 30, "warmup": 3, "pool": 16, "check": 2}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, preset.get(k, v))
    if args.results_dir is None:
        args.results_dir = Path(tempfile.mkdtemp(prefix="cptr-bench-quick-")) if args.quick else REPO_ROOT / "benchmarks" / "results"
    if args.record_to is None:
        args.record_to = REPO_ROOT / "benchmarks" / "RESULTS.md"
        args.no_record = args.no_record or args.quick  # a smoke test does not belong in the recorded results
    args.batch = _ints(args.batch, "--batch")
    args.concurrency = _ints(args.concurrency, "--concurrency")
    names = TARGET_NAMES if args.target == "all" else [t.strip() for t in args.target.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGET_NAMES]
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGET_NAMES)} or all")
    args.targets = list(dict.fromkeys(names))
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            if gpu:
                raise SystemExit("--target gpu: torch sees no CUDA device on this machine; "
                                 "on the CPU, use --target all (or torch,onnx,torch-engine,triton)")
            raise SystemExit("--device cuda: torch sees no CUDA device on this machine; use --device cpu")
    return args


def _console(quiet: bool):
    from rich.console import Console

    console = Console(quiet=quiet)
    if not console.is_terminal:  # piped or captured: keep the table readable instead of 80 columns
        console = Console(quiet=quiet, width=160)
    return console


def run_compare(args: argparse.Namespace) -> int:
    from rich.table import Table

    console = _console(False)
    if len(args.compare) == 2:
        a, b = (report.load_run(p) for p in args.compare)
        rows = report.compare_runs(a, b)
        title = f"A = {args.compare[0]}, B = {args.compare[1]}; A/B > 1: B is faster"
        cols = ["engine", "stage", "batch", "conc.", "A median ms", "B median ms", "A/B"]
    elif len(args.compare) == 1:
        run = report.load_run(args.compare[0])
        rows = report.compare_baseline(run, args.baseline)
        base = report.resolve_baseline(run["results"], args.baseline)
        title = f"{args.compare[0]}: {base} median / engine median (> 1: faster than {base})"
        cols = ["engine", "stage", "batch", "conc.", f"{base} ms", "engine ms", "ratio"]
    else:
        raise SystemExit("--compare takes one run (with --baseline) or two runs")
    if not rows:
        console.print("[yellow]no common measurements to compare[/yellow]")
        return 1
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c in ("engine", "stage") else "right")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    return 0


def run_benchmark(args: argparse.Namespace, argv: list[str]) -> tuple[int, dict[str, Any], dict[str, Path]]:
    """Measure, then write the JSON, the plot and the Markdown summary. Returns (exit code, run, paths)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cptr.bench.machine import load_average, machine_info
    from cptr.bench.targets import Context, Engine, all_targets

    console = _console(args.quiet)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = Settings(iters=args.iters, seconds=args.seconds, warmup=args.warmup, pool=args.pool, check=args.check, seed=args.seed)
    machine = machine_info()
    started = time.perf_counter()
    try:
        workload = build_workload(args.stage, args.model, seed=args.seed)
    except WorkloadUnavailable as e:
        print(f"stage {args.stage!r} cannot be measured: {e}", file=sys.stderr)
        return 2, {}, {}
    ctx = Context(device=args.device, threads=args.threads, batch_max=max(args.batch), url=args.url,
                  protocol=args.protocol, shm=args.shm, style=args.style, quick=args.quick)
    pool = InputPool(workload, settings)
    rows = []
    targets = all_targets()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True, disable=args.quiet)
    with progress:
        task = progress.add_task("preparing", total=None)
        ctx.log = lambda msg: progress.update(task, description=msg)
        engines: list[Engine] = []
        try:
            for name in args.targets:
                progress.update(task, description=f"{name}: preparing", total=None, completed=0)
                for engine in targets[name].engines(workload, ctx):
                    if isinstance(engine, Engine):
                        engines.append(engine)
                    else:
                        rows.append(unavailable_row(engine, args.stage))
            for batch in args.batch:
                _measure_batch(engines, batch, args, pool, settings, rows, progress, task)
        finally:
            for engine in engines:
                engine.close()
    order = {name: i for i, name in enumerate(dict.fromkeys(r.engine for r in rows))}
    rows.sort(key=lambda r: (order[r.engine], r.batch, r.concurrency))
    machine["load_average_end"] = load_average()
    versions = {r.info.get("server_version") for r in rows if r.info.get("server_version")}
    if versions:
        machine["libraries"]["tritonserver"] = ", ".join(sorted(versions))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"
    run = {
        "schema": report.SCHEMA,
        "command": "python benchmarks/latency.py " + shlex.join(argv),
        "machine": machine,
        "config": {
            "stage": args.stage, "model": args.model, "model_info": {k: v for k, v in workload.info.items() if not callable(v)},
            "targets": args.targets, "batches": args.batch, "concurrency": args.concurrency, "iters": args.iters,
            "seconds": args.seconds, "warmup": args.warmup, "pool": args.pool, "check": args.check, "seed": args.seed,
            "device": args.device, "threads": args.threads, "quick": args.quick, "baseline": args.baseline,
            "url": args.url, "protocol": args.protocol, "shm": args.shm, "style": args.style,
            "interleave": not args.no_interleave,
        },
        "duration_s": round(time.perf_counter() - started, 1),
        "results": [r.to_dict() for r in rows],
    }
    paths = {"json": args.results_dir / f"{stamp}-{host}.json"}
    report.save_json(run, paths["json"])
    if not args.no_plot:
        paths["png"] = report.plot([run], args.plot or paths["json"].with_suffix(".png"),
                                   title=f"{args.stage} · {args.model} · {machine['cpu']['model']}")
    if not args.no_record:
        report.append_markdown(args.record_to, report.markdown(run, args.baseline, _rel(paths["json"]),
                                                               _rel(paths["png"]) if "png" in paths else None))
        paths["markdown"] = args.record_to
    if not args.quiet:
        report.print_table(run, console, args.baseline)
        for kind, p in paths.items():
            console.print(f"wrote {kind}: {p}")
    failed = [r for r in rows if r.status == "failed"]
    for r in failed:
        where = f" batch {r.batch} x{r.concurrency}" if r.batch else ""
        print(f"FAILED {r.engine}{where}: {r.reason}", file=sys.stderr)
    return (1 if failed else 0), run, paths


def _measure_batch(engines: list[Any], batch: int, args: argparse.Namespace, pool: InputPool, settings: Settings,
                   rows: list, progress: Any, task: Any) -> None:
    """Every engine at one batch size: concurrency 1 (interleaved unless --no-interleave), then the sweep."""
    fits = []
    for engine in engines:
        if engine.max_batch and batch > engine.max_batch:
            reason = f"batch {batch} > the engine's max batch {engine.max_batch}"
            rows.append(unavailable_row(Unavailable(engine.name, engine.target, reason), args.stage, batch))
        else:
            fits.append(engine)
    tick = lambda n: progress.advance(task, n)  # noqa: E731
    if fits and not args.no_interleave:
        progress.update(task, description=f"{len(fits)} engines interleaved, batch {batch}",
                        total=None if args.seconds else settings.iters * len(fits), completed=0)
        rows.extend(measure_interleaved(fits, pool, batch, settings, tick))
    for engine in fits:
        for conc in [c for c in args.concurrency if engine.concurrent or c == 1]:
            if conc == 1 and not args.no_interleave:
                continue
            progress.update(task, description=f"{engine.name} batch {batch} x{conc}",
                            total=None if args.seconds else settings.iters * conc, completed=0)
            rows.append(measure(engine, pool, batch, conc, settings, tick=tick))


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.compare:
        return run_compare(args)
    if args.replot:
        if args.plot is None:
            parser().error("--replot needs --plot OUT.png")
        runs = [report.load_run(p) for p in args.replot]
        report.plot(runs, args.plot, title=" + ".join(f"{r['config']['stage']}/{r['config']['model']}" for r in runs)
                    + f" · {runs[0]['machine']['cpu']['model']}")
        print(f"wrote {args.plot}")
        return 0
    try:
        args = _resolve(args)
        Settings(iters=args.iters, seconds=args.seconds, warmup=args.warmup, pool=args.pool, check=args.check)
    except (argparse.ArgumentTypeError, ValueError) as e:
        parser().error(str(e))
    os.environ.setdefault("TQDM_DISABLE", "1" if args.quiet else "0")
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ notes (align, pipeline stages)
    code, _, _ = run_benchmark(args, argv)
    return code
