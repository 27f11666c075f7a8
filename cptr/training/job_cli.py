"""What ``cptr-train mapper`` and ``cptr-train encoder`` share on the command line: the options that mean
the same in both (one declaration each, the default stays with the command) and how a job is run.

Only typer is imported here (``cptr-train --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

Out = Annotated[Path, typer.Option("--out", help="Output folder: checkpoints/, samples/.")]
LambdaL2 = Annotated[float, typer.Option("--lambda-l2", min=0.0)]
LambdaId = Annotated[float, typer.Option("--lambda-id", min=0.0)]
Steps = Annotated[int, typer.Option("--steps", min=1)]
Batch = Annotated[int, typer.Option("--batch", min=1)]
LearningRate = Annotated[float, typer.Option("--lr", min=0.0)]
Seed = Annotated[int, typer.Option("--seed")]
Device = Annotated[str, typer.Option("--device", help="'auto' (CUDA when available), 'cpu' or 'cuda[:N]'.")]


def run_job(run: Callable[..., Any], job: Any) -> None:
    """``run(job, log=typer.echo)``; a :class:`~cptr.training.jobs.JobError` becomes ``error: ...`` on
    stderr and exit status 2."""
    from cptr.training.jobs import JobError  # torch: only when this runs (the module is imported without it)

    try:
        run(job, log=typer.echo)
    except JobError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        raise typer.Exit(2) from None
