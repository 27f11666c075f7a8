"""Every command's --help reads at 80 columns: paragraphs whole, no sentence broken after one or two words.

Rich wraps each line of a help text again; a docstring's own hard line breaks used to leave fragments such as
"path-length" alone on a line (`cptr-train source --help`). cptr.helptext reflows every paragraph first.
"""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from cptr.helptext import COMMAND_WORDS

WIDTH = 80


def _commands() -> list[tuple[str, typer.Typer, list[str]]]:
    from cptr.bench.cli import app as bench_app
    from cptr.cli import app as cptr_app
    from cptr.export.cli import app as export_app
    from cptr.training.cli import app as train_app

    out = []
    for prog, app in (("cptr", cptr_app), ("cptr-export", export_app), ("cptr-train", train_app), ("python -m cptr.bench", bench_app)):
        root = typer.main.get_command(app)

        def walk(cmd, path: list[str], prog: str = prog, app=app) -> None:
            out.append((prog, app, path))
            if hasattr(cmd, "commands"):
                for name, sub in sorted(cmd.commands.items()):
                    walk(sub, [*path, name], prog, app)

        walk(root, [])
    return out


COMMANDS = _commands()


def fragments(text: str) -> list[str]:
    """Lines of the description (above the option tables) that stop a sentence after fewer than 3 words while the
    paragraph goes on."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    end = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(("╭", "Options:", "Commands:"))), len(lines))
    lines = lines[:end]
    bad = []
    indent = lambda ln: len(ln) - len(ln.lstrip())  # noqa: E731
    for i, line in enumerate(lines[1:], 1):  # an example command wrapped by the terminal: its tail falls back left
        prev = lines[i - 1]
        if line.strip() and prev.strip().startswith(COMMAND_WORDS) and indent(line) < indent(prev):
            bad.append(f"{line!r} (the end of {prev.strip()!r})")
    for i, line in enumerate(lines[:-1]):
        body = line.strip().strip("│").strip()
        if not body or line.lstrip().startswith(("╭", "╰", "│", "Usage:")) or "─" in line:
            continue
        nxt = lines[i + 1].strip()
        if not nxt or nxt.startswith(("╭", "│", "Usage:")):
            continue  # the paragraph ends here
        words = body.split()
        if body.startswith(COMMAND_WORDS) or body.startswith(("-", "$", "#")) or body.endswith((":", ".")):
            continue
        if len(words) < 3:
            bad.append(f"{line!r} (then {nxt!r})")
    return bad


@pytest.mark.parametrize("prog,app,path", COMMANDS, ids=[" ".join([p, *c]) for p, _, c in COMMANDS])
def test_help_reads_at_80_columns(prog: str, app: typer.Typer, path: list[str]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH), "TERMINAL_WIDTH": str(WIDTH)}, terminal_width=WIDTH)
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= WIDTH, r.output
    assert fragments(r.output) == [], f"{prog} {' '.join(path)} --help:\n{r.output}"
    if path:  # every command shows how to use it
        assert re.search(r"Examples?:|Example:", r.output), f"{prog} {' '.join(path)} --help has no example"


def test_the_fragment_rule_catches_a_hard_wrapped_paragraph() -> None:
    broken = "rosinality's train.py semantics: non-saturating logistic loss, lazy R1,\npath-length\nregularisation, style mixing, EMA."
    assert fragments(broken) == ["'path-length' (then 'regularisation, style mixing, EMA.')"]
    assert fragments("Examples:\n\n  cptr ui\n  cptr ui --port 7861\n") == []
    assert fragments("Examples:\n\n   cptr deploy k8s triton_repo --model-uri s3://b/demo\n --max-replicas 8\n")
