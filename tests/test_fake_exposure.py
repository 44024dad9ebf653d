"""Fake camera exposure model: brightness follows shutter x gain, AE, motion blur, noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edged.core.types import ExposureMode
from edged_sim.camera import AE_MAX_SHUTTER_US, FakeCamera
from edged_sim.exposure import LINEAR_OF_CODE, AutoExposure
from edged_sim.scene import Actor, Scenario, actor_extent_px, actor_speed_px

W, H = 320, 180
TARGET = AutoExposure().target * 255


def frame_at(shutter_us: float, gain: float, frames: int = 1, **kw) -> np.ndarray:
    cam = FakeCamera(W, H, t0=0.0, noise=False, **{"events": False, **kw})
    cam.start()
    cam.set_manual_exposure(shutter_us, gain)
    for _ in range(frames):
        shot = cam.capture()
    assert shot.exposure.mode is ExposureMode.MANUAL
    assert (shot.exposure.shutter_us, shot.exposure.gain) == (shutter_us, gain)
    return shot.pixels


def test_double_gain_doubles_linear_brightness_before_clipping():
    one = frame_at(2000.0, 1.0, frames=30)
    two = frame_at(2000.0, 2.0, frames=30)
    ok = (one > 30) & (two < 250)
    assert ok.mean() > 0.5
    ratio = LINEAR_OF_CODE[two[ok]] / LINEAR_OF_CODE[one[ok]]
    assert np.median(ratio) == pytest.approx(2.0, rel=0.03)
    assert np.percentile(ratio, 5) > 1.8 and np.percentile(ratio, 95) < 2.2
    clipped = frame_at(2000.0, 16.0, frames=30)
    assert (clipped == 255).mean() > 0.2, "a long exposure clips"


def test_only_the_product_matters_for_a_static_scene():
    empty = {"script": Scenario()}
    assert np.array_equal(frame_at(4000.0, 1.0, **empty), frame_at(1000.0, 4.0, **empty))
    assert not np.array_equal(frame_at(4000.0, 1.0, **empty), frame_at(4000.0, 1.1, **empty))


def test_manual_exposure_takes_effect_on_the_next_frame_and_is_clamped():
    cam = FakeCamera(W, H, t0=0.0)
    cam.start()
    first = cam.capture()
    assert first.exposure.mode is ExposureMode.AUTO
    cam.set_manual_exposure(1_000_000.0, 100.0)
    e = cam.read_exposure()
    assert (e.mode, e.shutter_us, e.gain) == (ExposureMode.MANUAL, 100_000.0, 16.0)
    cam.set_manual_exposure(5.0, 0.5)
    assert (cam.read_exposure().shutter_us, cam.read_exposure().gain) == (30.0, 1.0)
    cam.set_manual_exposure(2000.0, 3.0)
    second = cam.capture()
    assert (second.exposure.mode, second.exposure.shutter_us, second.exposure.gain) == (ExposureMode.MANUAL, 2000.0, 3.0)
    cam.set_auto_exposure()
    assert cam.capture().exposure.mode is ExposureMode.AUTO


def test_auto_exposure_converges_and_read_exposure_reports_its_choice():
    cam = FakeCamera(W, H, t0=0.0, seed=5, events=False)
    cam.start()
    cam.set_manual_exposure(200.0, 1.0)  # start far too dark
    cam.capture()
    cam.set_auto_exposure()
    means = []
    for _ in range(12):
        chosen = cam.read_exposure()
        shot = cam.capture()
        assert (shot.exposure.shutter_us, shot.exposure.gain) == (chosen.shutter_us, chosen.gain)
        means.append(float(shot.pixels.mean()))
    assert means[0] < 0.5 * TARGET
    assert abs(means[9] - TARGET) < 0.08 * TARGET, means
    e = cam.read_exposure()
    assert e.gain == 1.0 and 1000 < e.shutter_us < AE_MAX_SHUTTER_US, "daylight: shutter only, no gain"


def test_auto_exposure_follows_a_light_change_preferring_shutter_to_gain():
    cam = FakeCamera(W, H, t0=0.0, seed=5)
    light = next(e for e in cam.scenario.events if e.kind == "light")
    cover = next(e for e in cam.scenario.events if e.kind == "cover")
    cam.start()
    product, mean = {}, {}
    for k in range(cover.end_frame):
        shot = cam.capture()
        product[k] = shot.exposure.shutter_us * shot.exposure.gain
        mean[k] = float(shot.pixels.mean())
        if k == cover.end_frame - 1:
            assert shot.exposure.shutter_us == pytest.approx(AE_MAX_SHUTTER_US) and shot.exposure.gain > 4, (
                "a covered lens drives AE to the longest shutter, then up the gain"
            )
    before = light.start_frame - 1
    darkest = (light.start_frame + light.end_frame) // 2
    assert cam.illumination(darkest) == pytest.approx(light.level)
    assert "light" in cam.scenario.events_at(darkest)[0].kind
    # AE compensates 40 % light with ~2.5x the exposure and keeps the brightness near target
    assert product[darkest] / product[before] == pytest.approx(1 / light.level, rel=0.12)
    assert abs(mean[darkest] - TARGET) < 0.1 * TARGET
    # locked exposure does not compensate: the same dip darkens the picture
    locked = FakeCamera(W, H, t0=0.0, seed=5)
    locked.start()
    locked.set_manual_exposure(2000.0, product[before] / 2000.0)
    lmean = {}
    for k in range(darkest + 1):
        lmean[k] = float(locked.capture().pixels.mean())
    assert lmean[darkest] < 0.75 * lmean[before]


def test_sensor_noise_grows_with_gain():
    empty = {"script": Scenario()}

    def noise(shutter_us: float, gain: float) -> float:
        cam = FakeCamera(W, H, t0=0.0, **empty)
        cam.start()
        cam.set_manual_exposure(shutter_us, gain)
        a, b = cam.capture().pixels.astype(float), cam.capture().pixels.astype(float)
        mid = (a > 20) & (a < 235)
        return float(np.std((a - b)[mid]) / np.sqrt(2))

    low, high = noise(16000.0, 1.0), noise(1000.0, 16.0)
    assert 0.5 < low < 1.5 and high > 3 * low


def placed_car(frame: int, width: int, height: int) -> Scenario:
    car = Actor("car", 0, "lane3", 8.0, plate_text="AB12 CDE", colour=(40, 38, 178))
    w, _ = actor_extent_px(car, height)
    step = actor_speed_px(car, height) / 10.0
    return Scenario((dataclasses.replace(car, spawn_frame=round(frame - (0.3 * width + w) / step)),))


def edge_sharpness(pixels: np.ndarray, box) -> float:
    """Largest horizontal step (grey levels per px) at the car's vertical edges."""
    x1, y1, x2, y2 = (int(v) for v in box)
    grey = pixels[y1:y2, max(x1 - 40, 0) : x2 + 40].mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).max(axis=1).mean())


def test_motion_blur_grows_with_shutter():
    shots = {}
    for shutter, gain in ((2000.0, 10.0), (20_000.0, 1.0)):  # same exposure product
        cam = FakeCamera(640, 360, t0=0.0, noise=False, script=placed_car(10, 640, 360))
        cam.start()
        cam.set_manual_exposure(shutter, gain)
        for _ in range(11):
            shots[shutter] = cam.capture()
    sharp, blurred = shots[2000.0], shots[20_000.0]
    box_sharp = sharp.ground_truth.of_class("car").boxes[0]
    box_blur = blurred.ground_truth.of_class("car").boxes[0]
    assert np.abs(box_sharp - box_blur).max() <= 2, "blur is centred: the box stays put"
    assert edge_sharpness(blurred.pixels, box_blur) < 0.5 * edge_sharpness(sharp.pixels, box_sharp)
    # the static background is not blurred
    assert np.array_equal(sharp.pixels[:40], blurred.pixels[:40])
