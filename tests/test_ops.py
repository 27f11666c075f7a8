"""upfirdn2d and fused bias-act against independent direct formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from cptr import ops
from cptr.ops import fused_leaky_relu, make_kernel, upfirdn2d


def upfirdn2d_direct(x: np.ndarray, k: np.ndarray, up: int, down: int, pad: tuple[int, int]) -> np.ndarray:
    """The textbook definition, one output sample at a time:
    y[i, j] = sum_{a, b} u[i*down + a, j*down + b] * k[kh-1-a, kw-1-b],
    where u is x upsampled by zero insertion and padded (negative pads crop)."""
    n, c, h, w = x.shape
    kh, kw = k.shape
    p0, p1 = pad
    hu, wu = h * up + p0 + p1, w * up + p0 + p1

    def u(ci: int, yy: int, xx: int, nn: int) -> float:
        sy, sx = yy - p0, xx - p0  # position in the upsampled, unpadded signal
        if sy < 0 or sx < 0 or sy >= h * up or sx >= w * up or sy % up or sx % up:
            return 0.0
        return x[nn, ci, sy // up, sx // up]

    oh, ow = (hu - kh) // down + 1, (wu - kw) // down + 1
    y = np.zeros((n, c, oh, ow))
    for nn, ci, i, j in itertools.product(range(n), range(c), range(oh), range(ow)):
        y[nn, ci, i, j] = sum(u(ci, i * down + a, j * down + b, nn) * k[kh - 1 - a, kw - 1 - b] for a in range(kh) for b in range(kw))
    return y


# (up, down, pad) used by StyleGAN2 with the [1,3,3,1] kernel, plus negative-pad and odd cases.
CASES = [
    (2, 1, (2, 1)),  # ToRGB skip Upsample
    (1, 1, (1, 1)),  # blur after the transposed conv (3x3 up conv)
    (1, 1, (2, 2)),  # blur before a 3x3 stride-2 conv (discriminator)
    (1, 2, (1, 1)),  # Downsample
    (1, 1, (1, 0)),
    (2, 2, (1, 2)),
    (1, 1, (-1, 2)),
    (3, 2, (0, -1)),
]


@pytest.mark.parametrize("up,down,pad", CASES)
def test_upfirdn2d_matches_direct_formula(up: int, down: int, pad: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))
    k = rng.standard_normal((4, 4))  # asymmetric kernel: a flip error cannot hide
    want = upfirdn2d_direct(x, k, up, down, pad)
    got = upfirdn2d(torch.from_numpy(x), torch.from_numpy(k), up=up, down=down, pad=pad).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_upfirdn2d_separate_axes_and_gradient() -> None:
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    k = make_kernel([1, 3, 3, 1]).double()
    y = upfirdn2d(x, k, up=(2, 1), down=(1, 2), pad=(1, 2, 2, 1))
    assert y.shape == (1, 2, (5 + 2 + 1 - 4) // 2 + 1, (4 * 2 + 1 + 2 - 4) // 1 + 1) == (1, 2, 3, 8)
    assert torch.autograd.gradcheck(lambda t: upfirdn2d(t, k, up=2, down=2, pad=(1, 1)), (x,))


def test_fused_leaky_relu_formula_and_grad() -> None:
    x = torch.randn(3, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    y = fused_leaky_relu(x, b)
    z = x + b.view(1, -1, 1, 1)
    want = torch.where(z >= 0, z, 0.2 * z) * math.sqrt(2)
    torch.testing.assert_close(y, want, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t, c: fused_leaky_relu(t, c), (x, b))
    with pytest.raises(ValueError, match="does not match 4 channels"):
        fused_leaky_relu(x, torch.zeros(3, dtype=torch.float64))


def test_cuda_impl_request_fails_clearly_on_cpu() -> None:
    with pytest.raises(RuntimeError, match="impl='cuda' was requested"):
        upfirdn2d(torch.randn(1, 1, 4, 4), make_kernel([1, 1]), impl="cuda")


def test_default_impl_scopes_the_choice_and_restores_it() -> None:
    x, k = torch.randn(1, 1, 4, 4), make_kernel([1, 1])
    with ops.default_impl("cuda"):
        with pytest.raises(RuntimeError, match="impl='cuda' was requested"):
            upfirdn2d(x, k)  # 'auto' now means the kernels, which a CPU tensor cannot use
        with ops.default_impl("ref"):
            upfirdn2d(x, k)
        with pytest.raises(RuntimeError, match="impl='cuda' was requested"):
            fused_leaky_relu(x, torch.zeros(1))
    torch.testing.assert_close(upfirdn2d(x, k), upfirdn2d(x, k, impl="ref"), rtol=0, atol=0)
    with pytest.raises(ValueError, match="impl must be"):
        with ops.default_impl("gpu"):  # type: ignore[arg-type]
            pass
