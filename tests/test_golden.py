"""CPTR's loaders on files written by the peers' own code, against the outputs the peers' own code computed.

tests/fixtures/golden/ holds an NVlabs network pickle, a pSp and an e4e encoder checkpoint and two StyleCLIP
mapper checkpoints, each saved the way the peer's training loop saves it, and beside each an ``.npz`` with the
inputs and what the peer's forward pass returned for them (the peer code loading the file the way its inference
script does). tests/fixtures/golden/make_peer_golden.py made them from pinned peer commits (golden.json: repository,
commit, configuration, sha256). The other tests of these formats build their files with CPTR's own inverse; a
misreading shared by the writer and the reader would pass those, not these.

Each file is read by the loader ``cptr styles add`` uses (load_generator, load_encoder, load_mapper). Errors are
measured as max |CPTR - peer| over the largest |peer| value; each check says what it measured here (CPU, torch
2.13, 1 or 2 threads): at most 6.7e-7, so the bound 1e-5 leaves room for other CPUs' kernels, nothing for a
misreading (breaking one line of a converter gives 1e-3 to 1).
"""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cptr.models.checkpoints import generator_from_state_dict, load_generator, load_torch_file
from cptr.models.encoder import load_encoder
from cptr.models.mapper import load_mapper

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
REL = 1e-5  # bound on max |CPTR - peer| / max |peer|


def close(actual: torch.Tensor, expected: np.ndarray | torch.Tensor, what: str, rel: float = REL) -> None:
    expected = torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: CPTR gives shape {tuple(actual.shape)}, the peer {tuple(expected.shape)}"
    err = float((actual.detach().float() - expected).abs().max())
    scale = float(expected.abs().max())
    assert err <= rel * scale, f"{what}: max |CPTR - peer| = {err:.3g}, {err / scale:.2g} of the largest value {scale:.3g} (bound {rel:g})"


def golden(name: str) -> dict[str, torch.Tensor]:
    with np.load(GOLDEN / f"{name}.npz") as d:
        return {k: torch.from_numpy(d[k]) for k in d.files}


