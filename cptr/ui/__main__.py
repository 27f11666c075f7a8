"""``python -m cptr.ui``: the same command as ``cptr ui``."""

from __future__ import annotations

import typer

from cptr.ui.cli import ui


def main() -> None:
    typer.run(ui)


if __name__ == "__main__":
    main()
