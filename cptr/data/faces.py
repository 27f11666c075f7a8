"""Procedural faces: one seeded parametric face, rendered as a *photo* or as a *cartoon*.

CPTR cannot download FFHQ or a cartoon data set, so it trains its demo models on faces it draws.
A face is a :class:`FaceParams` (head shape and pose, skin tone, hair style and colour, eyes, brows,
nose, mouth and smile, accessories, lighting, background), sampled from a seed. The same parameters
render in two domains:

* ``photo``: smooth shaded skin (Lambert light on an ellipsoid head), skin and hair texture, a
  blurred two-tone background, soft focus and sensor noise;
* ``cartoon``: flat fills, ink outlines, larger eyes with highlights, a single flat hair shape,
  blushed cheeks and a posterised palette.

Everything is deterministic: ``render_face(seed, domain, size)`` gives the same pixels for the same
arguments on any machine (numpy's PCG64 streams and Pillow's rasteriser, no global state), and the
parameters of a seed do not depend on the domain, so ``seed`` gives a photo/cartoon pair of one face.
Each render comes with its label vector (:data:`ATTRIBUTES`), what the attribute regressor learns.

Drawing happens at twice the output size and is reduced with a box filter (anti-aliasing).
"""

from __future__ import annotations

import functools
import math
from dataclasses import astuple, dataclass, fields
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Domain = Literal["photo", "cartoon"]
DOMAINS: tuple[str, ...] = ("photo", "cartoon")

# Continuous labels every render carries (the attribute regressor's targets), each in [0, 1]
# except yaw/roll/smile which are in [-1, 1].
ATTRIBUTES: tuple[str, ...] = ("yaw", "roll", "skin_tone", "hair_color", "smile", "eye_size", "mouth_open", "glasses", "face_width")
# The attributes that describe the face's geometry (pose, expression, shape) rather than its colours
GEOMETRY: tuple[str, ...] = ("yaw", "roll", "smile", "eye_size", "mouth_open", "face_width")

# Pose. Wide on purpose: at 64 px a 6-degree roll and a 0.22 head-width shift were so faint that the
# demo source learnt a quarter of the renders' roll spread and half their yaw spread, and pose barely
# survived stylisation (roll correlation 0.41). Roll is normal with ROLL_STD, clipped to +-ROLL_MAX
# (its label is roll / ROLL_MAX); at yaw +-1 the features move YAW_SHIFT head half-widths sideways.
ROLL_STD = 12.0
ROLL_MAX = 30.0
YAW_SHIFT = 0.36

HAIR_STYLES = ("short", "long", "bob", "curly", "bald", "ponytail")

# Skin from light to dark (sRGB), interpolated piecewise by skin_tone in [0, 1].
_SKIN = np.array([[250, 222, 200], [236, 192, 160], [214, 160, 120], [170, 115, 80], [120, 78, 52], [82, 54, 38]], np.float32)
# Natural hair from black to platinum, by hair_color in [0, 1].
_HAIR = np.array([[22, 18, 16], [58, 38, 26], [104, 66, 38], [150, 104, 58], [204, 160, 96], [236, 214, 160]], np.float32)
_RED_HAIR = np.array([168, 70, 32], np.float32)
_GREY_HAIR = np.array([170, 168, 165], np.float32)
_IRIS = np.array([[70, 45, 25], [110, 75, 40], [60, 110, 160], [80, 120, 70], [120, 130, 140]], np.float32)


def _lerp_palette(palette: np.ndarray, t: float) -> np.ndarray:
    x = float(np.clip(t, 0.0, 1.0)) * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    f = x - i
    return palette[i] * (1 - f) + palette[i + 1] * f


