"""Freeze and cover events over time, with hysteresis, on a noisy photo scene."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from edged.config import HealthConfig
from edged.stages.health.checks import HealthChecker, Hysteresis

W, H = 320, 240


class Scene:
    """A static photo with sensor noise (sigma like the fake camera at unity gain) and a moving box."""

    def __init__(self, noise: float = 0.85, seed: int = 1) -> None:
        self.base = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (W, H)).astype(np.float32)
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.k = 0

    def frame(self, moving: bool = True, gain: float = 1.0) -> np.ndarray:
        img = self.base * gain
        if moving:
            x = (7 * self.k) % (W - 40)
            img[100:140, x : x + 40] = (30, 30, 200)
        self.k += 1
        return np.clip(img + self.rng.normal(0, self.noise, img.shape), 0, 255).astype(np.uint8)


def covered(rng: np.random.Generator, level: float = 12.0, noise: float = 4.6) -> np.ndarray:
    """A hand over the lens at high gain: dark, uniform, noisy."""
    return np.clip(level + rng.normal(0, noise, (H, W, 3)), 0, 255).astype(np.uint8)


def run(checker: HealthChecker, frames: list[np.ndarray]):
    reports = [checker.check(f, frame_index=i, timestamp=i / 10) for i, f in enumerate(frames)]
    return reports, [e for r in reports for e in r.events if e.kind in ("freeze", "cover")]


def test_static_noisy_scene_is_never_still() -> None:
    scene = Scene()
    reports, events = run(HealthChecker(HealthConfig(), W, H), [scene.frame(moving=False) for _ in range(60)])
    assert not any(r.still or r.covered_frame for r in reports) and events == []
    assert min(r.change_rms for r in reports[1:]) > 2 * HealthConfig().freeze_rms
    assert reports[-1].noise_floor == pytest.approx(0.85 * np.sqrt(2) / 2, rel=0.35)  # 2x2 averaging halves sigma


def test_freeze_raises_one_event_per_occurrence() -> None:
    scene = Scene()
    frames = [scene.frame() for _ in range(30)]
    frozen = frames[-1]
    frames += [frozen.copy() for _ in range(20)]  # the fake camera's freeze: byte-identical frames
    frames += [scene.frame() for _ in range(20)]
    frames += [frames[-1].copy() for _ in range(2)]  # a 2-frame hiccup: below on_frames, no event
    frames += [scene.frame() for _ in range(10)]
    reports, events = run(HealthChecker(HealthConfig(), W, H), frames)
    assert [(e.kind, e.state) for e in events] == [("freeze", "start"), ("freeze", "end")]
    start, end = events
    assert start.frame_index == 32 and start.detail["first_frame"] == 30  # frames 30.. repeat frame 29
    assert end.frame_index == 52 and end.detail["last_frame"] == 49
    assert [r.frozen for r in reports[28:55]] == [False] * 4 + [True] * 20 + [False] * 3
    assert sum(r.still for r in reports) == 20 + 2


def test_near_identical_frames_count_as_still_but_sensor_noise_does_not() -> None:
    scene = Scene(noise=0.4)  # a very clean sensor
    frames = [scene.frame(moving=False) for _ in range(10)]
    rng = np.random.default_rng(5)
    for _ in range(5):  # a stalled source with a handful of pixels flickering by one level
        f = frames[9].astype(np.int16)
        f[rng.random((H, W)) < 0.001] += 1
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    reports, events = run(HealthChecker(HealthConfig(), W, H), frames)
    assert not any(r.still for r in reports[:10]) and all(r.still for r in reports[10:])
    assert [(e.kind, e.state) for e in events] == [("freeze", "start")]


def test_cover_raises_one_event_and_is_not_also_a_freeze() -> None:
    scene, rng = Scene(), np.random.default_rng(2)
    black = covered(rng, level=3.0, noise=0.0)
    frames = [scene.frame() for _ in range(20)]
    frames += [covered(rng) for _ in range(15)] + [black.copy() for _ in range(10)]  # noisy, then a static black cap
    frames += [scene.frame() for _ in range(20)]
    reports, events = run(HealthChecker(HealthConfig(), W, H), frames)
    assert [(e.kind, e.state) for e in events] == [("cover", "start"), ("cover", "end")]
    assert events[0].frame_index == 22 and events[1].frame_index == 47
    assert not any(r.frozen for r in reports)


def test_dim_light_and_a_dark_textured_scene_are_not_covered() -> None:
    scene = Scene()
    frames = [scene.frame(gain=g) for g in np.linspace(1.0, 0.35, 40)] + [scene.frame(gain=0.35) for _ in range(20)]
    reports, events = run(HealthChecker(HealthConfig(), W, H), frames)
    assert events == [] and not any(r.covered_frame for r in reports)


def test_hysteresis_counts() -> None:
    h = Hysteresis("x", on=2, off=2)
    seq = [1, 0, 1, 1, 1, 0, 1, 0, 0, 1, 1]
    out = [h.update(bool(v), i, float(i), {}) for i, v in enumerate(seq)]
    got = [(e.state, e.frame_index) for e in out if e]
    assert got == [("start", 3), ("end", 8), ("start", 10)] and h.count == 2


def test_report_and_events_serialise_for_telemetry() -> None:
    import json

    scene = Scene()
    checker = HealthChecker(HealthConfig(), W, H)
    frames = [scene.frame() for _ in range(3)]
    frames += [frames[-1].copy() for _ in range(3)]
    reports, events = run(checker, frames)
    out = json.loads(json.dumps(reports[-1].to_dict()))
    assert out["frozen"] is True and out["events"][0]["kind"] == "freeze" and out["events"][0]["first_frame"] == 3
    assert set(out) >= {"distortion_index", "temporal_index", "change_rms", "still", "covered", "defects", "noise_floor"}
