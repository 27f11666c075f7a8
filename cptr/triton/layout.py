"""The served repository's layout on disk: the one place that knows where each record lives.

A repository holds any number of styles. Each model is a folder with ``config.pbtxt`` and numbered
version folders (Triton's layout); a re-export adds a version instead of overwriting one, so a
server keeps answering from the old version until it has loaded the new one. Two kinds of record
sit at the top, where Triton looks for no model (it treats only folders as models)::

    cptr_repository.json        {"format": "cptr-repository/2", "styles": {style: index}}
    manifest_<style>.json       what the export of that style wrote and how (cptr.export.style.Manifest)

A style's index lists its ``models``: its own folders and the shared ones (``preprocess``,
``postprocess``), which stay while any style uses them. Repositories written before styles could
share one (``cptr_repository.json`` of a single style, ``manifest.json``) read as one style.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cptr.io import atomic_write_text

INDEX_FILE = "cptr_repository.json"
INDEX_FORMAT = "cptr-repository/2"
LEGACY_MANIFEST = "manifest.json"
CONFIG = "config.pbtxt"
ENSEMBLE_PLATFORM = "ensemble"
# Triton platforms by the runtime that executes them (config.pbtxt's ``platform``; backend models name theirs).
_PLATFORM_RUNTIMES = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch"}

_TOP_STRING = re.compile(r'^(name|backend|platform|default_model_filename):\s*"([^"]*)"\s*$', re.M)
_KIND = re.compile(r"\bkind:\s*(KIND_[A-Z]+)")


class LayoutError(ValueError):
    """A repository that cptr-export did not write, or that was changed by hand."""


def manifest_path(repo: Path, style: str) -> Path:
    return Path(repo) / f"manifest_{style}.json"


def versions(model_dir: Path) -> list[int]:
    """The numbered version folders of one model, oldest first."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0)


def latest_version(model_dir: Path) -> int | None:
    v = versions(model_dir)
    return v[-1] if v else None


@dataclass(frozen=True)
class ModelConfig:
    """The fields of a ``config.pbtxt`` that the tools read back."""

    name: str
    platform: str | None  # "ensemble", "onnxruntime_onnx", "tensorrt_plan"; None for a backend model
    backend: str | None  # "python", "openvino"
    kinds: tuple[str, ...]  # instance kinds: KIND_CPU, KIND_GPU

    @property
    def runtime(self) -> str:
        """What executes the model: "ensemble", "onnxruntime", "tensorrt", "pytorch", "python", "openvino" ("" if unnamed)."""
        if self.is_ensemble:
            return "ensemble"
        if self.platform:
            return _PLATFORM_RUNTIMES.get(self.platform, self.platform)
        return self.backend or ""

    @property
    def is_ensemble(self) -> bool:
        return self.platform == ENSEMBLE_PLATFORM


def read_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG
    if not path.is_file():
        raise LayoutError(f"{model_dir} has no {CONFIG}")
    text = path.read_text()
    top = dict(_TOP_STRING.findall(text))
    return ModelConfig(top.get("name", model_dir.name), top.get("platform"), top.get("backend"), tuple(sorted(set(_KIND.findall(text)))))


def read_index(repo: Path) -> dict[str, dict[str, Any]]:
    """``{style: index}`` of the repository (empty when it has no index yet)."""
    path = Path(repo) / INDEX_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LayoutError(f"{path} is not readable JSON ({e}); export the repository again") from None
    if data.get("format") == INDEX_FORMAT:
        return dict(data.get("styles") or {})
    if "style" in data:  # a single-style repository from an earlier cptr-export
        return {data["style"]: dict(data, models=_legacy_models(Path(repo)))}
    raise LayoutError(f"{path} is neither a cptr-export index nor one of an earlier version")


def _legacy_models(repo: Path) -> list[str]:
    return sorted(p.name for p in repo.iterdir() if (p / CONFIG).is_file())


def write_index(repo: Path, styles: dict[str, dict[str, Any]]) -> None:
    """Write the index atomically: readers see the old one or the new one, never a mix."""
    atomic_write_text(
        Path(repo) / INDEX_FILE, json.dumps({"format": INDEX_FORMAT, "styles": dict(sorted(styles.items()))}, indent=2) + "\n"
    )


def read_manifest(repo: Path, style: str) -> dict[str, Any]:
    """The export manifest of ``style`` (``{}`` when it has none)."""
    for path in (manifest_path(repo, style), Path(repo) / LEGACY_MANIFEST):
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("style", style) == style:
                return data
    return {}


def served_models(styles: dict[str, dict[str, Any]]) -> set[str]:
    """Every model folder some style of the index uses."""
    return {m for index in styles.values() for m in index.get("models", ())}
