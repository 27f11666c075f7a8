"""Test pictures and clips made here, no downloads: a group photo, a camera moving over photos, animated renders.

* :func:`group_photo`: real photos (scikit-image's astronaut, matplotlib's Grace Hopper) and procedural renders
  (:mod:`cptr.data.faces`) pasted with soft edges onto one backdrop, each face at another size;
* :func:`camera_move`: a virtual camera over a still picture: a pan, a zoom and a slow rotation;
* :func:`head_turn` and :func:`smile`: a rendered face animated through its parameters (yaw sweeping left and right;
  a smile opening), with the texture and the noise of one render, so only the animated parameter changes;
* :func:`tone`: a sine tone, the audio track of a test clip.

Frames are uint8 ``[H, W, 3]`` arrays; :func:`cptr.client.video.write_video` writes them as a video file.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cptr.data.faces import params_for_seed, render_params

# Face boxes (x0, y0, x1, y1) of the real photos, around face and hair: where the group photo cuts them out.
ASTRONAUT_FACE = (110, 10, 350, 250)
ASTRONAUT_CENTER = (240.0, 150.0)  # where a camera looks to keep her face in view
GRACE_FACE = (80, 50, 440, 410)
# The group photo's people: (source, target side of the cut-out in px, centre x, centre y) on a 640 x 400 backdrop.
# Face sizes (cptr.align's Face.size) come out about 60, 44, 38 and 32 px: different, all above MIN_FACE_SIZE.
GROUP_SIZE = (640, 400)
GROUP_LAYOUT = (("grace", 250, 150, 200), ("render:11", 200, 560, 250), ("astronaut", 210, 360, 190), ("render:3", 140, 470, 90))


def astronaut() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins), 512 x 512."""
    from skimage import data  # optional dependency (the demo and dev extras), only for test pictures

    return np.asarray(data.astronaut())


def grace_hopper() -> np.ndarray:
    """matplotlib's sample photo of Grace Hopper, 512 x 600."""
    import matplotlib.cbook  # optional dependency (the bench extra), only for test pictures

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def render(seed: int, size: int = 256, **changes: float) -> np.ndarray:
    """The photo-domain render of ``seed`` at ``size`` px, with parameters of :class:`~cptr.data.faces.FaceParams`
    changed (``yaw=0.5``, ``smile=1.0``...); texture and noise depend on ``seed`` alone, not on the changes."""
    p = dataclasses.replace(params_for_seed(seed), **changes)
    return render_params(p, "photo", size, np.random.default_rng([int(seed), 1, size]))


def _soft_mask(w: int, h: int, feather: float = 0.12) -> Image.Image:
    """An ellipse filling ``w x h`` with an edge blurred over ``feather`` of the side."""
    mask = Image.new("L", (w, h), 0)
    inset = feather * min(w, h)
    ImageDraw.Draw(mask).ellipse((inset, inset, w - inset, h - inset), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(inset / 2))


def _backdrop(w: int, h: int) -> Image.Image:
    """A soft grey-blue wall, lighter at the top."""
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    top, bottom = np.array([196, 204, 212], np.float32), np.array([120, 128, 140], np.float32)
    wall = top * (1 - y) + bottom * y
    return Image.fromarray(np.repeat(wall, w, axis=1).clip(0, 255).astype(np.uint8))


def _person(source: str) -> Image.Image:
    if source == "astronaut":
        return Image.fromarray(astronaut()).crop(ASTRONAUT_FACE)
    if source == "grace":
        return Image.fromarray(grace_hopper()).crop(GRACE_FACE)
    if source.startswith("render:"):
        return Image.fromarray(render(int(source.split(":", 1)[1])))
    raise ValueError(f"unknown source {source!r}: astronaut, grace or render:<seed>")


def group_photo(layout: tuple[tuple[str, int, int, int], ...] = GROUP_LAYOUT, size: tuple[int, int] = GROUP_SIZE) -> np.ndarray:
    """A group photo of ``len(layout)`` people at different sizes (see :data:`GROUP_LAYOUT`), uint8 ``[H, W, 3]``."""
    canvas = _backdrop(*size)
    for source, side, cx, cy in layout:
        person = _person(source).resize((side, side), Image.LANCZOS)
        canvas.paste(person, (cx - side // 2, cy - side // 2), _soft_mask(side, side))
    return np.asarray(canvas)


def camera_move(
    picture: np.ndarray,
    n_frames: int,
    size: tuple[int, int] = (320, 240),
    *,
    pan: float = 0.12,
    zoom: float = 1.25,
    degrees: float = 6.0,
    center: tuple[float, float] | None = None,
) -> list[np.ndarray]:
    """``n_frames`` frames of ``size`` (width, height) of a camera moving over ``picture`` around ``center`` (x, y;
    default: the picture's centre): it pans across ``pan`` of the picture's width, zooms in by ``zoom`` and turns by
    ``degrees``, smoothly (an ease in and out)."""
    h, w = picture.shape[:2]
    out_w, out_h = size
    base = min(w / out_w, h / out_h) / zoom  # picture pixels per frame pixel at the start, with room to pan and turn
    im = Image.fromarray(picture)
    frames = []
    for i in range(n_frames):
        t = 0.5 - 0.5 * math.cos(math.pi * i / max(n_frames - 1, 1))  # 0 -> 1, easing in and out
        scale = base / (1 + (zoom - 1) * t)
        angle = math.radians(degrees * (t - 0.5))
        cx, cy = (center or (w / 2, h / 2))[0] + pan * w * (t - 0.5), (center or (w / 2, h / 2))[1]
        c, s = math.cos(angle) * scale, math.sin(angle) * scale
        # frame pixel (x, y) -> picture pixel: rotate and scale about the frame centre, then move to (cx, cy)
        a, b = c, -s
        d, e = s, c
        tx = cx - a * out_w / 2 - b * out_h / 2
        ty = cy - d * out_w / 2 - e * out_h / 2
        frames.append(np.asarray(im.transform((out_w, out_h), Image.AFFINE, (a, b, tx, d, e, ty), resample=Image.BICUBIC)))
    return frames


def head_turn(seed: int, n_frames: int, size: int = 192, turns: float = 1.0, max_yaw: float = 0.8) -> tuple[list[np.ndarray], np.ndarray]:
    """The render of ``seed`` turning its head: yaw follows ``max_yaw * sin``, ``turns`` full periods over the clip.
    Returns the frames and the yaw of each."""
    yaw = max_yaw * np.sin(2 * np.pi * turns * np.arange(n_frames) / n_frames)
    return [render(seed, size, yaw=float(y)) for y in yaw], yaw


def smile(seed: int, n_frames: int, size: int = 192) -> tuple[list[np.ndarray], np.ndarray]:
    """The render of ``seed`` breaking into a smile: ``smile`` from -0.2 to 1, the mouth opening in the second half.
    Returns the frames and the smile of each."""
    t = np.linspace(0.0, 1.0, n_frames)
    amount = -0.2 + 1.2 * t
    frames = [render(seed, size, smile=float(s), mouth_open=float(max(0.0, 2 * u - 1))) for s, u in zip(amount, t)]
    return frames, amount


def tone(seconds: float, rate: int = 44100, hz: float = 440.0) -> np.ndarray:
    """A sine tone at a quarter of full scale: float32 ``[1, samples]`` (mono)."""
    n = int(round(seconds * rate))
    return (0.25 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)[None]
