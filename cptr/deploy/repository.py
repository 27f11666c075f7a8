"""What a deployment needs to know about an exported Triton repository, read from its own files.

``cptr-export`` leaves three kinds of record in the repository: ``cptr_repository.json`` (style,
flavour, the served ensembles), one ``config.pbtxt`` per model (backend or platform, instance
kind) and ``manifest.json`` (versions, engines). :func:`read_repository` reads them, checks that
they agree, and returns a :class:`RepositoryInfo`; everything the chart says about models, GPUs and
the image comes from there, never from assumptions about what the exporter usually writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INDEX_FILE = "cptr_repository.json"
MANIFEST_FILE = "manifest.json"

_TOP_STRING = re.compile(r'^(name|backend|platform|default_model_filename):\s*"([^"]*)"\s*$', re.M)
_KIND = re.compile(r"\bkind:\s*(KIND_[A-Z]+)")


class RepositoryError(ValueError):
    """The folder is not a complete repository written by ``cptr-export``."""


@dataclass(frozen=True)
class ModelInfo:
    """One model directory of the repository (its ``config.pbtxt`` and version files)."""

    name: str
    backend: str  # "python", "onnxruntime", "tensorrt" or "ensemble"
    kinds: tuple[str, ...]  # instance_group kinds (KIND_CPU / KIND_GPU); empty for ensembles
    files: tuple[str, ...]  # file names inside version 1/
    bytes: int  # size of those files

    @property
    def is_ensemble(self) -> bool:
        return self.backend == "ensemble"

    @property
    def is_python(self) -> bool:
        return self.backend == "python"

    @property
    def uses_gpu(self) -> bool:
        """Placed on a GPU by Triton (``KIND_GPU``), or a compiled engine that runs on one."""
        return "KIND_GPU" in self.kinds or any(f.endswith((".plan", ".pt2")) for f in self.files)


@dataclass(frozen=True)
class RepositoryInfo:
    """An exported repository as a deployment sees it."""

    path: Path
    style: str
    flavour: str  # "python" or "native" (cptr-export --backend)
    batch_max: int
    size: int
    ensembles: tuple[str, ...]  # the models clients call, in the index's order
    models: dict[str, ModelInfo]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def stages(self) -> list[str]:
        """Models that execute (not ensembles): where requests queue, hence the autoscaling signal."""
        return sorted(n for n, m in self.models.items() if not m.is_ensemble)

    @property
    def python_models(self) -> list[str]:
        """Python-backend models: their ``model.py`` imports ``cptr``, so the image must have it."""
        return sorted(n for n, m in self.models.items() if m.is_python)

    @property
    def needs_cptr(self) -> bool:
        return bool(self.python_models)

    @property
    def uses_gpu(self) -> bool:
        return any(m.uses_gpu for m in self.models.values())

    @property
    def engine(self) -> str:
        return str(self.manifest.get("engine", "onnx"))

    @property
    def model_bytes(self) -> int:
        return sum(m.bytes for m in self.models.values())

    @property
    def tensorrt_versions(self) -> list[str]:
        """TensorRT versions the repository's plans were built with (they only load on that version)."""
        found = set()
        for entry in self.manifest.get("models", {}).values():
            trt = entry.get("trt") if isinstance(entry, dict) else None
            if isinstance(trt, dict) and trt.get("tensorrt_version"):
                found.add(str(trt["tensorrt_version"]))
        return sorted(found)

    @property
    def torch_version(self) -> str | None:
        """The torch that exported the models (``manifest.json``), without a local suffix such as ``+cpu``."""
        v = self.manifest.get("versions", {}).get("torch")
        return str(v).split("+")[0] if v else None


def _config_fields(text: str) -> tuple[str, str | None, tuple[str, ...]]:
    top = dict(_TOP_STRING.findall(text))
    platform = top.get("platform")
    if platform == "ensemble":
        backend = "ensemble"
    elif platform:
        backend = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch"}.get(platform, platform)
    else:
        backend = top.get("backend", "")
    return backend, top.get("name"), tuple(_KIND.findall(text))


def _read_model(model_dir: Path) -> ModelInfo:
    text = (model_dir / "config.pbtxt").read_text()
    backend, name, kinds = _config_fields(text)
    if not backend:
        raise RepositoryError(f"{model_dir / 'config.pbtxt'} names neither a backend nor a platform; rebuild the repository with cptr-export")
    if name is not None and name != model_dir.name:
        raise RepositoryError(f"{model_dir / 'config.pbtxt'} is for model {name!r}, but its folder is {model_dir.name!r}")
    version = model_dir / "1"
    files = sorted(p for p in version.iterdir() if p.is_file()) if version.is_dir() else []
    return ModelInfo(model_dir.name, backend, kinds, tuple(p.name for p in files), sum(p.stat().st_size for p in files))


def read_repository(path: str | Path) -> RepositoryInfo:
    """Read an exported repository; :class:`RepositoryError` says what is missing and how to fix it."""
    root = Path(path).expanduser().resolve()
    hint = f"export one with: cptr-export --style demo --out {path}"
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} does not exist; {hint}")
    index_path = root / INDEX_FILE
    if not index_path.is_file():
        raise RepositoryError(f"{root} has no {INDEX_FILE}, so it was not written by cptr-export; {hint}")
    try:
        index = json.loads(index_path.read_text())
        manifest = json.loads((root / MANIFEST_FILE).read_text()) if (root / MANIFEST_FILE).is_file() else {}
    except json.JSONDecodeError as e:
        raise RepositoryError(f"{root}: unreadable JSON ({e}); export the repository again") from None
    models = {p.name: _read_model(p) for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.pbtxt").is_file()}
    ensembles = tuple(index.get("ensembles", ()))
    missing = [e for e in ensembles if e not in models]
    if missing:
        raise RepositoryError(f"{root}: {INDEX_FILE} lists ensembles {missing} that have no model folder; export the repository again")
    not_ensembles = [e for e in ensembles if not models[e].is_ensemble]
    if not_ensembles:
        raise RepositoryError(f"{root}: {not_ensembles} are listed as ensembles but their config.pbtxt is not platform \"ensemble\"")
    flavour = index.get("backend")
    if flavour not in ("python", "native"):
        raise RepositoryError(f"{root}: unknown repository flavour {flavour!r} in {INDEX_FILE} (expected python or native)")
    if not ensembles:
        raise RepositoryError(f"{root}: {INDEX_FILE} lists no ensembles, so nothing would be served")
    return RepositoryInfo(
        path=root,
        style=str(index["style"]),
        flavour=flavour,
        batch_max=int(index.get("batch_max", 1)),
        size=int(index.get("size", 0)),
        ensembles=ensembles,
        models=models,
        manifest=manifest,
    )