@dataclass(frozen=True)
class FaceParams:
    """One face. Positions are fractions of the image; angles in degrees."""

    cx: float
    cy: float
    head_w: float  # half width of the head ellipse
    head_h: float  # half height
    jaw: float  # 0 round .. 1 narrow chin
    yaw: float  # -1 .. 1 (features shift sideways, far eye narrows)
    roll: float  # degrees, within +-ROLL_MAX
    skin_tone: float  # 0 light .. 1 dark
    hair_style: int
    hair_color: float  # 0 black .. 1 platinum (natural scale)
    hair_tint: int  # 0 natural, 1 red, 2 grey
    hair_volume: float
    fringe: float  # 0 none .. 1 heavy fringe
    eye_size: float  # 0 .. 1
    eye_gap: float
    iris: int
    brow_tilt: float  # -1 .. 1 (sad .. angry)
    brow_weight: float
    nose_len: float
    mouth_w: float
    smile: float  # -1 frown .. 1 broad smile
    mouth_open: float  # 0 .. 1
    lip_tint: float
    glasses: int  # 0 none, 1 round, 2 square
    earrings: int
    beard: float  # 0 none .. 1 full stubble
    light_az: float  # light azimuth, degrees
    light_el: float  # elevation 0..1
    shirt_hue: float
    bg_hue: float
    bg_hue2: float
    bg_value: float

    def labels(self) -> np.ndarray:
        """The :data:`ATTRIBUTES` vector (float32)."""
        hair = 1.0 if self.hair_style == HAIR_STYLES.index("bald") else self.hair_color
        if self.hair_tint == 2:
            hair = 0.75
        return np.array(
            [
                self.yaw,
                self.roll / ROLL_MAX,
                self.skin_tone,
                hair,
                self.smile,
                self.eye_size,
                self.mouth_open,
                float(self.glasses > 0),
                (self.head_w - 0.235) / 0.085,
            ],
            np.float32,
        )

    def as_vector(self) -> np.ndarray:
        """Every parameter, in field order (float32): the full parametric description."""
        return np.array(astuple(self), np.float32)


PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(FaceParams))


def sample_params(rng: np.random.Generator) -> FaceParams:
    """Draw a face. The ranges are wide on purpose: a generator trained on these renders should
    see many skin tones, hair styles and colours, poses, expressions and backgrounds."""
    u = rng.uniform
    head_w = u(0.235, 0.32)  # the head fills about half the frame, close to an FFHQ-aligned crop
    smile = float(np.clip(rng.normal(0.15, 0.5), -0.8, 1.0))
    return FaceParams(
        cx=0.5 + rng.normal(0, 0.025),
        cy=0.5 + rng.normal(0, 0.02),
        head_w=head_w,
        head_h=head_w * u(1.18, 1.42),
        jaw=u(0, 1),
        yaw=float(np.clip(rng.normal(0, 0.45), -1, 1)),
        roll=float(np.clip(rng.normal(0, ROLL_STD), -ROLL_MAX, ROLL_MAX)),
        skin_tone=u(0, 1),
        hair_style=int(rng.choice(len(HAIR_STYLES), p=[0.27, 0.25, 0.18, 0.12, 0.06, 0.12])),
        hair_color=u(0, 1),
        hair_tint=int(rng.choice(3, p=[0.84, 0.08, 0.08])),
        hair_volume=u(0, 1),
        fringe=u(0, 1),
        eye_size=u(0, 1),
        eye_gap=u(0, 1),
        iris=int(rng.integers(len(_IRIS))),
        brow_tilt=u(-1, 1),
        brow_weight=u(0, 1),
        nose_len=u(0, 1),
        mouth_w=u(0, 1),
        smile=smile,
        mouth_open=float(u(0, 1) if smile > 0.45 and u() < 0.6 else 0.0),
        lip_tint=u(0, 1),
        glasses=int(rng.choice(3, p=[0.78, 0.11, 0.11])),
        earrings=int(u() < 0.15),
        beard=float(u(0.2, 1) if u() < 0.15 else 0.0),
        light_az=u(-70, 70),
        light_el=u(0.2, 0.8),
        shirt_hue=u(0, 1),
        bg_hue=u(0, 1),
        bg_hue2=u(0, 1),
        bg_value=u(0.25, 0.95),
    )


