"""What the fake camera's scene contains, without pixels: road layout, actors, events.

The scene is a road seen obliquely by a roadside camera: vehicles cross the frame in four lanes
(two far lanes right-to-left, two near lanes left-to-right), each lane at its own depth and scale,
and pedestrians walk on a far pavement (behind the road) and on the near pavement (in front of it,
close to the camera). Vehicles are seen in three-quarter view: the end facing the camera (rear for
left-to-right traffic, front for right-to-left) is on the left of the vehicle, with its plate.

Geometry is defined for a 720 px high reference frame and scaled with the frame height, so a
small frame (tests) shows the same scene smaller. Time is in frames: an actor enters the view at
its ``spawn_frame`` (leading edge at the border) and moves at a constant ground speed.

A :class:`Scenario` is either written by hand (tests script one car crossing) or made by
:func:`generate_scenario` from a seed. Everything here is a pure function of its inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

REFERENCE_HEIGHT = 720
"""Frame height the layout below is written for; other heights scale it."""

ActorKind = Literal["car", "truck", "bus", "person"]
EventKind = Literal["light", "freeze", "cover"]
VEHICLE_KINDS = ("car", "truck", "bus")
EVENT_KINDS = ("light", "freeze", "cover")


@dataclass(frozen=True, slots=True)
class ScenePath:
    """A lane or a walkway: where its actors touch the ground and how large they appear.

    ``y_far``/``y_near`` and ``px_per_m_far``/``px_per_m_near`` are in reference pixels; an actor's
    ``lateral`` (0 far edge, 1 near edge) interpolates between them. Lanes have equal ends.
    """

    name: str
    depth: int
    """Draw order: smaller is farther (drawn first, hidden by nearer paths)."""
    y_far: float
    y_near: float
    px_per_m_far: float
    px_per_m_near: float
    direction: int
    """+1 left-to-right, -1 right-to-left, 0 either (walkways)."""
    kinds: tuple[str, ...]
    """Actor kinds allowed on this path."""

    def ground_y(self, lateral: float) -> float:
        return self.y_far + (self.y_near - self.y_far) * lateral

    def px_per_m(self, lateral: float) -> float:
        return self.px_per_m_far + (self.px_per_m_near - self.px_per_m_far) * lateral


PATHS: dict[str, ScenePath] = {
    p.name: p
    for p in (
        ScenePath("far_walk", 0, 300, 316, 50, 58, 0, ("person",)),
        ScenePath("lane0", 1, 372, 372, 62, 62, -1, VEHICLE_KINDS),
        ScenePath("lane1", 2, 445, 445, 90, 90, -1, VEHICLE_KINDS),
        ScenePath("lane2", 3, 548, 548, 140, 140, +1, VEHICLE_KINDS),
        ScenePath("lane3", 4, 678, 678, 210, 210, +1, ("car",)),
        ScenePath("mid_walk", 5, 704, 716, 235, 265, 0, ("person",)),
        ScenePath("near_walk", 6, 775, 800, 400, 440, 0, ("person",)),
    )
}
"""Far pavement, four lanes, near pavement (two depths). Plates on lane3 cars are ~110 px wide and
on lane2 ~73 px in a 1280x720 frame; faces on the near pavement are ~60-70 px (mid_walk) and
~105-125 px (near_walk, people passing right by the camera, legs cut by the frame edge)."""

VEHICLE_DIMS_M: dict[str, tuple[float, float, float]] = {
    "car": (4.4, 1.8, 1.45),
    "truck": (8.0, 2.45, 3.4),
    "bus": (11.0, 2.5, 3.1),
}
"""Length, width, height in metres."""
SIDE_FORESHORTENING = 0.42
"""Fraction of a vehicle's length visible along its side in the three-quarter view."""
PLATE_SIZE_M = (0.52, 0.111)
"""Licence plate width and height (European/UK plate)."""
PERSON_WIDTH_RATIO = 0.46
"""Sprite width of a pedestrian as a fraction of their height (room for swinging limbs)."""
PERSON_HEAD_RATIO = 6.5
"""Height / face height. Real adults are ~7.5 heads tall; a slightly bigger head keeps the face
large enough for detectors at the pavement's distance."""


