"""Geometry and the stacked Kalman filter (its block form against the full-covariance reference)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edged.core.geometry import cxcywh_to_xyxy, expand, iou_matrix, xyxy_to_cxcywh
from edged.stages.track import kalman
from tests import kalman_reference as full


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(0, 120, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def test_iou_matrix_matches_trackers_eval():
    from trackers.eval import box_iou

    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 40), random_boxes(rng, 30)
    np.testing.assert_allclose(iou_matrix(a, b), box_iou(a, b), atol=1e-9)
    assert iou_matrix(a[:0], b).shape == (0, 30)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (6, 4), elements=st.floats(-100, 1000)))
def test_box_conversions_round_trip(boxes):
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes, atol=1e-9)
    grown = expand(np.array([[10.0, 20.0, 30.0, 60.0]]), 0.5)
    np.testing.assert_allclose(grown, [[0.0, 0.0, 40.0, 80.0]])


def test_blockwise_predict_equals_f_p_ft_plus_q():
    rng = np.random.default_rng(0)
    mean = rng.uniform(10, 100, (5, 8))
    a = rng.normal(size=(5, 8, 8))
    cov = a @ a.transpose(0, 2, 1)
    noise = kalman.KalmanNoise()
    dt = 1.7
    new_mean, new_cov = full.predict(mean, cov, dt, noise)
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    scale = np.maximum(np.concatenate([mean[:, 2:4]] * 2, axis=1), 1.0)
    q = np.zeros((5, 8, 8))
    idx = np.arange(8)
    q[:, idx, idx] = np.concatenate([noise.std_position * scale, noise.std_velocity * scale], axis=1) ** 2 * dt
    np.testing.assert_allclose(new_mean, mean @ f.T, atol=1e-9)
    np.testing.assert_allclose(new_cov, f @ cov @ f.T + q, atol=1e-9)


def test_filter_learns_constant_velocity_of_every_track_at_once():
    noise = kalman.KalmanNoise(std_init_velocity=0.25)
    velocities = np.array([[12.0, 0.0], [-3.0, 2.0], [0.0, 0.0]])
    start = np.array([[100.0, 200.0, 80.0, 60.0], [500.0, 300.0, 40.0, 90.0], [50.0, 50.0, 20.0, 20.0]])
    rng = np.random.default_rng(2)
    mean, cov = kalman.initiate_blocks(start, noise)
    for k in range(1, 30):
        kalman.predict_blocks(mean, cov, 1.0, noise)
        z = start.copy()
        z[:, :2] += velocities * k
        mean, cov = kalman.update_blocks(mean, cov, z + rng.normal(0, 0.5, z.shape), noise)
    np.testing.assert_allclose(mean[:, 4:6], velocities, atol=0.5)
    np.testing.assert_allclose(mean[:, 6:], 0.0, atol=0.2)
    assert np.all(np.linalg.eigvalsh(full.blocks_to_full(cov)) > 0)  # still positive definite


def test_full_size_keeps_the_largest_size_while_the_border_clips_it():
    from edged.core.geometry import full_size, leaving_mismatch

    prev = np.array([[437.0, 220.0]])
    # clipped by the right border: width keeps the full 437, height (not clipped) is measured anew
    np.testing.assert_allclose(full_size(prev, np.array([[1025.0, 340, 1280, 556]]), 1280, 720), [[437.0, 216.0]])
    # wholly in view again: measured anew
    np.testing.assert_allclose(full_size(prev, np.array([[500.0, 340, 800, 556]]), 1280, 720), [[300.0, 216.0]])
    last = np.array([[1025.0, 340, 1280, 556]])
    pred = np.array([[1130.0, 340, 1280, 556]])
    dets = np.array([[1140.0, 340, 1280, 556], [1040.0, 322, 1279, 495]])
    full = np.array([[437.0, 216.0]])
    assert leaving_mismatch(last, full, pred, dets, 1280, 720, 0.3).tolist() == [[False, True]]
    # a track not leaving (wholly in view) never rules a detection out
    assert not leaving_mismatch(np.array([[500.0, 340, 937, 556]]), full, pred, dets, 1280, 720, 0.3).any()


def test_block_filter_does_what_the_full_filter_does():
    """The tracker's ``(N, 3, 4)`` covariance blocks follow the 8 x 8 filter step for step."""
    noise = kalman.KalmanNoise(std_init_velocity=0.25)
    rng = np.random.default_rng(1)
    z = rng.uniform(20, 400, (6, 4))
    mean, cov = full.initiate(z, noise)
    block_mean, blocks = kalman.initiate_blocks(z, noise)
    np.testing.assert_array_equal(full.blocks_to_full(blocks), cov)
    for t in range(120):
        dt = (1.0, 2.0, 0.7)[t % 3]
        mean, cov = full.predict(mean, cov, dt, noise)
        kalman.predict_blocks(block_mean, blocks, dt, noise)
        np.testing.assert_array_equal(block_mean, mean)
        np.testing.assert_allclose(full.blocks_to_full(blocks), cov, rtol=1e-12, atol=0)
        if t % 5 != 4:
            measured = mean[:, :4] + rng.normal(0, 3, (6, 4))
            mean, cov = full.update(mean, cov, measured, noise)
            block_mean, blocks = kalman.update_blocks(block_mean, blocks, measured, noise)
            np.testing.assert_allclose(block_mean, mean, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(full.blocks_to_full(blocks), cov, rtol=1e-12, atol=0)
