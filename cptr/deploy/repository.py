"""What a deployment needs to know about an exported Triton repository, read from its own files.

``cptr-export`` leaves three kinds of record in the repository (:mod:`cptr.triton.layout` owns
where): the index (each style's flavour and served ensembles), one ``config.pbtxt`` per model
(backend or platform, instance kind) and one manifest per style (versions, engines).
:func:`read_repository` reads them, checks that they agree, and returns a :class:`RepositoryInfo`;
everything the chart says about models, GPUs and the image comes from there, never from
assumptions about what the exporter usually writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cptr.triton.layout import INDEX_FILE, LayoutError, latest_version, read_config, read_index, read_manifest


class RepositoryError(ValueError):
    """The folder is not a complete repository written by ``cptr-export``."""


@dataclass(frozen=True)
class ModelInfo:
    """One model directory of the repository (its ``config.pbtxt`` and version files)."""

    name: str
    backend: str  # "python", "onnxruntime", "tensorrt" or "ensemble"
    kinds: tuple[str, ...]  # instance_group kinds (KIND_CPU / KIND_GPU); empty for ensembles
    files: tuple[str, ...]  # file names inside the newest version folder
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
    styles: tuple[str, ...]
    flavour: str  # "python" or "native" (cptr-export --backend)
    batch_max: int
    size: int
    ensembles: tuple[str, ...]  # the models clients call, in the index's order
    models: dict[str, ModelInfo]
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # style -> its export manifest

    @property
    def style(self) -> str:
        """The name the chart's release, labels and metric take: the style, or the styles joined by '-'."""
        return "-".join(self.styles)

    @property
    def manifest(self) -> dict[str, Any]:
        """The first style's manifest (engine and versions: one export command made them all)."""
        return self.manifests.get(self.styles[0], {}) if self.styles else {}

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
        for entry in (e for m in self.manifests.values() for e in m.get("models", {}).values()):
            trt = entry.get("trt") if isinstance(entry, dict) else None
            if isinstance(trt, dict) and trt.get("tensorrt_version"):
                found.add(str(trt["tensorrt_version"]))
        return sorted(found)

    @property
    def torch_version(self) -> str | None:
        """The torch that exported the models (``manifest.json``), without a local suffix such as ``+cpu``."""
        v = self.manifest.get("versions", {}).get("torch")
        return str(v).split("+")[0] if v else None


def _read_model(model_dir: Path) -> ModelInfo:
    cfg = read_config(model_dir)
    backend = cfg.runtime
    if not backend:
        raise RepositoryError(
            f"{model_dir / 'config.pbtxt'} names neither a backend nor a platform; rebuild the repository with cptr-export"
        )
    if cfg.name != model_dir.name:
        raise RepositoryError(f"{model_dir / 'config.pbtxt'} is for model {cfg.name!r}, but its folder is {model_dir.name!r}")
    v = latest_version(model_dir)
    version = model_dir / str(v) if v else model_dir / "1"
    files = sorted(p for p in version.iterdir() if p.is_file()) if version.is_dir() else []
    return ModelInfo(model_dir.name, backend, cfg.kinds, tuple(p.name for p in files), sum(p.stat().st_size for p in files))


def read_repository(path: str | Path) -> RepositoryInfo:
    """Read an exported repository; :class:`RepositoryError` says what is missing and how to fix it."""
    root = Path(path).expanduser().resolve()
    hint = f"export one with: cptr-export --style demo --out {path}"
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} does not exist; {hint}")
    if not (root / INDEX_FILE).is_file():
        raise RepositoryError(f"{root} has no {INDEX_FILE}, so it was not written by cptr-export; {hint}")
    try:
        styles = read_index(root)
        manifests = {style: read_manifest(root, style) for style in styles}
        models = {p.name: _read_model(p) for p in sorted(root.iterdir()) if p.is_dir() and (p / "config.pbtxt").is_file()}
    except (LayoutError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise RepositoryError(f"{root}: {e}; export the repository again") from None
    if not styles:
        raise RepositoryError(f"{root}: {INDEX_FILE} lists no styles, so nothing would be served; {hint}")
    ensembles = tuple(e for index in styles.values() for e in index.get("ensembles", ()))
    missing = [e for e in ensembles if e not in models]
    if missing:
        raise RepositoryError(f"{root}: {INDEX_FILE} lists ensembles {missing} that have no model folder; export the repository again")
    not_ensembles = [e for e in ensembles if not models[e].is_ensemble]
    if not_ensembles:
        raise RepositoryError(f'{root}: {not_ensembles} are listed as ensembles but their config.pbtxt is not platform "ensemble"')
    flavours = {index.get("backend") for index in styles.values()}
    if len(flavours) > 1:
        raise RepositoryError(
            f"{root}: styles of both flavours {sorted(map(str, flavours))}; one server runs one flavour, so export them again with one --backend"
        )
    flavour = next(iter(flavours), None)
    if flavour not in ("python", "native"):
        raise RepositoryError(f"{root}: unknown repository flavour {flavour!r} in {INDEX_FILE} (expected python or native)")
    if not ensembles:
        raise RepositoryError(f"{root}: {INDEX_FILE} lists no ensembles, so nothing would be served")
    return RepositoryInfo(
        path=root,
        styles=tuple(sorted(styles)),
        flavour=flavour,
        batch_max=max(int(index.get("batch_max", 1)) for index in styles.values()),
        size=max(int(index.get("size", 0)) for index in styles.values()),
        ensembles=ensembles,
        models=models,
        manifests=manifests,
    )