@dataclass(frozen=True, slots=True)
class Actor:
    """One vehicle or pedestrian of a scenario.

    ``object_id`` and ``part_id`` (the plate of a vehicle, the face of a person) are assigned by
    :class:`Scenario` when left at 0.
    """

    kind: ActorKind
    spawn_frame: int
    """Frame at which the actor's leading edge reaches the image border."""
    path: str
    """Key of :data:`PATHS` (a lane for vehicles, a walkway for people)."""
    speed_mps: float
    direction: int = 0
    """+1 left-to-right, -1 right-to-left; 0 takes the lane's direction (people: left-to-right)."""
    plate_text: str = ""
    face: int = 0
    """Index of the face photograph (``edged-sim/edged_sim/assets/faces/faces.json`` order); people only."""
    flip_face: bool = False
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Per-channel (B, G, R) factor on the face photo: varies skin tone and white balance."""
    colour: tuple[int, int, int] = (170, 170, 165)
    """Body colour (vehicles) or shirt colour (people), BGR reflectance."""
    colour2: tuple[int, int, int] = (60, 50, 40)
    """Trousers (people) or cargo box / stripe (trucks, buses)."""
    size: float = 1.0
    """Scale of the nominal dimensions (vehicles) or height / 1.75 m (people)."""
    lateral: float = 0.5
    """Position across the path, 0 far edge .. 1 near edge."""
    object_id: int = 0
    part_id: int = 0

    @property
    def moving_direction(self) -> int:
        if self.direction:
            return self.direction
        return PATHS[self.path].direction or 1


@dataclass(frozen=True, slots=True)
class SceneEvent:
    """A scripted event active for frames ``start_frame <= k < end_frame``."""

    kind: EventKind
    start_frame: int
    end_frame: int
    level: float = 0.4
    """``light`` only: illumination at the bottom of the dip (1.0 = full daylight)."""
    ramp_frames: int = 30
    """``light`` only: frames to dim down (and to brighten back up at the end)."""

    def illumination(self, frame: int) -> float:
        """Illumination factor of a ``light`` event at ``frame`` (1.0 outside it)."""
        if self.kind != "light" or not self.start_frame <= frame < self.end_frame:
            return 1.0
        into = frame - self.start_frame
        left = self.end_frame - 1 - frame
        ramp = max(self.ramp_frames, 1)
        depth = min(1.0, into / ramp, left / ramp)
        dip = 0.5 - 0.5 * math.cos(math.pi * depth)
        return 1.0 - (1.0 - self.level) * dip


@dataclass(slots=True)
class Scenario:
    """Actors and events of one scene, in frames.

    With ``period_frames`` set the scenario repeats forever (generated scenarios: every actor leaves
    before the period ends); repeat ``n`` shifts every object id by ``n * id_stride`` so ids stay
    unique. Without it the road is empty once the last actor has left.
    """

    actors: tuple[Actor, ...] = ()
    events: tuple[SceneEvent, ...] = ()
    period_frames: int | None = None
    id_stride: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.actors = tuple(self.actors)
        self.events = tuple(self.events)
        for i, a in enumerate(self.actors):
            _check_actor(i, a)
        for i, e in enumerate(self.events):
            if e.kind not in EVENT_KINDS:
                raise ValueError(f"events[{i}].kind: expected one of {EVENT_KINDS}, got {e.kind!r}")
            if not 0 <= e.start_frame < e.end_frame:
                raise ValueError(f"events[{i}]: need 0 <= start_frame < end_frame, got {e.start_frame}..{e.end_frame}")
            if not 0.0 < e.level <= 1.0:
                raise ValueError(f"events[{i}].level: expected 0 < level <= 1, got {e.level}")
        if self.period_frames is not None and self.period_frames < 1:
            raise ValueError(f"period_frames: expected >= 1 or None, got {self.period_frames}")
        used = {a.object_id for a in self.actors} | {a.part_id for a in self.actors}
        used.discard(0)
        next_id = max(used, default=0) + 1
        assigned = []
        for a in self.actors:
            if a.object_id == 0:
                a = replace(a, object_id=next_id)
                next_id += 1
            if a.part_id == 0:
                a = replace(a, part_id=next_id)
                next_id += 1
            assigned.append(a)
        self.actors = tuple(assigned)
        ids = [a.object_id for a in self.actors] + [a.part_id for a in self.actors]
        if len(set(ids)) != len(ids):
            raise ValueError("actors: object_id/part_id values must be unique")
        self.id_stride = 10 ** len(str(max(ids, default=0)))

    def events_at(self, frame: int) -> tuple[SceneEvent, ...]:
        """Events active at (absolute) ``frame``."""
        local = frame % self.period_frames if self.period_frames else frame
        return tuple(e for e in self.events if e.start_frame <= local < e.end_frame)


def _check_actor(i: int, a: Actor) -> None:
    where = f"actors[{i}]"
    if a.path not in PATHS:
        raise ValueError(f"{where}.path: unknown path {a.path!r}; known: {', '.join(PATHS)}")
    if a.kind not in PATHS[a.path].kinds:
        raise ValueError(f"{where}.kind: a {a.kind!r} cannot use path {a.path!r} (allowed: {PATHS[a.path].kinds})")
    if not (a.speed_mps > 0 and math.isfinite(a.speed_mps)):
        raise ValueError(f"{where}.speed_mps: expected a positive number, got {a.speed_mps}")
    if a.direction not in (-1, 0, 1):
        raise ValueError(f"{where}.direction: expected -1, 0 or +1, got {a.direction}")
    if not 0.5 <= a.size <= 2.0:
        raise ValueError(f"{where}.size: expected 0.5..2.0, got {a.size}")
    if not 0.0 <= a.lateral <= 1.0:
        raise ValueError(f"{where}.lateral: expected 0..1, got {a.lateral}")
    if a.face < 0:
        raise ValueError(f"{where}.face: expected a face index >= 0, got {a.face}")


# ------------------------------------------------------------------------------------------ geometry
def scale_for(height: int) -> float:
    """Reference pixels -> frame pixels."""
    return height / REFERENCE_HEIGHT


def actor_px_per_m(actor: Actor, height: int) -> float:
    return PATHS[actor.path].px_per_m(actor.lateral) * scale_for(height)


def actor_extent_m(actor: Actor) -> tuple[float, float]:
    """Width and height of the actor's sprite in metres (before perspective scaling)."""
    if actor.kind == "person":
        h = 1.75 * actor.size
        return PERSON_WIDTH_RATIO * h, h
    length, width, height = VEHICLE_DIMS_M[actor.kind]
    return actor.size * (width + SIDE_FORESHORTENING * length), actor.size * height


