"""The fake scene's static background (sky, buildings, pavements, road with markings), drawn once.

Values are reflectance codes (see :mod:`edged_sim.exposure`), ``(H, W, 3) uint8`` BGR. The layout
matches :data:`edged_sim.scene.PATHS` (reference rows for a 720 px high frame, scaled to the height).
"""

from __future__ import annotations

import cv2
import numpy as np

from edged_sim.scene import REFERENCE_HEIGHT

BUILDINGS_BOTTOM = 285
FAR_KERB = (318, 324)
ROAD = (324, 686)
NEAR_KERB = (686, 692)
LANE_MARKINGS = ((410, "dashed", 3.0), (492, "double", 3.5), (610, "dashed", 6.0))
"""(reference row, style, thickness in reference px): between lane0/1, the centre line, lane2/3."""

SKY_TOP = (228, 188, 150)
SKY_HORIZON = (238, 224, 208)
BUILDING_COLOURS = ((118, 128, 150), (92, 100, 122), (160, 164, 170), (70, 92, 150), (140, 150, 168), (104, 104, 112))
PAVEMENT = (158, 160, 158)
KERB = (188, 190, 190)
ASPHALT = (80, 80, 82)
MARKING = (212, 214, 214)
COVER_CODE = 4
"""Reflectance code of a covered lens (a hand or cap in front of it): ~1/10000 of white."""


def render_background(width: int, height: int, seed: int) -> np.ndarray:
    """The static scene for a ``width x height`` frame; the seed places buildings and texture."""
    s = height / REFERENCE_HEIGHT
    rng = np.random.default_rng([seed, 4])
    img = np.empty((height, width, 3), np.uint8)

    def row(v: float) -> int:
        return min(height, max(0, round(v * s)))

    horizon = row(BUILDINGS_BOTTOM)
    t = np.linspace(0.0, 1.0, max(horizon, 1), dtype=np.float32)[:, None]
    sky = (1 - t) * np.array(SKY_TOP, np.float32) + t * np.array(SKY_HORIZON, np.float32)
    img[:horizon] = np.round(sky[:horizon, None, :]).astype(np.uint8)
    _buildings(img, rng, s, horizon)
    _trees(img, rng, s, horizon)

    img[horizon : row(FAR_KERB[0])] = PAVEMENT
    img[row(FAR_KERB[0]) : row(FAR_KERB[1])] = KERB
    road_top, road_bottom = row(ROAD[0]), row(ROAD[1])
    _asphalt(img, rng, road_top, road_bottom)
    for ref_y, style, thick in LANE_MARKINGS:
        _marking(img, s, ref_y, style, thick)
    img[row(NEAR_KERB[0]) : row(NEAR_KERB[1])] = KERB
    img[row(NEAR_KERB[1]) :] = PAVEMENT
    _slab_joints(img, s, horizon, row(FAR_KERB[0]), 40 * s)
    _slab_joints(img, s, row(NEAR_KERB[1]), height, 120 * s)
    _lamp_posts(img, rng, s)
    return img


def cover_frame(width: int, height: int) -> np.ndarray:
    """What a covered lens sees: a nearly uniform, very dark field."""
    return np.full((height, width, 3), COVER_CODE, np.uint8)


def _buildings(img: np.ndarray, rng: np.random.Generator, s: float, bottom: int) -> None:
    width = img.shape[1]
    x = -float(rng.uniform(0, 80)) * s
    while x < width:
        bw = float(rng.uniform(90, 230)) * s
        bh = float(rng.uniform(80, 235)) * s
        colour = BUILDING_COLOURS[int(rng.integers(len(BUILDING_COLOURS)))]
        x1, x2, top = round(x), round(x + bw), round(bottom - bh)
        cv2.rectangle(img, (x1, top), (x2, bottom), colour, -1)
        cv2.rectangle(img, (x1, top), (x2, top + max(1, round(5 * s))), tuple(int(c * 0.7) for c in colour), -1)
        wx, wy = max(2, round(10 * s)), max(2, round(13 * s))
        sx, sy = max(wx + 1, round(19 * s)), max(wy + 1, round(24 * s))
        for yy in range(top + round(14 * s), bottom - wy - round(6 * s), sy):
            for xx in range(x1 + round(8 * s), x2 - wx - round(4 * s), sx):
                lit = rng.random() < 0.15
                win = (150, 178, 196) if lit else (78, 66, 58)
                cv2.rectangle(img, (xx, yy), (xx + wx, yy + wy), win, -1)
        x += bw + float(rng.uniform(0, 40)) * s


