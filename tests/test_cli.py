"""The ``cptr`` command line without a server: help, no arguments, argument errors, an unreachable server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cptr.cli import app
from cptr.imaging import image_format, save_image
from tests.conftest import help_examples

# The commands whose help follows the shared layout: summary, description, "Examples:", indented examples.
LAID_OUT = [
    "", "serve", "client", "client cartoonize", "client generate", "client styles",
    "styles", "styles list", "styles show", "styles add", "styles remove",
]  # fmt: skip


def _cptr(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``cptr`` script of this environment, as a user runs it."""
    script = Path(sys.executable).parent / "cptr"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=120)


def _commands() -> Iterator[tuple[str, object]]:
    import typer.main

    def walk(cmd: object, path: str) -> Iterator[tuple[str, object]]:
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "cptr")


@pytest.mark.parametrize("group", ["", "client", "styles"])
def test_a_group_alone_prints_its_help_and_exits_0(group: str) -> None:
    r = _cptr(*group.split())
    assert r.returncode == 0, r.stderr
    assert f"Usage: cptr {group}".rstrip() in r.stdout and "Examples:" in r.stdout


def test_every_command_has_examples() -> None:
    for path, cmd in _commands():
        text = getattr(cmd, "help", None) or ""
        assert re.search(r"^\s*Examples?:", text, re.M), f"{path} --help has no examples"
        assert path in text, f"{path} --help shows no example of itself"


@pytest.mark.parametrize("command", LAID_OUT)
def test_help_layout(command: str) -> None:
    """Examples render on their own indented lines (Rich keeps them as written), no line wraps."""
    _, from_examples, shown = help_examples(command)
    assert shown and shown[0].startswith("   cptr"), from_examples[:4]  # Rich's 1-space margin + 2


def test_image_format() -> None:
    assert [image_format(p) for p in ("a.png", "b.JPG", "c.jpeg", "d.webp")] == ["PNG", "JPEG", "JPEG", "WEBP"]
    for bad in ("out.xyz", "out", "grid.gif"):
        with pytest.raises(ValueError, match=r"end the name with \.png, \.jpg, \.jpeg, \.webp"):
            image_format(bad)


def test_save_image_refuses_unknown_suffixes(tmp_path: Path) -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="suffix '.xyz'"):
        save_image(rgb, tmp_path / "out.xyz")
    assert not list(tmp_path.iterdir())
    save_image(rgb, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").format == "JPEG"


def _unused_port() -> int:
    from cptr.serving.server import free_port

    return free_port()


@pytest.mark.parametrize("command", [["client", "cartoonize", "{photo}"], ["client", "generate", "--seeds", "1-2"]])
def test_client_refuses_an_unknown_output_suffix_before_calling(command: list[str], tmp_path: Path) -> None:
    photo = tmp_path / "me.png"
    Image.new("RGB", (8, 8)).save(photo)
    args = [a.replace("{photo}", str(photo)) for a in command]
    r = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "out.xyz"), "--url", f"127.0.0.1:{_unused_port()}"])
    assert r.exit_code == 2, r.output
    assert "suffix '.xyz'" in r.output and ".png" in r.output
    assert "Unavailable" not in r.output  # refused before any request
    assert not (tmp_path / "out.xyz").exists()


def test_unreachable_server_suggests_cptr_serve(tmp_path: Path) -> None:
    r = _cptr("client", "generate", "--seeds", "1", "-o", str(tmp_path / "g.png"), "--url", f"127.0.0.1:{_unused_port()}")
    assert r.returncode == 1
    assert "ServerUnavailableError" in r.stderr and "cptr serve --model-repository" in r.stderr