def actor_extent_px(actor: Actor, height: int) -> tuple[int, int]:
    """Sprite width and height in frame pixels (at least 2x2)."""
    ppm = actor_px_per_m(actor, height)
    w, h = actor_extent_m(actor)
    return max(2, round(w * ppm)), max(2, round(h * ppm))


def actor_speed_px(actor: Actor, height: int) -> float:
    """Speed across the image in px per second."""
    return actor.speed_mps * actor_px_per_m(actor, height)


def actor_left_x(actor: Actor, frame: float, width: int, height: int, fps: float) -> float:
    """x of the sprite's left edge at ``frame`` (unrounded)."""
    w, _ = actor_extent_px(actor, height)
    travelled = actor_speed_px(actor, height) * (frame - actor.spawn_frame) / fps
    if actor.moving_direction > 0:
        return -w + travelled
    return width - travelled


def actor_ground_y(actor: Actor, height: int) -> float:
    return PATHS[actor.path].ground_y(actor.lateral) * scale_for(height)


def actor_frames_in_view(actor: Actor, width: int, height: int, fps: float) -> int:
    """Frames from spawn until the actor has fully left the image."""
    w, _ = actor_extent_px(actor, height)
    return math.ceil((width + w) / actor_speed_px(actor, height) * fps) + 1


def depth_key(actor: Actor, index: int) -> tuple[int, float, int]:
    """Sort key, far to near: path depth, then position across the path, then script order."""
    return PATHS[actor.path].depth, actor.lateral, index


