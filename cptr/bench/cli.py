"""The benchmark command: latency and throughput of every CPTR engine, measured the same way.

Run it as ``python benchmarks/latency.py`` from a source checkout (results go to benchmarks/results/
and are recorded in benchmarks/RESULTS.md, the committed record) or as ``python -m cptr.bench`` from an
installed package (results go to ./cptr-bench/ in the current folder; an installed package never
writes into a source checkout unless told to with --results-dir / --record-to).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import typer

from cptr.bench import report
from cptr.bench.machine import load_average, machine_info
from cptr.bench.measure import InputPool, Settings, measure, measure_interleaved, unavailable_row
from cptr.bench.targets import Context, Engine, Unavailable, all_targets
from cptr.bench.triton_target import SERVER_ENGINES
from cptr.bench.workloads import NAMED_MODELS, STAGES, WorkloadUnavailable, build_workload
from cptr.options import option, options_command

TARGET_NAMES = ("torch", "onnx", "openvino", "trt", "torch-engine", "triton", "cuda-graph")
# --target gpu: every GPU engine on the 256 px channel_multiplier=2 synthesis network, beside eager fp32/fp16.
GPU_PRESET = {"targets": ("torch", "cuda-graph", "torch-engine", "trt", "onnx"), "model": "ffhq256", "batch": "1,8,32,64"}
QUICK = {"model": "tiny", "batch": "1,2", "concurrency": "1,2", "iters": 5, "warmup": 1, "pool": 4, "check": 1}
INSTALLED_PROG = "python -m cptr.bench"
INSTALLED_RESULTS = Path("cptr-bench")  # relative to the current folder

EXAMPLES = """
Examples:

\b
  # every target on a tiny model, under a minute on CPU
  {prog} --quick
  # the GPU run: ffhq256 synthesis at batch 1, 8, 32, 64
  {prog} --target gpu
  {prog} --target torch,onnx --model ffhq256 --batch 1,4
  {prog} --target triton --stage pipeline \\
      --concurrency 1,4,16
  {prog} --target triton --url localhost:8001 \\
      --protocol grpc --shm
  # the CPU engines side by side, in process and served
  {prog} --target onnx,openvino,triton \\
      --triton-engines onnx,openvino-fp32,openvino-bf16 --model ffhq256
  {prog} --compare results/A.json results/B.json
  {prog} --compare results/A.json --baseline torch
  {prog} --replot results/A.json results/B.json \\
      --plot latency.png
"""


@dataclass
class Where:
    """Where a run writes by default: a source checkout's benchmarks/ folder, or the current folder."""

    prog: str = INSTALLED_PROG
    checkout: Path | None = None  # the repository root, when run as benchmarks/latency.py
    argv: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.checkout if self.checkout is not None else Path.cwd()

    def results_dir(self) -> Path:
        return self.checkout / "benchmarks" / "results" if self.checkout is not None else Path.cwd() / INSTALLED_RESULTS

    def record_to(self) -> Path:
        if self.checkout is not None:
            return self.checkout / "benchmarks" / "RESULTS.md"
        return Path.cwd() / INSTALLED_RESULTS / "RESULTS.md"


