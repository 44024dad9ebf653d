"""Best-image rules at their boundaries: qualification, the four 'better' conditions, immediate vs cached."""

from __future__ import annotations

import numpy as np
import pytest

from edged.config import SelectConfig
from edged.stages.select.rules import area_ratio, box_area, is_better, min_edge_distance, qualifies, sends_immediately

CFG = SelectConfig(min_width=32, min_height=40, score1=0.5, score2=0.7, edge1=4, edge2=32, area_ratio=0.01)


def test_min_edge_distance_of_axis_aligned_boxes():
    boxes = np.array([[10, 20, 100, 200], [300, 5, 400, 100], [600, 100, 630, 470], [0, 0, 640, 480], [-20, 50, 80, 90]])
    np.testing.assert_allclose(min_edge_distance(boxes, 640, 480), [10, 5, 10, 0, 0])


def test_min_edge_distance_uses_side_midpoints_for_rotated_boxes():
    # A 100 x 20 box centred at (200, 60) rotated by 90 degrees stands 100 tall: top midpoint at y = 10.
    box = np.array([[150, 50, 250, 70]])
    assert min_edge_distance(box, 640, 480, np.array([np.pi / 2]))[0] == pytest.approx(10)
    assert min_edge_distance(box, 640, 480, np.array([0.0]))[0] == pytest.approx(50)


def test_area_and_area_ratio():
    box = np.array([[100, 100, 164, 148]])
    assert box_area(box)[0] == 64 * 48
    assert area_ratio(box, 640, 480)[0] == pytest.approx(0.01)


def test_first_observation_qualifies_whatever_its_size_and_score():
    assert qualifies(True, 1, 1.0, 1.0, 0.01, CFG)
    assert not qualifies(False, 1, 500.0, 500.0, 0.99, CFG)  # last observation is not in this image


@pytest.mark.parametrize(
    "w, h, s, expected",
    [
        (32, 40, 0.5, True),  # every value exactly at its threshold
        (31.99, 40, 0.5, False),
        (32, 39.99, 0.5, False),
        (32, 40, 0.4999, False),
        (300, 300, 0.99, True),
    ],
)
def test_later_observations_qualify_on_size_and_score(w, h, s, expected):
    assert bool(qualifies(True, 2, w, h, np.float32(s), CFG)) is expected
    assert not qualifies(False, 2, w, h, s, CFG)


BASE = dict(edge_now=20.0, score_now=0.8, manual_now=True, area_now=5000.0, edge_then=10.0, score_then=0.6, area_then=4000.0)


def better(**change) -> bool:
    args = {**BASE, **change}
    return bool(is_better(**args, config=CFG))


def test_better_when_every_condition_holds():
    assert better()


@pytest.mark.parametrize(
    "change",
    [
        {"edge_now": 9.0},  # closer to the border than the previous best
        {"edge_now": 3.9, "edge_then": 3.0},  # no closer than before, but under edge1
        {"score_now": 0.59},
        {"manual_now": False},  # auto exposure
        {"area_now": 3999.0},
    ],
    ids=["edge-vs-previous", "edge-under-edge1", "score", "auto-exposure", "area"],
)
def test_each_condition_failing_alone_is_not_better(change):
    assert not better(**change)


def test_ties_are_better():
    assert better(edge_now=10.0, score_now=0.6, area_now=4000.0)
    assert better(edge_now=4.0, edge_then=4.0)  # exactly edge1


def test_auto_exposure_is_never_better_even_when_everything_else_improves():
    assert not better(manual_now=False, edge_now=200.0, score_now=1.0, area_now=1e6)


def test_previous_exposure_mode_does_not_matter():
    # is_better has no parameter for the previous mode: a manual image can replace an auto best.
    assert better(manual_now=True)


@pytest.mark.parametrize(
    "ratio, score, edge, expected",
    [
        (0.02, 0.8, 40, True),
        (0.01, 0.8, 40, False),  # ratio == area_ratio: cached
        (0.02, 0.7, 40, True),  # score == score2: immediate
        (0.02, 0.6999, 40, False),
        (0.02, 0.8, 32, False),  # edge == edge2: cached
        (0.02, 0.8, 32.01, True),
    ],
)
def test_immediate_boundaries(ratio, score, edge, expected):
    assert bool(sends_immediately(ratio, np.float32(score), edge, CFG)) is expected


def test_rules_work_elementwise_on_arrays():
    q = qualifies(np.array([True, True, False]), np.array([1, 3, 1]), np.array([5, 50, 50]), np.array([5, 50, 50]),
                  np.array([0.1, 0.9, 0.9], np.float32), CFG)
    assert q.tolist() == [True, True, False]