# ----------------------------------------------------------------------------------------- generator
PLATE_LETTERS = "ABCDEFGHJKLMNPRSTVWXY"
"""UK-style plates avoid I, O, Q, U, Z."""
CAR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (228, 228, 226), (32, 32, 34), (172, 172, 168), (112, 112, 110), (40, 38, 178), (156, 86, 34),
    (92, 42, 24), (58, 112, 44), (40, 186, 222), (30, 108, 220), (150, 178, 196), (70, 70, 120),
)
TRUCK_COLOURS: tuple[tuple[int, int, int], ...] = ((236, 236, 232), (180, 120, 60), (40, 40, 170), (60, 140, 80))
BUS_COLOURS: tuple[tuple[int, int, int], ...] = ((40, 40, 190), (40, 170, 225), (170, 90, 30), (230, 230, 225))
SHIRT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (200, 200, 200), (40, 40, 40), (60, 60, 170), (150, 90, 40), (60, 140, 60), (40, 160, 210),
    (130, 60, 120), (90, 90, 90), (170, 140, 120), (30, 80, 140),
)
TROUSER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (110, 70, 40), (35, 35, 40), (90, 120, 140), (70, 70, 70), (120, 60, 30), (50, 60, 80),
)
LANE_SPEED_MPS = {"lane0": 11.0, "lane1": 9.5, "lane2": 8.5, "lane3": 8.0}
"""Urban speeds near a junction (29-40 km/h); each seed jitters them by +-12 %. All vehicles of a lane share
its speed, so no vehicle drives through another."""
LANE_WEIGHTS = {"lane0": 0.2, "lane1": 0.25, "lane2": 0.25, "lane3": 0.3}
WALK_WEIGHTS = {"far_walk": 0.35, "mid_walk": 0.45, "near_walk": 0.2}
HEADWAY_GAP_M = 3.0
"""Minimum gap between consecutive vehicles of a lane."""
EVENT_CYCLE_S = 60.0
FIRST_EVENTS_S = (("light", 4.0, 14.0), ("freeze", 15.0, 17.0), ("cover", 18.0, 20.0))
"""The first minute has every event early, so a ~20 s demo shows them all; later minutes place
one of each at seeded times."""
FREEZE_S = 2.0
COVER_S = 2.0
LIGHT_S = 10.0
LIGHT_RAMP_S = 3.0
LIGHT_LEVEL = 0.4


def random_plate(rng: np.random.Generator) -> str:
    """UK-style ``AB12 CDE``."""
    letters = [PLATE_LETTERS[i] for i in rng.integers(0, len(PLATE_LETTERS), size=5)]
    digits = rng.integers(0, 10, size=2)
    return f"{letters[0]}{letters[1]}{digits[0]}{digits[1]} {letters[2]}{letters[3]}{letters[4]}"


def _poisson_times(rng: np.random.Generator, per_minute: float, duration_s: float) -> list[float]:
    if per_minute <= 0:
        return []
    times: list[float] = []
    t = 0.0
    mean_gap = 60.0 / per_minute
    while True:
        t += float(rng.exponential(mean_gap))
        if t >= duration_s:
            return times
        times.append(t)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _vehicles(rng, width, height, fps, period, per_minute) -> list[Actor]:
    speeds = {lane: s * float(rng.uniform(0.88, 1.12)) for lane, s in LANE_SPEED_MPS.items()}
    free_from = {lane: 0 for lane in LANE_SPEED_MPS}
    plates: set[str] = set()
    out: list[Actor] = []
    for t in _poisson_times(rng, per_minute, period / fps):
        lane = _pick(rng, LANE_WEIGHTS)
        roll = float(rng.random())
        kind: ActorKind = "car" if roll < 0.8 or lane == "lane3" else ("truck" if roll < 0.9 else "bus")
        plate = random_plate(rng)
        while plate in plates:
            plate = random_plate(rng)
        palette = {"car": CAR_COLOURS, "truck": TRUCK_COLOURS, "bus": BUS_COLOURS}[kind]
        colour = palette[int(rng.integers(len(palette)))]
        colour2 = TRUCK_COLOURS[int(rng.integers(len(TRUCK_COLOURS)))]
        size = float(rng.uniform(0.93, 1.07))
        spawn = max(round(t * fps), free_from[lane])
        actor = Actor(kind, spawn, lane, speeds[lane], plate_text=plate, colour=colour, colour2=colour2, size=size)
        if spawn + actor_frames_in_view(actor, width, height, fps) > period:
            continue
        plates.add(plate)
        length_m = actor_extent_m(actor)[0]
        free_from[lane] = spawn + math.ceil((length_m + HEADWAY_GAP_M) / actor.speed_mps * fps)
        out.append(actor)
    return out


