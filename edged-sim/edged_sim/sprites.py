"""Pictures of the fake scene's actors, drawn once per actor (and walking pose), blitted per frame.

A sprite is premultiplied colour + alpha in reflectance codes (see :mod:`edged_sim.exposure`) and a
label plane: 1 where the actor's body is drawn, 2 where its *part* is (a vehicle's plate, a
person's face). A pixel belongs to the actor when its alpha is >= 0.5, to the part when the part's
coverage is also >= 0.5; ground-truth boxes are computed from these planes, so they match what is
drawn by construction, motion blur included (:func:`finish` blurs colour, alpha and coverage with
the same kernel).

Silhouettes are drawn at 2x and shrunk (anti-aliased edges); the plate (real TrueType text,
perspective-warped) and the face photograph are composited at 1x so they stay sharp.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edged_sim.scene import PERSON_HEAD_RATIO, PLATE_SIZE_M, VEHICLE_DIMS_M, Actor

FACES_DIR = Path(__file__).resolve().parent / "assets" / "faces"
SUPERSAMPLE_BELOW = 240
"""Sprites less than this many px high are drawn at 2x and shrunk (anti-aliased silhouettes);
larger ones at 1x, where a 1 px stair step is invisible and drawing 4x the pixels is not free."""
WHEEL_RADIUS_M = {"car": 0.33, "truck": 0.5, "bus": 0.5}
GLASS = (60, 52, 46)
GLASS_SIDE = (72, 64, 58)
TYRE = (26, 26, 28)
HUB = (150, 150, 155)
DARK = (46, 46, 48)
REAR_LIGHT = (36, 36, 196)
HEAD_LIGHT = (214, 232, 238)
REAR_PLATE = (30, 200, 250)
"""UK rear plates are yellow, front plates white."""
FRONT_PLATE = (236, 236, 236)
PLATE_TEXT = (18, 18, 18)


# ---------------------------------------------------------------------------------------- sprites
@dataclass(slots=True)
class Layers:
    """An actor picture before blur: premultiplied colour, alpha and the part's coverage."""

    premult: np.ndarray
    """``(h, w, 3) float32``: colour x alpha, reflectance codes."""
    alpha: np.ndarray
    """``(h, w) float32`` in 0..1."""
    part: np.ndarray
    """``(h, w) float32`` in 0..1: coverage of the plate or face."""


@dataclass(slots=True)
class Sprite:
    """An actor picture ready to blit (possibly motion-blurred)."""

    premult: np.ndarray
    """``(h, w, 3) uint8``."""
    inv_alpha: np.ndarray
    """``(h, w, 3) uint8``: ``255 * (1 - alpha)``."""
    labels: np.ndarray
    """``(h, w) uint8``: 0 nothing, 1 body, 2 part."""
    pad: int
    """Columns added on each side by the blur; the unblurred picture starts at column ``pad``."""
    box: tuple[int, int, int, int]
    """Local ``x1, y1, x2, y2`` (exclusive) of ``labels > 0``."""
    part_box: tuple[int, int, int, int] | None
    count: int
    """Pixels with ``labels > 0``."""
    part_count: int


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x1, y1, x2, y2)`` around the true pixels of ``mask`` (exclusive ends), or ``None`` if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def finish(layers: Layers, blur_len: int) -> Sprite:
    """Blur horizontally by ``blur_len`` px (motion during the exposure; <2 means none) and pack."""
    premult, alpha, part = layers.premult, layers.alpha, layers.part
    pad = 0
    if blur_len >= 2:
        pad = blur_len // 2 + 1
        widths = ((0, 0), (pad, pad))
        premult = np.pad(premult, (*widths, (0, 0)))
        alpha = np.pad(alpha, widths)
        part = np.pad(part, widths)
        kernel = (blur_len, 1)
        premult = cv2.blur(premult, kernel, borderType=cv2.BORDER_REPLICATE)
        alpha = cv2.blur(alpha, kernel, borderType=cv2.BORDER_REPLICATE)
        part = cv2.blur(part, kernel, borderType=cv2.BORDER_REPLICATE)
    body = alpha >= 0.5
    labels = body.astype(np.uint8)
    labels[body & (part >= 0.5)] = 2
    inv = np.round(255.0 * (1.0 - np.clip(alpha, 0.0, 1.0))).astype(np.uint8)
    box = mask_bbox(body) or (0, 0, 0, 0)
    return Sprite(
        premult=np.round(np.clip(premult, 0, 255)).astype(np.uint8),
        inv_alpha=np.repeat(inv[:, :, None], 3, axis=2),
        labels=labels,
        pad=pad,
        box=box,
        part_box=mask_bbox(labels == 2),
        count=int(body.sum()),
        part_count=int((labels == 2).sum()),
    )


