"""Networks in pure PyTorch with rosinality-compatible parameter names."""

from cptr.models.encoder import Encoder
from cptr.models.mapper import LevelsMapper
from cptr.models.stylegan2 import Discriminator, Generator, set_fused_modconv

__all__ = ["Discriminator", "Encoder", "Generator", "LevelsMapper", "set_fused_modconv"]