@dataclass
class BenchOptions:
    """The command's options (each field one option of ``cptr bench``: :mod:`cptr.options`), after
    defaults and presets are applied by :func:`_resolve`."""

    target: str = option(
        "all",
        show_default=False,
        help=f"Comma-separated from {', '.join(TARGET_NAMES)}; 'all' (the default); or 'gpu': "
        f"{','.join(GPU_PRESET['targets'])} on CUDA with --model {GPU_PRESET['model']} "
        f"--batch {GPU_PRESET['batch']} unless given.",
    )
    stage: str = option("synthesis", cli_type=Literal[STAGES], show_default=False, help="Stage of the data path to time (synthesis).")  # type: ignore[valid-type]
    model: str | None = option(
        None,
        help=f"{' | '.join(NAMED_MODELS)} | PATH to a checkpoint (demo); ffhq512 and ffhq1024 are the larger random-weight official architectures.",
    )
    batch: Any = option(None, cli_type=str | None, help="Batch sizes, e.g. 1,8,32 (1,8,32).")  # list[int] once resolved
    concurrency: Any = option(None, cli_type=str | None, help="Concurrent requests for triton, e.g. 1,4,16 (1,4,16).")
    iters: int | None = option(None, help="Timed runs per point, per client thread at concurrency > 1 (30).")
    seconds: float | None = option(None, help="Time budget per point instead of --iters.")
    warmup: int | None = option(None, help="Untimed runs before timing (3).")
    pool: int | None = option(None, help="Random input batches cycled per batch size (16).")
    check: int | None = option(None, help="Batches compared with the fp32 torch reference (2).")
    seed: int = option(0, show_default=False, help="Seed of the random inputs and random-weight models (0).")
    device: str = option("auto", cli_type=Literal["auto", "cpu", "cuda"], show_default=False, help="auto: cuda when available (auto).")
    threads: int | None = option(None, help="Intra-op threads for torch and ONNX Runtime (their own).")
    url: str | None = option(None, help="triton: a running server (host:port); by default the embedded one starts.")
    protocol: str = option("grpc", cli_type=Literal["grpc", "http"], show_default=False, help="triton client protocol (grpc).")
    shm: bool = option(False, help="triton: return output tensors through system shared memory.")
    style: str = option("demo", show_default=False, help="triton with --url: the style the server serves (demo).")
    triton_engines: Any = option(  # list[str] once resolved
        "onnx",
        cli_type=str,
        show_default=False,
        help="triton: engines inside the embedded server, one exported repository and server each: "
        "onnx, openvino-fp32, openvino-bf16, and openvino-fp32-static / openvino-bf16-static "
        "(a model compiled for each --batch size, cptr-export --ov-static-batch) (onnx).",
    )
    baseline: str = option("torch", show_default=False, help="Engine or target the ratios are relative to (torch).")
    results_dir: Path | None = option(
        None,
        help="Where the JSON and PNG go (benchmarks/results from a checkout's benchmarks/latency.py, "
        "./cptr-bench otherwise; with --quick a temporary folder).",
    )
    record_to: Path | None = option(
        None,
        help="Markdown file the summary is appended to (benchmarks/RESULTS.md from a checkout, "
        "./cptr-bench/RESULTS.md otherwise; --quick records only when given).",
    )
    no_record: bool = option(False, help="Do not append to the Markdown file.")
    plot: Path | None = option(None, help="PNG path (beside the JSON).")
    no_plot: bool = option(False, help="Skip the PNG plot.")
    no_interleave: bool = option(
        False, help="Time engines one after another instead of in rounds (rounds keep ratios fair on a busy machine)."
    )
    quick: bool = option(False, help="Smoke test: every available target on a tiny model, a few runs.")
    quiet: bool = option(False, help="No progress bar and no table.")
    targets: list[str] = field(default_factory=list)  # resolved from --target


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated integers, e.g. 1,8,32; got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"{what} values must be >= 1, got {text!r}")
    return sorted(dict.fromkeys(values))


