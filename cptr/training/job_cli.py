"""How ``cptr-train mapper`` and ``cptr-train encoder`` run their job (their options are the jobs'
dataclasses, :mod:`cptr.training.jobs_options`).

Only typer is imported here (``cptr-train --help`` stays fast).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer


def run_job(run: Callable[..., Any], job: Any) -> None:
    """``run(job, log=typer.echo)``; a :class:`~cptr.training.jobs.JobError` becomes ``error: ...`` on
    stderr and exit status 2."""
    from cptr.training.jobs import JobError  # torch: only when this runs (the module is imported without it)

    try:
        run(job, log=typer.echo)
    except JobError as e:
        typer.secho(f"error: {e}", err=True, fg="red")
        raise typer.Exit(2) from None