def paste(layers: Layers, colour: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Composite a ``uint8`` BGR picture with ``float`` alpha (0..1) over ``layers`` at ``(x, y)``;
    it becomes the part (its alpha is the part's coverage). Clipped to the sprite."""
    h, w = alpha.shape
    H, W = layers.alpha.shape
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 >= x2 or y1 >= y2:
        return
    a = alpha[y1 - y : y2 - y, x1 - x : x2 - x]
    c = colour[y1 - y : y2 - y, x1 - x : x2 - x].astype(np.float32)
    region = (slice(y1, y2), slice(x1, x2))
    layers.premult[region] = layers.premult[region] * (1 - a[:, :, None]) + c * a[:, :, None]
    layers.alpha[region] = layers.alpha[region] * (1 - a) + a
    layers.part[region] = np.maximum(layers.part[region], a)


class Painter:
    """Draws filled shapes into colour and mask planes, supersampled for small sprites
    (coordinates always in 1x px)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.k = k = 2 if height < SUPERSAMPLE_BELOW else 1
        self.img = np.zeros((height * k, width * k, 3), np.uint8)
        self.mask = np.zeros((height * k, width * k), np.uint8)

    def _fix(self, pts) -> np.ndarray:
        return np.round(np.asarray(pts, np.float64) * self.k * 16).astype(np.int32).reshape(-1, 1, 2)

    def poly(self, pts, colour, body: bool = True) -> None:
        fixed = self._fix(pts)
        cv2.fillPoly(self.img, [fixed], colour, cv2.LINE_8, shift=4)
        if body:
            cv2.fillPoly(self.mask, [fixed], 255, cv2.LINE_8, shift=4)

    def rect(self, x1, y1, x2, y2, colour, body: bool = True) -> None:
        self.poly([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], colour, body)

    def ellipse(self, cx, cy, ax, ay, colour, body: bool = True) -> None:
        k = self.k * 16
        centre = (round(cx * k), round(cy * k))
        axes = (max(k // 2, round(ax * k)), max(k // 2, round(ay * k)))  # at least 1 px across
        cv2.ellipse(self.img, centre, axes, 0, 0, 360, colour, -1, cv2.LINE_8, shift=4)
        if body:
            cv2.ellipse(self.mask, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_8, shift=4)

    def line(self, p1, p2, colour, thickness: float, body: bool = True) -> None:
        k = self.k * 16
        a = (round(p1[0] * k), round(p1[1] * k))
        b = (round(p2[0] * k), round(p2[1] * k))
        t = max(self.k, round(thickness * self.k))  # at least 1 px thick
        cv2.line(self.img, a, b, colour, t, cv2.LINE_8, shift=4)
        if body:
            cv2.line(self.mask, a, b, 255, t, cv2.LINE_8, shift=4)

    def layers(self) -> Layers:
        """Shrink to 1x: colour becomes premultiplied by the (now fractional) alpha."""
        img = cv2.bitwise_and(self.img, self.img, mask=self.mask)
        if self.k == 1:
            alpha = self.mask.astype(np.float32) / 255.0
            return Layers(img.astype(np.float32), alpha, np.zeros(self.mask.shape, np.float32))
        size = (self.width, self.height)
        premult = cv2.resize(img, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = cv2.resize(self.mask, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        return Layers(premult, alpha, np.zeros_like(alpha))


def shade(colour: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(c * k)))) for c in colour)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- plates
@lru_cache(maxsize=64)
def plate_font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("Pillow was built without FreeType: plates need its bundled TrueType font")
    return font


def render_plate(text: str, rear: bool, width: int, height: int) -> np.ndarray:
    """A licence plate as ``(height, width, 3) uint8`` BGR: text in Pillow's bundled TrueType font
    (Aileron) drawn at 4x the target size (at most 520x111, a real plate's mm) and shrunk."""
    big_w = min(520, max(104, 4 * width))
    k = big_w / 520
    big_h = round(111 * k)
    bg = REAR_PLATE if rear else FRONT_PLATE
    image = Image.new("RGB", (big_w, big_h), bg[::-1])
    draw = ImageDraw.Draw(image)
    edge = max(1, round(2 * k))
    draw.rounded_rectangle(
        (edge, edge, big_w - 1 - edge, big_h - 1 - edge), radius=max(1, round(10 * k)), outline=PLATE_TEXT[::-1],
        width=max(1, round(4 * k)),
    )
    font = plate_font(max(8, round(92 * k)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    x = (big_w - (right - left)) / 2 - left
    y = (big_h - (bottom - top)) / 2 - top
    draw.text((x, y), text, font=font, fill=PLATE_TEXT[::-1])
    bgr = np.asarray(image)[:, :, ::-1]
    return cv2.resize(bgr, (max(2, width), max(2, height)), interpolation=cv2.INTER_AREA)


def paste_plate(layers: Layers, plate: np.ndarray, centre: tuple[float, float], tilt: float, squeeze: float) -> None:
    """Warp ``plate`` to a slightly rotated, perspective-foreshortened quad centred at ``centre``
    (its right edge ``squeeze`` x as tall as the left) and paste it as the part."""
    ph, pw = plate.shape[:2]
    cx, cy = centre
    half = np.array(
        [(-pw / 2, -ph / 2), (pw / 2, -ph / 2 * squeeze), (pw / 2, ph / 2 * squeeze), (-pw / 2, ph / 2)],
        np.float64,
    )
    rot = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    quad = half @ rot.T + (cx, cy)
    x0, y0 = math.floor(quad[:, 0].min()) - 1, math.floor(quad[:, 1].min()) - 1
    x1, y1 = math.ceil(quad[:, 0].max()) + 1, math.ceil(quad[:, 1].max()) + 1
    src = np.array([(0, 0), (pw, 0), (pw, ph), (0, ph)], np.float32)
    matrix = cv2.getPerspectiveTransform(src, (quad - (x0, y0)).astype(np.float32))
    size = (x1 - x0, y1 - y0)
    colour = cv2.warpPerspective(plate, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ones = np.ones((ph, pw), np.float32)
    alpha = cv2.warpPerspective(ones, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    paste(layers, colour, alpha, x0, y0)


# --------------------------------------------------------------------------------------- vehicles
def vehicle_layers(actor: Actor, width: int, height: int, px_per_m: float, rng: np.random.Generator) -> Layers:
    """Three-quarter view of a car, truck or bus: the end facing the camera on the left (rear for
    left-to-right traffic, front otherwise) with its plate, the side receding to the right."""
    length_m, width_m, _ = VEHICLE_DIMS_M[actor.kind]
    ppm = px_per_m * actor.size
    end = width_m * ppm
    side = width - end
    rear = actor.moving_direction > 0
    p = Painter(width, height)
    wheel_r = WHEEL_RADIUS_M[actor.kind] * ppm
    if actor.kind == "car":
        plate_y = _car(p, actor, end, side, height, rear, wheel_r)
    elif actor.kind == "truck":
        plate_y = _truck(p, actor, end, side, height, rear, wheel_r)
    else:
        plate_y = _bus(p, actor, end, side, height, rear, wheel_r)
    layers = p.layers()
    _shade_rows(layers)
    pw = max(2, round(PLATE_SIZE_M[0] * ppm))
    ph = max(2, round(PLATE_SIZE_M[1] * ppm))
    plate = render_plate(actor.plate_text or " ", rear, pw, ph)
    tilt = math.radians(float(rng.uniform(-1.5, 1.5)))
    paste_plate(layers, plate, (end / 2, plate_y), tilt, squeeze=0.95)
    return layers


def _shade_rows(layers: Layers) -> None:
    """Light from above: a gentle top-to-bottom darkening of the body."""
    k = np.linspace(1.06, 0.9, layers.alpha.shape[0], dtype=np.float32)[:, None, None]
    layers.premult *= k


def _wheel(p: Painter, cx: float, ground: float, r: float, foreshorten: float = 0.45) -> None:
    p.ellipse(cx, ground - r, r * foreshorten, r, TYRE)
    p.ellipse(cx, ground - r, r * foreshorten * 0.55, r * 0.55, HUB)


def _end_tyres(p: Painter, end: float, top: float, ground: float) -> None:
    p.rect(0.05 * end, top, 0.2 * end, ground, TYRE)
    p.rect(0.8 * end, top, 0.95 * end, ground, TYRE)


def _car(p: Painter, a: Actor, E: float, S: float, H: float, rear: bool, r: float) -> float:
    body, endc = a.colour, shade(a.colour, 0.86)
    roof, belt, sill, dy = 0.03 * H, 0.47 * H, 0.9 * H, 0.045 * H
    _end_tyres(p, E, sill - 0.02 * H, H)
    p.poly([(E - 1, belt), (E + S, belt + dy), (E + S, sill - 0.5 * dy), (E - 1, sill)], body)
    p.poly([(E - 1, roof), (E + 0.62 * S, roof + 0.8 * dy), (E + 0.86 * S, belt + 0.7 * dy), (E - 1, belt)], body)
    p.poly(
        [(E + 0.05 * S, roof + 0.05 * H), (E + 0.58 * S, roof + 0.05 * H + 0.75 * dy),
         (E + 0.78 * S, belt - 0.02 * H + 0.65 * dy), (E + 0.05 * S, belt - 0.02 * H)],
        GLASS_SIDE, body=False,
    )
    p.line((E + 0.36 * S, roof + 0.04 * H), (E + 0.36 * S, belt), body, 0.035 * S, body=False)
    p.line((E + 0.02 * S, roof + 0.01 * H), (E + 0.6 * S, roof + 0.01 * H + 0.8 * dy), shade(body, 1.25), 0.012 * H,
           body=False)
    p.line((E + 0.45 * S, belt + 0.05 * H), (E + 0.45 * S, sill - 0.05 * H), shade(body, 0.7), 0.006 * H + 0.5,
           body=False)
    p.poly([(0, belt + 0.01 * H), (E, belt), (E, sill), (0, sill)], endc)
    p.poly([(0.1 * E, roof), (0.93 * E, roof), (E, belt), (0.02 * E, belt + 0.01 * H)], endc)
    p.poly([(0.16 * E, roof + 0.045 * H), (0.88 * E, roof + 0.045 * H), (0.94 * E, belt - 0.025 * H),
            (0.08 * E, belt - 0.02 * H)], GLASS, body=False)
    p.poly([(0.55 * E, roof + 0.05 * H), (0.68 * E, roof + 0.05 * H), (0.5 * E, belt - 0.03 * H),
            (0.37 * E, belt - 0.03 * H)], shade(GLASS, 1.5), body=False)
    p.rect(0, 0.8 * H, E, sill, DARK)
    lights_y = (belt + 0.05 * H, belt + 0.15 * H)
    if rear:
        p.rect(0.03 * E, lights_y[0], 0.2 * E, lights_y[1], REAR_LIGHT, body=False)
        p.rect(0.8 * E, lights_y[0], 0.97 * E, lights_y[1], REAR_LIGHT, body=False)
    else:
        p.rect(0.03 * E, lights_y[0], 0.2 * E, lights_y[1], HEAD_LIGHT, body=False)
        p.rect(0.8 * E, lights_y[0], 0.97 * E, lights_y[1], HEAD_LIGHT, body=False)
        p.rect(0.28 * E, lights_y[0] + 0.01 * H, 0.72 * E, lights_y[1], DARK, body=False)
    for fx in (0.2, 0.8):
        _wheel(p, E + fx * S, H - 0.5 * dy * fx, r)
    return 0.705 * H


def _truck(p: Painter, a: Actor, E: float, S: float, H: float, rear: bool, r: float) -> float:
    box, cab = a.colour2, a.colour
    box_bottom, chassis, cab_top, dy = 0.8 * H, 0.88 * H, 0.32 * H, 0.035 * H
    _end_tyres(p, E, chassis - 0.02 * H, H)
    if rear:
        split = E + 0.74 * S
        p.rect(E - 1, box_bottom - 0.01 * H, split, chassis, DARK)
        p.poly([(E - 1, 0), (split, 0.6 * dy), (split, box_bottom - 0.3 * dy), (E - 1, box_bottom)], box)
        p.poly([(E - 1, 0.45 * H), (split, 0.45 * H + 0.4 * dy), (split, 0.53 * H + 0.4 * dy), (E - 1, 0.53 * H)],
               cab, body=False)
        p.poly([(split, cab_top), (E + S, cab_top + 0.3 * dy), (E + S, chassis - 0.3 * dy), (split, chassis)], cab)
        p.rect(split + 0.05 * S, cab_top + 0.05 * H, E + 0.95 * S, cab_top + 0.22 * H, GLASS_SIDE, body=False)
        p.rect(0, 0, E, box_bottom, shade(box, 0.9))
        p.line((0.5 * E, 0.02 * H), (0.5 * E, box_bottom - 0.01 * H), DARK, 0.01 * E + 0.5, body=False)
        for fy in (0.2, 0.5, 0.75):
            p.line((0.4 * E, fy * H), (0.47 * E, fy * H), DARK, 0.01 * H + 0.5, body=False)
        p.rect(0, box_bottom, E, chassis, DARK)
        p.rect(0.03 * E, box_bottom + 0.01 * H, 0.16 * E, box_bottom + 0.04 * H, REAR_LIGHT, body=False)
        p.rect(0.84 * E, box_bottom + 0.01 * H, 0.97 * E, box_bottom + 0.04 * H, REAR_LIGHT, body=False)
        wheels = (0.12, 0.28, 0.87)
        plate_y = box_bottom + 0.042 * H
    else:
        split = E + 0.22 * S
        p.poly([(E - 1, cab_top), (split, cab_top + 0.2 * dy), (split, chassis - 0.1 * dy), (E - 1, chassis)],
               shade(cab, 0.95))
        p.rect(E + 0.03 * S, cab_top + 0.05 * H, split - 0.03 * S, cab_top + 0.2 * H, GLASS_SIDE, body=False)
        p.rect(split, box_bottom - 0.01 * H, E + S, chassis - dy, DARK)
        p.poly([(split, 0.2 * dy), (E + S, dy), (E + S, box_bottom - 0.5 * dy), (split, box_bottom - 0.2 * dy)], box)
        p.rect(0, 0, E, cab_top, shade(box, 0.9))
        p.rect(0.02 * E, cab_top, 0.98 * E, chassis, shade(cab, 0.88))
        p.rect(0.08 * E, cab_top + 0.04 * H, 0.92 * E, cab_top + 0.2 * H, GLASS, body=False)
        p.rect(0.2 * E, 0.6 * H, 0.8 * E, 0.74 * H, DARK, body=False)
        p.rect(0.05 * E, 0.72 * H, 0.18 * E, 0.77 * H, HEAD_LIGHT, body=False)
        p.rect(0.82 * E, 0.72 * H, 0.95 * E, 0.77 * H, HEAD_LIGHT, body=False)
        p.rect(0, 0.79 * H, E, chassis, DARK)
        wheels = (0.13, 0.72, 0.86)
        plate_y = 0.835 * H
    for fx in wheels:
        _wheel(p, E + fx * S, H - 0.5 * dy * fx, r)
    return plate_y


def _bus(p: Painter, a: Actor, E: float, S: float, H: float, rear: bool, r: float) -> float:
    body, endc = a.colour, shade(a.colour, 0.86)
    sill, dy = 0.92 * H, 0.03 * H
    _end_tyres(p, E, sill - 0.02 * H, H)
    p.poly([(E - 1, 0), (E + S, dy), (E + S, sill - 0.5 * dy), (E - 1, sill)], body)
    p.poly([(E, 0.12 * H), (E + S, 0.12 * H + dy), (E + S, 0.5 * H + 0.8 * dy), (E, 0.5 * H)], GLASS_SIDE, body=False)
    p.poly([(E, 0.6 * H), (E + S, 0.6 * H + 0.8 * dy), (E + S, 0.66 * H + 0.8 * dy), (E, 0.66 * H)], a.colour2,
           body=False)
    pillar = max(3.0, 1.3 * 0.42 * S / (VEHICLE_DIMS_M["bus"][0] * 0.42))
    x = E + pillar
    while x < E + S - 2:
        f = (x - E) / S
        p.line((x, 0.12 * H + f * dy), (x, 0.5 * H + 0.8 * f * dy), body, max(1.0, 0.012 * S), body=False)
        x += pillar * 1.8
    if not rear:
        p.rect(E + 0.02 * S, 0.12 * H, E + 0.09 * S, sill - 0.02 * H, GLASS, body=False)
    p.rect(0, 0, E, sill, endc)
    if rear:
        p.rect(0.12 * E, 0.1 * H, 0.88 * E, 0.32 * H, GLASS, body=False)
        for fy in (0.5, 0.55, 0.6, 0.65):
            p.line((0.2 * E, fy * H), (0.8 * E, fy * H), DARK, 0.008 * H + 0.5, body=False)
        p.rect(0.03 * E, 0.72 * H, 0.16 * E, 0.8 * H, REAR_LIGHT, body=False)
        p.rect(0.84 * E, 0.72 * H, 0.97 * E, 0.8 * H, REAR_LIGHT, body=False)
    else:
        p.rect(0.12 * E, 0.03 * H, 0.88 * E, 0.09 * H, (20, 20, 20), body=False)
        p.rect(0.3 * E, 0.045 * H, 0.7 * E, 0.075 * H, (40, 160, 235), body=False)
        p.rect(0.06 * E, 0.11 * H, 0.94 * E, 0.52 * H, GLASS, body=False)
        p.rect(0.05 * E, 0.74 * H, 0.17 * E, 0.78 * H, HEAD_LIGHT, body=False)
        p.rect(0.83 * E, 0.74 * H, 0.95 * E, 0.78 * H, HEAD_LIGHT, body=False)
    p.rect(0, 0.88 * H, E, sill, DARK)
    for fx in (0.17, 0.75):
        _wheel(p, E + fx * S, H - 0.5 * dy * fx, r)
    return 0.845 * H


# ------------------------------------------------------------------------------------------ faces
@dataclass(frozen=True, slots=True)
class FaceAsset:
    bgra: np.ndarray
    frontal: bool
    hair: tuple[int, int, int]
    skin: tuple[float, float, float]
    """Mean BGR of the face's centre, for neck and hands."""


@lru_cache(maxsize=1)
def load_faces() -> tuple[FaceAsset, ...]:
    """The committed face photographs (``edged-sim/edged_sim/assets/faces``; see ``PROVENANCE.md`` there)."""
    index = json.loads((FACES_DIR / "faces.json").read_text())
    faces = []
    for entry in index:
        path = FACES_DIR / entry["file"]
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise RuntimeError(f"face asset {path} is missing or not a BGRA PNG")
        h, w = bgra.shape[:2]
        centre = bgra[int(h * 0.45) : int(h * 0.75), int(w * 0.3) : int(w * 0.7), :3].reshape(-1, 3)
        skin = tuple(float(v) for v in np.median(centre, axis=0))
        faces.append(FaceAsset(bgra, bool(entry["frontal"]), tuple(entry["hair_bgr"]), skin))  # type: ignore[arg-type]
    return tuple(faces)


# ----------------------------------------------------------------------------------------- people
POSE_SWING = (0.0, 1.0, 0.0, -1.0)
"""Walking cycle: legs together, apart, together, apart the other way."""
STEP_M = 0.35
"""Ground distance per pose change (a stride of ~1.4 m per four poses)."""


def person_pose(actor: Actor, frame: int, fps: float) -> int:
    """Index into :data:`POSE_SWING` at ``frame``."""
    walked = actor.speed_mps * max(frame - actor.spawn_frame, 0) / fps
    return int(walked / STEP_M) % len(POSE_SWING)


def person_layers(actor: Actor, width: int, height: int, pose: int, rng: np.random.Generator) -> Layers:
    """A stylised pedestrian whose face is a real photograph (the part)."""
    faces = load_faces()
    asset = faces[actor.face % len(faces)]
    H = float(height)
    c = width / 2.0
    swing = POSE_SWING[pose % len(POSE_SWING)]
    d = actor.moving_direction
    tint = np.array(actor.tint, np.float32)
    skin = shade(tuple(int(v) for v in np.array(asset.skin) * tint), 1.0)  # type: ignore[arg-type]
    hair = shade(asset.hair, float(rng.uniform(0.85, 1.15)))
    shirt, trousers = actor.colour, actor.colour2
    fh = H / PERSON_HEAD_RATIO
    aspect = asset.bgra.shape[1] / asset.bgra.shape[0]
    fw = fh * aspect
    ft = 0.045 * H

    p = Painter(width, height)
    hip_y, leg_len = 0.54 * H, 0.42 * H
    shoulder_y, arm_len = 0.24 * H, 0.31 * H
    leg_a = math.radians(18.0) * swing
    arm_a = math.radians(16.0) * swing

    def limb(x0, y0, length, angle, colour, thickness) -> tuple[float, float]:
        x1, y1 = x0 + d * length * math.sin(angle), y0 + length * math.cos(angle)
        p.line((x0, y0), (x1, y1), colour, thickness)
        return x1, y1

    hand = limb(c - 0.13 * H, shoulder_y, arm_len, arm_a, shade(shirt, 0.72), 0.05 * H)
    p.ellipse(*hand, 0.026 * H, 0.026 * H, shade(skin, 0.9))
    for sign, k in ((-1.0, 0.8), (1.0, 1.0)):
        foot = limb(c + sign * 0.05 * H, hip_y, leg_len, sign * leg_a, shade(trousers, k), 0.075 * H)
        p.ellipse(foot[0] + d * 0.02 * H, min(foot[1], 0.975 * H), 0.045 * H, 0.02 * H, (30, 30, 32))
    p.poly([(c - 0.115 * H, 0.215 * H), (c + 0.115 * H, 0.215 * H), (c + 0.1 * H, 0.56 * H), (c - 0.1 * H, 0.56 * H)],
           shirt)
    for sign in (-1.0, 1.0):
        p.ellipse(c + sign * 0.11 * H, 0.245 * H, 0.032 * H, 0.032 * H, shirt)
    hand = limb(c + 0.13 * H, shoulder_y, arm_len, -arm_a, shade(shirt, 0.85), 0.05 * H)
    p.ellipse(*hand, 0.026 * H, 0.026 * H, skin)
    p.rect(c - 0.2 * fw, ft + 0.8 * fh, c + 0.2 * fw, 0.225 * H, skin)
    p.ellipse(c, ft + 0.55 * fh, 0.5 * fw, 0.5 * fh, skin)
    p.ellipse(c, ft + 0.32 * fh, 0.6 * fw, 0.44 * fh, hair)
    layers = p.layers()

    face = asset.bgra[:, ::-1] if actor.flip_face else asset.bgra
    fw_px, fh_px = max(1, round(fw)), max(1, round(fh))
    face = cv2.resize(face, (fw_px, fh_px), interpolation=cv2.INTER_AREA)
    colour = np.clip(face[:, :, :3].astype(np.float32) * tint, 0, 255).astype(np.uint8)
    alpha = face[:, :, 3].astype(np.float32) / 255.0
    paste(layers, colour, alpha, round(c - fw_px / 2), round(ft))
    return layers
