"""The real evaluation set's building logic on tiny synthetic inputs, and the fetched set where cached."""

from __future__ import annotations

import numpy as np
import pytest

from tools.eval import realset as rs

WH = (320, 192)


def _patches(n: int = 5) -> list[rs.Patch]:
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        img = rng.integers(0, 255, (40 + k, 36, 3), dtype=np.uint8)
        out.append(rs.Patch(img, (8.0, 10.0, 28.0, 34.0), "test"))
    out.append(rs.Patch(rng.integers(0, 255, (25, 25, 3), dtype=np.uint8), (0.0, 0.0, 25.0, 25.0), "test"))
    return out


def _bg() -> np.ndarray:
    return np.full((WH[1], WH[0], 3), 90, np.uint8)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_band_of():
    assert rs.band_of(16, rs.FACE_BANDS) == "16-20"
    assert rs.band_of(19.99, rs.FACE_BANDS) == "16-20"
    assert rs.band_of(20, rs.FACE_BANDS) == "20-24"
    assert rs.band_of(15.9, rs.FACE_BANDS) == "<16"
    assert rs.band_of(32, rs.FACE_BANDS) == ">32"
    assert rs.band_of(59, rs.PLATE_BANDS) == "45-60"


def test_band_widths_balanced_and_inside():
    w = rs.band_widths(np.random.default_rng(1), 40, rs.FACE_BANDS)
    labels = [rs.band_of(v, rs.FACE_BANDS) for v in w]
    assert {b: labels.count(b) for b in set(labels)} == {"16-20": 10, "20-24": 10, "24-28": 10, "28-32": 10}


def test_scaled_face_width_stays_in_band():
    rng = np.random.default_rng(2)
    for p in _patches():
        for target in rs.band_widths(rng, 24, rs.FACE_BANDS):
            _, box = rs.scaled(p, target)
            assert rs.band_of(box[2] - box[0], rs.FACE_BANDS) == rs.band_of(target, rs.FACE_BANDS)


def test_crowd_photo_no_overlap_boxes_inside_balanced():
    frame, boxes = rs.crowd_photo(np.random.default_rng(3), _patches(), _bg(), 12, WH, cell=64)
    assert frame.shape == (WH[1], WH[0], 3) and frame.dtype == np.uint8
    assert len(boxes) == 12
    for i, a in enumerate(boxes):
        assert 0 <= a.box[0] < a.box[2] <= WH[0] and 0 <= a.box[1] < a.box[3] <= WH[1]
        assert a.cls == "face" and a.band in {"16-20", "20-24", "24-28", "28-32"}
        for b in boxes[i + 1 :]:
            assert not _overlap(a.box, b.box)
    bands = [b.band for b in boxes]
    assert all(bands.count(b) == 3 for b in set(bands))
    assert (frame != 90).any()


def test_crowd_photo_too_many_faces():
    with pytest.raises(ValueError):
        rs.crowd_photo(np.random.default_rng(0), _patches(), _bg(), 100, WH, cell=64)


def test_crowd_photo_deterministic():
    a = rs.crowd_photo(np.random.default_rng(5), _patches(), _bg(), 8, WH, cell=64)
    b = rs.crowd_photo(np.random.default_rng(5), _patches(), _bg(), 8, WH, cell=64)
    c = rs.crowd_photo(np.random.default_rng(6), _patches(), _bg(), 8, WH, cell=64)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])


def test_crowd_video_new_faces_appear_at_first_frame():
    frames, gt = rs.crowd_video(np.random.default_rng(7), _patches(), _bg(), 6, 20, WH, cell=96)
    assert len(frames) == len(gt) == 20
    firsts: dict[int, int] = {}
    for t, boxes in enumerate(gt):
        for b in boxes:
            firsts.setdefault(b.track, t)
            assert b.first_frame == firsts[b.track]
            assert 0 <= b.box[0] < b.box[2] <= WH[0] and 0 <= b.box[1] < b.box[3] <= WH[1]
        for i, a in enumerate(boxes):
            assert not any(_overlap(a.box, c.box) for c in boxes[i + 1 :])
    assert len(firsts) == 6
    assert 0 in firsts.values() and max(firsts.values()) > 0
    # a face is visible in every frame from its first one on, and its box moves slowly
    for track, first in firsts.items():
        seq = [next(b for b in boxes if b.track == track) for boxes in gt[first:]]
        assert len(seq) == 20 - first
        steps = [abs(p.box[0] - q.box[0]) + abs(p.box[1] - q.box[1]) for p, q in zip(seq, seq[1:])]
        assert max(steps, default=0) <= 3
    # the frame before a new face appears shows only the plain background where it appears
    late = next(k for k, f in firsts.items() if f > 0)
    b = next(x for x in gt[firsts[late]] if x.track == late)
    x1, y1, x2, y2 = (int(v) for v in b.box)
    before = frames[firsts[late] - 1][y1:y2, x1:x2]
    assert (before == before[0, 0]).all()
    assert not (frames[firsts[late]][y1:y2, x1:x2] == before[0, 0]).all()


