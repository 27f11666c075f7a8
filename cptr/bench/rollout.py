"""A live rollout under load: ``cptr serve`` keeps answering while styles go in and out of its repository.

:func:`rollout` starts the real ``cptr serve`` (explicit model control, ``--watch``) on a
repository, runs ``clients`` threads that mix ``generate`` and ``cartoonize`` requests for the
styles that stay served, and meanwhile runs the given commands (``cptr-export`` re-exports,
additions, ``--remove``) at their times. It reports every failed request, what each command cost,
the server's memory (resident set of ``tritonserver`` and its backend processes) before and after,
and how far the served images are from the repository's newest ONNX files run in this process.

``benchmarks/rollout.py`` runs it on the demo models; ``tests/test_live.py`` on tiny ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cptr.client import CartoonClient
from cptr.engines.onnxruntime import ort_session
from cptr.helptext import flags
from cptr.serving.server import free_port
from cptr.serving.stages import seed_latents
from cptr.triton.layout import latest_version, read_index

READY = re.compile(r"cptr serve: ready on http://(\S+) \(HTTP\), (\S+) \(gRPC\)")


@dataclass(frozen=True)
class Step:
    """A command run ``at_s`` seconds into the load (argv of a real process, e.g. ``cptr-export ...``;
    ``{http}`` in an argument becomes the server's HTTP address)."""

    at_s: float
    label: str
    argv: tuple[str, ...]
    style: str | None = None  # the style the step changes
    # when the change counts as live: "listed" (the server lists the style), "unlisted", or
    # "weights" (its generate answers equal the repository's newest ONNX files run in process)
    live_when: str | None = None


@dataclass
class StepResult:
    label: str
    started_s: float
    command_s: float  # the command's own run time
    live_s: float | None  # from its start until the server answered with the change
    returncode: int
    output: str


@dataclass
class RolloutReport:
    duration_s: float
    clients: int
    requests: dict[str, int] = field(default_factory=dict)  # style -> requests answered
    failures: dict[str, list[str]] = field(default_factory=dict)  # style -> errors
    steps: list[StepResult] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    styles_after: list[str] = field(default_factory=list)
    served_error: dict[str, float] = field(default_factory=dict)  # style -> max abs, served vs newest ONNX in process
    serve_log: str = ""

    @property
    def rss_change(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1.0 if self.rss_start_mb else float("nan")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (Linux /proc), in MiB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total / 1024


def onnx_generate(repo: Path, style: str, seeds: Sequence[int]) -> np.ndarray:
    """``generate_<style>`` without a server: the newest mapping and synthesis versions in ONNX Runtime."""
    index = read_index(repo)[style]

    def session(model: str):
        return ort_session(repo / model / str(latest_version(repo / model)) / "model.onnx")

    mapping, synthesis = session(f"mapping_{style}"), session(f"synthesis_{style}")
    z = seed_latents(seeds, index["style_dim"])
    w = mapping.run(None, {mapping.get_inputs()[0].name: z})[0]
    w_plus = np.repeat(w[:, None], index["n_latent"], axis=1)
    return synthesis.run(None, {synthesis.get_inputs()[0].name: w_plus})[0]


def _serve_command(repo: Path, ports: dict[str, int]) -> list[str]:
    cptr = Path(sys.executable).parent / "cptr"
    head = [str(cptr)] if cptr.is_file() else [sys.executable, "-c", "from cptr.cli import app; app()"]
    return [
        *head,
        "serve",
        "-m",
        str(repo),
        *flags(http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"]),
        "--watch",
    ]


def rollout(
    repo: Path,
    photo: bytes,
    steps: Sequence[Step],
    keep: Sequence[str],
    clients: int = 8,
    duration_s: float = 60.0,
    startup_timeout_s: float = 300.0,
) -> RolloutReport:
    """Serve ``repo``, load it with ``clients`` threads on the styles ``keep``, run ``steps`` meanwhile."""
    ports = {k: free_port() for k in ("http", "grpc", "metrics")}
    proc = subprocess.Popen(
        _serve_command(repo, ports), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if READY.search(line):
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    report = RolloutReport(duration_s=duration_s, clients=clients)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not ready.wait(0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("cptr serve did not get ready:\n" + "".join(lines[-40:]))
        grpc_url = f"127.0.0.1:{ports['grpc']}"
        with CartoonClient(grpc_url, timeout_s=120) as c:  # warm every served model before the baseline
            for style in keep:
                c.generate([0], style=style, output="tensor")
                c.cartoonize(photo, style=style, output="tensor")
        report.rss_start_mb = tree_rss_mb(proc.pid)
        _load(report, repo, grpc_url, f"127.0.0.1:{ports['http']}", photo, steps, keep, clients, duration_s)
        time.sleep(2.0)  # let the last old versions finish unloading
        report.rss_end_mb = tree_rss_mb(proc.pid)
        with CartoonClient(grpc_url, timeout_s=60) as c:
            report.styles_after = c.styles()
        report.served_error = {style: served_error(grpc_url, repo, style) for style in keep}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        report.serve_log = "".join(lines)
    return report


def _load(
    report: RolloutReport,
    repo: Path,
    url: str,
    http: str,
    photo: bytes,
    steps: Sequence[Step],
    keep: Sequence[str],
    clients: int,
    duration_s: float,
) -> None:
    stop = threading.Event()
    lock = threading.Lock()
    for style in keep:
        report.requests[style], report.failures[style] = 0, []

    def client(k: int) -> None:
        rng = np.random.default_rng(k)
        with CartoonClient(url, timeout_s=120) as c:
            i = 0
            while not stop.is_set():
                style = keep[(i + k) % len(keep)]
                try:
                    if i % 2:
                        c.cartoonize(photo, style=style, output="tensor")
                    else:
                        c.generate([int(rng.integers(0, 2**31))], style=style, output="tensor")
                    with lock:
                        report.requests[style] += 1
                except Exception as e:  # noqa: BLE001 - every failure is the measurement
                    with lock:
                        report.failures[style].append(f"{type(e).__name__}: {e}")
                i += 1

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for step in sorted(steps, key=lambda s: s.at_s):
        time.sleep(max(0.0, step.at_s - (time.monotonic() - t0)))
        started = time.monotonic()
        done = subprocess.run([a.replace("{http}", http) for a in step.argv], capture_output=True, text=True)
        command_s = time.monotonic() - started
        live = _wait_live(url, repo, step, started) if done.returncode == 0 else None
        report.steps.append(StepResult(step.label, started - t0, command_s, live, done.returncode, done.stdout + done.stderr))
    time.sleep(max(0.0, duration_s - (time.monotonic() - t0)))
    stop.set()
    for t in threads:
        t.join(timeout=180)
    report.duration_s = time.monotonic() - t0


LIVE_TOLERANCE = 1e-4  # served float32 images against the same ONNX files in ONNX Runtime (max abs)
PROBE_SEED = 7


def _probe_error(client: CartoonClient, style: str, expected: np.ndarray) -> float:
    return float(np.abs(client.generate([PROBE_SEED], style=style, output="tensor") - expected).max())


def served_error(url: str, repo: Path, style: str) -> float:
    """Max abs difference of the served ``generate`` of :data:`PROBE_SEED` from :func:`onnx_generate`."""
    with CartoonClient(url, timeout_s=60) as c:
        return _probe_error(c, style, onnx_generate(repo, style, [PROBE_SEED]))


def _wait_live(url: str, repo: Path, step: Step, started: float, timeout_s: float = 120.0) -> float | None:
    """Seconds from ``started`` until ``step``'s change is served (None: nothing to wait for, or never)."""
    if step.style is None or step.live_when is None:
        return None
    # the step's command has finished: the repository's newest files, hence the expected image, are fixed
    expected = onnx_generate(repo, step.style, [PROBE_SEED]) if step.live_when == "weights" else None
    with CartoonClient(url, timeout_s=30) as c:
        while time.monotonic() - started < timeout_s:
            listed = step.style in c.styles()
            if step.live_when == "listed" and listed or step.live_when == "unlisted" and not listed:
                return time.monotonic() - started
            if expected is not None and listed and _probe_error(c, step.style, expected) <= LIVE_TOLERANCE:
                return time.monotonic() - started
            time.sleep(0.2)
    return None