def _resolve(args: BenchOptions, where: Where) -> BenchOptions:
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
        args.results_dir = Path(tempfile.mkdtemp(prefix="cptr-bench-quick-")) if args.quick else where.results_dir()
    if args.record_to is None:
        args.record_to = where.record_to()
        args.no_record = args.no_record or args.quick  # a smoke test does not belong in the recorded results
    args.batch = _ints(args.batch, "--batch")
    args.concurrency = _ints(args.concurrency, "--concurrency")
    names = TARGET_NAMES if args.target == "all" else [t.strip() for t in args.target.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGET_NAMES]
    if unknown:
        raise SystemExit(f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGET_NAMES)} or all")
    args.targets = list(dict.fromkeys(names))

    engines = (
        [e.strip() for e in str(args.triton_engines).split(",") if e.strip()]
        if isinstance(args.triton_engines, str)
        else list(args.triton_engines)
    )
    unknown = [e for e in engines if e not in SERVER_ENGINES]
    if unknown or not engines:
        raise SystemExit(f"unknown --triton-engines {', '.join(unknown) or '(none)'}; choose from {', '.join(SERVER_ENGINES)}")
    args.triton_engines = list(dict.fromkeys(engines))
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            if gpu:
                raise SystemExit(
                    "--target gpu: torch sees no CUDA device on this machine; "
                    "on the CPU, use --target all (or torch,onnx,torch-engine,triton)"
                )
            raise SystemExit("--device cuda: torch sees no CUDA device on this machine; use --device cpu")
    return args


def _console(quiet: bool):
    from rich.console import Console

    console = Console(quiet=quiet)
    if not console.is_terminal:  # piped or captured: keep the table readable instead of 80 columns
        console = Console(quiet=quiet, width=160)
    return console


def run_compare(runs: list[str], baseline: str) -> int:
    """Compare two recorded runs, or one run against ``baseline``, as a terminal table."""
    from rich.table import Table

    console = _console(False)
    if len(runs) == 2:
        a, b = (report.load_run(p) for p in runs)
        rows = report.compare_runs(a, b)
        title = f"A = {runs[0]}, B = {runs[1]}; A/B > 1: B is faster"
        cols = ["engine", "stage", "batch", "conc.", "A median ms", "B median ms", "A/B"]
    elif len(runs) == 1:
        run = report.load_run(runs[0])
        rows = report.compare_baseline(run, baseline)
        base = report.resolve_baseline(run["results"], baseline)
        title = f"{runs[0]}: {base} median / engine median (> 1: faster than {base})"
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