def test_plate_frame_band_and_inside():
    rng = np.random.default_rng(8)
    img = np.random.default_rng(0).integers(0, 255, (300, 500, 3), dtype=np.uint8)
    plates = [(200.0, 200.0, 300.0, 225.0), (20.0, 50.0, 60.0, 60.0)]
    for width in rs.band_widths(rng, 8, rs.PLATE_BANDS):
        frame, boxes, small, (ox, oy) = rs.plate_frame(img, plates, [(0.0, 0.0, 5.0, 5.0)], width, rng, WH)
        assert frame.shape == (WH[1], WH[0], 3)
        main = boxes[0]
        assert main.track == 0 and not main.ignore
        assert main.band == rs.band_of(width, rs.PLATE_BANDS)
        assert 0 <= main.box[0] < main.box[2] <= WH[0] and 0 <= main.box[1] < main.box[3] <= WH[1]
        assert all(b.ignore for b in boxes if b.track == 2)


def test_plate_video_enters_from_right():
    img = np.random.default_rng(0).integers(0, 255, (100, 200, 3), dtype=np.uint8)
    plates = [(80.0, 60.0, 120.0, 70.0)]
    frames, gt = rs.plate_video(img, plates, [], 1.0, 1.0, (50, 40), 12, 6, WH)
    assert len(frames) == 12
    assert gt[0] == [] and (frames[0] == rs.PAD).all()
    first = next(t for t, boxes in enumerate(gt) if any(not b.ignore for b in boxes))
    assert 0 < first <= 6
    for t, boxes in enumerate(gt):
        for b in boxes:
            assert b.first_frame == first
            assert b.ignore == (t < first)
    assert gt[-1][0].box == (130.0, 100.0, 170.0, 110.0)


def test_bands_count_video_objects_once():
    box = rs.GtBox("face", (0, 0, 18, 18), "16-20", track=3, first_frame=1)
    item = rs.Item("v", "faces_video", "test", frames=[], gt=[[], [box], [box]])
    photo = rs.Item("p", "faces_photo", "test", frames=[], gt=[[rs.GtBox("plate", (0, 0, 25, 6), "20-30")]])
    assert rs.RealSet([item, photo]).bands() == {("face", "16-20"): 1, ("plate", "20-30"): 1}


@pytest.mark.skipif(not rs.available(), reason="real set sources not cached (python -m tools.eval.realset fetches them)")
def test_built_set_from_cache():
    s = rs.build(photos=1, per_photo=8, video_faces=4, video_frames=6, plate_frames=6)
    assert {it.kind for it in s.items} == {"faces_photo", "faces_video", "plate_photo", "plate_video",
                                           "plate_scene", "street", "no_people"}
    for it in s.items:
        if it.frames is None:
            assert it.video is not None and it.video.is_file()
            continue
        for f, boxes in zip(it.frames, it.gt or []):
            h, w = f.shape[:2]
            assert f.shape == (720, 1280, 3) or it.kind == "plate_scene"
            for b in boxes:
                assert 0 <= b.box[0] < b.box[2] <= w and 0 <= b.box[1] < b.box[3] <= h
    scenes = [it for it in s.items if it.kind == "plate_scene"]
    labelled = [b for it in scenes for b in (it.gt or [[]])[0] if not b.ignore]
    assert len(scenes) == len(rs.SCENE_PLATES) and len(labelled) == sum(map(len, rs.SCENE_PLATES.values()))


@pytest.mark.skipif(not rs.available(), reason="real set sources not cached (python -m tools.eval.realset fetches them)")
def test_larger_faces_fill_their_bands_and_leave_the_small_items_as_they_were():
    small = dict(photos=1, per_photo=8, video_faces=4, video_frames=6, plate_frames=6)
    s = rs.build(**small, large_photos=2, large_per_photo=6, large_video_faces=6)
    large = [it for it in s.items if it.name.startswith("faces_large")]
    assert [it.kind for it in large] == ["faces_photo", "faces_photo", "faces_video"]
    bands = [b.band for it in large for boxes in (it.gt or []) for b in boxes]
    assert {b: bands.count(b) for b in set(bands)}.keys() == {"32-48", "48-64", "64-96"}
    for it in large:
        for boxes in it.gt or []:
            for b in boxes:
                lo, hi = (int(v) for v in b.band.split("-"))
                assert lo <= b.box[2] - b.box[0] < hi
    without = rs.build(**small, large_photos=0, large_video_faces=0)
    before = {it.name: it for it in without.items}
    for it in s.items:
        if it.name in before and it.frames is not None:
            assert all(np.array_equal(a, b) for a, b in zip(it.frames, before[it.name].frames, strict=True)), it.name
