"""The fake camera: a seeded (or scripted) road scene, rendered per frame, that knows its ground truth.

Scene time is the frame index, not the wall clock: frame ``k`` shows the scene at ``k / fps`` and is
stamped ``t0 + k / fps``; :meth:`FakeCamera.capture` renders the next frame at once (the daemon
paces it). The same seed (or the same script) and the same exposure commands give byte-identical
pixels and identical ground truth.

Per frame: copy the pre-drawn background, blit the visible actors far to near (each actor's
picture is drawn once, and motion-blurred once per blur length), then one saturating pass applies
exposure (brightness proportional to shutter x gain, see :mod:`edged_sim.exposure`) and adds
pre-generated sensor noise scaled with the gain. Motion blur length is the actor's speed in px/s
times the shutter time.

Events (``scenario.events``, frame ranges): ``light`` dims the illumination to 40 % and back,
``freeze`` returns the previous frame again (same pixels, exposure and ground truth; only the
timestamp and events advance), ``cover`` shows a nearly uniform dark field with no objects.

Ground truth rows are the objects with at least one visible pixel: box = bounding box of the
object's visible pixels (``x1, y1, x2, y2`` with exclusive ``x2, y2``, i.e. pixel edges), clipped to
the image and with parts hidden by nearer objects removed; ``visible`` = visible pixels / drawn
pixels of the object (it reflects both clipping and occlusion). A vehicle's or person's pixels
include its plate's or face's. :meth:`FakeCamera.label_map` renders the per-pixel object ids of
the last frame, from which every box can be checked.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edged.config import CameraConfig
from edged.core.classes import class_id
from edged.core.types import CapturedImage, Exposure, ExposureMode
from edged.hal.base import CameraError, Pacing
from edged_sim.background import cover_frame, render_background
from edged_sim.exposure import (
    AutoExposure,
    code_multiplier,
    exposure_scale,
    noise_sigma,
    split_exposure,
)
from edged_sim.ground_truth import GroundTruth, truth_of
from edged_sim.scene import (
    EVENT_KINDS,
    Scenario,
    actor_extent_px,
    actor_frames_in_view,
    actor_ground_y,
    actor_left_x,
    actor_px_per_m,
    actor_speed_px,
    depth_key,
    generate_scenario,
)
from edged_sim.sprites import (
    POSE_SWING,
    Layers,
    Sprite,
    finish,
    load_faces,
    mask_bbox,
    person_layers,
    person_pose,
    vehicle_layers,
)

GAIN_RANGE = (1.0, 16.0)
SHUTTER_RANGE_US = (30.0, 100_000.0)
AE_MAX_SHUTTER_US = 30_000.0
"""AE uses shutter up to min(1/fps, 30 ms) before it raises gain (longer smears traffic)."""
INITIAL_EXPOSURE = (10_000.0, 1.0)
"""Shutter (us) and gain AE starts from; it converges from there in a few frames."""
NOISE_PLANES = 4
NOISE_PLANE_SIGMA = 16.0
"""Noise is pre-generated as ``NOISE_PLANES`` planes of N(128, 16) codes, cycled by frame and
scaled to the gain's sigma in the same pass that applies the exposure."""
AE_SUBSAMPLE = 8


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one actor's sprite was drawn in a frame."""

    actor_index: int
    sprite: Sprite
    x: int
    """Frame column of the sprite's column 0."""
    y: int
    object_id: int
    part_id: int
    class_id: int
    part_class_id: int
    text: str

    def frame_box(self) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = self.sprite.box
        return x1 + self.x, y1 + self.y, x2 + self.x, y2 + self.y


BLUR_EXACT_UP_TO = 8
BLUR_STEP = 1.12