def params_for_seed(seed: int) -> FaceParams:
    """The face of ``seed`` (independent of domain and size)."""
    return sample_params(np.random.default_rng([int(seed), 0x5EED]))


# ---------------------------------------------------------------------------------------- drawing
def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return int(r * 255), int(g * 255), int(b * 255)


def _rgb(c: np.ndarray | tuple) -> tuple[int, int, int]:
    a = np.clip(np.asarray(c, np.float32), 0, 255)
    return int(a[0]), int(a[1]), int(a[2])


def _ellipse_pts(x: float, y: float, rx: float, ry: float, n: int = 28, a0: float = 0.0, a1: float = 2 * math.pi) -> np.ndarray:
    t = np.linspace(a0, a1, n, endpoint=a1 - a0 < 2 * math.pi - 1e-6)
    return np.stack([x + rx * np.cos(t), y + ry * np.sin(t)], 1)


class _Canvas:
    """Draws in the face's frame (origin at the head centre, rolled) onto an RGBA layer."""

    def __init__(self, p: FaceParams, px: int):
        self.p, self.px = p, px
        self.im = Image.new("RGBA", (px, px), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.im)
        r = math.radians(p.roll)
        self.cos, self.sin = math.cos(r), math.sin(r)

    def to_px(self, pts: np.ndarray) -> list[tuple[float, float]]:
        x, y = pts[:, 0], pts[:, 1]
        xr = self.p.cx + x * self.cos - y * self.sin
        yr = self.p.cy + x * self.sin + y * self.cos
        return list(zip((xr * self.px).tolist(), (yr * self.px).tolist()))

    def poly(self, pts: np.ndarray, fill, outline=None, width: float = 0.0) -> None:
        self.draw.polygon(self.to_px(pts), fill=fill)
        if outline is not None and width > 0:
            self.line(np.concatenate([pts, pts[:1]]), outline, width)

    def line(self, pts: np.ndarray, fill, width: float) -> None:
        w = max(1, int(round(width * self.px)))
        self.draw.line(self.to_px(pts), fill=fill, width=w, joint="curve")


