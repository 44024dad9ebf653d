"""Tracking accuracy on scripted scenes with ground truth as detections plus noise (trackers.eval metrics).

Figures for longer runs and several seeds: ``python -m tools.eval.tracking`` and
``python -m tools.bench.tracker`` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import pytest

from tools.eval.tracking import Noise, evaluate, make_scene, run_edged


def test_mota_and_idf1_on_the_synthetic_road_scene_with_noise_misses_occlusion_and_false_positives():
    # 8 % random misses, misses under occlusion, 15 % low scores, 4 % box noise, 0.15 false positives/frame.
    scene = make_scene("synthetic", seed=3, seconds=45, noise=Noise())
    reported = evaluate(scene, run_edged(scene.metas, scene.dets, include_predicted=True), hota=False)
    detected = evaluate(scene, run_edged(scene.metas, scene.dets), hota=False)
    print(f"synthetic 45 s: all reported {reported}\ndetected only {detected}")
    assert reported["gt_objects"] >= 30
    assert reported["MOTA"] >= 0.90 and reported["IDF1"] >= 0.90
    # Without the predicted boxes the misses cost MOTA (8 % of it by construction), but identities hold.
    assert detected["IDF1"] >= 0.90
    assert reported["IDSW"] <= 0.1 * reported["gt_objects"]


def test_mota_and_idf1_on_the_fake_camera_scene():
    pytest.importorskip("edged_sim.camera")
    noise = Noise(box_sigma=0.03, miss_rate=0.03, occluded_miss=None, low_score_rate=0.15, fp_per_frame=0.2)
    scene = make_scene("fake", seed=3, seconds=30, noise=noise)
    detected = evaluate(scene, run_edged(scene.metas, scene.dets), hota=False)
    print(f"fake camera 30 s: detected only {detected}")
    assert detected["gt_objects"] >= 15
    assert detected["MOTA"] >= 0.90 and detected["IDF1"] >= 0.90
