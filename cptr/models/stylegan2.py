"""StyleGAN2 generator and discriminator with rosinality/stylegan2-pytorch parameter names.

A ``g_ema`` state dict from rosinality's training code loads with ``strict=True``. The modulated
convolution has two forms that give the same numbers. The *fused* form runs one grouped conv with
per-sample weights (fast for training). The *non-fused* form modulates the input, convolves with the
shared weight and demodulates the output; it has static conv weights, which is what exporters need.
Switch with :func:`set_fused_modconv`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cptr import contracts
from cptr.models.latents import mix_w_plus
from cptr.ops import FusedLeakyReLU, fused_leaky_relu, make_kernel, upfirdn2d

DEFAULT_BLUR = (1, 3, 3, 1)


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """Feature channels per resolution of the official configs (config-f for multiplier 2)."""
    cm = channel_multiplier
    return {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * cm, 128: 128 * cm, 256: 64 * cm, 512: 32 * cm, 1024: 16 * cm}


def _check_size(size: int) -> int:
    if not contracts.is_image_size(size):
        raise ValueError(f"image size must be a power of two >= 8, got {size}")
    return int(math.log2(size))


NOISE_MODES = ("const", "random", "none")  # NVlabs' noise_mode: stored buffers, fresh maps, zeros


class PixelNorm(nn.Module):
    """Normalise each vector to unit second moment (the input of the mapping network)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x * x, dim=1, keepdim=True) + 1e-8)


class Upsample(nn.Module):
    """2x FIR upsampling of the RGB skip path (buffer ``kernel``)."""

    def __init__(self, blur_kernel: Sequence[float], factor: int = 2):
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(blur_kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class Blur(nn.Module):
    """FIR low-pass filter with fixed padding (buffer ``kernel``)."""

    def __init__(self, blur_kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", make_kernel(blur_kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)

    @classmethod
    def after_transposed_conv(cls, blur_kernel: Sequence[float], kernel_size: int, factor: int = 2) -> Blur:
        """The blur after a stride-``factor`` transposed conv of ``kernel_size`` (it also undoes the zeros' gain)."""
        p = (len(blur_kernel) - factor) - (kernel_size - 1)
        return cls(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1), upsample_factor=factor)

    @classmethod
    def before_strided_conv(cls, blur_kernel: Sequence[float], kernel_size: int, factor: int = 2) -> Blur:
        """The blur before a stride-``factor`` conv of ``kernel_size``."""
        p = (len(blur_kernel) - factor) + (kernel_size - 1)
        return cls(blur_kernel, pad=((p + 1) // 2, p // 2))


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: weights stored at unit variance, scaled at run time."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.stride = stride
        self.padding = padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, bias=self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate and an optional fused leaky ReLU."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.activation = activation
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias=bias)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (weight ``[1, out, in, k, k]``), optionally 2x up/down with a blur."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        downsample: bool = False,
        blur_kernel: Sequence[float] = DEFAULT_BLUR,
        fused: bool = True,
    ):
        super().__init__()
        if upsample and downsample:
            raise ValueError("a modulated conv cannot both upsample and downsample")
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.upsample, self.downsample = upsample, downsample
        if upsample:
            self.blur = Blur.after_transposed_conv(blur_kernel, kernel_size)
        if downsample:
            self.blur = Blur.before_strided_conv(blur_kernel, kernel_size)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)
        self.demodulate = demodulate
        self.fused = fused

    def extra_repr(self) -> str:
        return (
            f"{self.in_channel}, {self.out_channel}, k={self.kernel_size}, upsample={self.upsample}, "
            f"downsample={self.downsample}, demodulate={self.demodulate}, fused={self.fused}"
        )

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if c != self.in_channel:
            raise ValueError(f"expected {self.in_channel} input channels, got {c}")
        s = self.modulation(style)  # [B, in]
        if self.fused:
            return self._forward_fused(x, s)
        return self._forward_shared_weight(x, s)

    def _forward_shared_weight(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        weight = self.weight[0] * self.scale  # [out, in, k, k]
        x = x * s.reshape(b, -1, 1, 1)
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        elif self.downsample:
            out = F.conv2d(self.blur(x), weight, stride=2)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # sum_{i,k} (w[o,i,k] * s[i])^2 = s^2 @ sum_k w^2
            energy = (s * s) @ weight.square().sum(dim=(2, 3)).t()  # [B, out]
            out = out * torch.rsqrt(energy + 1e-8).reshape(b, -1, 1, 1)
        return out

    def _forward_fused(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k, o = self.kernel_size, self.out_channel
        weight = self.scale * self.weight * s.reshape(b, 1, c, 1, 1)  # [B, out, in, k, k]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4)) + 1e-8).reshape(b, o, 1, 1, 1)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * c, o, k, k)
            out = F.conv_transpose2d(x.reshape(1, b * c, h, w), weight, stride=2, groups=b)
            return self.blur(out.reshape(b, o, *out.shape[2:]))
        weight = weight.reshape(b * o, c, k, k)
        if self.downsample:
            x = self.blur(x)
            out = F.conv2d(x.reshape(1, b * c, *x.shape[2:]), weight, stride=2, groups=b)
        else:
            out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.reshape(b, o, *out.shape[2:])


class NoiseInjection(nn.Module):
    """Add per-pixel noise scaled by a learned strength (parameter ``weight`` [1])."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            b, _, h, w = x.shape
            noise = x.new_empty(b, 1, h, w).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    """The learned 4x4 constant that starts synthesis (parameter ``input``)."""

    def __init__(self, channel: int, size: int = 4):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.input.expand(latent.shape[0], -1, -1, -1)


class StyledConv(nn.Module):
    """Modulated conv, noise and bias + leaky ReLU: one synthesis layer."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = DEFAULT_BLUR,
        demodulate: bool = True,
    ):
        super().__init__()  # rosinality's arguments, handed to the modulated conv
        self.conv = ModulatedConv2d(
            in_channel, out_channel, kernel_size, style_dim, upsample=upsample, blur_kernel=blur_kernel, demodulate=demodulate
        )
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise=noise))


