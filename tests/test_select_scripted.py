"""Selection over whole scripted runs (tracker + selector): every object in view >= 1 s gets a best image."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.eval_tracking import Noise, best_image_coverage, make_scene, run_selection


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), miss_rate=st.floats(0.0, 0.1), fp_per_frame=st.floats(0.0, 0.3))
def test_every_object_in_view_for_a_second_gets_a_best_image(seed, miss_rate, fp_per_frame):
    scene = make_scene("synthetic", seed, seconds=20, noise=Noise(miss_rate=miss_rate, fp_per_frame=fp_per_frame))
    run = run_selection(scene)
    n_long, n_covered, missing = best_image_coverage(scene, run, min_seconds=1.0)
    assert n_long > 0
    assert n_covered == n_long, f"objects without a best image: {missing}"
    images = [p.meta.image_id for p in run.packages]
    assert len(images) == len(set(images))
