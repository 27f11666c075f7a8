"""Help text that reads at any terminal width: one rule for every CPTR command-line tool.

Docstrings are hard-wrapped in the source; Typer keeps those line breaks in every paragraph after the
first and Rich then wraps each line again, leaving fragments ("path-length" alone on a line) at 80
columns. :func:`reflow_app` joins each paragraph's wrapped prose lines into one line for Rich to wrap,
and keeps what is laid out on purpose: indented lines (examples, continued list items stay with their
item), list items, and lines after one ending in ``:``.
"""

from __future__ import annotations

import inspect
import re

import typer

COMMAND_WORDS = ("cptr", "cptr-export", "cptr-train", "python", "torchrun", "tritonserver", "helm", "kubectl", "make", "docker")


def _is_item(line: str) -> bool:
    """A list item: ``- x``, ``* x``, ``| x`` or a numbered ``1. x`` / ``2) x``."""
    return bool(re.match(r"\s*([-*|]|\d+[.)]) ", line))


def reflow(doc: str) -> str:
    """``doc`` with the wrapped lines of each prose paragraph joined (see the module docstring)."""
    paragraphs = []
    for para in inspect.cleandoc(doc).split("\n\n"):
        lines: list[str] = []
        for line in para.split("\n"):
            prev = lines[-1] if lines else ""
            continues_item = _is_item(prev) and line.startswith("  ") and not line.strip().startswith(COMMAND_WORDS)
            prose = line and not line[0].isspace() and not _is_item(line)
            if prev and (prose and not prev[0].isspace() or continues_item) and not prev.rstrip().endswith(":"):
                lines[-1] = prev.rstrip() + " " + line.strip()
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def reflow_app(app: typer.Typer) -> typer.Typer:
    """Reflow the help of ``app``, its commands and its sub-apps, in place; returns ``app``."""
    if app.info.help and isinstance(app.info.help, str):
        app.info.help = reflow(app.info.help)
    callback = app.registered_callback
    if callback is not None and callback.callback is not None and callback.callback.__doc__:
        callback.callback.__doc__ = reflow(callback.callback.__doc__)
    for command in app.registered_commands:
        if isinstance(command.help, str):
            command.help = reflow(command.help)
        if command.callback is not None and command.callback.__doc__:
            command.callback.__doc__ = reflow(command.callback.__doc__)
    for group in app.registered_groups:
        if isinstance(group.help, str):
            group.help = reflow(group.help)
        if group.typer_instance is not None:
            reflow_app(group.typer_instance)
    return app


def flags(**options: object) -> list[str]:
    """Command-line flags from keywords: ``flags(iters=600, grow_from=None, quiet=True)`` ->
    ``["--iters", "600", "--quiet"]``. None and False are left out; True is the bare flag."""
    out: list[str] = []
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):
            out += [flag] if value else []
        elif value is not None:
            out += [flag, str(value)]
    return out
