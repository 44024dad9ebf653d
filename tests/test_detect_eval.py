"""The AP / recall arithmetic used by tools/eval/models.py."""

from __future__ import annotations

import numpy as np
import pytest

from tools.eval.models import perturbations, tally

GT = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]], np.float32)


def test_perfect_detections_give_ap_one_and_full_recall():
    t = tally()
    t.add(GT, GT.copy(), np.array([0.9, 0.8, 0.7, 0.6], np.float32))
    assert t.ap() == pytest.approx(1.0)
    assert t.recall(0.5) == 1.0
    assert t.recall(0.75) == 0.5


def test_false_positive_ranked_first_lowers_ap_and_misses_lower_recall():
    t = tally()
    boxes = np.concatenate([[[100, 100, 110, 110]], GT[:2]]).astype(np.float32)
    t.add(GT, boxes, np.array([0.95, 0.9, 0.8], np.float32))
    # precision 0, 1/2, 2/3 at recall 0, 1/4, 1/2 -> AP = 1/4 * 2/3 + 1/4 * 2/3
    assert t.ap() == pytest.approx(2 / 3 * 0.5)
    assert t.recall(0.0) == 0.5


def test_duplicates_count_once_and_ignored_boxes_count_neither_way():
    t = tally()
    t.add(GT[:1], np.array([[0, 0, 10, 10], [0, 0, 10, 10], [60, 60, 70, 70]], np.float32),
          np.array([0.9, 0.8, 0.7], np.float32), ignore=GT[3:])
    assert t.hits == [True, False]  # duplicate is a false positive; the ignored object's box is dropped
    assert t.recall(0.5) == 1.0


def test_perturbations_change_images_as_named():
    img = np.full((8, 8, 3), 100, np.uint8)
    img[0, 0] = (10, 200, 30)
    p = perturbations()
    assert p["brightness +20%"](img)[1, 1, 0] == 120
    assert p["brightness -20%"](img)[1, 1, 0] == 80
    noisy = p["noise sigma 5"](img).astype(float) - img
    assert 3 < noisy.std() < 7
    assert p["saturation x0.6"](img)[0, 0].std() < img[0, 0].std()
