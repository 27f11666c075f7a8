"""Model store and style registry.

The store is a directory (``$CPTR_HOME``, default ``~/.cache/cptr``) holding ``styles.json``::

    {"version": 1,
     "styles": {"webtoon": {"source": "/abs/ffhq256.pt", "target": "/abs/webtoon.pt",
                            "alpha": 0.7, "swap_res": 16, "blend_width": null, "inject_k": 0,
                            "encoder": "/abs/e4e.pt", "mappers": {"smile": "/abs/smile.pt"},
                            "description": "", "source_sha256": "...", "target_sha256": "..."}}}

Every change rewrites the file atomically. The built-in style ``demo`` is always present: its
generators are built in memory from a seed (:mod:`cptr.demo`) and it cannot be removed or replaced.
Blending lives in :mod:`cptr.blend` and is re-exported here.
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

__all__ = [
    "BUILTIN_PREFIX",
    "GeneratorMismatchError",
    "StyleError",
    "StyleInfo",
    "add_style",
    "blend_generators",
    "get_style",
    "inject_latents",
    "list_styles",
    "load_style_generators",
    "remove_style",
    "store_dir",
    "validate_name",
]

REGISTRY_FILE = "styles.json"
REGISTRY_VERSION = 1
BUILTIN_PREFIX = "builtin:"
DEFAULT_ALPHA = 0.7
DEMO_NAME = "demo"  # == cptr.demo.DEMO_NAME; spelled here so `cptr styles` does not import torch

_LAZY = {"GeneratorMismatchError", "blend_generators", "check_compatible", "inject_latents"}


def __getattr__(attr: str) -> Any:  # blending re-exported lazily (it imports torch)
    if attr in _LAZY:
        import cptr.blend

        return getattr(cptr.blend, attr)
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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("name")
        return d

    @classmethod
    def from_json(cls, name: str, d: dict[str, Any]) -> StyleInfo:
        known = {f for f in cls.__dataclass_fields__ if f != "name"}
        return cls(name=name, **{k: v for k, v in d.items() if k in known})


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


def _demo_style() -> StyleInfo:
    from cptr import demo  # no torch: paths only

    return StyleInfo(
        name=DEMO_NAME,
        source=str(demo.SOURCE),
        target=str(demo.TARGET),
        alpha=DEFAULT_ALPHA,
        encoder=str(demo.ENCODER),
        mappers={k: str(v) for k, v in demo.MAPPERS.items()},
        description="built-in 64 px models CPTR trained on procedural faces (cptr/assets/demo, see its MODEL_CARD.md)",
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
    from cptr.blend import GeneratorMismatchError, blend_generators, check_compatible
    from cptr.checkpoints import CheckpointError, load_generator

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
        from cptr.demo import TRAIN_HINT, missing_assets

        if missing_assets():
            raise StyleError(f"the demo models are missing from the package ({', '.join(p.name for p in missing_assets())}); {TRAIN_HINT}")
    from cptr.blend import check_compatible
    from cptr.checkpoints import CheckpointError, load_generator

    try:
        source, target = load_generator(info.source, device=device), load_generator(info.target, device=device)
    except CheckpointError as e:
        raise StyleError(f"style {name!r}: {e}. Re-register it with: cptr styles add {name} --replace ...") from None
    check_compatible(source, target)
    return source, target


# --------------------------------------------------------------------------- `cptr styles` CLI

import typer  # noqa: E402

app = typer.Typer(
    help="Manage the style registry ($CPTR_HOME/styles.json).\n\n"
    "A style is a source and a fine-tuned generator, their blend, and optional encoder and text mappers.\n\n"
    "Examples:\n\n  cptr styles list\n"
    "  cptr styles add webtoon --source ffhq256.pt --target webtoon.pt --alpha 0.7\n"
    "  cptr styles show webtoon\n  cptr styles remove webtoon",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def parse_mapper_options(items: list[str]) -> dict[str, str]:
    """``["smile=smile.pt", ...]`` -> ``{"smile": "smile.pt"}`` with validated prompt names."""
    out = {}
    for item in items:
        prompt, sep, path = item.partition("=")
        if not sep or not path:
            raise StyleError(f"--mapper expects NAME=PATH (e.g. smile=smile.pt), got {item!r}")
        out[validate_name(prompt, "mapper prompt name")] = path
    return out


@app.command("list")
def _list_cmd() -> None:
    """List the styles (built-in demo first).

    One line per style: its name, default blend, text mappers and checkpoints.

    Examples:

      cptr styles list
    """
    try:
        styles = list_styles()
    except StyleError as e:
        _fail(e)
    for s in styles:
        extra = f" swap_res={s.swap_res}" if s.swap_res else ""
        maps = f" mappers={','.join(sorted(s.mappers))}" if s.mappers else ""
        typer.echo(f"{s.name:16s} alpha={s.alpha:g}{extra}{maps}  {'(built-in) ' if s.builtin else ''}{s.target if not s.builtin else s.description}")


@app.command("show")
def _show_cmd(name: str = typer.Argument(..., help="Style name.")) -> None:
    """Print one style as JSON.

    The JSON has the checkpoints, blend defaults, encoder and mappers cptr-export uses.

    Examples:

      cptr styles show demo
    """
    try:
        s = get_style(name)
    except StyleError as e:
        _fail(e)
    typer.echo(json.dumps({"name": s.name, **s.to_json()}, indent=2))


@app.command("add")
def _add_cmd(
    name: str = typer.Argument(..., help="New style name (lower-case letters, digits, '_' or '-')."),
    source: Path = typer.Option(..., "--source", help="Source generator checkpoint (rosinality .pt or NVlabs .pkl)."),
    target: Path = typer.Option(..., "--target", help="Fine-tuned (cartoon) generator checkpoint."),
    alpha: float = typer.Option(DEFAULT_ALPHA, min=0.0, max=1.0, help="Default blend weight of the target."),
    swap_res: int | None = typer.Option(None, "--swap-res", help="Layers below this resolution come from the source."),
    blend_width: float | None = typer.Option(None, "--blend-width", help="Sigmoid width (octaves) of the swap."),
    inject_k: int = typer.Option(0, "--inject-k", min=0, help="W+ entries kept from the unedited latent after a mapper edit."),
    encoder: Path | None = typer.Option(None, "--encoder", help="Image -> W+ encoder checkpoint."),
    mapper: list[str] = typer.Option([], "--mapper", help="Text mapper as PROMPT=PATH (repeatable)."),
    description: str = typer.Option("", help="Free text shown by `cptr styles list`."),
    copy: bool = typer.Option(False, "--copy", help="Copy the checkpoints into the store."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite an existing style of that name."),
) -> None:
    """Register a style after checking that both generators load and match.

    cptr-export --style NAME then exports it.

    Examples:

      cptr styles add webtoon --source ffhq256.pt --target webtoon.pt --alpha 0.7
      cptr styles add toon --source a.pt --target b.pt --swap-res 16 --copy
      cptr styles add toon --source a.pt --target b.pt --encoder e4e.pt \\
          --mapper smile=smile.pt --replace
    """
    try:
        info = add_style(
            name, source, target, alpha=alpha, swap_res=swap_res, blend_width=blend_width, inject_k=inject_k,
            encoder=encoder, mappers=parse_mapper_options(mapper), description=description, copy=copy, replace=replace,
        )
    except StyleError as e:
        _fail(e)
    typer.echo(f"registered style {info.name!r} in {registry_path()}")


@app.command("remove")
def _remove_cmd(name: str = typer.Argument(..., help="Style to unregister.")) -> None:
    """Unregister a style.

    Copies made with --copy are deleted; the files it was registered from are left alone.

    Examples:

      cptr styles remove webtoon
    """
    try:
        remove_style(name)
    except StyleError as e:
        _fail(e)
    typer.echo(f"removed style {name!r}")
