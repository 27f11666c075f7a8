"""Model store and style registry.

The store is a directory (``$CPTR_HOME``, default ``~/.cache/cptr``) holding ``styles.json``::

    {"version": 1,
     "styles": {"webtoon": {"source": "/abs/ffhq256.pt", "target": "/abs/webtoon.pt",
                            "alpha": 0.7, "swap_res": 16, "blend_width": null, "inject_k": 0,
                            "encoder": "/abs/e4e.pt", "mappers": {"smile": "/abs/smile.pt"},
                            "description": "", "source_sha256": "...", "target_sha256": "..."}}}

Every change rewrites the file atomically. The built-in style ``demo`` is always present: its
models are files in the package (:mod:`cptr.styles.builtin`) and it cannot be removed or replaced.
Blending lives in :mod:`cptr.styles.blend` and is re-exported here; the ``cptr styles`` commands in
:mod:`cptr.styles.cli`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cptr.contracts import NAME_RE, InvalidNameError, check_name
from cptr.io import atomic_path, atomic_write_text, sha256_file
from cptr.styles import builtin as demo
from cptr.styles.builtin import DEMO_NAME, TRAIN_HINT, missing_assets

__all__ = [
    "no_encoder_hint",
    "BUILTIN_PREFIX",
    "GeneratorMismatchError",
    "StyleError",
    "StyleInfo",
    "parse_mapper_options",
    "add_mapper",
    "add_style",
    "blend_generators",
    "get_style",
    "inject_latents",
    "list_styles",
    "load_style_generators",
    "remove_style",
    "set_encoder",
    "store_dir",
    "validate_name",
]

REGISTRY_FILE = "styles.json"
REGISTRY_VERSION = 1
BUILTIN_PREFIX = "builtin:"
DEFAULT_ALPHA = 0.7

_LAZY = {"GeneratorMismatchError", "blend_generators", "check_compatible", "inject_latents"}


def __getattr__(attr: str) -> Any:  # blending re-exported lazily (it imports torch)
    if attr in _LAZY:
        import cptr.styles.blend  # torch: only when this runs (the module is imported without it)

        return getattr(cptr.styles.blend, attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


class StyleError(ValueError):
    """A style registry operation failed; the message says why and what to do."""


@dataclass
class StyleInfo:
    """One registered style: its generator pair and the defaults of its export."""

    name: str
    source: str  # checkpoint path, or "builtin:demo"
    target: str
    alpha: float = DEFAULT_ALPHA
    swap_res: int | None = None
    blend_width: float | None = None
    inject_k: int = 0
    encoder: str | None = None
    mappers: dict[str, str] = field(default_factory=dict)  # prompt name -> checkpoint path
    description: str = ""
    source_sha256: str | None = None
    target_sha256: str | None = None

    @property
    def builtin(self) -> bool:
        """The shipped demo style (it cannot be replaced or removed)."""
        return self.name == DEMO_NAME

    @property
    def capabilities(self) -> list[str]:
        """What an export of this style serves: ``generate`` always; ``cartoonize`` (photos) with an encoder;
        ``edit:PROMPT`` for each text mapper (edits of photos need the encoder too)."""
        return ["generate"] + (["cartoonize"] if self.encoder else []) + [f"edit:{p}" for p in sorted(self.mappers)]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        return d

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any]) -> StyleInfo:
        known = {f for f in cls.__dataclass_fields__ if f != "name"}
        return cls(name=name, **{k: v for k, v in d.items() if k in known})


def no_encoder_hint(name: str) -> str:
    """What to do when style ``name`` has no encoder, so photos cannot be cartoonized (one wording everywhere)."""
    return (
        f"style '{name}' has no encoder, so photos cannot be cartoonized with it (only random faces: generate). "
        f"Register e4e or pSp weights: cptr styles add {name} --source ... --target ... --encoder e4e_ffhq_encode.pt --replace; "
        "or train one for its source: cptr-train encoder --generator SOURCE --out runs/encoder"
    )


def store_dir() -> Path:
    """The model store: ``$CPTR_HOME`` or ``~/.cache/cptr``."""
    home = os.environ.get("CPTR_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "cptr"


def registry_path() -> Path:
    return store_dir() / REGISTRY_FILE


def validate_name(name: str, what: str = "style name") -> str:
    """Return ``name`` if it is a valid style or prompt name (:func:`cptr.contracts.check_name`), else :class:`StyleError`."""
    try:
        return check_name(name, what)
    except InvalidNameError as e:
        raise StyleError(str(e)) from None


def parse_mapper_options(items: list[str]) -> dict[str, str]:
    """``["smile=smile.pt", ...]`` (``--mapper`` options) -> ``{"smile": "smile.pt"}`` with validated prompt names."""
    out = {}
    for item in items:
        prompt, sep, path = item.partition("=")
        if not sep or not path:
            raise StyleError(f"--mapper expects NAME=PATH (e.g. smile=smile.pt), got {item!r}")
        out[validate_name(prompt, "mapper prompt name")] = path
    return out


def _demo_style() -> StyleInfo:

    return StyleInfo(
        name=DEMO_NAME,
        source=str(demo.SOURCE),
        target=str(demo.TARGET),
        alpha=demo.SERVED_ALPHA,
        swap_res=demo.SERVED_SWAP_RES,
        encoder=str(demo.ENCODER),
        mappers={k: str(v) for k, v in demo.MAPPERS.items()},
        description="built-in models CPTR trained on procedural faces (cptr/assets/demo; their size and figures: its MODEL_CARD.md)",
    )


def _read_registry() -> dict[str, StyleInfo]:
    path = registry_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StyleError(f"cannot read the style registry {path}: {e}; fix or delete the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("styles"), dict):
        raise StyleError(f"the style registry {path} is malformed (expected {{'version': 1, 'styles': {{...}}}}); fix or delete it")
    out = {}
    for name, entry in data["styles"].items():
        if not isinstance(entry, dict) or not NAME_RE.fullmatch(str(name)) or name == DEMO_NAME:
            continue  # ignore entries that could not have been written by add_style
        out[name] = StyleInfo.from_json(name, entry)
    return out


def _write_registry(styles: dict[str, StyleInfo]) -> None:
    data = {"version": REGISTRY_VERSION, "styles": {n: s.to_json() for n, s in sorted(styles.items())}}
    atomic_write_text(registry_path(), json.dumps(data, indent=2) + "\n")


def list_styles() -> list[StyleInfo]:
    """All styles: ``demo`` first, then the registered ones by name."""
    reg = _read_registry()
    return [_demo_style()] + [reg[n] for n in sorted(reg)]


def _unknown(name: str, known: list[str]) -> StyleError:
    return StyleError(
        f"style {name!r} is not registered; known: {', '.join(known)}. "
        f"Add one with: cptr styles add {name} --source ffhq256.pt --target {name}.pt"
    )


def get_style(name: str) -> StyleInfo:
    """The registered style ``name``; :class:`StyleError` listing the known ones if there is none."""
    if name == DEMO_NAME:
        return _demo_style()
    reg = _read_registry()
    if name not in reg:
        validate_name(name)
        raise _unknown(name, [DEMO_NAME] + sorted(reg))
    return reg[name]


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise StyleError(f"{what} {p} does not exist (or is not a file)")
    return p


def _copy_into_store(name: str, path: Path, label: str) -> Path:
    dest = store_dir() / "models" / name / f"{label}{path.suffix}"
    if dest.resolve() != path:
        with atomic_path(dest) as tmp:
            shutil.copyfile(path, tmp)
    return dest


def add_style(
    name: str,
    source: str | os.PathLike,
    target: str | os.PathLike,
    alpha: float = DEFAULT_ALPHA,
    swap_res: int | None = None,
    blend_width: float | None = None,
    inject_k: int = 0,
    encoder: str | os.PathLike | None = None,
    mappers: dict[str, str | os.PathLike] | None = None,
    description: str = "",
    copy: bool = False,
    replace: bool = False,
) -> StyleInfo:
    """Register ``name`` after checking that both generators load and share one architecture.

    The blend defaults are validated against the generator. ``copy=True`` copies the checkpoints
    into ``$CPTR_HOME/models/<name>/`` so the registry does not depend on the original files.
    """
    from cptr.models.checkpoints import CheckpointError, load_generator  # torch: only when this runs (the module is imported without it)
    from cptr.styles.blend import (
        GeneratorMismatchError,
        blend_generators,
        check_compatible,
    )  # torch: only when this runs (the module is imported without it)

    validate_name(name)
    if name == DEMO_NAME:
        raise StyleError(f"'{DEMO_NAME}' is the built-in style and cannot be replaced; choose another name")
    reg = _read_registry()
    if name in reg and not replace:
        raise StyleError(f"style {name!r} is already registered; remove it first (cptr styles remove {name}) or pass --replace")
    src = _existing_file(source, "source checkpoint")
    tgt = _existing_file(target, "target checkpoint")
    try:
        g_src = load_generator(src)
        g_tgt = load_generator(tgt)
    except CheckpointError as e:
        raise StyleError(f"cannot register {name!r}: {e}") from None
    try:
        check_compatible(g_src, g_tgt)
    except GeneratorMismatchError as e:
        raise StyleError(f"cannot register {name!r}: {e}") from None
    try:  # validates alpha / swap_res / blend_width against this architecture
        blend_generators(g_src, g_tgt, alpha, swap_res, blend_width)
    except ValueError as e:
        raise StyleError(f"cannot register {name!r}: {e}") from None
    if not 0 <= int(inject_k) <= g_src.n_latent:
        raise StyleError(f"inject_k must be in [0, {g_src.n_latent}] for this generator, got {inject_k}")
    enc = str(_existing_file(encoder, "encoder checkpoint")) if encoder else None
    maps = {}
    for prompt, path in (mappers or {}).items():
        validate_name(prompt, "mapper prompt name")
        maps[prompt] = str(_existing_file(path, f"mapper checkpoint for {prompt!r}"))
    src_sha, tgt_sha = sha256_file(src), sha256_file(tgt)
    if copy:
        src, tgt = _copy_into_store(name, src, "source"), _copy_into_store(name, tgt, "target")
        if enc:
            enc = str(_copy_into_store(name, Path(enc), "encoder"))
        maps = {p: str(_copy_into_store(name, Path(m), f"mapper_{p}")) for p, m in maps.items()}
    info = StyleInfo(
        name=name,
        source=str(src),
        target=str(tgt),
        alpha=float(alpha),
        swap_res=None if swap_res is None else int(swap_res),
        blend_width=None if blend_width is None else float(blend_width),
        inject_k=int(inject_k),
        encoder=enc,
        mappers=maps,
        description=description,
        source_sha256=src_sha,
        target_sha256=tgt_sha,
    )
    reg = _read_registry()  # re-read: keep entries added meanwhile
    reg[name] = info
    _write_registry(reg)
    return info


def _update_style(name: str, what: str, **changes: Any) -> StyleInfo:
    """Re-register style ``name`` with ``changes`` (its checkpoints checked again, as by :func:`add_style`)."""
    info = get_style(name)
    if info.builtin:
        raise StyleError(f"the built-in style '{name}' cannot hold {what}; register a style with: cptr styles add NAME ...")
    fields = {
        "alpha": info.alpha,
        "swap_res": info.swap_res,
        "blend_width": info.blend_width,
        "inject_k": info.inject_k,
        "encoder": info.encoder,
        "mappers": info.mappers,
        "description": info.description,
        **changes,
    }
    return add_style(info.name, info.source, info.target, replace=True, **fields)


def add_mapper(name: str, prompt: str, path: str | os.PathLike) -> StyleInfo:
    """Add the text mapper ``prompt -> path`` to style ``name`` (replacing one of that prompt)."""
    validate_name(prompt, "mapper prompt name")
    info = get_style(name)
    return _update_style(name, "mappers", mappers={**info.mappers, prompt: str(path)})


def set_encoder(name: str, path: str | os.PathLike) -> StyleInfo:
    """Make ``path`` the photo encoder of style ``name``."""
    return _update_style(name, "an encoder", encoder=str(path))


def remove_style(name: str) -> StyleInfo:
    """Unregister ``name`` (checkpoint files are left alone, except copies inside the store)."""
    if name == DEMO_NAME:
        raise StyleError(f"'{DEMO_NAME}' is the built-in style and cannot be removed")
    reg = _read_registry()
    if name not in reg:
        validate_name(name)
        raise _unknown(name, [DEMO_NAME] + sorted(reg))
    info = reg.pop(name)
    _write_registry(reg)
    copies = store_dir() / "models" / name
    if copies.is_dir():
        shutil.rmtree(copies, ignore_errors=True)
    return info


def load_style_generators(name: str, device: str = "cpu"):
    """``(source, target)`` generators of style ``name`` in eval mode (``latent_avg`` attached)."""
    info = get_style(name)
    if info.builtin:
        if missing_assets():
            raise StyleError(f"the demo models are missing from the package ({', '.join(p.name for p in missing_assets())}); {TRAIN_HINT}")
    from cptr.models.checkpoints import CheckpointError, load_generator  # torch: only when this runs (the module is imported without it)
    from cptr.styles.blend import check_compatible  # torch: only when this runs (the module is imported without it)

    try:
        source, target = load_generator(info.source, device=device), load_generator(info.target, device=device)
    except CheckpointError as e:
        raise StyleError(f"style {name!r}: {e}. Re-register it with: cptr styles add {name} --replace ...") from None
    check_compatible(source, target)
    return source, target
