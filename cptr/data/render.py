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

With ``align`` (``cptr-train render --align``) every face is rendered at 256 px and FFHQ-aligned exactly as the
server aligns a photo (:mod:`cptr.align`: mediapipe landmarks, FFHQ's crop), then stored at ``size``: the
models trained on such a set see faces framed as the served crops are (as FFHQ's are). Alignment takes out
the head's roll (``labels.csv`` keeps the rendered one). A face the detector misses is left out, so the set
may hold fewer than ``n`` images; ``labels.csv`` gives each image's seed.
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

from cptr import __version__
from cptr.align import AlignError, align_face, detect_landmarks
from cptr.contracts import ALIGNED_SIZE
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
    seeds: np.ndarray | None = None  # [count] the seed of each image
    aligned: bool = False


def render_aligned(seed: int, domain: str, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The face of ``seed`` rendered at 256 px and FFHQ-aligned to ``size`` (as the server aligns photos), with its
    labels; None when the landmark detector finds no face in the render."""
    img, lab = render_face(seed, domain, max(ALIGNED_SIZE, size))
    try:
        return align_face(img, detect_landmarks(img)[0], size=size).crop, lab
    except AlignError:
        return None


def _render_chunk(args: tuple[str, int, int, int, bool]) -> tuple[list[bytes], np.ndarray, list[int]]:
    domain, size, start, stop, align = args
    pngs, labels, seeds = [], [], []
    for seed in range(start, stop):
        found = render_aligned(seed, domain, size) if align else render_face(seed, domain, size)
        if found is None:
            continue
        img, lab = found
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)
        pngs.append(buf.getvalue())
        labels.append(lab)
        seeds.append(seed)
    return pngs, np.stack(labels) if labels else np.zeros((0, len(ATTRIBUTES)), np.float32), seeds


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
    align: bool = False,
) -> RenderedSet:
    """Render faces ``seed .. seed + n - 1`` in ``domain`` and write them to ``out`` (folder or ``.lmdb``);
    with ``align``, FFHQ-aligned (faces the detector misses are left out)."""
    if domain not in DOMAINS:
        raise ValueError(f"--domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    if n <= 0:
        raise ValueError(f"--n must be positive, got {n}")
    out = Path(out)
    lmdb_out = out.suffix.lower() == ".lmdb"
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = [(domain, size, s, min(s + CHUNK, seed + n), align) for s in range(seed, seed + n, CHUNK)]
    from tqdm import tqdm

    bar = tqdm(total=n, disable=not progress, desc=f"render {domain}", unit="img")
    labels, seeds = [], []
    with atomic_directory(out) as tmp:
        env = txn = None
        if lmdb_out:
            from cptr.data.datasets import LMDB_MAP_SIZE, _lmdb  # torch: only when this runs (the module is imported without it)

            env = _lmdb().open(str(tmp), map_size=LMDB_MAP_SIZE, readahead=False)
            txn = env.begin(write=True)
        try:
            index = 0
            with ProcessPoolExecutor(max_workers=workers) if workers > 1 else _Inline() as pool:
                for job, (pngs, lab, chunk_seeds) in zip(jobs, pool.map(_render_chunk, jobs)):
                    for png in pngs:
                        if txn is not None:
                            txn.put(f"{size}-{index:05d}".encode(), png)
                        else:
                            (tmp / f"{index:06d}.png").write_bytes(png)
                        index += 1
                    labels.append(lab)
                    seeds += chunk_seeds
                    bar.update(job[3] - job[2])
            count = index
            if count == 0:
                raise ValueError("the landmark detector found no face in any render; nothing to write")
            if txn is not None:
                txn.put(b"length", str(count).encode())
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
            for i, (row, face_seed) in enumerate(zip(all_labels, seeds)):
                w.writerow([i, face_seed, *(f"{v:.6g}" for v in row)])

        meta = {
            "domain": domain,
            "size": size,
            "count": count,
            "seed": seed,
            "attributes": list(ATTRIBUTES),
            "format": "lmdb" if lmdb_out else "png",
            "aligned": align,
            "skipped": n - count,
            "cptr": __version__,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return RenderedSet(out, domain, size, count, seed, all_labels, np.array(seeds), align)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """The ``labels.csv`` of a rendered data set as [N, len(ATTRIBUTES)] float32, in index order."""
    p = Path(path)
    p = p / "labels.csv" if p.is_dir() else p
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    return np.array([[float(r[a]) for a in ATTRIBUTES] for r in rows], np.float32)


class _Inline:
    """A stand-in for a process pool with one worker: maps in this process."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def map(self, fn, items):
        return map(fn, items)
