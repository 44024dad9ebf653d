"""Plate data for the vehicle-crop plate model (tools.models.plate_data) and plate fine-tuning targets."""

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("matplotlib")

from edged.stages.detect.detector import box_crop, letterbox  # noqa: E402
from tools.models import plate_data  # noqa: E402
from tools.models.train_detector import _flip_targets, build_targets  # noqa: E402


def _street(h=480, w=640):
    rng = np.random.default_rng(3)
    img = rng.integers(40, 200, (h, w, 3), np.uint8)
    img[200:400, 100:500] = (180, 60, 50)  # the "vehicle"
    return img, np.array([100, 200, 500, 400], np.float32)


def test_place_plate_sits_low_on_the_vehicle_and_fits_the_crop():
    rng = np.random.default_rng(0)
    box = np.array([100, 200, 500, 400], np.float32)
    for _ in range(200):
        scale = float(rng.uniform(0.3, 3.0))
        q = plate_data.place_plate(rng, box, scale)
        cx, cy = q.mean(0)
        assert 100 <= cx <= 500 and 200 + 0.5 * 200 <= cy <= 400
        width = np.linalg.norm(q[1] - q[0])
        assert 9 * 0.44 <= width * scale <= 111  # a side view foreshortens it down to 0.45x
        assert (q[2, 1] - q[1, 1]) < width  # wider than high


def test_letterbox_crop_maps_boxes_as_the_detector_letterboxes():
    img, box = _street()
    region = plate_data.crop_region(box, img.shape)
    r = box_crop(*box, plate_data.CROP_GROW, img.shape[1], img.shape[0])
    assert region == (r.x, r.y, r.w, r.h)
    plate = np.array([[280, 350, 320, 362]], np.float32)
    crop, b = plate_data.letterbox_crop(img, region, plate)
    ref, sx, sy, px, py = letterbox(img[r.y : r.y + r.h, r.x : r.x + r.w], plate_data.CROP_WH, plate_data.PAD)
    assert crop.shape == (192, 320, 3) and np.array_equal(crop, ref)
    assert np.allclose(b[0, :2], [(280 - r.x) * sx + px, (350 - r.y) * sy + py])


def test_vehicle_plate_sample_is_a_daemon_crop_with_one_plate_inside():
    img, box = _street()
    rng = np.random.default_rng(1)
    for _ in range(20):
        smp = plate_data.vehicle_plate_sample(rng, img, box)
        assert smp.image.shape == (192, 320, 3) and smp.image.dtype == np.uint8
        assert smp.boxes.shape == (1, 4) and list(smp.labels) == [0]
        x1, y1, x2, y2 = smp.boxes[0]
        assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 192 and x2 - x1 >= 4


def test_plates_cut_by_the_crop_edge_are_ignored():
    boxes = np.array([[10, 10, 50, 20], [300, 50, 340, 60], [330, 50, 360, 60]], np.float32)
    ok, ign = plate_data._split_plates(boxes)
    assert ok.tolist() == [[10, 10, 50, 20]]
    assert ign.tolist() == [[300, 50, 320, 60]]  # half inside: neither a miss nor a false box


def test_flip_targets_on_the_crop_shape_is_an_involution():
    size_hw = (192, 320)
    boxes = np.array([[20, 30, 60, 42], [200, 100, 300, 130]], np.float32)
    y = build_targets(boxes, np.zeros(2, np.int64), size_hw, 5)[None]
    f = _flip_targets(y, np.array([True]), size_hw)
    pos = f[0, f[0, :, -1] > 0, :4]
    assert {tuple(b) for b in pos.tolist()} >= {(260.0, 30.0, 300.0, 42.0), (20.0, 100.0, 120.0, 130.0)}
    assert np.array_equal(_flip_targets(f, np.array([True]), size_hw), y)


def test_plate_table_has_a_row_per_detector_and_the_counts():
    from tools.eval.real import plate_lines

    one = {"ap": 0.5, "n": 5, "images": 5, "found": 3, "false": 7, "found_at": 2, "false_at": 1}
    lines = plate_lines({"old": {k: one for k in ("synthetic", "vehicles", "real", "fake")},
                         "new": {k: dict(one, found_at=4) for k in ("synthetic", "vehicles", "real", "fake")}})
    rows = [ln for ln in lines if ln.startswith("| old") or ln.startswith("| new")]
    assert len(rows) == 2 and "| 2 / 5 |" in rows[0] and "| 4 / 5 |" in rows[1]
