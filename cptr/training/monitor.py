"""What a run shows while it trains: progress bar, CSV (and TensorBoard) logs, sample grids."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from cptr.imaging import grid, save_image, to_uint8
from cptr.io import atomic_write_text
from cptr.progress import StepProgress  # noqa: F401 - the trainers import it from here too

# The losses and scores of a step that the log records (the trainer logs these keys of its step's stats)
STEP_STATS = ("d", "g", "structure", "attributes", "r1", "path", "path_length", "real_score", "fake_score")
LOG_COLUMNS = ("iter", *STEP_STATS, "ada_p", "r_t", "sec_per_iter")


class CSVLog:
    """``OUT/log.csv``, one row per logged iteration. On resume, rows past the resumed iteration go, and a log
    written with other columns (an older version's) is rewritten with these, its missing cells empty."""

    def __init__(self, path: str | os.PathLike, start_iter: int = 0):
        self.path = Path(path)
        if self.path.exists():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                columns = tuple(reader.fieldnames or ())
            keep = [r for r in rows if r.get("iter", "").isdigit() and int(r["iter"]) <= start_iter]
            if len(keep) != len(rows) or columns != LOG_COLUMNS:
                buf = io.StringIO()
                w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, extrasaction="ignore")
                w.writeheader()
                w.writerows(keep)
                atomic_write_text(self.path, buf.getvalue())
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, ",".join(LOG_COLUMNS) + "\n")

    def write(self, row: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore").writerow({k: _fmt(row.get(k)) for k in LOG_COLUMNS})


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    return f"{float(v):.6g}"


def read_log(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of a ``log.csv`` as floats (empty cells become NaN)."""
    with open(path, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else math.nan) for k, v in r.items()} for r in csv.DictReader(f)]


class TensorBoardLog:
    """Scalars to TensorBoard when the ``tensorboard`` package is installed; otherwise nothing."""

    def __init__(self, logdir: str | os.PathLike):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional
            self.writer = None
        else:
            self.writer = SummaryWriter(str(logdir))

    def write(self, row: dict[str, float]) -> None:
        if self.writer is None:
            return
        step = int(row["iter"])
        for k, v in row.items():
            if k != "iter" and v is not None and math.isfinite(float(v)):
                self.writer.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_sample_grid(source_images: torch.Tensor, target_images: torch.Tensor, path: str | os.PathLike) -> None:
    """Two rows: source faces above the same latents through the fine-tuned generator."""
    rows = np.concatenate([to_uint8(source_images), to_uint8(target_images)])
    save_image(grid(rows, cols=source_images.shape[0]), path)
