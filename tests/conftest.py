"""Shared fixtures: tiny generators that build in milliseconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from cptr.models import Generator
from tests.tiny import TINY_CHANNELS


class PickleBomb:
    """Unpickling this runs code that creates ``marker`` (what a malicious weights file can do); a
    loader that refuses it leaves ``marker`` absent."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


def make_tiny_generator(size: int = 32, seed: int = 0, style_dim: int = 64, n_mlp: int = 2) -> Generator:
    """A randomly initialised generator small enough for CPU tests (noise and biases non-zero)."""
    torch.manual_seed(seed)
    g = Generator(size, style_dim=style_dim, n_mlp=n_mlp, channels=TINY_CHANNELS).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight") or name.endswith("activate.bias") or name.endswith("to_rgb1.bias"):
                p.normal_(0, 0.2)
    return g


@pytest.fixture(scope="session", autouse=True)
def hermetic_home(tmp_path_factory: pytest.TempPathFactory):
    """The suite writes nothing outside its temporary folders: the style store ($CPTR_HOME), the caches CPTR and
    its servers use ($XDG_CACHE_HOME: Triton's backend copy, logs) and matplotlib's point into one for the session.
    Tests that need a store of their own still set CPTR_HOME themselves."""
    root = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("CPTR_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR")}
    os.environ.update(CPTR_HOME=str(root / "cptr"), XDG_CACHE_HOME=str(root / "cache"), MPLCONFIGDIR=str(root / "matplotlib"))
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def tiny_g() -> Generator:
    return make_tiny_generator()


@pytest.fixture
def single_thread():
    """One intra-op thread for the test: the suite shares 2 cores with other jobs, where 2 threads thrash."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def help_examples(command: str) -> tuple[object, list[str], list[str]]:
    """``cptr COMMAND --help`` at 100 columns: (the result, its lines, the non-blank lines after "Examples:")."""
    from typer.testing import CliRunner

    from cptr.cli import app

    r = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"}, terminal_width=100)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    examples = lines.index(next(line for line in lines if line.strip() == "Examples:"))
    return r, lines[examples:], [line for line in lines[examples + 1 :] if line.strip()]


def export_repository(tmp_path_factory: pytest.TempPathFactory, label: str, args: list[str]):
    """``cptr-export ARGS --out <fresh folder>/triton_repo --quiet`` with a store of its own ($CPTR_HOME);
    fails with the command's output when it does not exit 0. Returns the repository folder."""
    from typer.testing import CliRunner

    from cptr.export.cli import app

    work = tmp_path_factory.mktemp(label)
    out = work / "triton_repo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CPTR_HOME", str(work / "home"))
        result = CliRunner().invoke(app, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, f"cptr-export {' '.join(args)} failed:\n{result.output}\n{result.exception!r}"
    return out


def index_of(repo: Path) -> dict:
    """The index entry of the one style in an exported repository (cptr.triton.layout)."""
    from cptr.triton.layout import read_index

    styles = read_index(Path(repo))
    assert len(styles) == 1, f"{repo} holds styles {sorted(styles)}, expected one"
    return next(iter(styles.values()))


def manifest_of(repo: Path) -> dict:
    """The export manifest of the one style in an exported repository."""
    from cptr.triton.layout import read_manifest

    return read_manifest(Path(repo), index_of(repo)["style"])
