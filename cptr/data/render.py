"""Write procedural-face data sets (``cptr-train render``): a folder of PNGs or a rosinality LMDB,
plus the labels of every image.

Layout of a folder data set ``OUT/``::

    OUT/000000.png ...          the renders, ``{index:06d}.png``
    OUT/labels.csv              index, seed, then one column per attribute (cptr.data.faces.ATTRIBUTES)
    OUT/meta.json               domain, size, count, first seed, the attribute names, the CPTR version

An LMDB (``OUT`` ending in ``.lmdb``) holds the same images under rosinality's keys, with
``labels.csv`` and ``meta.json`` beside ``data.mdb``. Image ``i`` is the face of seed ``seed0 + i``,
so a photo and a cartoon data set with the same ``--seed`` hold the same faces, index for index.
Either is written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cptr.data.faces import ATTRIBUTES, DOMAINS, render_face
from cptr.io import atomic_directory

CHUNK = 256


@dataclass(frozen=True)
class RenderedSet:
    """What :func:`write_renders` wrote."""

    path: Path
    domain: str
    size: int
    count: int
    seed: int
    labels: np.ndarray  # [count, len(ATTRIBUTES)]


def _render_chunk(args: tuple[str, int, int, int]) -> tuple[list[bytes], np.ndarray]:
    domain, size, start, stop = args
    pngs, labels = [], []
    for seed in range(start, stop):
        img, lab = render_face(seed, domain, size)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        pngs.append(buf.getvalue())
        labels.append(lab)
    return pngs, np.stack(labels)


def render_batch(seeds: range | list[int], domain: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, size, size, 3] uint8, labels [N, len(ATTRIBUTES)])`` for ``seeds``, in memory."""
    out = [render_face(int(s), domain, size) for s in seeds]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def write_renders(
    out: str | os.PathLike,
    domain: str,
    n: int,
    size: int = 64,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> RenderedSet:
    """Render faces ``seed .. seed + n - 1`` in ``domain`` and write them to ``out`` (folder or ``.lmdb``)."""
    if domain not in DOMAINS:
        raise ValueError(f"--domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    out = Path(out)
    lmdb_out = out.suffix.lower() == ".lmdb"
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [(domain, size, s, min(s + CHUNK, seed + n)) for s in range(seed, seed + n, CHUNK)]
    from tqdm import tqdm

    bar = tqdm(total=n, disable=not progress, desc=f"render {domain}", unit="img")
    labels = []
    with atomic_directory(out) as tmp:
        env = txn = None
        if lmdb_out:
            from cptr.training.data import LMDB_MAP_SIZE, _lmdb

            env = _lmdb().open(str(tmp), map_size=LMDB_MAP_SIZE, readahead=False)
            txn = env.begin(write=True)
        try:
            index = 0
            with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Inline() as pool:
                for pngs, lab in pool.map(_render_chunk, jobs):
                    for png in pngs:
                        if txn is not None:
                            txn.put(f"{size}-{index:05d}".encode(), png)
                        else:
                            (tmp / f"{index:06d}.png").write_bytes(png)
                        index += 1
                    labels.append(lab)
                    bar.update(len(pngs))
            if txn is not None:
                txn.put(b"length", str(n).encode())
                txn.commit()
                txn = None
        finally:
            if txn is not None:
                txn.abort()
            if env is not None:
                env.close()
            bar.close()
        all_labels = np.concatenate(labels)
        with open(tmp / "labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["index", "seed", *ATTRIBUTES])
            for i, row in enumerate(all_labels):
                w.writerow([i, seed + i, *(f"{v:.6g}" for v in row)])
        from cptr import __version__

        meta = {"domain": domain, "size": size, "count": n, "seed": seed, "attributes": list(ATTRIBUTES), "format": "lmdb" if lmdb_out else "png", "cptr": __version__}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return RenderedSet(out, domain, size, n, seed, all_labels)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """The ``labels.csv`` of a rendered data set as [N, len(ATTRIBUTES)] float32, in index order."""
    p = Path(path)
    p = p / "labels.csv" if p.is_dir() else p
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[a]) for a in ATTRIBUTES] for r in rows], np.float32)


class _Inline:
    """A stand-in for a process pool with one worker: maps in this process."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, items):
        return map(fn, items)


