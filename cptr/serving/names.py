"""Triton model names of the repository, shared by the writer and the client."""

from __future__ import annotations

import re
from collections.abc import Iterable

from cptr.contracts import ENCODER, MAPPER, MAPPING, POSTPROCESS, PREPROCESS, SYNTHESIS

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

GENERATE_PREFIX = "generate_"
CARTOONIZE_PREFIX = "cartoonize_"


def check_name(name: str, what: str = "style") -> str:
    """Styles and prompts become parts of model names: letters, digits, '_' and '-' only."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} name {name!r} is not usable in a Triton model name; use letters, digits, '_' or '-' (at most 64)")
    return name


def cartoonize(style: str, prompt: str | None = None) -> str:
    """Ensemble: photo bytes -> cartoon PNG (and the raw image tensor)."""
    return f"{CARTOONIZE_PREFIX}{check_name(style)}" + (f"_{check_name(prompt, 'prompt')}" if prompt else "")


def generate(style: str) -> str:
    """Ensemble: seed (+ mix) -> cartoon face PNG (and the raw image tensor)."""
    return f"{GENERATE_PREFIX}{check_name(style)}"


def public_models(models: Iterable[str]) -> list[str]:
    """The models users call (the ``generate_*`` and ``cartoonize_*`` ensembles), in the given order."""
    return [m for m in models if m.startswith((GENERATE_PREFIX, CARTOONIZE_PREFIX))]


def styles(models: Iterable[str]) -> list[str]:
    """Styles served: those with a ``generate_<style>`` ensemble."""
    return sorted(m.removeprefix(GENERATE_PREFIX) for m in models if m.startswith(GENERATE_PREFIX))


def mapping(style: str) -> str:
    return f"{MAPPING}_{check_name(style)}"


def synthesis(style: str) -> str:
    return f"{SYNTHESIS}_{check_name(style)}"


def encoder(style: str) -> str:
    return f"{ENCODER}_{check_name(style)}"


def mapper(style: str, prompt: str) -> str:
    return f"{MAPPER}_{check_name(style)}_{check_name(prompt, 'prompt')}"


def seeds(style: str) -> str:
    return f"seeds_{check_name(style)}"


def style_mix(style: str) -> str:
    return f"style_mix_{check_name(style)}"


preprocess = PREPROCESS
postprocess = POSTPROCESS
