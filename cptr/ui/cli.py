"""``cptr ui``: the web page on a running CPTR server (or on one it starts itself with --serve)."""

from __future__ import annotations

from pathlib import Path

import typer

from cptr.contracts import DEFAULT_HOST
from cptr.serving.server import ServerStartError
from cptr.ui.app import serve_ui


def ui(
    url: str | None = typer.Option(
        None, "--url", help="CPTR server host:port (default: 127.0.0.1:8001 for gRPC, 127.0.0.1:8000 for HTTP)."
    ),
    protocol: str = typer.Option("grpc", "--protocol", help="grpc or http: how the page talks to the server."),
    serve: Path | None = typer.Option(
        None,
        "--serve",
        metavar="REPO",
        help="Start the bundled Triton server on this model repository (free loopback ports) and stop it with the page.",
    ),
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address the page listens on (0.0.0.0 = every interface)."),
    port: int = typer.Option(7860, "--port", min=0, help="Port of the page (0 = a free one)."),
    concurrency: int = typer.Option(
        4, "--concurrency", min=1, help="Requests the page sends to the server at once (the server batches them)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="Seconds to wait for the server's answer."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in this machine's browser."),
) -> None:
    """A web page to try the served models: cartoonize a photo, generate random faces.

    The page is a client of the CPTR Triton server (it holds no model), so it shows exactly what production serves; several pages can share one server. It needs the \\[ui] extra (pip install -e ".\\[ui]") and works with no internet.

    Examples:

      cptr serve --model-repository triton_repo   # then, in another terminal:
      cptr ui                                     # open http://127.0.0.1:7860
      cptr ui --url 127.0.0.1:8000 --protocol http --port 7861
      cptr ui --serve triton_repo                 # with its own server
    """
    if protocol not in ("grpc", "http"):
        raise typer.BadParameter("use grpc or http", param_hint="--protocol")
    if serve is not None and url:
        raise typer.BadParameter("give either --url (a running server) or --serve REPO (start one), not both", param_hint="--serve")
    if serve is not None and not serve.is_dir():
        raise typer.BadParameter(
            f"{serve} is not a directory; make a model repository with: cptr-export --style demo --out {serve}", param_hint="--serve"
        )
    try:
        import gradio  # noqa: F401
    except ImportError:
        typer.echo('cptr ui: Gradio is not installed; install the page\'s extra: pip install -e ".[ui]"', err=True)
        raise typer.Exit(1) from None

    try:
        code = serve_ui(url, protocol, host, port, serve=serve, concurrency=concurrency, timeout_s=timeout, open_browser=open_browser)
    except (ServerStartError, FileNotFoundError, ValueError) as e:
        typer.echo(f"cptr ui: {e}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)
