"""Checkpoint formats: rosinality ``.pt`` and NVlabs stylegan2-ada-pytorch ``.pkl``.

Nothing here executes code from a file. ``.pt`` files go through ``torch.load(weights_only=True)``.
NVlabs pickles go through :class:`RestrictedUnpickler`: their persistent classes become inert
records of their state, and the embedded module source is never compiled.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cptr.io import atomic_path
from cptr.models.stylegan2 import Generator, default_channels

if TYPE_CHECKING:  # the model modules import this one (option helpers): no import cycle at run time
    from cptr.models.stylegan2 import Generator


class CheckpointError(ValueError):
    """A file could not be read as a checkpoint. The message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------- safe torch.load

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def load_torch_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True`` and clear :class:`CheckpointError` failures.

    ``argparse.Namespace`` (the ``args`` entry of rosinality training checkpoints) is allowed: it is
    rebuilt as plain attribute data, and nothing in it runs.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such file")
    if p.stat().st_size == 0:
        raise CheckpointError(p, "the file is empty")
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK" and head[:2] not in _PICKLE_MAGIC:
        raise CheckpointError(p, "not a PyTorch checkpoint (no zip or pickle header); expected a .pt file from torch.save")
    if head[:2] == b"PK" and not zipfile.is_zipfile(p):
        raise CheckpointError(p, "the zip archive is truncated or corrupt; re-download or re-save the checkpoint")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((ln for ln in first if "GLOBAL" in ln or "Unsupported" in ln), first[0] if first else "")
        raise CheckpointError(
            p, f"refused to unpickle: the file holds objects that are not plain tensors/containers ({detail.strip()})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, KeyError, ValueError) as e:
        raise CheckpointError(
            p, f"the file is truncated or corrupt ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None


# --------------------------------------------------------------------------- rosinality format


def infer_generator_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Read a Generator's constructor arguments off a rosinality ``g_ema`` state dict."""

    try:
        n_mlp = sum(1 for k in sd if re.fullmatch(r"style\.\d+\.weight", k))
        style_dim = sd["style.1.weight"].shape[1]
        n_to_rgb = sum(1 for k in sd if re.fullmatch(r"to_rgbs\.\d+\.conv\.weight", k))
        log_size = n_to_rgb + 2
        channels = {4: int(sd["input.input"].shape[1])}
        for j in range(n_to_rgb):
            channels[2 ** (j + 3)] = int(sd[f"convs.{2 * j}.conv.weight"].shape[1])
        blur = sd.get("to_rgbs.0.upsample.kernel")
    except KeyError as e:
        raise ValueError(f"not a StyleGAN2 generator state dict: missing {e}") from None
    size = 2**log_size
    cfg: dict[str, Any] = {"size": size, "style_dim": int(style_dim), "n_mlp": n_mlp}
    for cm in (2, 1, 4):
        std = default_channels(cm)
        if all(std[r] == c for r, c in channels.items()):
            cfg["channel_multiplier"] = cm
            break
    else:
        cfg["channels"] = channels
    if blur is not None:
        taps = blur.sum(0)
        cfg["blur_kernel"] = (taps / taps.min()).tolist()
    return cfg


def generator_from_state_dict(sd: dict[str, torch.Tensor], lr_mlp: float = 0.01) -> Generator:
    """Build a Generator whose architecture matches ``sd`` and load it strictly."""

    cfg = infer_generator_config(sd)
    g = Generator(**cfg, lr_mlp=lr_mlp)
    g.load_state_dict(sd, strict=True)
    return g


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu", key: str | None = None) -> Generator:
    """Load a generator from a rosinality ``.pt`` or an NVlabs ``.pkl``; returns it in eval mode.

    ``.pt``: a dict with ``g_ema`` (preferred) or ``g``, and an optional ``latent_avg``; a bare state
    dict also works. ``.pkl``: ``G_ema`` of a stylegan2-ada-pytorch pickle. The mean latent, when the
    file has one, is attached as ``generator.latent_avg`` ([style_dim]).
    """
    p = Path(path)
    if p.suffix.lower() == ".pkl":
        g, latent_avg = load_nvlabs_generator(p, key=key or "G_ema")
    else:
        ckpt = load_torch_file(p)
        if not isinstance(ckpt, dict):
            raise CheckpointError(p, f"expected a dict checkpoint, found {type(ckpt).__name__}")
        keys = [key] if key else ["g_ema", "g"]
        sd = next((ckpt[k] for k in keys if k in ckpt), None)
        if sd is None and "style.1.weight" in ckpt:
            sd = ckpt
        if not isinstance(sd, dict):
            raise CheckpointError(p, f"no generator found: expected key {' or '.join(repr(k) for k in keys)}; keys are {sorted(ckpt)[:10]}")
        lr_mlp = _args_value(ckpt.get("args"), "lr_mlp", 0.01)
        try:
            g = generator_from_state_dict(sd, lr_mlp=lr_mlp)
        except (ValueError, RuntimeError) as e:
            raise CheckpointError(p, f"the generator weights do not match a StyleGAN2 generator: {str(e).splitlines()[0]}") from None
        latent_avg = ckpt.get("latent_avg")
    g.latent_avg = None if latent_avg is None else latent_avg.detach().reshape(-1).float().to(device)
    return g.to(device).eval().requires_grad_(False)


def options_dict(opts: Any) -> dict[str, Any]:
    """Training options stored in a checkpoint (``args``/``opts``: a dict or an argparse.Namespace) as a dict."""
    if opts is None:
        return {}
    if isinstance(opts, argparse.Namespace):
        return dict(vars(opts))
    if isinstance(opts, dict):
        return dict(opts)
    raise TypeError(f"opts must be a dict or argparse.Namespace, got {type(opts).__name__}")


def _args_value(args: Any, name: str, default: Any) -> Any:
    try:
        return options_dict(args).get(name, default)
    except TypeError:
        return default


def save_generator(
    g: Generator,
    path: str | os.PathLike,
    latent_avg: torch.Tensor | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``{'g_ema': state_dict, 'latent_avg': ...}`` atomically (rosinality format)."""
    state: dict[str, Any] = {"g_ema": {k: v.detach().cpu() for k, v in g.state_dict().items()}}
    if latent_avg is None:
        latent_avg = getattr(g, "latent_avg", None)
    if latent_avg is not None:
        state["latent_avg"] = latent_avg.detach().reshape(-1).cpu()
    state.update(extra or {})
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


# --------------------------------------------------------------------------- NVlabs pickles


@dataclass
class PersistentObject:
    """An NVlabs persistent-class instance, reduced to its class name and state. Nothing runs."""

    class_name: str
    state: dict[str, Any] = field(default_factory=dict)

    def modules(self) -> dict[str, Any]:
        return dict(self.state.get("_modules") or {})

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for group in ("_parameters", "_buffers"):
            for k, v in (self.state.get(group) or {}).items():
                if isinstance(v, torch.Tensor):
                    out[k] = v
        return out

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flattened tensors with dotted names, as ``torch.nn.Module.state_dict`` would give."""
        out = {prefix + k: v for k, v in self.tensors().items()}
        for name, child in self.modules().items():
            if isinstance(child, PersistentObject):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict with attribute access."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _reconstruct_persistent(meta: dict) -> PersistentObject:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("malformed persistent object record")
    state = meta.get("state") or {}
    return PersistentObject(class_name=str(meta.get("class_name")), state=dict(state))


def _load_storage_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *args):
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, collections.OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return torch.nn.Parameter(data, requires_grad=requires_grad)


def _numpy_attr(module: str, name: str) -> Any:
    import importlib

    for mod in (module, "numpy.core.multiarray", "numpy"):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {name}")


# numpy scalars, dtypes and arrays appear in NVlabs init kwargs; they only rebuild data.
_NUMPY_DATA = {
    "scalar": lambda: _numpy_attr("numpy.core.multiarray", "scalar"),
    "_reconstruct": lambda: _numpy_attr("numpy.core.multiarray", "_reconstruct"),
    "dtype": lambda: _numpy_attr("numpy", "dtype"),
    "ndarray": lambda: _numpy_attr("numpy", "ndarray"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only an allow-list of data-only globals.

    Persistent classes become :class:`PersistentObject`; tensor storages are read with
    ``torch.load(weights_only=True)``. Anything else (``os.system``, ``builtins.eval``, arbitrary
    classes) raises ``pickle.UnpicklingError`` before it can be called.
    """

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("dnnlib.util", "EasyDict"): EasyDict,
        ("dnnlib", "EasyDict"): EasyDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "slice"): slice,
    }

    def find_class(self, module: str, name: str) -> Any:
        fn = self._ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray", "numpy") and name in _NUMPY_DATA:
            return _NUMPY_DATA[name]()
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a network pickle")


def read_nvlabs_pickle(path: str | os.PathLike) -> dict[str, Any]:
    """Unpickle an NVlabs network pickle without running any of its code."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(p, "no such file")
    try:
        with open(p, "rb") as f:
            data = RestrictedUnpickler(f).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(p, f"refused to unpickle: {e}") from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, RuntimeError, MemoryError) as e:
        raise CheckpointError(p, f"not a readable network pickle, truncated or corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(p, f"expected a dict with G, D, G_ema; found {type(data).__name__}")
    return data


def nvlabs_to_rosinality(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Rename an NVlabs ``G_ema`` state dict to rosinality keys; returns ``(g_ema, latent_avg)``.

    NVlabs keeps conv weights as [out, in, k, k] and the 4x4 constant as [C, 4, 4]; noise strengths
    are scalars. The conv kernels themselves carry over unchanged (checked against NVlabs' own
    forward pass: max abs difference 4e-6 on a 64 px generator).
    """
    if any(k.startswith("mapping.embed") for k in sd):
        raise ValueError("conditional generators (c_dim > 0) are not supported")
    out: dict[str, torch.Tensor] = {}
    n_fc = sum(1 for k in sd if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    if n_fc == 0:
        raise ValueError("no mapping.fc*.weight tensors: not a StyleGAN2 G")
    for i in range(n_fc):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    resolutions = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    if not resolutions or resolutions[0] != 4:
        raise ValueError("no synthesis.b4 block: not a StyleGAN2 synthesis network")

    def layer(src: str, dst: str, noise_idx: int) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise_idx}"] = sd[f"{src}.noise_const"].reshape(1, 1, *sd[f"{src}.noise_const"].shape[-2:])

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"].unsqueeze(0)
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)

    out["input.input"] = sd["synthesis.b4.const"].unsqueeze(0)
    layer("synthesis.b4.conv1", "conv1", 0)
    to_rgb("synthesis.b4.torgb", "to_rgb1")
    for j, res in enumerate(resolutions[1:]):
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * j}", 2 * j + 1)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}", 2 * j + 2)
        to_rgb(f"synthesis.b{res}.torgb", f"to_rgbs.{j}")
    return out, sd.get("mapping.w_avg")


def load_nvlabs_generator(path: str | os.PathLike, key: str = "G_ema") -> tuple[Generator, torch.Tensor | None]:
    """Convert ``key`` of an NVlabs pickle to a rosinality-layout :class:`Generator`."""

    data = read_nvlabs_pickle(path)
    net = data.get(key)
    if not isinstance(net, PersistentObject):
        raise CheckpointError(path, f"no network {key!r} in the pickle (keys: {sorted(map(str, data))})")
    try:
        g_sd, w_avg = nvlabs_to_rosinality(net.state_dict())
        kwargs = net.state.get("_init_kwargs") or {}
        lr_mlp = float((kwargs.get("mapping_kwargs") or {}).get("lr_multiplier", 0.01))
        cfg = infer_generator_config(g_sd)
        g = Generator(**cfg, lr_mlp=lr_mlp)
        # Our blur buffers are defined by the architecture; NVlabs stores its filters differently.
        own = g.state_dict()
        for k, v in own.items():
            if k.endswith(".kernel"):
                g_sd[k] = v
        g.load_state_dict(g_sd, strict=True)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(path, f"cannot convert {key} to a StyleGAN2 generator: {str(e).splitlines()[0]}") from None
    return g, w_avg
