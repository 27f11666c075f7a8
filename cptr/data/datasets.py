"""Image data sets: folders of pictures and rosinality LMDB datasets.

* :class:`ImageFolderDataset`: every file Pillow reads under a folder (recursively), converted to
  RGB, resized (shorter side, Lanczos) and centre-cropped to the training size. Files that fail to
  decode are skipped when the dataset is opened; they are counted and reported once.
* :class:`LMDBDataset`: rosinality's ``prepare_data.py`` format: key ``b"length"`` holds the count
  as ASCII, key ``f"{size}-{index:05d}"`` the encoded image (JPEG, quality 100, by default).
  :func:`write_lmdb` writes such a dataset (``cptr-train prepare``).

Images come out as float tensors [3, size, size] in [-1, 1]. The trainers' sampler and flips are
:mod:`cptr.training.data`'s.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cptr.imaging import from_uint8

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"}
LMDB_MAP_SIZE = 1 << 40


class DatasetError(ValueError):
    """A dataset path cannot be used for training; the message says why and what to do."""


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """RGB, shorter side resized to ``size`` (Lanczos), centre-cropped to ``size`` x ``size``."""
    im = im.convert("RGB")
    w, h = im.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.LANCZOS)
        left, top = (nw - size) // 2, (nh - size) // 2
        im = im.crop((left, top, left + size, top + size))
    return im


def _decode(data: bytes | str | os.PathLike, size: int) -> Image.Image:
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as im:
        im.load()
        return resize_center_crop(im, size)


def to_tensor(im: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float [3, H, W] in [-1, 1]."""
    return from_uint8(np.array(im, dtype=np.uint8))[0]


def list_image_files(root: str | os.PathLike) -> list[Path]:
    """Image files (by suffix) under ``root``, recursively, sorted by relative path."""
    root = Path(root)
    return sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: p.relative_to(root).as_posix()
    )


def _readable(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except Exception:  # noqa: BLE001 - any decoder failure marks the file as corrupt
        return False


class ImageFolderDataset(Dataset):
    """Images under a folder (recursive). ``skipped`` lists the files that failed to decode."""

    def __init__(self, root: str | os.PathLike, size: int, workers: int = 8):
        self.root = Path(root)
        self.size = int(size)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder of images")
        files = list_image_files(self.root)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            ok = list(pool.map(_readable, files))
        self.files = [f for f, good in zip(files, ok) if good]
        self.skipped = [f for f, good in zip(files, ok) if not good]
        if not self.files:
            raise DatasetError(
                f"{self.root}: no readable images (looked for {', '.join(sorted(IMAGE_SUFFIXES))}; "
                f"{len(self.skipped)} file(s) failed to decode)"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.files[index]
        try:
            return to_tensor(_decode(path, self.size))
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{path}: could not be read any more ({e}); was it changed during training?") from None

    def describe(self) -> str:
        return f"{len(self.files)} images from {self.root}" + (f", {len(self.skipped)} unreadable file(s) skipped" if self.skipped else "")


def _lmdb():
    try:
        import lmdb
    except ImportError:  # pragma: no cover - lmdb is in the [train] extra
        raise DatasetError("reading LMDB datasets needs the lmdb package: pip install 'cptr[train]'") from None
    return lmdb


_ENVS: dict[tuple[str, int], object] = {}


def _shared_env(path: Path):
    """One read-only environment per LMDB path and process (LMDB refuses a second one)."""
    key = (str(Path(path).resolve()), os.getpid())
    if key not in _ENVS:
        lmdb = _lmdb()
        try:
            _ENVS[key] = lmdb.open(key[0], max_readers=64, readonly=True, lock=False, readahead=False, meminit=False)
        except lmdb.Error as e:
            raise DatasetError(f"{path}: cannot open as an LMDB dataset ({e})") from None
    return _ENVS[key]


def lmdb_key(size: int, index: int) -> bytes:
    return f"{size}-{str(index).zfill(5)}".encode()


class LMDBDataset(Dataset):
    """rosinality ``MultiResolutionDataset`` layout, read-only; the environment opens lazily per process."""

    def __init__(self, path: str | os.PathLike, size: int):
        self.path = Path(path)
        self.size = int(size)
        self._env = None
        env = self._open()
        with env.begin(write=False) as txn:
            raw = txn.get(b"length")
            if raw is None:
                raise DatasetError(f"{self.path}: LMDB has no 'length' key; not a rosinality prepare_data.py dataset")
            self.length = int(raw.decode("utf-8"))
            if self.length <= 0:
                raise DatasetError(f"{self.path}: the dataset is empty (length {self.length})")
            if txn.get(lmdb_key(self.size, 0)) is None:
                found = sorted({k.decode("utf-8", "replace").split("-")[0] for k, _ in txn.cursor() if k.endswith(b"-00000")})
                raise DatasetError(
                    f"{self.path}: no images of size {self.size} (sizes stored: {', '.join(found) or 'none'}); "
                    f"re-run: cptr-train prepare IMAGES --out {self.path} --size {self.size}"
                )
        self._close()
        self.skipped: list[str] = []

    def _open(self):
        if self._env is None:
            self._env = _shared_env(self.path)
        return self._env

    def _close(self) -> None:
        self._env = None  # the environment stays open in the per-process cache (LMDB allows one per path)

    def __getstate__(self) -> dict:  # DataLoader workers reopen the environment
        state = dict(self.__dict__)
        state["_env"] = None
        return state

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        with self._open().begin(write=False) as txn:
            data = txn.get(lmdb_key(self.size, index))
        if data is None:
            raise DatasetError(f"{self.path}: missing key {lmdb_key(self.size, index).decode()} (length says {self.length})")
        return to_tensor(_decode(data, self.size))

    def describe(self) -> str:
        return f"{self.length} images from LMDB {self.path}"


def is_lmdb(path: str | os.PathLike) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / "data.mdb").is_file()) or (p.is_file() and p.suffix == ".mdb")