class ToRGB(nn.Module):
    """1x1 modulated conv to RGB, added to the upsampled RGB of the previous resolution."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True, blur_kernel: Sequence[float] = DEFAULT_BLUR):
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


@dataclass
class SynthesisOutputs:
    """The image and the per-resolution intermediates of one synthesis pass (:meth:`Generator.synthesis`)."""

    image: torch.Tensor  # [B, 3, size, size] (or the skip at max_resolution)
    rgb: dict[int, torch.Tensor] = field(default_factory=dict)  # res -> [B, 3, res, res]: ToRGB outputs summed so far
    features: dict[int, torch.Tensor] = field(default_factory=dict)  # res -> [B, C_res, res, res] after the block's 2nd conv


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network ``style`` and the synthesis layers.

    ``channels`` overrides the per-resolution widths (for tiny test models); by default they follow
    ``channel_multiplier`` as in the official configs.
    """

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = DEFAULT_BLUR,
        lr_mlp: float = 0.01,
        channels: Mapping[int, int] | None = None,
    ):
        super().__init__()
        self.log_size = _check_size(size)
        self.size, self.style_dim, self.n_mlp = size, style_dim, n_mlp
        self.channel_multiplier = channel_multiplier
        self.blur_kernel = tuple(float(v) for v in blur_kernel)
        self.lr_mlp = lr_mlp
        self.channels = {int(k): int(v) for k, v in (channels or default_channels(channel_multiplier)).items()}
        missing = [2**i for i in range(2, self.log_size + 1) if 2**i not in self.channels]
        if missing:
            raise ValueError(f"channels has no width for resolutions {missing}")

        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation="fused_lrelu") for _ in range(n_mlp)]
        )
        ch = self.channels
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(ch[4], style_dim, upsample=False)

        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = contracts.n_latent(size)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx, shape in enumerate(self.noise_shapes()):
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(*shape))
        in_channel = ch[4]
        for i in range(3, self.log_size + 1):
            out_channel = ch[2**i]
            self.convs.append(StyledConv(in_channel, out_channel, 3, style_dim, upsample=True, blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_channel, out_channel, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_channel, style_dim, blur_kernel=blur_kernel))
            in_channel = out_channel

    def config(self) -> dict:
        """Constructor arguments that rebuild this architecture."""
        return {
            "size": self.size,
            "style_dim": self.style_dim,
            "n_mlp": self.n_mlp,
            "channel_multiplier": self.channel_multiplier,
            "blur_kernel": list(self.blur_kernel),
            "lr_mlp": self.lr_mlp,
            "channels": dict(self.channels),
        }

    def layer_resolutions(self) -> list[int]:
        """Output resolution of each W+ entry's layer (entry i drives layer i of ``n_latent``)."""
        return [2 ** min(2 + (i + 1) // 2, self.log_size) if i > 0 else 4 for i in range(self.n_latent)]

    def layer_resolution(self, layer: int) -> int:
        """Output resolution of synthesis layer ``layer`` (0 is ``conv1``, ``i > 0`` is ``convs[i - 1]``),
        which is also the side of its noise map."""
        if not 0 <= layer < self.num_layers:
            raise IndexError(f"synthesis layer {layer} out of range [0, {self.num_layers})")
        return 2 ** ((layer + 5) // 2)

    def noise_shapes(self, batch: int = 1) -> list[tuple[int, int, int, int]]:
        """Shape of each synthesis layer's noise map, ``[batch, 1, res, res]``."""
        return [(batch, 1, r, r) for r in map(self.layer_resolution, range(self.num_layers))]

    def make_noise(
        self, batch: int = 1, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> list[torch.Tensor]:
        """Fresh noise maps for every layer (``[batch, 1, res, res]``; ``generator`` seeds them)."""
        device = self.input.input.device if device is None else torch.device(device)
        return [torch.randn(*shape, generator=generator, device=device) for shape in self.noise_shapes(batch)]

    def const_noise(self) -> list[torch.Tensor]:
        """The stored noise buffers (deterministic synthesis)."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def noise_maps(self, mode: str, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Noise for one synthesis call, by NVlabs' ``noise_mode``: ``random`` (fresh maps, seeded by
        ``generator``), ``const`` (the stored buffers) or ``none`` (zeros: no per-pixel noise)."""
        if mode == "const":
            return self.const_noise()
        if mode == "random":
            return self.make_noise(batch, generator)
        if mode == "none":
            return [torch.zeros(shape, device=self.input.input.device) for shape in self.noise_shapes(1)]
        raise ValueError(f"noise mode must be one of {', '.join(NOISE_MODES)}, got {mode!r}")

    @torch.no_grad()
    def mean_latent(self, n_latent: int) -> torch.Tensor:
        """Mean of ``n_latent`` mapped random z: the truncation centre, shape [1, style_dim]."""
        z = torch.randn(n_latent, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Map z [B, style_dim] to w [B, style_dim]."""
        return self.style(z)

    def forward(
        self,
        styles: Sequence[torch.Tensor],
        return_latents: bool = False,
        inject_index: int | None = None,
        truncation: float = 1,
        truncation_latent: torch.Tensor | None = None,
        input_is_latent: bool = False,
        noise: Sequence[torch.Tensor | None] | None = None,
        randomize_noise: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Synthesise images in [-1, 1] (approximately) from z, w or W+ ``[B, n_latent, style_dim]``.

        Two entries in ``styles`` mix: the first drives W+ entries ``< inject_index``, the second the rest.
        """
        if isinstance(styles, torch.Tensor):
            raise TypeError("styles must be a list of tensors, e.g. g([z]) or g([w_plus], input_is_latent=True)")
        if not 1 <= len(styles) <= 2:
            raise ValueError(f"expected one or two style tensors, got {len(styles)}")
        if not input_is_latent:
            styles = [self.style(s) for s in styles]
        if noise is None:
            noise = [None] * self.num_layers if randomize_noise else self.const_noise()
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs truncation_latent (e.g. g.mean_latent(4096))")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        latent = self._broadcast_latents(styles, inject_index)
        return self.synthesis(latent, noise).image, (latent if return_latents else None)

    def synthesis(
        self, w_plus: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None, max_resolution: int | None = None
    ) -> SynthesisOutputs:
        """The synthesis network on ``w_plus`` [B, n_latent, style_dim], keeping the intermediates.

        ``noise``: one map per layer (``None`` entries draw fresh noise, as ``randomize_noise=True``);
        ``None`` uses the stored noise buffers. ``max_resolution`` stops after that resolution.
        This is the one walk over the layers: :meth:`forward`, the trainers (structure loss) and the
        blender use it; the exporters' inference rewrite is verified against it.
        """
        if w_plus.ndim != 3 or w_plus.shape[1] != self.n_latent or w_plus.shape[2] != self.style_dim:
            raise ValueError(f"w_plus must have shape [B, {self.n_latent}, {self.style_dim}], got {tuple(w_plus.shape)}")
        if noise is None:
            noise = self.const_noise()
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        stop = max_resolution or self.size
        result = SynthesisOutputs(image=torch.empty(0))
        out = self.conv1(self.input(w_plus), w_plus[:, 0], noise=noise[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        result.features[4], result.rgb[4] = out, skip
        i, res = 1, 4
        for conv_up, conv, noise1, noise2, to_rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs):
            if res >= stop:
                break
            out = conv_up(out, w_plus[:, i], noise=noise1)
            out = conv(out, w_plus[:, i + 1], noise=noise2)
            skip = to_rgb(out, w_plus[:, i + 2], skip)
            res *= 2
            result.features[res], result.rgb[res] = out, skip
            i += 2
        result.image = skip
        return result

    def _broadcast_latents(self, styles: Sequence[torch.Tensor], inject_index: int | None) -> torch.Tensor:
        n = self.n_latent
        if len(styles) == 1:
            s = styles[0]
            if s.ndim == 2:
                return s.unsqueeze(1).expand(-1, n, -1)
            if s.ndim != 3 or s.shape[1] != n or s.shape[2] != self.style_dim:
                raise ValueError(f"W+ must have shape [B, {n}, {self.style_dim}], got {tuple(s.shape)}")
            return s
        if inject_index is None:  # rosinality's training: a random crossover that always mixes
            inject_index = random.randint(1, n - 1)
        return mix_w_plus(styles[0], styles[1], inject_index, n)


class ConvLayer(nn.Sequential):
    """Discriminator conv: optional blur + stride-2 downsample, equalised conv, bias + leaky ReLU."""

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        downsample: bool = False,
        blur_kernel: Sequence[float] = DEFAULT_BLUR,
        bias: bool = True,
        activate: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            layers.append(Blur.before_strided_conv(blur_kernel, kernel_size))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channel, out_channel, kernel_size, padding=padding, stride=stride, bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channel, bias=bias))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Residual discriminator block that halves the resolution."""

    def __init__(self, in_channel: int, out_channel: int, blur_kernel: Sequence[float] = DEFAULT_BLUR):
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3, blur_kernel=blur_kernel)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=True, blur_kernel=blur_kernel)
        self.skip = ConvLayer(in_channel, out_channel, 1, downsample=True, activate=False, bias=False, blur_kernel=blur_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator with the minibatch-stddev layer."""

    def __init__(
        self,
        size: int,
        channel_multiplier: int = 2,
        blur_kernel: Sequence[float] = DEFAULT_BLUR,
        channels: Mapping[int, int] | None = None,
    ):
        super().__init__()
        log_size = _check_size(size)
        self.size = size
        ch = {int(k): int(v) for k, v in (channels or default_channels(channel_multiplier)).items()}
        self.channels = ch
        convs: list[nn.Module] = [ConvLayer(3, ch[size], 1)]
        in_channel = ch[size]
        for i in range(log_size, 2, -1):
            out_channel = ch[2 ** (i - 1)]
            convs.append(ResBlock(in_channel, out_channel, blur_kernel))
            in_channel = out_channel
        self.convs = nn.Sequential(*convs)
        self.stddev_group = 4
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channel + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation="fused_lrelu"),
            EqualLinear(ch[4], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Realness logits [B, 1] for images [B, 3, size, size]."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.size or x.shape[3] != self.size:
            raise ValueError(f"expected images [B, 3, {self.size}, {self.size}], got {tuple(x.shape)}")
        out = self.convs(x)
        b, c, h, w = out.shape
        group = min(b, self.stddev_group)
        if b % group:
            group = 1
        stddev = out.view(group, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        stddev = torch.sqrt(stddev.var(0, unbiased=False) + 1e-8)
        stddev = stddev.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, stddev], 1))
        return self.final_linear(out.view(b, -1))


def set_fused_modconv(module: nn.Module, fused: bool) -> nn.Module:
    """Switch every ModulatedConv2d in ``module`` between the fused and the shared-weight form."""
    for m in module.modules():
        if isinstance(m, ModulatedConv2d):
            m.fused = fused
    return module
