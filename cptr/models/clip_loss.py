"""CLIP text loss for StyleCLIP mappers: ``1 - cos(CLIP_image(x), CLIP_text(prompt))``.

Images in [-1, 1] are resampled to the CLIP input size with tensor ops (area pooling down, bilinear
up) and normalised with CLIP's mean/std. StyleCLIP's own loss feeds [-1, 1] pixels without the
mean/std step and reads the cosine off ``logits / 100``; here the cosine is computed directly, so it
does not depend on the learned ``logit_scale``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cptr.models.clip_shim import load_clip, tokenize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

__all__ = ["CLIPLoss", "clip_preprocess", "load_clip"]


def clip_input_size(model: nn.Module) -> int:
    return int(model.visual.input_resolution)


def clip_preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] images [B, 3, H, W] -> CLIP input [B, 3, size, size] (resampled, mean/std normalised)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B, 3, H, W], got {tuple(images.shape)}")
    h, w = images.shape[2:]
    if h >= size and w >= size:
        x = F.adaptive_avg_pool2d(images, (size, size))
    else:
        x = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    x = (x + 1) / 2
    mean = x.new_tensor(CLIP_MEAN).reshape(1, 3, 1, 1)
    std = x.new_tensor(CLIP_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std


class CLIPLoss(nn.Module):
    """Cosine distance between images and a fixed text prompt under a frozen CLIP model.

    ``CLIPLoss(model, "a really angry face")(images)`` -> scalar mean of ``1 - cos`` over the batch;
    :meth:`per_sample` gives the ``[B]`` values. The CLIP weights never change (``requires_grad``
    is off, the model stays in eval mode); gradients flow to the images.
    """

    def __init__(self, model: nn.Module, prompt: str):
        super().__init__()
        if not prompt or not prompt.strip():
            raise ValueError("the CLIP prompt is empty; pass a description such as 'a really angry face'")
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.prompt = prompt
        self.size = clip_input_size(model)
        context = int(model.positional_embedding.shape[0])
        tokens = tokenize(prompt, context_length=context).to(model.positional_embedding.device)
        with torch.no_grad():
            text = self.model.encode_text(tokens).float()
        self.register_buffer("text_features", F.normalize(text, dim=-1), persistent=False)

    def train(self, mode: bool = True) -> CLIPLoss:  # CLIP stays in eval mode
        super().train(mode)
        self.model.eval()
        return self

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        x = clip_preprocess(images, self.size).to(self.model.visual.conv1.weight.dtype)
        return F.normalize(self.model.encode_image(x).float(), dim=-1)

    def per_sample(self, images: torch.Tensor) -> torch.Tensor:
        return 1 - (self.image_features(images) * self.text_features).sum(dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.per_sample(images).mean()
