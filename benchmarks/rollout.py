#!/usr/bin/env python
"""A live rollout on the demo models under load (:mod:`cptr.bench.rollout`); prints a Markdown table.

    python benchmarks/rollout.py [--clients 8] [--duration 60] [--workdir DIR]

The repository starts with ``demo`` (the served default) and ``toon`` (the demo checkpoints at
alpha 0.5). While the clients load ``demo``: ``demo`` is re-exported at alpha 0.8 (picked up by
``cptr serve --watch``), ``half`` is added (``cptr-export --server``) and ``toon`` is removed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from cptr.bench.machine import describe, machine_info  # noqa: E402
from cptr.bench.rollout import Step, rollout  # noqa: E402
from cptr.demo import ASSET_DIR  # noqa: E402
from cptr.options import option, script_app  # noqa: E402


@dataclass
class RolloutOptions:
    """The options of ``benchmarks/rollout.py`` (each field one option: :mod:`cptr.options`)."""

    clients: int = option(8, min=1, help="Client threads loading style demo (cartoonize and generate alternating, gRPC).")
    duration: float = option(60.0, min=0.0, help="Seconds of load (at least; the steps may take longer).")
    workdir: Path | None = option(None, help="Where the repository goes (default: a temporary folder).")


def main(args: RolloutOptions) -> int:
    """Run the rollout and print its table; 0 when no request failed and every step went live, else 1."""
    export = str(Path(sys.executable).parent / "cptr-export")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cptr-rollout-"))
    repo = work / "triton_repo"
    demo_files = (
        "--source",
        str(ASSET_DIR / "source.pt"),
        "--target",
        str(ASSET_DIR / "target.pt"),
        "--encoder",
        str(ASSET_DIR / "encoder.pt"),
    )

    def style(name: str, alpha: float, *extra: str) -> tuple[str, ...]:
        return (export, *demo_files, "--style", name, "--alpha", str(alpha), "--out", str(repo), "--quiet", *extra)

    for argv in ((export, "--style", "demo", "--out", str(repo), "--quiet"), style("toon", 0.5)):
        subprocess.run(argv, check=True)
    steps = [
        Step(
            5.0,
            "re-export demo at alpha 0.8 (cptr serve --watch)",
            (export, "--style", "demo", "--alpha", "0.8", "--out", str(repo), "--quiet"),
            "demo",
            "weights",
        ),
        Step(10.0, "add style half (cptr-export --server)", style("half", 0.6, "--server", "{http}"), "half", "listed"),
        Step(
            15.0, "remove style toon (cptr serve --watch)", (export, "--style", "toon", "--remove", "--out", str(repo)), "toon", "unlisted"
        ),
    ]
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    report = rollout(repo, buf.getvalue(), steps, keep=["demo"], clients=args.clients, duration_s=args.duration)

    print(f"Machine: {describe(machine_info())}")
    print(f"Command: python benchmarks/rollout.py --clients {args.clients} --duration {args.duration:g}\n")
    print(
        f"{args.clients} clients (cartoonize and generate alternating, gRPC) for {report.duration_s:.0f} s on style demo: "
        f"{report.requests['demo']} requests, {len(report.failures['demo'])} failed; served vs in-process ONNX after the switch: "
        f"max abs {report.served_error['demo']:.1e}; server memory {report.rss_start_mb:.0f} -> {report.rss_end_mb:.0f} MiB "
        f"({report.rss_change:+.1%}); styles after: {', '.join(report.styles_after)}\n"
    )
    print("| step | started at (s) | command (s) | live after (s) |\n|---|---|---|---|")
    for s in report.steps:
        live = f"{s.live_s:.1f}" if s.live_s is not None else "never"
        print(f"| {s.label} | {s.started_s:.1f} | {s.command_s:.1f} | {live} |")
    ok = not report.failures["demo"] and all(s.returncode == 0 and s.live_s is not None for s in report.steps)
    return 0 if ok else 1


if __name__ == "__main__":
    script_app(RolloutOptions, main, __doc__)(prog_name="python benchmarks/rollout.py")
