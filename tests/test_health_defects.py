"""Defect points: stuck (hot) and dead pixels found per block and confirmed over frames."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from edged.config import HealthConfig
from edged.stages.health.checks import HealthChecker

W, H = 320, 240
HOT = [(20, 30), (200, 100), (319, 5)]  # x, y; one on the frame border
DEAD = [(150, 200), (64, 64)]
LAMP = (100, 50)  # a small static light: 3x3 bright pixels, not a defect


def frames(n: int, seed: int = 0):
    """A panning, noisy photo with the defects and a lamp burnt in."""
    base = cv2.GaussianBlur(cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (2 * W, H)), (0, 0), 2)
    base = np.clip(base.astype(np.float32) * 0.6 + 60, 0, 255)  # keep away from 0 and 255
    rng = np.random.default_rng(seed)
    for k in range(n):
        x = (9 * k) % W
        img = np.clip(base[:, x : x + W] + rng.normal(0, 1.5, (H, W, 3)), 0, 255).astype(np.uint8)
        lx, ly = LAMP
        img[ly - 1 : ly + 2, lx - 1 : lx + 2] = 255
        for hx, hy in HOT:
            img[hy, hx] = 255
        for dx, dy in DEAD:
            img[dy, dx] = 0
        yield img


def test_stuck_and_dead_pixels_found_lamp_and_scene_not() -> None:
    cfg = HealthConfig(defect_every=2, defect_min_samples=15)
    checker = HealthChecker(cfg, W, H)
    updates = []
    for i, img in enumerate(frames(40)):
        r = checker.check(img, frame_index=i)
        updates += [e for e in r.events if e.kind == "defects"]
        if i < 28:
            assert r.defects == 0  # fewer than defect_min_samples samples (every 2nd frame)
    report = checker.defect_report()
    assert report.samples == 20
    assert sorted(map(tuple, report.hot.tolist())) == sorted(HOT)
    assert sorted(map(tuple, report.dead.tolist())) == sorted(DEAD)
    assert report.count == 5 and int(report.per_block.sum()) == 5
    assert report.per_block[30 // 32, 20 // 32] == 1 and report.per_block.shape == (8, 10)
    assert [(e.detail["previous"], e.detail["count"]) for e in updates] == [(0, 5)]
    assert updates[0].frame_index == 28
    assert report.to_dict()["count"] == 5


def test_clean_camera_reports_no_defects() -> None:
    cfg = HealthConfig(defect_every=1, defect_min_samples=10)
    checker = HealthChecker(cfg, W, H)
    base = cv2.resize(cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), (2 * W, H))
    rng = np.random.default_rng(4)
    for k in range(30):
        img = np.clip(base[:, 5 * k : 5 * k + W] + rng.normal(0, 2.0, (H, W, 3)), 0, 255).astype(np.uint8)
        checker.check(img, frame_index=k)
    assert checker.defect_report().count == 0
