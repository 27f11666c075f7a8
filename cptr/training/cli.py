"""``cptr-train``: training commands (one Typer app; each trainer registers its command here).

Commands live in their own modules and are registered with one line each, e.g.
``app.command("finetune")(finetune_cli.finetune)``. Keep the modules' top-level imports light (import
torch inside the command) so ``cptr-train --help`` stays fast.
"""

from __future__ import annotations

import typer

from cptr.data import cli as data_cli
from cptr.helptext import reflow_app
from cptr.training import encoder_cli, finetune_cli, mapper_cli

app = typer.Typer(
    help="Train CPTR models.\n\n"
    "Examples:\n\n"
    "  cptr-train render --domain photo --n 20000 --size 64 --out data/photo\n\n"
    "  cptr-train source --data data/photo --out runs/source\n\n"
    "  cptr-train prepare cartoons/ --out data/cartoons.lmdb --size 256\n\n"
    "  cptr-train finetune --source ffhq256.pt --data data/cartoons.lmdb --out runs/webtoon\n\n"
    "  torchrun --nproc_per_node 4 -m cptr.training finetune --source ffhq256.pt --data data/cartoons.lmdb --out runs/webtoon",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Train CPTR models: data (render, prepare), generators (source from scratch, finetune with
    FreezeSG), the encoder and text mappers."""


app.command("render", no_args_is_help=True)(data_cli.render)
app.command("source", no_args_is_help=True)(finetune_cli.source)
app.command("critic")(data_cli.critic)
app.command("eval", no_args_is_help=True)(data_cli.evaluate)
app.command("finetune", no_args_is_help=True)(finetune_cli.finetune)
app.command("prepare", no_args_is_help=True)(finetune_cli.prepare)
app.command("mapper", help=mapper_cli.MAPPER_HELP, no_args_is_help=True)(mapper_cli.mapper_command)
app.command("encoder", help=encoder_cli.ENCODER_HELP, no_args_is_help=True)(encoder_cli.encoder_command)
# Other trainers register here, one line each.


reflow_app(app)  # help paragraphs whole at any width (cptr.helptext)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
