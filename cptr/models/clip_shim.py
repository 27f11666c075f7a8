"""OpenAI CLIP without ``import clip``: model code, tokenizer and a weights loader that runs no code.

Why a shim: the ``clip`` package (clip-anytorch) runs ``clip/clip.py`` from its ``__init__``, and that
imports torchvision, which is broken on some torch builds and absent on others. CPTR only needs two
of its submodules, ``clip/model.py`` (pure torch) and ``clip/simple_tokenizer.py`` (ftfy + regex +
the BPE vocabulary shipped in the package). They are loaded here straight from the installed
package directory with ``importlib`` under private module names, so ``clip/__init__`` never runs
and ``sys.modules['clip']`` is left alone.

Weights: OpenAI's ``ViT-B-32.pt`` is a TorchScript archive. ``torch.jit.load`` would deserialize and
compile the TorchScript code inside it, so it is not used. :func:`read_torchscript_tensors` reads
the archive's ``data.pkl`` with an unpickler that allows tensors and plain containers only; every
TorchScript object becomes an inert record and the ``code/`` folder is never read. A plain
state-dict ``.pt`` goes through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from cptr.models.checkpoints import CheckpointError, load_torch_file

CLIP_WEIGHTS_HELP = (
    "download ViT-B-32.pt from OpenAI's CLIP release "
    "(https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt, "
    "the URL listed in clip/clip.py's _MODELS) and pass --clip-weights PATH"
)

_MODULES: dict[str, ModuleType] = {}


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained loss network's weights file is missing; the message says where to get it."""


def _clip_package_dir() -> Path:
    spec = importlib.util.find_spec("clip")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'clip' package is not installed; install CPTR's [train] extra (pip install 'cptr[train]' or clip-anytorch)")
    return Path(next(iter(spec.submodule_search_locations)))


def _load_submodule(name: str) -> ModuleType:
    if name in _MODULES:
        return _MODULES[name]
    path = _clip_package_dir() / f"{name}.py"
    if not path.is_file():
        raise ImportError(f"the installed clip package has no {name}.py at {path}; reinstall clip-anytorch")
    mod_name = f"cptr._clip_{name}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # classes must resolve by module name (pickling, dataclasses)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(mod_name, None)
        raise
    _MODULES[name] = module
    return module


def clip_model_module() -> ModuleType:
    """``clip/model.py`` (``CLIP``, ``build_model``), loaded without ``clip/__init__``."""
    return _load_submodule("model")


def clip_tokenizer_module() -> ModuleType:
    """``clip/simple_tokenizer.py`` (``SimpleTokenizer``), loaded without ``clip/__init__``."""
    return _load_submodule("simple_tokenizer")


_TOKENIZER: list[Any] = []


def tokenize(texts: str | list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP token ids ``[N, context_length]``: start token, BPE tokens, end token, zero padding."""
    if not _TOKENIZER:
        _TOKENIZER.append(clip_tokenizer_module().SimpleTokenizer())
    tok = _TOKENIZER[0]
    if isinstance(texts, str):
        texts = [texts]
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + tok.encode(text) + [eot]
        if len(ids) > context_length:
            raise ValueError(f"prompt {text!r} is {len(ids)} tokens long; CLIP accepts at most {context_length}: shorten it")
        out[i, : len(ids)] = torch.tensor(ids)
    return out


# --------------------------------------------------------------------------- safe TorchScript reading


class _ScriptObject:
    """An inert record of one TorchScript object: its class name and attribute dict."""

    _script_class = "?"

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"__state__": state}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple, stride: tuple, *_: Any) -> torch.Tensor:
    return storage.as_strided(tuple(size), tuple(stride), int(offset)).clone()


def _rebuild_parameter(data: torch.Tensor, *_: Any) -> torch.Tensor:
    return data


def _same(obj: Any, *_: Any) -> Any:
    return obj


# TorchScript's pickler wraps typed lists/dicts in these helpers (torch/jit/_pickle.py); they only
# return their data.
_JIT_PICKLE_HELPERS = {"restore_type_tag", "build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"}


class _TorchScriptUnpickler(pickle.Unpickler):
    """Reads ``data.pkl`` of a TorchScript archive: tensors, containers and inert object records."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            full = f"{module}.{name}"
            if full not in self._classes:
                self._classes[full] = type(name, (_ScriptObject,), {"_script_class": full})
            return self._classes[full]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch.jit._pickle" and name in _JIT_PICKLE_HELPERS:
            return _same
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a TorchScript weights archive")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        if not isinstance(key, str) or not key.isdigit():
            raise pickle.UnpicklingError(f"bad storage key {key!r}")
        raw = self._archive.read(f"{self._prefix}data/{key}")
        dtype = stype.dtype
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) < int(numel) * itemsize:
            raise pickle.UnpicklingError(f"storage {key} is truncated ({len(raw)} bytes for {numel} elements)")
        return torch.frombuffer(bytearray(raw[: int(numel) * itemsize]), dtype=dtype)