def _mouth_curves(p: FaceParams, mx: float, my: float, half: float, cartoon: bool) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lip curves (left to right) of a mouth centred at (mx, my)."""
    t = np.linspace(-1, 1, 15)
    bend = p.smile * half * 0.55
    centre_lift = bend * (1 - t**2)  # positive smile: corners up relative to the centre
    open_h = p.mouth_open * half * (0.9 if cartoon else 0.7)
    upper = np.stack([mx + t * half, my - centre_lift * 0.3 - half * 0.12 * (1 - t**2) ** 0.5], 1)
    lower = np.stack([mx + t * half, my + (-centre_lift * 0.3) + (half * 0.18 + open_h) * (1 - t**2) ** 0.7 + bend * 0.35 * (1 - t**2)], 1)
    corner_lift = bend * 0.6
    upper[:, 1] -= corner_lift * t**2
    lower[:, 1] -= corner_lift * t**2
    return upper, lower


def _draw_face(p: FaceParams, domain: str, px: int, rng: np.random.Generator) -> Image.Image:
    cartoon = domain == "cartoon"
    c = _Canvas(p, px)
    ink = (28, 22, 24, 255)
    ow = 0.011 if cartoon else 0.0  # outline width (fraction of the image)
    a, b = p.head_w, p.head_h
    skin = _lerp_palette(_SKIN, p.skin_tone)
    hair = _lerp_palette(_HAIR, p.hair_color)
    if p.hair_tint == 1:
        hair = 0.5 * hair + 0.5 * _RED_HAIR * (0.6 + 0.6 * p.hair_color)
    elif p.hair_tint == 2:
        hair = _GREY_HAIR * (0.8 + 0.3 * p.hair_color)
    if cartoon:  # posterised, more saturated palette
        skin = np.round(skin / 24) * 24
        mean = hair.mean()
        hair = np.round((mean + (hair - mean) * 1.3) / 24) * 24
    skin_c, hair_c = _rgb(skin) + (255,), _rgb(hair) + (255,)
    style = HAIR_STYLES[p.hair_style]
    dx = p.yaw * YAW_SHIFT * a  # sideways shift of the features
    vol = 1.0 + 0.25 * p.hair_volume

    # ---- behind the head: back hair, shirt, neck, ears
    if style in ("long", "bob", "curly", "ponytail"):
        if style == "long":
            pts = np.concatenate(
                [
                    _ellipse_pts(-dx * 0.3, -0.1 * b, a * 1.2 * vol, b * 1.05, 30, math.pi, 2 * math.pi),
                    [[a * 1.25 * vol, b * 1.35], [-a * 1.25 * vol, b * 1.35]],
                ]
            )
        elif style == "bob":
            pts = np.concatenate(
                [
                    _ellipse_pts(-dx * 0.3, -0.1 * b, a * 1.22 * vol, b * 1.05, 30, math.pi, 2 * math.pi),
                    [[a * 1.2 * vol, b * 0.75], [-a * 1.2 * vol, b * 0.75]],
                ]
            )
        elif style == "curly":
            pts = _ellipse_pts(-dx * 0.3, -0.25 * b, a * 1.5 * vol, b * 1.15 * vol, 40)
            wob = 1 + 0.06 * np.sin(np.linspace(0, 2 * math.pi * 11, len(pts)))
            pts = np.stack([pts[:, 0] * wob + dx * 0.3 * (wob - 1), -0.25 * b + (pts[:, 1] + 0.25 * b) * wob], 1)
        else:  # ponytail: a tail behind one side
            side = 1 if p.hair_color > 0.5 else -1
            pts = _ellipse_pts(side * a * 1.05, 0.2 * b, a * 0.35, b * 0.75, 20)
        c.poly(pts, hair_c, ink, ow)
    shirt = _hsv(p.shirt_hue, 0.55 if cartoon else 0.4, 0.75 if cartoon else 0.55) + (255,)
    c.poly(
        np.concatenate([_ellipse_pts(0, b * 1.75, a * 2.3, b * 0.75, 30, math.pi, 2 * math.pi), [[a * 2.3, 1.0], [-a * 2.3, 1.0]]]),
        shirt,
        ink,
        ow,
    )
    neck_c = _rgb(skin * 0.82) + (255,)
    c.poly(np.array([[-a * 0.42, b * 0.6], [a * 0.42, b * 0.6], [a * 0.5, b * 1.35], [-a * 0.5, b * 1.35]]), neck_c, ink, ow)
    for side in (-1, 1):
        ear_x = side * a * (0.98 - 0.12 * side * p.yaw)
        c.poly(_ellipse_pts(ear_x, -0.02 * b, a * 0.16, b * 0.2, 16), skin_c, ink, ow)
        if p.earrings:
            c.poly(_ellipse_pts(ear_x, 0.2 * b, a * 0.05, a * 0.05, 10), (230, 190, 60, 255), ink, ow * 0.6)

    # ---- head: an ellipse whose lower half narrows toward the chin
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    hx, hy = a * np.cos(t), b * np.sin(t)
    lower = np.sin(t) > 0
    hx[lower] *= 1 - 0.22 * p.jaw * np.sin(t[lower]) ** 2
    head = np.stack([hx, hy], 1)
    c.poly(head, skin_c, ink, ow)
    if p.beard > 0 and not cartoon:
        jaw = head[lower & (np.abs(np.cos(t)) < 0.95)]
        beard_c = _rgb(skin * (1 - 0.35 * p.beard) + hair * 0.35 * p.beard) + (255,)
        c.poly(np.concatenate([jaw, [[-a * 0.6, b * 0.35], [a * 0.6, b * 0.35]]]), beard_c)

    # ---- front hair
    if style != "bald":
        hl = -b * (0.42 + 0.2 * (1 - p.fringe))  # hairline height
        cap = np.concatenate([_ellipse_pts(-dx * 0.2, -0.08 * b, a * 1.08 * vol, b * 1.02 * (0.98 + 0.07 * vol), 30, math.pi, 2 * math.pi)])
        parting = 0.3 * a * (1 if p.hair_color < 0.5 else -1)
        fringe = np.array(
            [[a * 1.02, -0.05 * b], [a * 0.75, hl], [parting, hl - 0.08 * b * (1 - p.fringe)], [-a * 0.75, hl], [-a * 1.02, -0.05 * b]]
        )
        c.poly(np.concatenate([cap, fringe]), hair_c, ink, ow)

    # ---- eyes
    ey = -0.1 * b
    gap = a * (0.36 + 0.1 * p.eye_gap)
    erx = a * (0.13 + 0.06 * p.eye_size) * (1.45 if cartoon else 1.0)
    ery = erx * (0.8 if cartoon else 0.58)
    iris_c = _rgb(_IRIS[p.iris] * (1.15 if cartoon else 1.0)) + (255,)
    for side in (-1, 1):
        squash = 1 - 0.35 * max(0.0, side * p.yaw)  # the far eye looks narrower
        ex = side * gap + dx
        rx = erx * squash
        c.poly(_ellipse_pts(ex, ey, rx, ery, 22), (250, 250, 248, 255), ink, ow * 0.8)
        ir = min(ery * (0.95 if cartoon else 0.9), rx * 0.7)
        ix = ex + p.yaw * rx * 0.25
        c.poly(_ellipse_pts(ix, ey, ir * 0.85, ir, 16), iris_c)
        c.poly(_ellipse_pts(ix, ey, ir * 0.45, ir * 0.5, 12), (12, 10, 10, 255))
        if cartoon:
            c.poly(_ellipse_pts(ix - ir * 0.3, ey - ir * 0.35, ir * 0.28, ir * 0.28, 10), (255, 255, 255, 255))
        lid = _ellipse_pts(ex, ey + ery * 0.1, rx * 1.05, ery * 1.1, 12, math.pi * 1.05, math.pi * 1.95)
        c.line(lid, ink if cartoon else _rgb(skin * 0.35) + (255,), 0.012 if cartoon else 0.008)
        # brow
        by = ey - ery - b * (0.1 + 0.04 * p.eye_size)
        inner, outer = ex - side * rx * 0.9, ex + side * rx * 1.2
        tilt = p.brow_tilt * 0.05 * b
        brow = np.array([[inner, by + tilt], [(inner + outer) / 2, by - 0.035 * b], [outer, by - tilt * 0.3 + 0.01 * b]])
        brow_c = _rgb(hair * 0.75 if style != "bald" else skin * 0.45) + (255,)
        c.line(brow, ink if cartoon else brow_c, 0.012 + 0.012 * p.brow_weight)

    # ---- nose
    ny = ey + b * (0.28 + 0.14 * p.nose_len)
    nx = dx * 1.35
    if cartoon:
        c.line(
            np.array([[nx - a * 0.02, ey + b * 0.15], [nx + a * 0.06 * (1 if p.yaw >= 0 else -1), ny], [nx - a * 0.07, ny + b * 0.02]]),
            ink,
            0.009,
        )
    else:
        shade = _rgb(skin * 0.72) + (255,)
        c.poly(
            np.array([[nx - a * 0.03, ey + b * 0.1], [nx + a * 0.02, ey + b * 0.1], [nx + a * 0.13, ny], [nx - a * 0.13, ny]]),
            _rgb(skin * 0.9) + (255,),
        )
        for s in (-1, 1):
            c.poly(_ellipse_pts(nx + s * a * 0.08, ny - b * 0.01, a * 0.045, b * 0.022, 10), shade)

    # ---- mouth
    my = ny + b * (0.2 + 0.08 * p.nose_len * 0)
    my = min(my, b * 0.62)
    half = a * (0.28 + 0.14 * p.mouth_w) * (1 - 0.15 * abs(p.yaw))
    up, lo = _mouth_curves(p, dx * 1.1, my, half, cartoon)
    lip = _rgb(skin * 0.55 + np.array([180, 40, 60], np.float32) * (0.25 + 0.25 * p.lip_tint)) + (255,)
    c.poly(np.concatenate([up, lo[::-1]]), lip, ink, ow * 0.8)
    if p.mouth_open > 0.05:
        inner_up = up.copy()
        inner_up[:, 1] += (lo[:, 1] - up[:, 1]) * 0.3
        inner_lo = lo.copy()
        inner_lo[:, 1] -= (lo[:, 1] - up[:, 1]) * 0.25
        c.poly(np.concatenate([inner_up[2:-2], inner_lo[2:-2][::-1]]), (60, 18, 24, 255))
        teeth = inner_up[3:-3].copy()
        c.poly(np.concatenate([teeth, (teeth + [0, (lo[7, 1] - up[7, 1]) * 0.22])[::-1]]), (245, 242, 235, 255))
    elif not cartoon:
        c.line(np.concatenate([up[:1], (up + lo)[3:-3] / 2, up[-1:]]), _rgb(skin * 0.3) + (255,), 0.006)
    if cartoon:
        for side in (-1, 1):
            c.poly(
                _ellipse_pts(side * gap * 1.15 + dx, ey + b * 0.36, a * 0.13, b * 0.05, 14),
                _rgb(skin * 0.7 + np.array([255, 90, 100]) * 0.3) + (255,),
            )

    # ---- glasses
    if p.glasses:
        frame = (30, 30, 34, 255) if p.shirt_hue < 0.6 else (120, 70, 40, 255)
        for side in (-1, 1):
            ex = side * gap + dx
            rx, ry = erx * 1.45, erx * 1.15
            if p.glasses == 1:
                pts = _ellipse_pts(ex, ey, rx, ry, 24)
            else:
                pts = np.array([[ex - rx, ey - ry * 0.8], [ex + rx, ey - ry * 0.8], [ex + rx * 0.9, ey + ry], [ex - rx * 0.9, ey + ry]])
            c.line(np.concatenate([pts, pts[:1]]), frame, 0.012 if cartoon else 0.009)
        c.line(np.array([[-gap + dx + erx * 1.4, ey], [gap + dx - erx * 1.4, ey]]), frame, 0.01)
    return c.im


@functools.lru_cache(maxsize=8)
def _grid(px: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1): ``(y, x)``, each [px, px] (read-only, shared)."""
    yy, xx = (np.mgrid[0:px, 0:px].astype(np.float32) + 0.5) / px
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _background(p: FaceParams, domain: str, px: int, rng: np.random.Generator) -> np.ndarray:
    if domain == "cartoon":
        col = np.array(_hsv(p.bg_hue, 0.35, 0.6 + 0.35 * p.bg_value), np.float32)
        img = np.broadcast_to(col, (px, px, 3)).copy()
        if p.bg_hue2 > 0.5:  # a second flat band
            img[int(px * (0.3 + 0.4 * p.bg_hue2)) :, :] = np.array(_hsv(p.bg_hue2, 0.35, 0.5 + 0.3 * p.bg_value), np.float32)
        return img
    c1 = np.array(_hsv(p.bg_hue, 0.3, p.bg_value), np.float32)
    c2 = np.array(_hsv(p.bg_hue2, 0.25, 0.3 + 0.6 * (1 - p.bg_value)), np.float32)
    ang = p.bg_hue2 * 2 * math.pi
    yy, xx = _grid(px)
    t = np.clip(0.5 + (xx - 0.5) * math.cos(ang) + (yy - 0.5) * math.sin(ang), 0, 1)[..., None]
    img = c1 * (1 - t) + c2 * t
    # soft out-of-focus blobs
    blobs = rng.uniform(0, 1, (4, 4)).astype(np.float32)
    for bx, by, br, bv in blobs:
        d2 = ((xx - bx) ** 2 + (yy - by) ** 2) / (0.02 + 0.08 * br)
        img += (np.exp(-d2)[..., None] * (bv - 0.5) * 60).astype(np.float32)
    return img