def unpacked(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``NAME.xz`` decompressed to a temporary file: the bytes the peer's torch.save wrote."""
    out = tmp_path_factory.mktemp("golden") / name
    with lzma.open(GOLDEN / f"{name}.xz") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
    return out


def image_input(u8: torch.Tensor) -> torch.Tensor:
    """uint8 HWC -> [1, 3, H, W] in [-1, 1], as pSp's transforms (ToTensor, Normalize(0.5, 0.5)) give it."""
    return u8.permute(2, 0, 1)[None].float() / 127.5 - 1


# --------------------------------------------------------------------------- NVlabs stylegan2-ada-pytorch


@pytest.fixture(scope="module")
def nvlabs():
    return load_generator(GOLDEN / "nvlabs_g32.pkl"), golden("nvlabs_g32")


@torch.no_grad()
def test_nvlabs_pickle_maps_and_truncates_as_nvlabs(nvlabs) -> None:
    """G_ema's mapping, w_avg, and z -> image with and without truncation (noise_mode='const')."""
    g, ref = nvlabs
    assert g.size == 32 and g.style_dim == 32 and g.n_mlp == 2 and g.channels == {4: 32, 8: 16, 16: 8, 32: 4}
    assert g.latent_avg is not None, "load_generator did not read mapping.w_avg into latent_avg"
    close(g.latent_avg, ref["w_avg"], "mapping.w_avg")  # measured 0
    close(g.style(ref["z"]), ref["ws"][:, 0], "mapping(z)")  # measured 0
    assert torch.equal(ref["ws"], ref["ws"][:, :1].expand_as(ref["ws"]))  # NVlabs broadcasts one w to every layer
    close(g([ref["z"]], randomize_noise=False)[0], ref["img"], "G(z), noise_mode='const'")  # measured 3.0e-7
    psi = round(float(ref["psi"]), 6)
    close(g.latent_avg + psi * (g.style(ref["z"]) - g.latent_avg), ref["ws_trunc"][:, 0], "truncated w")  # measured 5.7e-8
    img = g([ref["z"]], randomize_noise=False, truncation=psi, truncation_latent=g.latent_avg)[0]
    close(img, ref["img_trunc"], f"G(z, truncation_psi={psi})")  # measured 3.9e-7


@torch.no_grad()
def test_nvlabs_pickle_synthesizes_w_plus_as_nvlabs(nvlabs) -> None:
    """G_ema.synthesis on a W+ with a different w per layer, with the stored noise and with none."""
    g, ref = nvlabs
    close(g([ref["w_plus"]], input_is_latent=True, randomize_noise=False)[0], ref["img_w_plus"], "synthesis(w_plus, 'const')")  # 3.5e-7
    img = g([ref["w_plus"]], input_is_latent=True, noise=g.noise_maps("none"))[0]
    close(img, ref["img_w_plus_no_noise"], "synthesis(w_plus, 'none')")  # measured 3.3e-7


# --------------------------------------------------------------------------- pSp and e4e


@pytest.fixture(scope="module")
def psp_file(tmp_path_factory):
    return unpacked("psp_encoder32.pt", tmp_path_factory)


@pytest.mark.parametrize("peer", ["psp", "e4e"])
def test_encoder_checkpoint_encodes_as_its_peer(peer: str, psp_file: Path, tmp_path_factory, single_thread) -> None:
    """pSp's GradualStyleEncoder / e4e's Encoder4Editing (IR-SE50, 8 W+ entries): image -> W+ with latent_avg."""
    path = psp_file if peer == "psp" else unpacked("e4e_encoder32.pt", tmp_path_factory)
    ref = golden(f"{peer}_encoder32")
    enc = load_encoder(path)
    assert enc.head == peer and enc.n_latent == 8 and enc.input_size == 256 and list(enc.units) == [3, 4, 14, 3]
    close(enc.latent_avg, ref["latent_avg"], "latent_avg")  # measured 0
    with torch.no_grad():
        close(enc(image_input(ref["image"])), ref["codes"], f"{peer} W+ codes")  # measured 6.3e-8 (pSp), 9.6e-8 (e4e)


@torch.no_grad()
def test_psp_decoder_renders_as_rosinality_generator(psp_file: Path, single_thread) -> None:
    """The decoder in the pSp file is pSp's copy of rosinality's Generator (32 px, 512 wide, 8 mapping layers):
    its ``g_ema``-named weights through the rosinality path of load_generator, W+ -> image with the stored noise."""
    ref = golden("psp_encoder32")
    sd = load_torch_file(psp_file)["state_dict"]
    g = generator_from_state_dict({k.removeprefix("decoder."): v for k, v in sd.items() if k.startswith("decoder.")}).eval()
    close(g([ref["codes"]], input_is_latent=True, randomize_noise=False)[0], ref["decoder_images"], "pSp decoder(codes)")  # measured 6.7e-7


# --------------------------------------------------------------------------- StyleCLIP


@pytest.mark.parametrize(
    "name,n_latent,levels",
    [
        ("styleclip_levels1024", 18, {"coarse": True, "medium": True, "fine": True}),
        ("styleclip_no_medium256", 14, {"coarse": True, "medium": False, "fine": True}),
    ],
)
@torch.no_grad()
def test_styleclip_mapper_edits_as_styleclip(name: str, n_latent: int, levels: dict, tmp_path_factory) -> None:
    """StyleCLIP's LevelsMapper: M(w) and w + 0.1 * M(w), W+ length read from opts['stylegan_size']."""
    ref = golden(name)
    m = load_mapper(unpacked(f"{name}.pt", tmp_path_factory))
    assert m.n_latent == n_latent and m.levels == levels
    close(m(ref["w"]), ref["delta"], f"{name}: mapper(w)")  # measured 0
    close(m.edit(ref["w"]), ref["w_hat"], f"{name}: w + 0.1 * mapper(w)")  # measured 0