def blur_length(travel_px: float) -> int:
    """Motion-blur kernel length for an object that moves ``travel_px`` during the exposure: 0 below
    2 px, exact up to 8 px, then on a 12 % geometric grid (sprites are re-blurred only when the
    length changes, and AE nudges the shutter every frame)."""
    if travel_px < 2:
        return 0
    if travel_px <= BLUR_EXACT_UP_TO:
        return round(travel_px)
    steps = round(math.log(travel_px / BLUR_EXACT_UP_TO) / math.log(BLUR_STEP))
    return round(BLUR_EXACT_UP_TO * BLUR_STEP**steps)


def blit(canvas: np.ndarray, sprite: Sprite, x: int, y: int) -> None:
    """Composite ``sprite`` (premultiplied) onto ``canvas`` with its top-left at ``(x, y)``."""
    h, w = sprite.labels.shape
    H, W = canvas.shape[:2]
    x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x1 >= x2 or y1 >= y2:
        return
    src = (slice(y1 - y, y2 - y), slice(x1 - x, x2 - x))
    region = canvas[y1:y2, x1:x2]
    kept = cv2.multiply(region, sprite.inv_alpha[src], scale=1.0 / 255.0)
    region[...] = cv2.add(kept, sprite.premult[src])


def _intersect(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    return (x1, y1, x2, y2) if x1 < x2 and y1 < y2 else None


class FakeCamera:
    """A :class:`edged.hal.base.Camera` that renders a road scene with cars, plates, people and faces.

    ``script`` replaces the seeded scenario (``seed`` still seeds the background, sprite details and
    noise); ``duration_s`` is the length of the seeded scenario, which then repeats with new object
    ids. ``noise=False`` turns sensor noise off (tests of exact brightness).
    """

    gain_range: tuple[float, float] = GAIN_RANGE
    shutter_range_us: tuple[float, float] = SHUTTER_RANGE_US

    def __init__(
        self,
        width: int = 1280,
        height: int = 720,
        fps: float = 10.0,
        seed: int = 7,
        cars_per_minute: float = 24.0,
        people_per_minute: float = 12.0,
        events: bool = True,
        t0: float | None = None,
        script: Scenario | None = None,
        *,
        noise: bool = True,
        duration_s: float = 600.0,
        realtime: bool = False,
    ) -> None:
        if not (isinstance(width, int) and isinstance(height, int) and width >= 16 and height >= 16):
            raise ValueError(f"fake camera size must be integers >= 16, got {width!r}x{height!r}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fake camera fps must be a positive number, got {fps!r}")
        self.width, self.height, self.fps, self.seed = width, height, float(fps), int(seed)
        self.pacing = Pacing.REALTIME if realtime else Pacing.FREE
        self.t0 = t0
        self.noise = noise
        self.scenario = script if script is not None else generate_scenario(
            seed,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration_s,
            cars_per_minute=cars_per_minute,
            people_per_minute=people_per_minute,
            events=events,
            n_faces=len(load_faces()),
        )
        actors = self.scenario.actors
        self._spawn = np.array([a.spawn_frame for a in actors], dtype=np.int64)
        self._end = self._spawn + np.array(
            [actor_frames_in_view(a, width, height, self.fps) for a in actors], dtype=np.int64
        )
        self._order = np.array(
            sorted(range(len(actors)), key=lambda i: depth_key(actors[i], i)), dtype=np.int64
        )
        self._extent = [actor_extent_px(a, height) for a in actors]
        self._speed_px = [actor_speed_px(a, height) for a in actors]
        self._background = render_background(width, height, self.seed)
        self._cover = cover_frame(width, height)
        self._noise_planes: list[np.ndarray] = []
        self._layers: dict[tuple[int, int], Layers] = {}
        self._sprites: dict[tuple[int, int, int], Sprite] = {}
        self._ae = AutoExposure()
        self._ae_max_shutter = min(AE_MAX_SHUTTER_US, 1e6 / self.fps)
        self._lock = threading.Lock()
        self._mode = ExposureMode.AUTO
        self._shutter_us, self._gain = INITIAL_EXPOSURE
        self._frame = 0
        self._started = False
        self._last: CapturedImage | None = None
        self._placements: list[Placement] = []
        self._covered = False

    # ------------------------------------------------------------------------------ Camera protocol
    def start(self) -> None:
        """Start streaming; the first start fixes ``t0`` (wall clock) unless it was given, and
        prepares the noise planes so the first capture is as quick as the others."""
        if self.noise:
            self._ensure_noise()
        if self.t0 is None:
            self.t0 = time.time()
        self._started = True

    def stop(self) -> None:
        self._started = False

    def capture(self) -> CapturedImage:
        """Render the next frame now (scene time advances by ``1 / fps``)."""
        if not self._started:
            raise CameraError("fake camera: capture() before start() (or after stop())")
        with self._lock:
            exposure = Exposure(self._mode, self._shutter_us, self._gain)
        k = self._frame
        period = self.scenario.period_frames
        local, loop = (k % period, k // period) if period else (k, 0)
        active = self.scenario.events_at(k)
        kinds = tuple(kind for kind in EVENT_KINDS if any(e.kind == kind for e in active))
        assert self.t0 is not None
        timestamp = self.t0 + k / self.fps

        if "freeze" in kinds and self._last is not None:
            last = self._last
            truth = truth_of(last.ground_truth)
            assert truth is not None
            frozen = GroundTruth(
                truth.object_ids, truth.class_ids, truth.boxes, truth.parent_ids, truth.visible, truth.texts, kinds
            )
            captured = CapturedImage(last.pixels.copy(), last.exposure, timestamp, frozen)
        else:
            illumination = math.prod(e.illumination(local) for e in active)
            if "cover" in kinds:
                scene, placements = self._cover, []
            else:
                scene = self._background.copy()
                placements = self._compose(scene, local, loop, exposure.shutter_us)
            multiplier = code_multiplier(exposure_scale(exposure.shutter_us, exposure.gain, illumination))
            pixels = self._expose(scene, multiplier, k, exposure.gain)
            if exposure.mode is ExposureMode.AUTO:
                self._auto_expose(exposure, float(pixels[::AE_SUBSAMPLE, ::AE_SUBSAMPLE].mean()) / 255.0)
            self._placements = placements
            self._covered = "cover" in kinds
            captured = CapturedImage(pixels, exposure, timestamp, self._ground_truth(placements, kinds))
        self._frame += 1
        self._last = captured
        return captured

    def set_auto_exposure(self) -> None:
        """AE takes over from the current shutter and gain, from the next frame on."""
        with self._lock:
            self._mode = ExposureMode.AUTO

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        """Lock shutter and gain from the next frame on; values outside the sensor's ranges are
        clamped (as sensors do; :meth:`read_exposure` tells what is in effect)."""
        for name, value in (("shutter_us", shutter_us), ("gain", gain)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"fake camera: {name} must be a positive number, got {value!r}")
        with self._lock:
            self._mode = ExposureMode.MANUAL
            self._shutter_us = min(max(float(shutter_us), SHUTTER_RANGE_US[0]), SHUTTER_RANGE_US[1])
            self._gain = min(max(float(gain), GAIN_RANGE[0]), GAIN_RANGE[1])

    def read_exposure(self) -> Exposure:
        """Exposure for the next frame: the locked values, or what AE chose after the last frame."""
        with self._lock:
            return Exposure(self._mode, self._shutter_us, self._gain)

    # ---------------------------------------------------------------------------------- extras
    @property
    def frame_index(self) -> int:
        """Index of the next frame :meth:`capture` renders."""
        return self._frame

    def illumination(self, frame: int) -> float:
        """Scene illumination at ``frame`` (1.0 = full daylight; light events dim it)."""
        period = self.scenario.period_frames
        local = frame % period if period else frame
        return math.prod(e.illumination(local) for e in self.scenario.events_at(frame))

    def label_map(self) -> np.ndarray:
        """``(H, W) int64`` object id per pixel of the last frame (0 = background): the id of the
        nearest object drawn there, a plate's or face's own id on its pixels."""
        labels = np.zeros((self.height, self.width), np.int64)
        for p in self._placements:
            h, w = p.sprite.labels.shape
            x1, y1 = max(p.x, 0), max(p.y, 0)
            x2, y2 = min(p.x + w, self.width), min(p.y + h, self.height)
            if x1 >= x2 or y1 >= y2:
                continue
            lab = p.sprite.labels[y1 - p.y : y2 - p.y, x1 - p.x : x2 - p.x]
            region = labels[y1:y2, x1:x2]
            region[lab == 1] = p.object_id
            region[lab == 2] = p.part_id
        return labels

    # ---------------------------------------------------------------------------------- internals
    def _auto_expose(self, used: Exposure, measured_mean: float) -> None:
        product = self._ae.next_product(used.shutter_us * used.gain, measured_mean)
        shutter, gain = split_exposure(product, self._ae_max_shutter, SHUTTER_RANGE_US, GAIN_RANGE)
        with self._lock:
            if self._mode is ExposureMode.AUTO:
                self._shutter_us, self._gain = shutter, gain

    def _expose(self, scene: np.ndarray, multiplier: float, frame: int, gain: float) -> np.ndarray:
        """Sensor pixels in one saturating pass: codes x exposure multiplier + gain-scaled noise."""
        if not self.noise:
            return cv2.convertScaleAbs(scene, alpha=multiplier)
        self._ensure_noise()
        scale = noise_sigma(gain) / NOISE_PLANE_SIGMA
        plane = self._noise_planes[frame % NOISE_PLANES]
        return cv2.addWeighted(scene, multiplier, plane, scale, -128.0 * scale)

    def _ensure_noise(self) -> None:
        if self._noise_planes:
            return
        rng = np.random.default_rng([self.seed, 5])
        shape = (self.height, self.width, 3)
        for _ in range(NOISE_PLANES):
            unit = 128.0 + NOISE_PLANE_SIGMA * rng.standard_normal(shape, dtype=np.float32)
            self._noise_planes.append(np.clip(np.round(unit), 0, 255).astype(np.uint8))

    def _compose(self, canvas: np.ndarray, local: int, loop: int, shutter_us: float) -> list[Placement]:
        actors = self.scenario.actors
        order = self._order
        visible = order[(self._spawn[order] <= local) & (self._end[order] > local)]
        offset = loop * self.scenario.id_stride
        placements: list[Placement] = []
        for index in (int(i) for i in visible):
            actor = actors[index]
            person = actor.kind == "person"
            pose = person_pose(actor, local, self.fps) if person else 0
            sprite = self._sprite(index, pose, blur_length(self._speed_px[index] * shutter_us * 1e-6))
            x = round(actor_left_x(actor, local, self.width, self.height, self.fps)) - sprite.pad
            y = round(actor_ground_y(actor, self.height)) - self._extent[index][1]
            blit(canvas, sprite, x, y)
            placements.append(
                Placement(
                    index,
                    sprite,
                    x,
                    y,
                    actor.object_id + offset,
                    actor.part_id + offset,
                    class_id(actor.kind),
                    class_id("face" if person else "plate"),
                    "" if person else actor.plate_text,
                )
            )
        self._evict({int(i) for i in visible})
        return placements

    def _sprite(self, index: int, pose: int, blur: int) -> Sprite:
        shape = POSE_SWING[pose] if self.scenario.actors[index].kind == "person" else 0
        key = (index, int(shape), blur)
        sprite = self._sprites.get(key)
        if sprite is None:
            layers = self._layers.get(key[:2])
            if layers is None:
                layers = self._draw(index, pose)
                self._layers[key[:2]] = layers
            sprite = finish(layers, blur)
            self._sprites[key] = sprite
        return sprite

    def _draw(self, index: int, pose: int) -> Layers:
        actor = self.scenario.actors[index]
        w, h = self._extent[index]
        rng = np.random.default_rng([self.seed, 6, actor.object_id])
        if actor.kind == "person":
            return person_layers(actor, w, h, pose, rng)
        return vehicle_layers(actor, w, h, actor_px_per_m(actor, self.height), rng)

    def _evict(self, visible: set[int]) -> None:
        """Forget pictures of actors that left; keep two blur lengths per picture (AE changes it)."""
        for key in [k for k in self._layers if k[0] not in visible]:
            del self._layers[key]
        by_picture: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        for sprite in list(self._sprites):
            if sprite[0] not in visible:
                del self._sprites[sprite]
            else:
                by_picture.setdefault(sprite[:2], []).append(sprite)
        for sprites in by_picture.values():
            for sprite in sprites[:-2]:
                del self._sprites[sprite]

    def _ground_truth(self, placements: list[Placement], events: tuple[str, ...]) -> GroundTruth:
        frame = (0, 0, self.width, self.height)
        boxes = [p.frame_box() for p in placements]
        ids: list[int] = []
        classes: list[int] = []
        rows: list[tuple[int, int, int, int]] = []
        parents: list[int] = []
        visible: list[float] = []
        texts: list[str] = []
        for i, p in enumerate(placements):
            s = p.sprite
            full = boxes[i]
            occluders = [j for j in range(i + 1, len(placements)) if _intersect(full, boxes[j])]
            if occluders or _intersect(full, frame) != full:
                region = _intersect(full, frame)
                if region is None:
                    continue
                rx1, ry1, rx2, ry2 = region
                lab = s.labels[ry1 - p.y : ry2 - p.y, rx1 - p.x : rx2 - p.x]
                hidden = np.zeros(lab.shape, bool)
                for j in occluders:
                    q = placements[j]
                    over = _intersect(region, boxes[j])
                    if over is None:
                        continue
                    ox1, oy1, ox2, oy2 = over
                    hidden[oy1 - ry1 : oy2 - ry1, ox1 - rx1 : ox2 - rx1] |= (
                        q.sprite.labels[oy1 - q.y : oy2 - q.y, ox1 - q.x : ox2 - q.x] > 0
                    )
                body = (lab > 0) & ~hidden
                part = (lab == 2) & ~hidden
                body_box, body_count = mask_bbox(body), int(body.sum())
                part_box, part_count = mask_bbox(part), int(part.sum())
                shift = (rx1, ry1, rx1, ry1)
            else:
                body_box, body_count = s.box, s.count
                part_box, part_count = s.part_box, s.part_count
                shift = (p.x, p.y, p.x, p.y)
            if body_box is None or body_count == 0:
                continue
            ids.append(p.object_id)
            classes.append(p.class_id)
            rows.append(tuple(a + b for a, b in zip(body_box, shift, strict=True)))  # type: ignore[arg-type]
            parents.append(-1)
            visible.append(body_count / s.count)
            texts.append("")
            if part_box is not None and part_count > 0 and s.part_count > 0:
                ids.append(p.part_id)
                classes.append(p.part_class_id)
                rows.append(tuple(a + b for a, b in zip(part_box, shift, strict=True)))  # type: ignore[arg-type]
                parents.append(p.object_id)
                visible.append(part_count / s.part_count)
                texts.append(p.text)
        return GroundTruth(
            object_ids=np.array(ids, dtype=np.int64),
            class_ids=np.array(classes, dtype=np.int16),
            boxes=np.array(rows, dtype=np.float32).reshape(-1, 4),
            parent_ids=np.array(parents, dtype=np.int64),
            visible=np.array(visible, dtype=np.float32),
            texts=tuple(texts),
            events=events,
        )


def from_config(camera_cfg: CameraConfig) -> FakeCamera:
    """The fake camera ``camera_cfg`` describes (size, rate, ``camera.fake``), opened by
    :data:`edged_sim.config.FAKE`."""
    width, height = camera_cfg.size_or_default()
    f = camera_cfg.plugins["fake"]
    return FakeCamera(
        width=width,
        height=height,
        fps=camera_cfg.fps,
        seed=f.seed,
        cars_per_minute=f.cars_per_minute,
        people_per_minute=f.people_per_minute,
        events=f.events,
        realtime=f.realtime,
    )