def _lowfreq_noise(rng: np.random.Generator, px: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    im = Image.fromarray(small, mode="F").resize((px, px), Image.BICUBIC)
    return np.asarray(im, np.float32)


def _shade_photo(p: FaceParams, layer: np.ndarray, px: int, rng: np.random.Generator) -> np.ndarray:
    """Lambert light on an ellipsoid around the head (and a dimmer one for the body), plus skin texture."""
    yy, xx = _grid(px)
    r = math.radians(p.roll)
    u = ((xx - p.cx) * math.cos(r) + (yy - p.cy) * math.sin(r)) / (p.head_w * 1.15)
    v = (-(xx - p.cx) * math.sin(r) + (yy - p.cy) * math.cos(r)) / (p.head_h * 1.1)
    r2 = u * u + v * v
    outside = np.sqrt(np.maximum(r2, 1.0))  # beyond the ellipsoid (hair, ears) the normal stays on its rim
    u, v = u / outside, v / outside
    nz = np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, 1.0))
    az, el = math.radians(p.light_az), p.light_el
    lx, ly, lz = math.sin(az) * (1 - el), -0.4 * (1 - el), 0.6 + el
    norm = math.sqrt(lx * lx + ly * ly + lz * lz)
    lam = np.clip((u * lx + v * ly + nz * lz) / norm, 0, 1)
    shade = 0.5 + 0.62 * lam
    tex = 1.0 + 0.035 * _lowfreq_noise(rng, px, 12) + 0.02 * _lowfreq_noise(rng, px, 40)
    out = layer.copy()
    out[..., :3] *= (shade * tex)[..., None]
    # a specular glint on the forehead/cheek
    spec = np.exp(-((u - 0.45 * lx / norm) ** 2 + (v + 0.5 + 0.3 * ly) ** 2) / 0.05) * 28 * el
    out[..., :3] += spec[..., None]
    return out


