"""Generator and discriminator behaviour on tiny configs."""

from __future__ import annotations

import pytest
import torch

from cptr.models import Discriminator, Generator, set_fused_modconv
from cptr.models.stylegan2 import ModulatedConv2d
from tests.conftest import TINY_CHANNELS, make_tiny_generator


@pytest.mark.parametrize("kwargs", [{}, {"upsample": True}, {"downsample": True}, {"demodulate": False}])
def test_fused_and_shared_weight_modconv_agree_float64(kwargs: dict) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3 if kwargs.get("demodulate", True) else 1, 16, **kwargs).double()
    x = torch.randn(3, 6, 8, 8, dtype=torch.float64)
    s = torch.randn(3, 16, dtype=torch.float64)
    conv.fused = True
    a = conv(x, s)
    conv.fused = False
    b = conv(x, s)
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < 1e-5


@pytest.mark.parametrize("size", [32, 64])
def test_generator_fused_vs_shared_weight_float64(size: int) -> None:
    g = make_tiny_generator(size).double()
    w = torch.randn(2, g.n_latent, g.style_dim, dtype=torch.float64)
    a, _ = g([w], input_is_latent=True, randomize_noise=False)
    set_fused_modconv(g, False)
    b, _ = g([w], input_is_latent=True, randomize_noise=False)
    assert a.shape == (2, 3, size, size)
    assert (a - b).abs().max().item() < 1e-5


