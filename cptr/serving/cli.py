"""``cptr serve``: run the bundled Triton server on a model repository."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.contracts import DEFAULT_HOST, DEFAULT_PORTS
from cptr.serving.server import ServerStartError, TritonServer
from cptr.serving.server import serve as run


def serve(
    model_repository: Path = typer.Option(Path("triton_repo"), "--model-repository", "-m", help="Repository written by cptr-export."),
    http_port: int = typer.Option(DEFAULT_PORTS["http"], help="HTTP/REST port (0 = a free one)."),
    grpc_port: int = typer.Option(DEFAULT_PORTS["grpc"], help="gRPC port (0 = a free one)."),
    metrics_port: int = typer.Option(DEFAULT_PORTS["metrics"], help="Prometheus metrics port (0 = a free one)."),
    host: str = typer.Option(
        DEFAULT_HOST,
        help="Address to listen on: 127.0.0.1 = this machine only (the default); 0.0.0.0 = every interface (Triton has no authentication: only on a network you trust, or behind a proxy that authenticates).",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Triton's own log (otherwise only written to --log-file)."),
    log_file: Path | None = typer.Option(
        None, "--log-file", help="Where to write Triton's log (default: ~/.cache/cptr/logs/tritonserver-HTTPPORT.log)."
    ),
    log_verbose: int = typer.Option(0, "--log-verbose", min=0, help="Triton log verbosity (0 = quiet, 1 = requests)."),
    exit_timeout: int = typer.Option(30, "--exit-timeout-secs", min=0, help="On SIGTERM/SIGINT, wait this long for in-flight requests."),
    watch: bool = typer.Option(
        True,
        "--watch/--no-watch",
        help="Follow the repository: a style exported into it, re-exported or removed is loaded or unloaded within a second, without a restart or a failed request.",
    ),
) -> None:
    """Serve a model repository with the tritonserver bundled in nvidia-pytriton (Python backend).

    Examples:

      cptr-export --style demo --out triton_repo
      cptr serve --model-repository triton_repo
      cptr serve -m triton_repo --http-port 9000 --grpc-port 9001 --metrics-port 0
      cptr serve -m triton_repo --verbose --log-verbose 1
      cptr-export --style webtoon --out triton_repo   # while serving: goes live

    Prints one line when ready; Triton's own log goes to --log-file (--verbose shows it).
    SIGTERM or Ctrl-C stops accepting requests, lets in-flight ones finish, then exits.
    """

    try:
        server = TritonServer(
            model_repository,
            http_port,
            grpc_port,
            metrics_port,
            host=host,
            log_verbose=log_verbose,
            exit_timeout_s=exit_timeout,
            echo=verbose,
            log_path=log_file,
            watch=watch,
        )
        code = run(server)
    except (ServerStartError, FileNotFoundError, RuntimeError) as e:
        typer.echo(f"cptr serve: {e}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
