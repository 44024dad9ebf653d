"""Short version of tools/eval/health.py: the fake scene's first 25 s hold a light change, a
freeze and a cover event; the checks must flag both events, nothing else, and find the defects."""

from __future__ import annotations

from edged.config import HealthConfig
from tools.eval.health import evaluate


def test_fake_scene_events_flagged_and_normal_frames_clean() -> None:
    cfg = HealthConfig(defect_every=2, defect_min_samples=40)
    s = evaluate(seconds=25.0, width=640, height=360, cfg=cfg, distort_every=10).summary()
    assert s["occurrences"] == {"freeze": 1, "cover": 1}
    assert s["detected"] == {"freeze": 1, "cover": 1}
    assert s["latency_frames"] == {"freeze": [cfg.on_frames - 1], "cover": [cfg.on_frames - 1]}
    assert s["false_events"] == []
    assert s["light_frames"] == 100 and s["light_frames_flagged"] == 0
    assert s["false_flag_rate"] <= 0.01
    caught, injected = map(int, s["distortions"].split("/"))
    assert injected >= 15 and caught == injected
    assert s["distortion_index_clean_min"] == 1.0
    assert s["defects_injected"] == 10 and s["defects_found"] == 10 and s["defects_false"] == 0
