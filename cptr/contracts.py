"""The contract between the pipeline's stages, the server and its clients, in one place.

* **Tensors**: one name, dtype and shape per arrow of the data path, the intermediate ones of the
  ensembles included. Shapes leave out the batch axis (Triton's ``max_batch_size`` convention);
  ``-1`` is a free axis. Every stage boundary is FP32, even for an fp16 engine (it casts inside), so
  a client never knows the precision.
* **Model names**: the Triton model of each stage and ensemble, and the one validator of the style
  and prompt names they are made of.
* **Error codes**: the ``[code] message`` wire form of a refused request.
* **config.pbtxt**: the codec between a model config's tensor entries and :class:`TensorSpec`.

Exporters, the Triton repository writer, the Python-backend models, the client and the benchmarks
all read these definitions; none of them spells a tensor name, a model name or a dtype a second
time. This module imports nothing heavier than NumPy, so the client depends on it alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
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
MAX_FACES_PER_PHOTO = 8  # faces cartoonized in one photo (and the most in one request): more is refused (too_many_faces)
# Faces below this size (the larger of the eye-to-eye and eye-to-mouth distances, in photo pixels) are left out of a
# photo, and refused (face_too_small) when no face is larger: the 256 px crop would be upscaled more than ~2.7x.
MIN_FACE_SIZE = 24.0
ALIGNED_SIZE = 256  # encoder input resolution: FFHQ-aligned crop
DEFAULT_TRUNCATION = 0.7  # the truncation psi the served mapping_<style> applies unless exported with another
# Where a server listens unless told otherwise (cptr serve, the client's defaults, the chart's container).
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
DEFAULT_HOST = "127.0.0.1"
WILDCARD_HOSTS = ("", "0.0.0.0", "::")  # listen addresses that mean every interface


def connect_host(host: str) -> str:
    """The address a client on this machine uses for a server listening on ``host`` (loopback for a wildcard)."""
    return DEFAULT_HOST if host in WILDCARD_HOSTS else host


def is_image_size(size: int) -> bool:
    """Whether ``size`` is a StyleGAN2 resolution: a power of two, at least 8."""
    return size >= 8 and size & (size - 1) == 0


def n_latent(size: int) -> int:
    """W+ entries of a StyleGAN2 generator of resolution ``size``: two per block from 8 px up, plus two at 4 px."""
    return int(math.log2(size)) * 2 - 2


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
PASTE_BACK = TensorSpec("paste_back", "INT32", (1,))  # 1 = also return the photo with every cartoon pasted back (composite)
LARGEST = TensorSpec("largest", "INT32", (1,))  # 1 = the largest face only; 0 or absent = every face above MIN_FACE_SIZE
COMPOSITE = TensorSpec("composite", "BYTES", (1,))  # the photo with all its faces pasted back (PNG; paste_back=1), see FACE_ROWS
SEED = TensorSpec("seed", "INT64", (1,))
MIX = TensorSpec("mix", "INT64", (2,))  # [second seed, crossover W+ index]; index 0 or >= n_latent: no mixing

# Intermediate tensors of the ensembles (names only: their dtype and shape are those of the tensor they rename).
Z_MIX = "z_mix"  # z of the mix seed (seeds -> mapping)
W_MIX = "w_mix"  # w of the mix seed (mapping -> style_mix)
W_PLUS_PHOTO = "w_plus_photo"  # the encoder's W+ of a photo
W_PLUS_EDIT = "w_plus_edit"  # a mapper's output tensor: the edited W+
W_PLUS_EDITED = "w_plus_edited"  # the edited W+ inside a cartoonize_<style>_<prompt> ensemble
SYNTHESIZED = "synthesized"  # synthesis -> postprocess
FACE_IMAGE_BYTES = "face_image_bytes"  # preprocess -> postprocess: the photo, one row per face (see FACE_ROWS)
FACE_PASTE_BACK = "face_paste_back"  # preprocess -> postprocess: paste_back, one row per face

# FACE_ROWS: from preprocess on, a cartoonize ensemble has one batch row per *face*, not per photo: a photo's faces
# are consecutive rows, largest first, and go through the encoder and the synthesis as one batch. A per-photo
# value travels in the row of the photo's first face, with empty bytes in the rows of its other faces: the
# photo's bytes (face_image_bytes) on the way in, its composite on the way out. So a request of one photo with
# three faces returns output_bytes and image with three rows, and composite[0] (composite[1:] are empty).

# Stage names (Triton model names are these, suffixed with _<style> / _<prompt> where noted).
MAPPING = "mapping"  # mapping_<style>
SYNTHESIS = "synthesis"  # synthesis_<style>
ENCODER = "encoder"  # encoder_<style>
MAPPER = "mapper"  # mapper_<style>_<prompt>
GENERATOR = "generator"  # generator_<style>.onnx: mapping + synthesis in one graph, written beside the models (not served)
PREPROCESS = "preprocess"
POSTPROCESS = "postprocess"
SEEDS = "seeds"  # seeds_<style>: seed, mix -> z, z_mix
STYLE_MIX = "style_mix"  # style_mix_<style>: w, w_mix, mix -> w_plus
GENERATE = "generate"  # ensemble generate_<style>
CARTOONIZE = "cartoonize"  # ensemble cartoonize_<style>[_<prompt>]
GENERATE_PREFIX = f"{GENERATE}_"
CARTOONIZE_PREFIX = f"{CARTOONIZE}_"


# --------------------------------------------------------------------------- names


NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


class InvalidNameError(ValueError):
    """A style or prompt name that cannot become part of file and model names."""


def check_name(name: str, what: str = "style name") -> str:
    """``name`` if it is a valid style or prompt name: 1-48 lower-case letters, digits, ``_`` or ``-``."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-48 lower-case letters, digits, '_' or '-', starting with a letter "
            "or digit (it becomes part of file and Triton model names), e.g. 'webtoon'"
        )
    return name


