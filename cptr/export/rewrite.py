"""The inference rewrite of the synthesis network: the one graph every engine of ``synthesis`` builds.

:class:`ExportSynthesis` is the generator rewritten for inference: every weight-only expression
(equalised-lr scales, the demodulation energies, noise times its strength, the leaky-ReLU gain folded
into the next conv) is precomputed, the modulated convs use static weights (the shared-weight form),
and the FIR filters are separable depthwise convs / transposed convs instead of zero-insertion + 2-D
filtering. It is the one deliberate second walk over the synthesis layers (the model's own is
:meth:`cptr.models.Generator.synthesis`); exporters always verify it against the original generator.

The stage catalogue (:mod:`cptr.export.stages`) picks it as the ``synthesis`` module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.stylegan2 import Generator, ModulatedConv2d, StyledConv, ToRGB, Upsample

# --------------------------------------------------------------------------- FIR filters for export


def separable_taps(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(ky, kx)`` with ``outer(ky, kx) == kernel`` for a rank-1 2-D FIR kernel, else ``None``."""
    k = kernel.detach().double()
    total = k.sum()
    if total == 0:
        return None
    ky, kx = k.sum(1), k.sum(0) / total
    if not torch.allclose(torch.outer(ky, kx), k, rtol=1e-6, atol=1e-9):
        return None
    return ky.float(), kx.float()


class FIRFilter(nn.Module):
    """``upfirdn2d(x, kernel, pad=pad)`` (no resampling) as pad + depthwise convs.

    A separable kernel becomes a [1, K] and a [K, 1] depthwise conv (2K taps instead of K^2).
    """

    def __init__(self, kernel: torch.Tensor, pad: tuple[int, int], channels: int):
        super().__init__()
        self.pad = (int(pad[0]), int(pad[1]))
        self.channels = channels
        flipped = kernel.detach().float().flip([0, 1])  # upfirdn2d is a true convolution
        taps = separable_taps(flipped)
        if taps is None:
            self.register_buffer("weight", flipped.reshape(1, 1, *flipped.shape).repeat(channels, 1, 1, 1))
            self.register_buffer("weight_y", None)
        else:
            ky, kx = taps
            self.register_buffer("weight", kx.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1))
            self.register_buffer("weight_y", ky.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p0, p1 = self.pad
        if p0 == p1 and p0 > 0 and self.weight_y is not None:  # zero padding inside the convs: no Pad pass
            x = F.conv2d(x, self.weight, padding=(0, p0), groups=self.channels)
            return F.conv2d(x, self.weight_y, padding=(p0, 0), groups=self.channels)
        if p0 < 0 or p1 < 0:
            x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
        if max(p0, p1) > 0:
            x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
        x = F.conv2d(x, self.weight, groups=self.channels)
        if self.weight_y is not None:
            x = F.conv2d(x, self.weight_y, groups=self.channels)
        return x


class FIRUpsample2x(nn.Module):
    """``upfirdn2d(x, kernel, up=2, pad=pad)`` as one depthwise stride-2 transposed conv (+ crop/pad).

    A transposed conv computes the full convolution of the zero-inserted input with its kernel;
    ``upfirdn2d`` keeps the window starting at ``K - 1 - pad0`` of it.
    """

    def __init__(self, kernel: torch.Tensor, pad: tuple[int, int], channels: int):
        super().__init__()
        kh, kw = kernel.shape
        if kh != kw:
            raise ValueError(f"FIRUpsample2x needs a square kernel, got {tuple(kernel.shape)}")
        self.k = kh
        self.pad = (int(pad[0]), int(pad[1]))
        self.channels = channels
        self.register_buffer("weight", kernel.detach().float().reshape(1, 1, kh, kw).repeat(channels, 1, 1, 1))
        start = self.k - 1 - self.pad[0]
        end = self.k - 2 - self.pad[1]  # samples dropped at the end of the full convolution
        self.crop = min(start, end, self.k - 1) if min(start, end) > 0 else 0
        self.extra = (start - self.crop, end - self.crop)  # > 0: crop more; < 0: zero-pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv_transpose2d(x, self.weight, stride=2, padding=self.crop, groups=self.channels)
        a, b = self.extra
        if a < 0 or b < 0:
            out = F.pad(out, [max(-a, 0), max(-b, 0), max(-a, 0), max(-b, 0)])
        if a > 0 or b > 0:
            out = out[:, :, max(a, 0) : out.shape[2] - max(b, 0), max(a, 0) : out.shape[3] - max(b, 0)]
        return out


# --------------------------------------------------------------------------- inference rewrite


class _Affine(nn.Module):
    """The style affine of a modulated conv: ``s = w @ A + b`` with its scales folded in."""

    def __init__(self, conv: ModulatedConv2d):
        super().__init__()
        lin = conv.modulation
        self.register_buffer("a", (lin.weight * lin.scale).t().contiguous().detach().clone())
        self.register_buffer("b", (lin.bias * lin.lr_mul).detach().clone())

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, w, self.a)


