"""Tensor contracts between pipeline stages: one name, dtype and shape per arrow of the data path.

Exporters, the Triton repository writer, the Python-backend models, the client and the benchmarks
all read these definitions; none of them spells a tensor name or dtype a second time. Shapes leave
out the batch axis (Triton's ``max_batch_size`` convention); ``-1`` is a free axis. Every stage
boundary is FP32, even for an fp16 engine (it casts inside), so a client never knows the precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor crossing a stage boundary (shape without the batch axis)."""

    name: str
    dtype: str  # Triton type name without the TYPE_ prefix: FP32, FP16, INT32, INT64, UINT8, BYTES
    dims: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(TRITON_TO_NUMPY[self.dtype])


TRITON_TO_NUMPY = {"FP32": "float32", "FP16": "float16", "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "BYTES": "object"}

# Upper bounds for what crosses the server.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
MAX_SEEDS_PER_REQUEST = 64
ALIGNED_SIZE = 256  # encoder input resolution: FFHQ-aligned crop


def z(style_dim: int) -> TensorSpec:
    return TensorSpec("z", "FP32", (style_dim,))


def w(style_dim: int) -> TensorSpec:
    return TensorSpec("w", "FP32", (style_dim,))


def w_plus(n_latent: int, style_dim: int, name: str = "w_plus") -> TensorSpec:
    return TensorSpec(name, "FP32", (n_latent, style_dim))


def image(size: int, name: str = "image") -> TensorSpec:
    """Generator output, NCHW in [-1, 1]."""
    return TensorSpec(name, "FP32", (3, size, size))


TRUNCATION = TensorSpec("truncation", "FP32", (1,))
ALIGNED = TensorSpec("aligned", "FP32", (3, ALIGNED_SIZE, ALIGNED_SIZE))  # encoder input in [-1, 1]
TRANSFORM = TensorSpec("transform", "FP32", (3, 3))  # aligned-crop pixel -> photo pixel (homogeneous)
IMAGE_BYTES = TensorSpec("image_bytes", "BYTES", (1,))  # encoded photo (JPEG/PNG/WebP)
OUTPUT_BYTES = TensorSpec("output_bytes", "BYTES", (1,))  # encoded result (PNG)
PASTE_BACK = TensorSpec("paste_back", "INT32", (1,))  # 1 = paste the cartoon back into the photo
SEED = TensorSpec("seed", "INT64", (1,))
MIX = TensorSpec("mix", "INT64", (2,))  # [second seed, crossover W+ index]; index 0 or >= n_latent: no mixing

# Stage names (Triton model names are these, suffixed with _<style> / _<prompt> where noted).
MAPPING = "mapping"  # mapping_<style>
SYNTHESIS = "synthesis"  # synthesis_<style>
ENCODER = "encoder"  # encoder_<style>
MAPPER = "mapper"  # mapper_<style>_<prompt>
PREPROCESS = "preprocess"
POSTPROCESS = "postprocess"


@dataclass
class StageArtifact:
    """One exported stage: its ONNX file and its tensor contract."""

    stage: str  # one of the stage names above
    onnx_path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    max_abs_error: dict[str, float] = field(default_factory=dict)  # e.g. {"batch1": 2e-6, "batch3": 3e-6}
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportBundle:
    """Everything ``cptr-export`` produced for one style, handed to the repository writer."""

    style: str
    size: int
    n_latent: int
    style_dim: int
    precision: str  # "fp32" | "fp16"
    batch_max: int
    mapping: StageArtifact
    synthesis: StageArtifact
    encoder: StageArtifact | None = None
    mappers: dict[str, StageArtifact] = field(default_factory=dict)  # prompt name -> artifact
    manifest: dict[str, Any] = field(default_factory=dict)