def _flatten_tensors(obj: Any, prefix: str, out: dict[str, torch.Tensor], depth: int = 0) -> None:
    if depth > 64:
        raise pickle.UnpicklingError("object nesting too deep")
    state = obj.state if isinstance(obj, _ScriptObject) else None
    if not isinstance(state, dict):
        return
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            out[prefix + str(k)] = v
        elif isinstance(v, _ScriptObject):
            _flatten_tensors(v, f"{prefix}{k}.", out, depth + 1)


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive as ``{'dotted.name': tensor}``, no code run.

    Parameters, buffers and plain tensor attributes all appear; the caller keeps what it expects.
    """

    p = Path(path)
    try:
        with zipfile.ZipFile(p) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if len(names) != 1:
                raise CheckpointError(p, "not a TorchScript archive (no <name>/data.pkl)")
            prefix = names[0][: -len("data.pkl")]
            with zf.open(names[0]) as f:
                root = _TorchScriptUnpickler(f, zf, prefix).load()
    except pickle.UnpicklingError as e:
        raise CheckpointError(p, f"refused to read the TorchScript archive: {e}") from None
    except (zipfile.BadZipFile, KeyError, EOFError, ValueError, TypeError, RuntimeError) as e:
        raise CheckpointError(p, f"the TorchScript archive is truncated or corrupt ({type(e).__name__}: {e})") from None
    out: dict[str, torch.Tensor] = {}
    _flatten_tensors(root, "", out)
    if not out:
        raise CheckpointError(p, "the TorchScript archive holds no tensors")
    return out


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/constants.pkl") or n.startswith("constants.pkl") for n in zf.namelist()) or any(
                "/code/__torch__" in n for n in zf.namelist()
            )
    except zipfile.BadZipFile:
        return False


# --------------------------------------------------------------------------- the CLIP model


def clip_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``clip.model.CLIP`` constructor arguments read off a state dict (the rules of ``build_model``)."""
    try:
        if "visual.proj" in sd:
            vision_width = sd["visual.conv1.weight"].shape[0]
            vision_layers: Any = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
            vision_patch_size = sd["visual.conv1.weight"].shape[-1]
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            image_resolution = vision_patch_size * grid
        else:
            vision_layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4))
            vision_width = sd["visual.layer1.0.conv1.weight"].shape[0]
            out_w = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            vision_patch_size = None
            image_resolution = out_w * 32
        width = sd["ln_final.weight"].shape[0]
        return {
            "embed_dim": int(sd["text_projection"].shape[1]),
            "image_resolution": int(image_resolution),
            "vision_layers": vision_layers,
            "vision_width": int(vision_width),
            "vision_patch_size": None if vision_patch_size is None else int(vision_patch_size),
            "context_length": int(sd["positional_embedding"].shape[0]),
            "vocab_size": int(sd["token_embedding.weight"].shape[0]),
            "transformer_width": int(width),
            "transformer_heads": int(width) // 64,
            "transformer_layers": len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")}),
        }
    except KeyError as e:
        raise ValueError(f"not a CLIP state dict: missing {e}") from None


def clip_from_state_dict(sd: dict[str, torch.Tensor]) -> nn.Module:
    """An fp32 ``clip.model.CLIP`` built for ``sd`` and loaded strictly (extra non-weight tensors dropped)."""
    cfg = clip_config(sd)
    model = clip_model_module().CLIP(**cfg)
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    if missing:
        raise ValueError(f"the CLIP weights lack {len(missing)} tensors, e.g. {missing[:3]}")
    model.load_state_dict({k: sd[k].float() for k in expected}, strict=True)
    return model.float().eval()


def load_clip(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load CLIP from OpenAI's TorchScript ``ViT-B-32.pt`` or a state-dict ``.pt``; frozen, fp32, eval.

    No code from the file runs (see the module docstring). A missing file raises
    :class:`WeightsNotFoundError` that says where to get it.
    """

    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"CLIP ViT-B/32 weights not found at {p}: {CLIP_WEIGHTS_HELP}")
    if zipfile.is_zipfile(p) and _is_torchscript(p):
        sd = read_torchscript_tensors(p)
    else:
        sd = load_torch_file(p)
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict):
            raise CheckpointError(p, f"expected a CLIP state dict, found {type(sd).__name__}")
    try:
        model = clip_from_state_dict(sd)
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(p, f"not CLIP weights: {str(e).splitlines()[0]}; {CLIP_WEIGHTS_HELP}") from None
    model = model.to(device)
    for q in model.parameters():
        q.requires_grad_(False)
    return model
