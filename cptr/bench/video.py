"""How steady and how faithful a cartoonized video is: flicker inside the face box, and yaw followed.

* :func:`flicker_ratio`: over consecutive frames, the mean absolute change of the output inside the face's box,
  over that of the input in the same box. The input's own change (a camera move, a turning head) is the
  baseline: 1 means the cartoon changes as much as the picture under it; more is flicker the input does not have.
* :func:`yaw_series`: the head's yaw in each frame, measured by mediapipe's face mesh (a landmark model this
  project never trained, :mod:`cptr.data.structure`) on a square crop around the face box; the input's and the
  output's series are compared by Pearson correlation (:func:`cptr.data.structure.paired_correlation`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cptr.data.structure import FEATURES, FaceMesh, mesh_geometry

Box = Sequence[float]  # x0, y0, x1, y1 in frame pixels


def _region(frame: np.ndarray, box: Box, grow: float = 1.0) -> tuple[slice, slice]:
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 * grow, (y1 - y0) / 2 * grow
    ys = slice(max(int(round(cy - half_h)), 0), min(int(round(cy + half_h)), h))
    xs = slice(max(int(round(cx - half_w)), 0), min(int(round(cx + half_w)), w))
    return ys, xs


def flicker_ratio(frames_in: Sequence[np.ndarray], frames_out: Sequence[np.ndarray], boxes: Sequence[Box | None]) -> float:
    """Sum over consecutive frame pairs (t-1, t) with a face box at t of the output's mean absolute change inside that
    box, over the same sum for the input (uint8 frames, one box or None per frame)."""
    if not len(frames_in) == len(frames_out) == len(boxes):
        raise ValueError(f"{len(frames_in)} input frames, {len(frames_out)} output frames and {len(boxes)} boxes")
    out_change = in_change = 0.0
    for t in range(1, len(frames_in)):
        if boxes[t] is None:
            continue
        ys, xs = _region(frames_in[t], boxes[t])  # type: ignore[arg-type]
        out_change += float(np.abs(frames_out[t][ys, xs].astype(np.float32) - frames_out[t - 1][ys, xs].astype(np.float32)).mean())
        in_change += float(np.abs(frames_in[t][ys, xs].astype(np.float32) - frames_in[t - 1][ys, xs].astype(np.float32)).mean())
    if in_change == 0:
        raise ValueError("the input does not change inside the face boxes: no baseline for the ratio")
    return out_change / in_change


def yaw_series(frames: Sequence[np.ndarray], boxes: Sequence[Box | None], mesh: FaceMesh, grow: float = 1.8) -> np.ndarray:
    """The face mesh's yaw of each frame (NaN without a box, or where the mesh finds no face), measured on the square
    around the face box grown by ``grow`` (the mesh wants the whole head in view)."""
    out = np.full(len(frames), np.nan)
    for i, (frame, box) in enumerate(zip(frames, boxes)):
        if box is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0)
        square = ((x0 + x1 - side) / 2, (y0 + y1 - side) / 2, (x0 + x1 + side) / 2, (y0 + y1 + side) / 2)
        ys, xs = _region(frame, square, grow)
        crop = np.ascontiguousarray(frame[ys, xs])
        points = mesh.points(crop)
        if points is not None:
            out[i] = mesh_geometry(points, float(max(crop.shape[:2])))[FEATURES.index("yaw")]
    return out
