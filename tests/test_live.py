"""A repository that stays live: styles exported into it, re-exported and removed while it is served.

Real ``cptr-export`` and ``cptr serve`` processes on loopback, tiny random-weight styles (64 px,
with encoders, so both ensembles run). The rollout test is the issue's acceptance run: eight
clients for 60 s while a served style is re-exported with another alpha, a new one is added and a
third is removed.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cptr.bench.rollout import LIVE_TOLERANCE, PROBE_SEED, Step, onnx_generate, rollout
from cptr.helptext import flags
from cptr.models.checkpoints import save_generator
from cptr.models.encoder import Encoder, save_encoder, small_encoder_config
from cptr.triton.layout import INDEX_FILE, latest_version, manifest_path, read_index, read_manifest, versions
from tests.conftest import make_tiny_generator

pytest.importorskip("tritonclient")
pytest.importorskip("pytriton")

BIN = Path(sys.executable).parent
SIZE = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("live-weights")
    src, tgt = make_tiny_generator(SIZE, seed=0), make_tiny_generator(SIZE, seed=1)
    torch.manual_seed(0)
    enc = Encoder(**small_encoder_config(src.n_latent, src.style_dim, input_size=64, width=8)).eval()
    return {
        "source": save_generator(src, root / "s.pt"),
        "target": save_generator(tgt, root / "t.pt"),
        "encoder": save_encoder(enc, root / "enc.pt"),
    }


def export_argv(weights: dict[str, Path], repo: Path, style: str, alpha: float, *extra: str) -> tuple[str, ...]:
    files = flags(source=weights["source"], target=weights["target"], encoder=weights["encoder"])
    return (str(BIN / "cptr-export"), *files, *flags(style=style, alpha=alpha, out=repo), "--quiet", *extra)


def run(argv: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def photo_png() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")
    return buf.getvalue()


def test_styles_share_a_repository_as_versions(weights: dict[str, Path], tmp_path: Path) -> None:
    """Two exports into one folder: both styles, one copy of the shared models; a re-export adds a
    version only where a file changed; --remove deletes what no other style uses."""
    repo = tmp_path / "repo"
    run(export_argv(weights, repo, "one", 0.5), tmp_path)
    run(export_argv(weights, repo, "two", 0.5), tmp_path)
    styles = read_index(repo)
    assert sorted(styles) == ["one", "two"]
    assert {"preprocess_64", "postprocess"} <= set(styles["one"]["models"]) & set(styles["two"]["models"])
    assert all(versions(repo / m) == [1] for m in styles["one"]["models"])

    before = onnx_generate(repo, "one", [PROBE_SEED])
    cache = repo / "postprocess" / "1" / "__pycache__"  # what a server's Python leaves beside model.py
    cache.mkdir()
    (cache / "model.cpython-311.pyc").write_bytes(b"bytecode")
    run(export_argv(weights, repo, "one", 0.9), tmp_path)
    one = read_index(repo)["one"]
    assert one["versions"]["synthesis_one"] == 2 and versions(repo / "synthesis_one") == [1, 2]
    assert one["versions"]["mapping_one"] == 1 and one["versions"]["postprocess"] == 1  # unchanged files: no new version
    manifest = read_manifest(repo, "one")
    assert manifest["alpha"] == 0.9 and manifest["models"]["synthesis_one"]["file"] == "synthesis_one/2/model.onnx"
    assert (repo / manifest["models"]["synthesis_one"]["file"]).is_file()
    assert np.abs(onnx_generate(repo, "one", [PROBE_SEED]) - before).max() > 1e-2  # the new weights
    run(export_argv(weights, repo, "one", 0.7), tmp_path)
    assert versions(repo / "synthesis_one") == [2, 3]  # the newest two stay

    run((str(BIN / "cptr-export"), "--style", "two", "--remove", "--out", str(repo)), tmp_path)
    assert sorted(read_index(repo)) == ["one"]
    assert not (repo / "synthesis_two").exists() and not manifest_path(repo, "two").exists()
    assert (repo / "postprocess").is_dir() and (repo / "synthesis_one").is_dir()
    gone = subprocess.run([str(BIN / "cptr-export"), "--style", "two", "--remove", "--out", str(repo)], capture_output=True, text=True)
    assert gone.returncode == 1 and "does not serve style 'two' (it serves: one)" in gone.stderr


def test_export_refuses_a_folder_it_did_not_write(weights: dict[str, Path], tmp_path: Path) -> None:
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not touched")
    done = subprocess.run(list(export_argv(weights, mine, "one", 0.5)), capture_output=True, text=True)
    assert done.returncode == 1 and "not a model repository written by cptr-export" in done.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]


def test_a_repository_of_an_earlier_export_reads_as_one_style(tmp_path: Path) -> None:
    repo = tmp_path / "old"
    (repo / "generate_old" / "1").mkdir(parents=True)
    (repo / "generate_old" / "config.pbtxt").write_text('name: "generate_old"\nplatform: "ensemble"\n')
    (repo / INDEX_FILE).write_text(json.dumps({"style": "old", "backend": "python", "ensembles": ["generate_old"], "size": 64}))
    (repo / "manifest.json").write_text(json.dumps({"style": "old", "alpha": 0.7}))
    assert read_index(repo)["old"]["models"] == ["generate_old"]
    assert read_manifest(repo, "old")["alpha"] == 0.7


def test_live_rollout_under_load(weights: dict[str, Path], tmp_path: Path) -> None:
    """Eight clients for 60 s on style 'keep' while it is re-exported (alpha 0.5 -> 0.9), 'new' is
    added (through --server) and 'gone' removed (picked up by --watch). No request to 'keep' fails,
    its answers switch to the new files, and the server's memory ends within 15% of its start."""
    repo = tmp_path / "triton_repo"
    run(export_argv(weights, repo, "keep", 0.5), tmp_path)
    run(export_argv(weights, repo, "gone", 0.5), tmp_path)
    old = onnx_generate(repo, "keep", [PROBE_SEED])
    server = "{http}"  # rollout() puts the server's HTTP address here
    steps = [
        Step(5.0, "re-export keep at alpha 0.9", export_argv(weights, repo, "keep", 0.9), "keep", "weights"),
        Step(20.0, "add new (cptr-export --server)", export_argv(weights, repo, "new", 0.6, "--server", server), "new", "listed"),
        Step(35.0, "remove gone", (str(BIN / "cptr-export"), "--style", "gone", "--remove", "--out", str(repo)), "gone", "unlisted"),
    ]
    report = rollout(repo, photo_png(), steps, keep=["keep"], clients=8, duration_s=60.0)
    print(
        json.dumps(
            {
                "requests": report.requests,
                "failed": {k: len(v) for k, v in report.failures.items()},
                "steps": [(s.label, round(s.started_s, 1), round(s.command_s, 1), s.live_s and round(s.live_s, 1)) for s in report.steps],
                "rss_mb": [round(report.rss_start_mb), round(report.rss_end_mb)],
                "duration_s": round(report.duration_s, 1),
            }
        )
    )
    assert report.duration_s >= 60.0
    for s in report.steps:
        assert s.returncode == 0, f"{s.label}: {s.output}"
        assert s.live_s is not None, f"{s.label}: not served within 120 s\n{report.serve_log[-3000:]}"
    assert report.failures["keep"] == [], report.failures["keep"][:5]
    assert report.requests["keep"] >= 8 * 10
    assert report.styles_after == ["keep", "new"]
    assert abs(report.rss_change) <= 0.15, (report.rss_start_mb, report.rss_end_mb)
    assert "repository changed" in report.serve_log
    new = onnx_generate(repo, "keep", [PROBE_SEED])
    assert np.abs(new - old).max() > 1e-2  # the re-export changed the weights
    assert report.served_error["keep"] <= LIVE_TOLERANCE  # and the server answers with them
    assert latest_version(repo / "synthesis_keep") == 2