def open_dataset(path: str | os.PathLike, size: int, workers: int = 8) -> ImageFolderDataset | LMDBDataset:
    """An LMDB dataset if ``path`` holds ``data.mdb``, else a folder of images."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder; pass a folder of images or an LMDB made by `cptr-train prepare`")
    if is_lmdb(p):
        return LMDBDataset(p if p.is_dir() else p.parent, size)
    return ImageFolderDataset(p, size, workers=workers)


def write_lmdb(
    images: str | os.PathLike,
    out: str | os.PathLike,
    sizes: tuple[int, ...] = (256,),
    quality: int = 100,
    workers: int = 8,
    progress: bool = False,
) -> tuple[int, int]:
    """Write a rosinality LMDB dataset from a folder of images; returns ``(written, skipped)``.

    The LMDB is built in a temporary folder beside ``out`` and renamed into place when complete.
    """
    files = list_image_files(images)
    if not files:
        raise DatasetError(f"{images}: no image files found")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    lmdb = _lmdb()

    def encode(path: Path) -> list[bytes] | None:
        try:
            with Image.open(path) as im:
                im.load()
                outs = []
                for s in sizes:
                    buf = io.BytesIO()
                    resize_center_crop(im, s).save(buf, format="JPEG", quality=quality)
                    outs.append(buf.getvalue())
                return outs
        except Exception:  # noqa: BLE001
            return None

    written = skipped = 0
    try:
        from tqdm import tqdm

        env = lmdb.open(str(tmp), map_size=LMDB_MAP_SIZE, readahead=False)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for encoded in tqdm(pool.map(encode, files), total=len(files), disable=not progress, desc="prepare"):
                if encoded is None:
                    skipped += 1
                    continue
                with env.begin(write=True) as txn:
                    for s, data in zip(sizes, encoded):
                        txn.put(lmdb_key(s, written), data)
                written += 1
        with env.begin(write=True) as txn:
            txn.put(b"length", str(written).encode("utf-8"))
        env.sync()
        env.close()
        if written == 0:
            raise DatasetError(f"{images}: none of the {len(files)} files could be decoded")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written, skipped