def render_params(p: FaceParams, domain: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render ``p`` as an ``[size, size, 3]`` uint8 image; ``rng`` drives texture and noise only."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    if not 16 <= size <= 1024:
        raise ValueError(f"size must be in [16, 1024], got {size}")
    # Drawn opaque on transparent black at twice the size, then box-reduced: the colour channels are
    # then premultiplied by coverage, so compositing is ``layer + background * (1 - alpha)``.
    layer = np.asarray(_draw_face(p, domain, 2 * size, rng).reduce(2), np.float32)
    bg = _background(p, domain, size, rng)
    if domain == "photo":
        layer = _shade_photo(p, layer, size, rng)
    img = layer[..., :3] + bg * (1 - layer[..., 3:4] / 255.0)
    im = Image.fromarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    if domain == "photo":
        radius = size / 256 * rng.uniform(0.6, 1.6)
        im = im.filter(ImageFilter.GaussianBlur(radius))
        arr = np.asarray(im, np.float32)
        arr *= rng.uniform(0.94, 1.06, 3).astype(np.float32)  # white balance
        arr += rng.normal(0, rng.uniform(0.5, 2.0), arr.shape).astype(np.float32)
        return np.clip(arr + 0.5, 0, 255).astype(np.uint8)
    return np.asarray(im.convert("RGB").quantize(colors=24, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB"))


def render_face(seed: int, domain: str = "photo", size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(image [size, size, 3] uint8, labels [len(ATTRIBUTES)] float32)`` for the face of ``seed``."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, got {domain!r}")
    p = params_for_seed(seed)
    rng = np.random.default_rng([int(seed), DOMAINS.index(domain) + 1, size])
    return render_params(p, domain, size, rng), p.labels()