def _people(rng, width, height, fps, period, per_minute, n_faces) -> list[Actor]:
    out: list[Actor] = []
    for t in _poisson_times(rng, per_minute, period / fps):
        walk = _pick(rng, WALK_WEIGHTS)
        warm = float(rng.uniform(-0.08, 0.08))
        tint = (
            float(rng.uniform(0.9, 1.05)) - warm,
            float(rng.uniform(0.93, 1.05)),
            float(rng.uniform(0.95, 1.08)) + warm,
        )
        actor = Actor(
            "person",
            round(t * fps),
            walk,
            float(rng.uniform(1.1, 1.7)),
            direction=1 if rng.random() < 0.5 else -1,
            face=int(rng.integers(n_faces)),
            flip_face=bool(rng.random() < 0.5),
            tint=tint,
            colour=SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))],
            colour2=TROUSER_COLOURS[int(rng.integers(len(TROUSER_COLOURS)))],
            size=float(rng.uniform(0.9, 1.08)),
            lateral=float(rng.uniform(0.0, 1.0)),
        )
        if actor.spawn_frame + actor_frames_in_view(actor, width, height, fps) > period:
            continue
        out.append(actor)
    return out


def _events(rng, fps, period) -> list[SceneEvent]:
    def make(kind: str, start_s: float, end_s: float) -> SceneEvent:
        return SceneEvent(kind, round(start_s * fps), round(end_s * fps), LIGHT_LEVEL, round(LIGHT_RAMP_S * fps))  # type: ignore[arg-type]

    events = [make(k, a, b) for k, a, b in FIRST_EVENTS_S]
    cycle = EVENT_CYCLE_S
    start = cycle
    while start + cycle <= period / fps:
        # Three slots of 20 s in the minute, one event each in a seeded order and offset.
        for slot, kind in enumerate(rng.permutation(list(EVENT_KINDS))):
            length = {"light": LIGHT_S, "freeze": FREEZE_S, "cover": COVER_S}[str(kind)]
            offset = float(rng.uniform(1.0, 19.0 - length))
            a = start + slot * 20.0 + offset
            events.append(make(str(kind), a, a + length))
        start += cycle
    return [e for e in events if e.end_frame <= period]


def generate_scenario(
    seed: int = 7,
    *,
    width: int = 1280,
    height: int = 720,
    fps: float = 10.0,
    duration_s: float = 600.0,
    cars_per_minute: float = 24.0,
    people_per_minute: float = 12.0,
    events: bool = True,
    n_faces: int = 3,
) -> Scenario:
    """A seeded scenario of ``duration_s`` that repeats (every actor leaves before the end).

    Vehicles arrive as a Poisson process (``cars_per_minute``; ~80 % cars, the rest trucks and
    buses, which keep to lanes 0-2), people likewise (``people_per_minute``). Independent random
    streams per part: changing the car rate does not change the people or the events.
    """
    if duration_s * fps < 1:
        raise ValueError(f"duration_s: need at least one frame, got {duration_s} s at {fps} fps")
    if cars_per_minute < 0 or people_per_minute < 0:
        raise ValueError("cars_per_minute and people_per_minute must be >= 0")
    period = round(duration_s * fps)
    vehicles = _vehicles(np.random.default_rng([seed, 1]), width, height, fps, period, cars_per_minute)
    people = _people(np.random.default_rng([seed, 2]), width, height, fps, period, people_per_minute, n_faces)
    scheduled = _events(np.random.default_rng([seed, 3]), fps, period) if events else []
    actors = sorted(vehicles + people, key=lambda a: a.spawn_frame)
    return Scenario(tuple(actors), tuple(scheduled), period_frames=period)
