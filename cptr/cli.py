"""The ``cptr`` command: styles, serving, client and demo in one place."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="CPTR: cartoon portrait style transfer on StyleGAN2.\n\n"
    "Export a style to a Triton model repository (cptr-export), serve it, call it.\n\n"
    "Examples:\n\n  cptr demo\n  cptr styles list\n  cptr serve --model-repository triton_repo\n"
    "  cptr client cartoonize photo.jpg -o cartoon.png",
    add_completion=False,
)


def _help_if_no_command(ctx: typer.Context) -> None:
    """A command group called alone prints its help and exits 0 (click's own answer is a usage error, 2)."""
    if ctx.invoked_subcommand is None:
        text = ctx.get_help()  # Rich help prints itself and returns ""
        if text:
            typer.echo(text)
        raise typer.Exit(0)


_GROUP = {"invoke_without_command": True, "no_args_is_help": False, "callback": _help_if_no_command}
app.add_typer(__import__("cptr.styles", fromlist=["app"]).app, name="styles", **_GROUP)
app.command("serve")(__import__("cptr.serving.cli", fromlist=["serve"]).serve)
app.add_typer(__import__("cptr.client.cli", fromlist=["app"]).app, name="client", **_GROUP)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """CPTR: cartoon portrait style transfer on StyleGAN2."""
    _help_if_no_command(ctx)


@app.command()
def demo(
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="PNG grid to write."),
    n: int = typer.Option(8, min=1, max=64, help="Number of faces."),
    seed: int = typer.Option(0, help="Seed for the latents."),
    truncation: float = typer.Option(0.7, min=0.0, max=1.0, help="Truncation psi (1 = none)."),
) -> None:
    """Render faces from the embedded demo style: source row above, target row below.

    Example: cptr demo --out samples.png --n 8 --seed 0
    """
    import torch

    from cptr.demo import demo_generators
    from cptr.imaging import grid, save_image, to_uint8

    source, target = demo_generators()
    z = torch.Generator().manual_seed(seed)
    z = torch.randn(n, source.style_dim, generator=z)
    with torch.no_grad():
        w = source.get_latent(z)
        rows = []
        for g in (source, target):
            img, _ = g([w], input_is_latent=True, truncation=truncation, truncation_latent=source.latent_avg, randomize_noise=False)
            rows.append(to_uint8(img))
    import numpy as np

    save_image(grid(np.concatenate(rows), cols=n), out)
    typer.echo(f"wrote {out} ({n} source faces above their target versions)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