def test_generator_call_conventions(tiny_g: Generator) -> None:
    g = tiny_g
    z = torch.randn(3, g.style_dim)
    img, lat = g([z], return_latents=True, randomize_noise=False)
    assert img.shape == (3, 3, 32, 32) and lat.shape == (3, g.n_latent, g.style_dim)
    w = g.get_latent(z)
    img2, _ = g([w], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(img, img2)
    # W+ input equals the broadcast w
    img3, _ = g([lat], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(img, img3)
    # truncation = 0 collapses every sample onto the truncation latent
    mean = g.mean_latent(256)
    assert mean.shape == (1, g.style_dim)
    t, _ = g([z], truncation=0.0, truncation_latent=mean, randomize_noise=False)
    assert torch.allclose(t[0], t[1], atol=1e-6)
    # random noise changes the output; const noise does not
    r1, _ = g([w], input_is_latent=True)
    r2, _ = g([w], input_is_latent=True)
    assert not torch.equal(r1, r2)


def test_style_mixing_inject_index(tiny_g: Generator) -> None:
    g = tiny_g
    w1, w2 = g.get_latent(torch.randn(2, g.style_dim)), g.get_latent(torch.randn(2, g.style_dim))
    k = 3
    mixed, lat = g([w1, w2], input_is_latent=True, inject_index=k, return_latents=True, randomize_noise=False)
    assert torch.equal(lat[:, :k], w1[:, None].expand(-1, k, -1))
    assert torch.equal(lat[:, k:], w2[:, None].expand(-1, g.n_latent - k, -1))
    manual = torch.cat([w1[:, None].expand(-1, k, -1), w2[:, None].expand(-1, g.n_latent - k, -1)], 1)
    ref, _ = g([manual], input_is_latent=True, randomize_noise=False)
    torch.testing.assert_close(mixed, ref)
    with pytest.raises(ValueError, match="crossover must be >= 0"):
        g([w1, w2], input_is_latent=True, inject_index=-1)


def test_bad_inputs_raise_clear_errors(tiny_g: Generator) -> None:
    with pytest.raises(ValueError, match=r"W\+ must have shape"):
        tiny_g([torch.randn(1, 5, tiny_g.style_dim)], input_is_latent=True)
    with pytest.raises(TypeError, match="list of tensors"):
        tiny_g(torch.randn(1, tiny_g.style_dim))
    with pytest.raises(ValueError, match="power of two"):
        Generator(48)


def test_discriminator_shapes_and_gradients() -> None:
    d = Discriminator(32, channels=TINY_CHANNELS)
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    out = d(x)
    assert out.shape == (4, 1)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert d(torch.randn(3, 3, 32, 32)).shape == (3, 1)  # batch not divisible by the stddev group
    with pytest.raises(ValueError, match="expected images"):
        d(torch.randn(1, 3, 16, 16))


def test_default_config_matches_official_256_layout() -> None:
    g = Generator(256)
    assert g.n_latent == 14 and g.num_layers == 13
    sd = g.state_dict()
    assert sd["convs.0.conv.weight"].shape == (1, 512, 512, 3, 3)
    assert sd["convs.10.conv.weight"].shape == (1, 128, 256, 3, 3)
    assert sd["noises.noise_12"].shape == (1, 1, 256, 256)
    assert sd["to_rgbs.5.upsample.kernel"].shape == (4, 4)


def test_demo_style_is_deterministic_across_global_rng_state() -> None:
    from cptr.demo import demo_generators

    torch.manual_seed(1)
    a_src, a_tgt = demo_generators()
    torch.manual_seed(2)
    torch.randn(100)
    b_src, b_tgt = demo_generators()
    assert torch.equal(a_src.latent_avg, b_src.latent_avg)
    for (k, v), v2 in zip(a_tgt.state_dict().items(), b_tgt.state_dict().values()):
        assert torch.equal(v, v2), k


def test_noise_modes(tiny_g: Generator) -> None:
    """const = the stored buffers, random = fresh maps (seeded), none = the image of zeroed noise strengths."""
    w = tiny_g.style(torch.randn(2, tiny_g.style_dim, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        stored, _ = tiny_g([w], input_is_latent=True, randomize_noise=False)
        const, _ = tiny_g([w], input_is_latent=True, noise=tiny_g.noise_maps("const"))
        r1, _ = tiny_g([w], input_is_latent=True, noise=tiny_g.noise_maps("random", 2, torch.Generator().manual_seed(7)))
        r2, _ = tiny_g([w], input_is_latent=True, noise=tiny_g.noise_maps("random", 2, torch.Generator().manual_seed(7)))
        none, _ = tiny_g([w], input_is_latent=True, noise=tiny_g.noise_maps("none"))
        for name, p in tiny_g.named_parameters():
            if name.endswith("noise.weight"):
                assert p.abs().max() > 0  # make_tiny_generator's strengths are non-zero
                p.zero_()
        silent, _ = tiny_g([w], input_is_latent=True, randomize_noise=False)
    assert torch.equal(const, stored) and torch.equal(r1, r2)
    assert (r1 - stored).abs().max() > 1e-3 and (none - stored).abs().max() > 1e-3
    torch.testing.assert_close(none, silent, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="noise mode"):
        tiny_g.noise_maps("loud")


def test_one_style_mixing_rule_in_every_path() -> None:
    """The generator's forward pass, the trainer, the served NumPy stage and cptr.models.latents mix
    alike at every crossover: entries < c from the first latent, the rest from the second; c = 0 or
    c >= n_latent: no mixing. A negative crossover is refused everywhere."""
    import numpy as np

    from cptr.models.latents import mix_w_plus, mix_w_plus_np
    from cptr.serving.errors import RequestError
    from cptr.serving.stages import mix_latents as served_mix
    from cptr.training.freeze import mix_latents as trainer_mix

    g = make_tiny_generator(32)
    n = g.n_latent
    z1, z2 = (
        torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(0)),
        torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(1)),
    )
    with torch.no_grad():
        w1, w2 = g.style(z1), g.style(z2)
        for c in range(0, n + 3):
            expected = np.repeat(w1.numpy()[:, None], n, axis=1)
            if 0 < c < n:
                expected[:, c:] = w2.numpy()[:, None]
            paths = {
                "latents": mix_w_plus(w1, w2, c, n).numpy(),
                "latents (numpy)": mix_w_plus_np(w1.numpy(), w2.numpy(), np.array([c, c]), n),
                "generator": g._broadcast_latents([w1, w2], c).numpy(),
                "trainer": trainer_mix(g.style, n, z1, z2, c).numpy(),
                "served": served_mix(w1.numpy(), w2.numpy(), np.array([[7, c], [7, c]]), n),
            }
            for name, got in paths.items():
                assert np.array_equal(got, expected), f"{name} at crossover {c}"
    with pytest.raises(ValueError, match=">= 0"):
        mix_w_plus(w1, w2, -1, n)
    with pytest.raises(RequestError, match=">= 0"):
        served_mix(w1.numpy(), w2.numpy(), np.array([[7, -1], [7, -1]]), n)