def model_name(stage: str, style: str, prompt: str | None = None) -> str:
    """The Triton model ``<stage>_<style>[_<prompt>]`` (stages, ensembles and per-style Python models)."""
    name = f"{stage}_{check_name(style)}"
    return name + f"_{check_name(prompt, 'prompt name')}" if prompt else name


def cartoonize_model(style: str, prompt: str | None = None) -> str:
    """Ensemble: photo bytes -> cartoon PNG (and the raw image tensor)."""
    return model_name(CARTOONIZE, style, prompt)


def generate_model(style: str) -> str:
    """Ensemble: seed (+ mix) -> cartoon face PNG (and the raw image tensor)."""
    return model_name(GENERATE, style)


def public_models(models: Iterable[str]) -> list[str]:
    """The models users call (the ``generate_*`` and ``cartoonize_*`` ensembles), in the given order."""
    return [m for m in models if m.startswith((GENERATE_PREFIX, CARTOONIZE_PREFIX))]


def served_styles(models: Iterable[str]) -> list[str]:
    """Styles served: those with a ``generate_<style>`` ensemble."""
    return sorted(m.removeprefix(GENERATE_PREFIX) for m in models if m.startswith(GENERATE_PREFIX))


# --------------------------------------------------------------------------- error codes

BAD_REQUEST = "bad_request"  # wrong dtype, shape, value range, batch size, non-finite values
BAD_IMAGE = "bad_image"  # empty, corrupted or non-image bytes
IMAGE_TOO_LARGE = "image_too_large"  # over MAX_IMAGE_BYTES or MAX_IMAGE_PIXELS
NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
INTERNAL = "internal"  # a bug or a broken model file on the server: not the caller's fault
TOO_MANY_FACES = "too_many_faces"  # more than MAX_FACES_PER_PHOTO faces (or than a request's batch) above MIN_FACE_SIZE
# never change meaning; add new ones
ERROR_CODES = (BAD_REQUEST, BAD_IMAGE, IMAGE_TOO_LARGE, NO_FACE, FACE_TOO_SMALL, INTERNAL, TOO_MANY_FACES)

_ERROR_PREFIX = re.compile(r"\[(" + "|".join(ERROR_CODES) + r")\]\s*")


def format_error(code: str, message: str) -> str:
    """The wire form of an error: ``[code] message``."""
    return f"[{code}] {message}"


def parse_error(text: str) -> tuple[str | None, str]:
    """Find ``[code] message`` anywhere in ``text`` (Triton may prepend its own context)."""
    m = _ERROR_PREFIX.search(text or "")
    if m is None:
        return None, text
    return m.group(1), text[m.end() :].strip()


# --------------------------------------------------------------------------- config.pbtxt <-> TensorSpec


def config_data_type(dtype: str) -> str:
    """The config's ``data_type`` of a TensorSpec dtype (BYTES is ``TYPE_STRING`` there)."""
    return "TYPE_STRING" if dtype == "BYTES" else f"TYPE_{dtype}"


def spec_from_config(entry: Mapping[str, Any]) -> TensorSpec:
    """The TensorSpec of one ``input``/``output`` entry of a model config (as JSON: dims may be strings)."""
    dtype = str(entry["data_type"]).removeprefix("TYPE_")
    return TensorSpec(str(entry["name"]), "BYTES" if dtype == "STRING" else dtype, tuple(int(d) for d in entry["dims"]))


def pbtxt_dims(dims: Iterable[int]) -> str:
    return "[ " + ", ".join(str(int(d)) for d in dims) + " ]"


def spec_to_pbtxt(spec: TensorSpec, optional: bool = False) -> str:
    """One ``input``/``output`` entry of a config.pbtxt."""
    extra = "\n    optional: true" if optional else ""
    return f'  {{\n    name: "{spec.name}"\n    data_type: {config_data_type(spec.dtype)}\n    dims: {pbtxt_dims(spec.dims)}{extra}\n  }}'


def specs_to_pbtxt(kind: str, specs: Sequence[TensorSpec], optional: Iterable[str] = ()) -> str:
    """The ``input [...]`` or ``output [...]`` block of a config.pbtxt."""
    opt = set(optional)
    return f"{kind} [\n" + ",\n".join(spec_to_pbtxt(s, s.name in opt) for s in specs) + "\n]\n"


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
    generator: StageArtifact | None = None  # mapping + synthesis in one graph (not served; placed beside the models)