class ExportModConv(nn.Module):
    """Shared-weight modulated conv with precomputed weights; ``in_gain`` scales the input."""

    def __init__(self, conv: ModulatedConv2d, in_gain: float = 1.0):
        super().__init__()
        if conv.downsample:
            raise ValueError("downsampling modulated convs are not part of the generator")
        self.affine = _Affine(conv)
        w = (conv.weight[0] * conv.scale).detach()  # [out, in, k, k]
        self.demodulate = conv.demodulate
        if conv.demodulate:
            self.register_buffer("energy", w.square().sum(dim=(2, 3)).t().contiguous().clone())  # [in, out]
        self.upsample = conv.upsample
        self.padding = conv.padding
        if conv.upsample:
            self.register_buffer("weight", (w * in_gain).transpose(0, 1).contiguous().clone())  # [in, out, k, k]
            self.blur = FIRFilter(conv.blur.kernel, conv.blur.pad, conv.out_channel)
        else:
            self.register_buffer("weight", (w * in_gain).contiguous().clone())

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)
        x = x * s.unsqueeze(-1).unsqueeze(-1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, self.weight, stride=2))
        else:
            out = F.conv2d(x, self.weight, padding=self.padding)
        if self.demodulate:
            d = torch.rsqrt((s * s) @ self.energy + 1e-8)
            out = out * d.unsqueeze(-1).unsqueeze(-1)
        return out


class ExportStyledConv(nn.Module):
    """Modulated conv + constant noise + bias + leaky ReLU; the ``sqrt(2)`` gain goes to consumers."""

    def __init__(self, layer: StyledConv, noise: torch.Tensor, in_gain: float):
        super().__init__()
        self.conv = ExportModConv(layer.conv, in_gain)
        self.register_buffer("noise", (layer.noise.weight * noise).detach().clone())  # [1, 1, H, W]
        self.register_buffer("bias", layer.activate.bias.detach().reshape(1, -1, 1, 1).clone())
        self.negative_slope = layer.activate.negative_slope
        self.gain = layer.activate.scale

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x, w) + self.noise + self.bias, self.negative_slope)


class ExportToRGB(nn.Module):
    def __init__(self, layer: ToRGB, in_gain: float, channels_skip: int = 3):
        super().__init__()
        self.conv = ExportModConv(layer.conv, in_gain)
        self.register_buffer("bias", layer.bias.detach().clone())
        up = getattr(layer, "upsample", None)
        self.upsample = FIRUpsample2x(up.kernel, up.pad, channels_skip) if isinstance(up, Upsample) else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ExportSynthesis(nn.Module):
    """Deterministic synthesis ``W+ [B, n_latent, D] -> image [B, 3, H, W]`` rewritten for export.

    Numerically the generator's ``g([w_plus], input_is_latent=True, randomize_noise=False)`` (or with
    ``noise``), up to float rounding.
    """

    def __init__(self, g: Generator, noise: Sequence[torch.Tensor] | None = None):
        super().__init__()
        noise = list(noise) if noise is not None else g.const_noise()
        if len(noise) != g.num_layers:
            raise ValueError(f"expected {g.num_layers} noise maps, got {len(noise)}")
        self.n_latent, self.style_dim, self.size = g.n_latent, g.style_dim, g.size
        self.register_buffer("const_input", g.input.input.detach().clone())
        gain = g.conv1.activate.scale
        self.conv1 = ExportStyledConv(g.conv1, noise[0], in_gain=1.0)
        self.to_rgb1 = ExportToRGB(g.to_rgb1, in_gain=gain)
        self.convs = nn.ModuleList(ExportStyledConv(c, noise[i + 1], in_gain=gain) for i, c in enumerate(g.convs))
        self.to_rgbs = nn.ModuleList(ExportToRGB(t, in_gain=gain) for t in g.to_rgbs)

    def forward(self, w_plus: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.const_input, w_plus[:, 0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        i = 1
        for conv_up, conv, to_rgb in zip(self.convs[::2], self.convs[1::2], self.to_rgbs):
            out = conv_up(out, w_plus[:, i])
            out = conv(out, w_plus[:, i + 1])
            skip = to_rgb(out, w_plus[:, i + 2], skip)
            i += 2
        return skip
