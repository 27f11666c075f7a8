"""Put an exported style into a served repository, or take one out, without breaking what is served.

:func:`publish` moves a freshly written single-style repository (``cptr.triton.writer``
writes every model as version 1 in a staging folder beside the target) into the served one:

1. each model whose files differ from the served latest version becomes a new numbered version
   (a rename, so a version folder is either absent or complete), then its ``config.pbtxt`` is
   replaced atomically; models that did not change keep their version (nothing to reload);
2. the style's manifest is written, then the index: the index is the commit point that
   ``cptr serve --watch`` and ``cptr-export --server`` act on (:func:`cptr.triton.control.sync`);
3. versions older than the newest ``keep`` are deleted (the previous one stays for requests still
   running on it), and so are folders that no style uses any more.

Concurrent exports into one repository take turns (an exclusive ``flock`` on ``.cptr-lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cptr import contracts
from cptr.io import atomic_write_bytes, atomic_write_text
from cptr.triton.layout import (
    CONFIG,
    INDEX_FILE,
    LEGACY_MANIFEST,
    LayoutError,
    latest_version,
    manifest_path,
    read_index,
    served_models,
    versions,
    write_index,
)

LOCK_FILE = ".cptr-lock"
KEEP_VERSIONS = 2  # the served version and the one before it (requests may still run on it)


@dataclass
class Published:
    """What :func:`publish` or :func:`remove` changed: model versions now on disk, folders deleted."""

    style: str
    versions: dict[str, int] = field(default_factory=dict)  # every model of the style -> its served version
    changed: list[str] = field(default_factory=list)  # models given a new version
    deleted: list[str] = field(default_factory=list)  # model folders no style uses any more


@contextlib.contextmanager
def repository_lock(repo: Path) -> Iterator[None]:
    """Exclusive lock of ``repo`` (created if needed) for the length of the block."""
    repo.mkdir(parents=True, exist_ok=True)
    with open(repo / LOCK_FILE, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _files(version: Path) -> list[Path]:
    """The files of a version folder, without the bytecode Python writes beside a loaded model.py."""
    return sorted(p.relative_to(version) for p in version.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _same_files(a: Path, b: Path) -> bool:
    """Two version folders hold the same file names with the same bytes."""
    names_a, names_b = _files(a), _files(b)
    return names_a == names_b and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names_a)


def _unchanged(staged: Path, live: Path) -> int | None:
    """The served version of ``live`` when ``staged`` (config + version 1) equals it, else None."""
    v = latest_version(live)
    if v is None or not (live / CONFIG).is_file():
        return None
    if (staged / CONFIG).read_bytes() != (live / CONFIG).read_bytes():
        return None
    return v if _same_files(staged / "1", live / str(v)) else None


def _staged_models(staged: Path) -> list[str]:
    return sorted(p.name for p in staged.iterdir() if p.is_dir() and (p / CONFIG).is_file())


def _migrate_legacy(repo: Path, styles: dict[str, dict[str, Any]]) -> None:
    """A single-style repository of an earlier cptr-export: its manifest gets the style's name."""
    legacy = repo / LEGACY_MANIFEST
    if legacy.is_file() and len(styles) == 1:
        (style,) = styles
        if not manifest_path(repo, style).is_file():
            atomic_write_bytes(manifest_path(repo, style), legacy.read_bytes())


def relocate(manifest: dict[str, Any], placed: dict[str, int]) -> dict[str, Any]:
    """Manifest file paths ``<model>/1/...`` -> ``<model>/<version>/...``."""
    for name, entry in manifest.get("models", {}).items():
        v = placed.get(name)
        for key in ("file", "engine_file", "engine_weights_file"):
            path = entry.get(key)
            if v is not None and isinstance(path, str) and path.startswith(f"{name}/1/"):
                entry[key] = f"{name}/{v}/{path[len(name) + 3 :]}"
    return manifest


def _prune(repo: Path, models: list[str], keep: int) -> None:
    for name in models:
        for v in versions(repo / name)[:-keep]:
            shutil.rmtree(repo / name / str(v), ignore_errors=True)


def _collect(repo: Path, styles: dict[str, dict[str, Any]], candidates: set[str]) -> list[str]:
    """Delete the folders among ``candidates`` that no style uses; returns their names."""
    used = served_models(styles)
    gone = sorted(m for m in candidates if m not in used and (repo / m).is_dir())
    for m in gone:
        shutil.rmtree(repo / m, ignore_errors=True)
    return gone


def publish(staged: Path, repo: Path, keep: int = KEEP_VERSIONS) -> Published:
    """Move the single-style repository ``staged`` into ``repo`` (see the module docstring).

    ``staged`` must be on the same file system as ``repo`` (renames); it is consumed.
    """
    staged, repo = Path(staged), Path(repo)
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    staged_index = json.loads((staged / INDEX_FILE).read_text())
    style = staged_index["style"]
    models = _staged_models(staged)
    with repository_lock(repo):
        styles = read_index(repo)
        _migrate_legacy(repo, styles)
        result = Published(style)
        for name in models:
            live = repo / name
            v = _unchanged(staged / name, live)
            if v is None:
                v = (latest_version(live) or 0) + 1
                live.mkdir(exist_ok=True)
                os.rename(staged / name / "1", live / str(v))
                atomic_write_bytes(live / CONFIG, (staged / name / CONFIG).read_bytes())
                result.changed.append(name)
            result.versions[name] = v
        for extra in sorted(p for p in staged.iterdir() if p.is_file() and p.suffix == ".onnx"):  # generator_<style>.onnx
            os.replace(extra, repo / extra.name)
        manifest_file = staged / LEGACY_MANIFEST
        if manifest_file.is_file():
            manifest = relocate(json.loads(manifest_file.read_text()), result.versions)
            atomic_write_text(manifest_path(repo, style), json.dumps(manifest, indent=2) + "\n")
        before = set(styles.get(style, {}).get("models", ()))
        styles[style] = dict(staged_index, models=models, versions=result.versions)
        write_index(repo, styles)
        (repo / LEGACY_MANIFEST).unlink(missing_ok=True)
        _prune(repo, models, keep)
        result.deleted = _collect(repo, styles, before - set(models))
    shutil.rmtree(staged, ignore_errors=True)
    return result


def remove(repo: Path, style: str) -> Published:
    """Take ``style`` out of ``repo``: its index entry, manifest and the folders no other style uses."""
    repo = Path(repo)
    with repository_lock(repo):
        styles = read_index(repo)
        if style not in styles:
            known = ", ".join(sorted(styles)) or "none"
            raise LayoutError(f"{repo} does not serve style {style!r} (it serves: {known})")
        _migrate_legacy(repo, styles)
        index = styles.pop(style)
        write_index(repo, styles)
        for path in (manifest_path(repo, style), repo / LEGACY_MANIFEST, repo / f"{contracts.model_name(contracts.GENERATOR, style)}.onnx"):
            path.unlink(missing_ok=True)
        return Published(style, deleted=_collect(repo, styles, set(index.get("models", ()))))