def _trees(img: np.ndarray, rng: np.random.Generator, s: float, bottom: int) -> None:
    width = img.shape[1]
    for _ in range(max(1, round(width / (260 * s)))):
        cx = float(rng.uniform(0, width))
        r = float(rng.uniform(22, 40)) * s
        trunk = (40, 62, 80)
        cv2.rectangle(img, (round(cx - 3 * s), round(bottom - 40 * s)), (round(cx + 3 * s), bottom), trunk, -1)
        for dx, dy, k in ((0, 0, 1.0), (-0.5, 0.3, 0.8), (0.5, 0.25, 0.85)):
            centre = (round(cx + dx * r), round(bottom - 40 * s - r * (0.6 - dy)))
            shade = (int(48 * k), int(112 * k), int(62 * k))
            cv2.circle(img, centre, max(1, round(r * 0.75)), shade, -1)


def _asphalt(img: np.ndarray, rng: np.random.Generator, top: int, bottom: int) -> None:
    h, w = bottom - top, img.shape[1]
    if h <= 0:
        return
    grain: np.ndarray = rng.normal(0.0, 6.0, size=(h, w)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (3, 3), 0.8)
    haze = np.linspace(8.0, 0.0, h, dtype=np.float32)[:, None]
    base = np.array(ASPHALT, np.float32)
    road = base[None, None, :] + (grain + haze)[:, :, None]
    img[top:bottom] = np.clip(np.round(road), 0, 255).astype(np.uint8)


def _marking(img: np.ndarray, s: float, ref_y: float, style: str, thick: float) -> None:
    width = img.shape[1]
    y = round(ref_y * s)
    t = max(1, round(thick * s))
    if style == "double":
        gap = max(1, round(4 * s))
        for yy in (y - gap - t, y + gap):
            img[max(0, yy) : yy + t] = MARKING
        return
    dash, space = thick * 16 * s, thick * 13 * s
    x = 0.0
    while x < width:
        img[max(0, y - t // 2) : y - t // 2 + t, round(x) : round(x + dash)] = MARKING
        x += dash + space


def _slab_joints(img: np.ndarray, s: float, top: int, bottom: int, spacing: float) -> None:
    if bottom <= top or spacing < 2:
        return
    joint = tuple(int(c * 0.8) for c in PAVEMENT)
    x = spacing / 2
    while x < img.shape[1]:
        img[top:bottom, round(x)] = joint
        x += spacing


def _lamp_posts(img: np.ndarray, rng: np.random.Generator, s: float) -> None:
    width = img.shape[1]
    x = float(rng.uniform(60, 200)) * s
    base, top = round(312 * s), round(170 * s)
    while x < width:
        xi = round(x)
        cv2.line(img, (xi, base), (xi, top), (60, 62, 64), max(1, round(4 * s)))
        cv2.line(img, (xi, top), (xi + round(22 * s), top + round(4 * s)), (60, 62, 64), max(1, round(3 * s)))
        lamp = (max(1, round(8 * s)), max(1, round(3 * s)))
        cv2.ellipse(img, (xi + round(24 * s), top + round(6 * s)), lamp, 0, 0, 360, (190, 200, 205), -1)
        x += float(rng.uniform(320, 480)) * s