def run_benchmark(args: BenchOptions, where: Where) -> tuple[int, dict[str, Any], dict[str, Path]]:
    """Measure, then write the JSON, the plot and the Markdown summary. Returns (exit code, run, paths)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
    ctx = Context(
        device=args.device,
        threads=args.threads,
        batch_max=max(args.batch),
        batches=tuple(args.batch),
        url=args.url,
        protocol=args.protocol,
        shm=args.shm,
        style=args.style,
        quick=args.quick,
        triton_engines=tuple(args.triton_engines),
    )
    pool = InputPool(workload, settings)
    rows = []
    targets = all_targets()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.quiet,
    )
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
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"
    run = {
        "schema": report.SCHEMA,
        "command": f"{where.prog} {shlex.join(where.argv)}".rstrip(),
        "machine": machine,
        "config": {
            "stage": args.stage,
            "model": args.model,
            "model_info": {k: v for k, v in workload.info.items() if not callable(v)},
            "targets": args.targets,
            "batches": args.batch,
            "concurrency": args.concurrency,
            "iters": args.iters,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "pool": args.pool,
            "check": args.check,
            "seed": args.seed,
            "device": args.device,
            "threads": args.threads,
            "quick": args.quick,
            "baseline": args.baseline,
            "url": args.url,
            "protocol": args.protocol,
            "shm": args.shm,
            "style": args.style,
            "triton_engines": args.triton_engines,
            "interleave": not args.no_interleave,
        },
        "duration_s": round(time.perf_counter() - started, 1),
        "results": [r.to_dict() for r in rows],
    }
    paths = {"json": args.results_dir / f"{stamp}-{host}.json"}
    report.save_json(run, paths["json"])
    if not args.no_plot:
        paths["png"] = report.plot(
            [run], args.plot or paths["json"].with_suffix(".png"), title=f"{args.stage} · {args.model} · {machine['cpu']['model']}"
        )
    if not args.no_record:
        report.append_markdown(
            args.record_to,
            report.markdown(
                run, args.baseline, _rel(paths["json"], where.root), _rel(paths["png"], where.root) if "png" in paths else None
            ),
        )
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


def _measure_batch(
    engines: list[Any], batch: int, args: BenchOptions, pool: InputPool, settings: Settings, rows: list, progress: Any, task: Any
) -> None:
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
        progress.update(
            task,
            description=f"{len(fits)} engines interleaved, batch {batch}",
            total=None if args.seconds else settings.iters * len(fits),
            completed=0,
        )
        rows.extend(measure_interleaved(fits, pool, batch, settings, tick))
    for engine in fits:
        for conc in [c for c in args.concurrency if engine.concurrent or c == 1]:
            if conc == 1 and not args.no_interleave:
                continue
            progress.update(
                task, description=f"{engine.name} batch {batch} x{conc}", total=None if args.seconds else settings.iters * conc, completed=0
            )
            rows.append(measure(engine, pool, batch, conc, settings, tick=tick))


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------- Typer app

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


def _help(prog: str) -> str:
    return (
        "Latency and throughput of every CPTR engine, measured the same way: one JSON per run, a PNG "
        "beside it and a Markdown summary appended to the record (defaults in parentheses).\n" + EXAMPLES.format(prog=prog)
    )


@app.command(help=_help(INSTALLED_PROG))
@options_command(BenchOptions)
def bench(
    args: BenchOptions,
    ctx: typer.Context,
    runs: list[str] | None = typer.Argument(
        None, metavar="RUN.json", show_default=False, help="Recorded runs, with --compare or --replot."
    ),
    compare: bool = typer.Option(False, "--compare", help="Compare two RUN.json, or one against --baseline, then exit."),
    replot: bool = typer.Option(False, "--replot", help="Draw --plot from the recorded RUN.json (one figure), then exit."),
) -> int:
    where: Where = ctx.obj if isinstance(ctx.obj, Where) else Where()
    runs = list(runs or [])
    if compare and replot:
        raise typer.BadParameter("give --compare or --replot, not both")
    if runs and not (compare or replot):
        raise typer.BadParameter(f"RUN.json files ({' '.join(runs)}) go with --compare or --replot")
    if compare:
        if not runs:
            raise typer.BadParameter("--compare takes one run (with --baseline) or two runs")
        return run_compare(runs, args.baseline)
    if replot:
        if args.plot is None:
            raise typer.BadParameter("--replot needs --plot OUT.png")
        if not runs:
            raise typer.BadParameter("--replot needs at least one RUN.json")
        loaded = [report.load_run(p) for p in runs]
        report.plot(
            loaded,
            args.plot,
            title=" + ".join(f"{r['config']['stage']}/{r['config']['model']}" for r in loaded)
            + f" · {loaded[0]['machine']['cpu']['model']}",
        )
        print(f"wrote {args.plot}")
        return 0
    try:
        args = _resolve(args, where)
        Settings(iters=args.iters, seconds=args.seconds, warmup=args.warmup, pool=args.pool, check=args.check)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    os.environ.setdefault("TQDM_DISABLE", "1" if args.quiet else "0")
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ notes (align, pipeline stages)
    code, _, _ = run_benchmark(args, where)
    return code


def main(argv: list[str] | None = None, *, checkout: Path | None = None, prog: str = INSTALLED_PROG) -> int:
    """Run the command on ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    ``checkout`` is the source checkout's root when run as ``benchmarks/latency.py``: results then
    default to its benchmarks/ folder. Without it they default to ./cptr-bench/.
    Usage errors are printed and raise ``SystemExit(2)``, as every CLI does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    if prog != INSTALLED_PROG:
        command.help = _help(prog)
    where = Where(prog=prog, checkout=checkout, argv=argv)
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False, obj=where)
    except typer.TyperException as e:  # a usage error: say it the way Click does, exit 2
        e.show()
        raise SystemExit(e.exit_code) from None
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        raise SystemExit(1) from None
    return int(code or 0)
