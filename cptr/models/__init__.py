"""Networks in pure PyTorch with rosinality-compatible parameter names."""

from cptr.models.stylegan2 import Discriminator, Generator, set_fused_modconv

__all__ = ["Discriminator", "Generator", "set_fused_modconv"]
