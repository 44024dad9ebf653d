"""De-identification: region choice, growth, methods, locality, and track-stable boxes and content."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.core.types import Detections
from edged.stages.privacy.deid import (
    UNTRACKED,
    DeidError,
    FrameDeidentifier,
    SensitiveRegions,
    cell_size,
    grow_boxes,
    pixel_boxes,
    sensitive_regions,
)
from edged.stages.privacy.stabilize import StableDeidentifier
from edged_platform.restore import DETAIL_MAX_SHARE, _detail, _grey, detail_share
from tests.privacy_support import CAR, FACE, PLATE, gt_tracks, photos, scene_frames, tracked


def regions_of(boxes, class_ids, track_ids) -> SensitiveRegions:
    n = len(boxes)
    return SensitiveRegions(
        np.asarray(boxes, np.float32).reshape(n, 4), np.asarray(class_ids, np.int16), np.asarray(track_ids, np.int64),
        np.full(n, 0.9, np.float32), np.zeros(n, np.float32), np.ones(n, bool),
    )


def test_grow_boxes_margin_and_rotation() -> None:
    g = grow_boxes(np.array([[10, 20, 30, 60]]), None, 0.25)
    np.testing.assert_allclose(g, [[5, 10, 35, 70]])
    # a 40x10 box turned by 90 degrees covers 10x40
    g = grow_boxes(np.array([[0, 0, 40, 10]]), np.array([np.pi / 2]), 0.0)
    np.testing.assert_allclose(g, [[15, -15, 25, 25]], atol=1e-9)
    r = pixel_boxes(np.array([[-3.5, 2.2, 10.1, 400.0], [700, 10, 800, 20]]), 640, 360)
    assert r.tolist() == [[0, 2, 11, 360], [640, 10, 640, 20]]


def test_sensitive_regions_from_tracks_and_untracked_detections() -> None:
    tracks = tracked([[10, 10, 50, 60], [100, 100, 200, 150], [300, 30, 340, 40]], [FACE, CAR, PLATE], [1, 2, 3],
                     detected=[True, True, False])
    dets = Detections(
        boxes=np.array([[12, 11, 50, 61], [400, 40, 440, 90], [500, 40, 540, 90], [0, 0, 5, 5]], np.float32),
        scores=np.array([0.9, 0.8, 0.1, 0.9], np.float32),
        class_ids=np.array([FACE, FACE, FACE, CAR], np.int16),
        angles=np.zeros(4, np.float32),
    )
    r = sensitive_regions(tracks, dets, min_score=0.3)
    # face track, predicted plate track, and the new face; the duplicate, the weak face and the car are out
    assert r.track_ids.tolist() == [1, 3, UNTRACKED]
    assert r.class_ids.tolist() == [FACE, PLATE, FACE]
    assert r.detected.tolist() == [True, False, True]
    assert len(sensitive_regions(None, None, 0.3)) == 0
    assert len(sensitive_regions(None, dets, 0.3)) == 2


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_only_the_grown_regions_change_and_detail_is_gone(method: str) -> None:
    photo = photos()[0]
    img = photo.pixels
    regions = sensitive_regions(photo.tracks, None, 0.3)
    res = FrameDeidentifier(method, margin=0.25)(img, regions)
    assert res.image is not img and np.array_equal(img, photos()[0].pixels)  # input untouched
    inside = np.zeros(img.shape[:2], bool)
    for (x1, y1, x2, y2), grown in zip(res.rects, grow_boxes(regions.boxes, regions.angles, 0.25), strict=True):
        assert x1 <= grown[0] and y1 <= grown[1] and x2 >= min(grown[2], img.shape[1]) and y2 >= grown[3]
        inside[y1:y2, x1:x2] = True
        crop, out = img[y1:y2, x1:x2], res.image[y1:y2, x1:x2]
        share = detail_share(out, _detail(_grey(crop)))
        assert share < DETAIL_MAX_SHARE / 2, f"{method}: fine detail survives (share {share:.2f})"
    assert np.array_equal(res.image[~inside], img[~inside])
    assert (res.image[inside] != img[inside]).any(axis=-1).mean() > 0.5


def test_a_region_depends_only_on_its_own_pixels() -> None:
    img = photos()[1].pixels.copy()
    regions = regions_of([[100, 100, 220, 200]], [FACE], [5])
    for deid in (FrameDeidentifier("blur"), FrameDeidentifier("pixelate"), StableDeidentifier()):
        a = deid(img, regions)
        other = img.copy()
        x1, y1, x2, y2 = a.rects[0]
        mask = np.ones(img.shape[:2], bool)
        mask[y1:y2, x1:x2] = False
        other[mask] = 255 - other[mask]
        if isinstance(deid, StableDeidentifier):
            deid.reset()
        b = deid(other, regions)
        assert np.array_equal(a.rects, b.rects)
        assert np.array_equal(a.image[y1:y2, x1:x2], b.image[y1:y2, x1:x2])


def test_strength_scales_with_region_size() -> None:
    assert cell_size(200, 100, 5, 4) == 40
    assert cell_size(20, 10, 5, 4) == 4  # never finer than min_cell_px
    img = photos()[0].pixels
    small = FrameDeidentifier("pixelate", margin=0, cells=5)(img, regions_of([[200, 100, 240, 140]], [FACE], [1])).image
    big = FrameDeidentifier("pixelate", margin=0, cells=5)(img, regions_of([[100, 100, 300, 300]], [FACE], [1])).image
    # the small region is 5x5 cells of 8 px, the big one 5x5 cells of 40 px
    assert len(np.unique(small[100:140, 200:240].reshape(-1, 3), axis=0)) <= 25
    assert len(np.unique(big[100:300, 100:300].reshape(-1, 3), axis=0)) <= 25


def test_bad_input_is_refused() -> None:
    with pytest.raises(DeidError, match="unknown de-identification method"):
        FrameDeidentifier("smudge")  # type: ignore[arg-type]
    with pytest.raises(DeidError, match="uint8"):
        FrameDeidentifier()(np.zeros((10, 10, 3), np.float32), SensitiveRegions())


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(-12, 12), st.floats(-6, 6), st.floats(0.8, 1.25)), min_size=2, max_size=25
    ),
    start=st.tuples(st.floats(-40, 600), st.floats(-40, 330), st.floats(8, 120)),
)
def test_stable_box_always_covers_the_grown_box_and_moves_on_the_grid(steps, start) -> None:
    img = np.zeros((360, 640, 3), np.uint8)
    deid = StableDeidentifier(margin=0.25, grid_px=16)
    x, y, s = start
    prev = None
    for dx, dy, ds in steps:
        x, y, s = x + dx, y + dy, float(np.clip(s * ds, 4, 200))
        regions = regions_of([[x, y, x + s, y + s * 1.2]], [FACE], [7])
        rect = deid(img, regions).rects[0]
        grown_f = grow_boxes(regions.boxes, None, 0.25)[0]
        grown = pixel_boxes(grown_f[None], 640, 360)[0]
        if grown[2] > grown[0] and grown[3] > grown[1]:
            assert rect[0] <= grown[0] and rect[1] <= grown[1] and rect[2] >= grown[2] and rect[3] >= grown[3]
        st_ = deid._tracks[(FACE, 7)]
        assert st_.x1 % 16 == 0 and st_.y1 % 16 == 0 and st_.w % 16 == 0 and st_.h % 16 == 0
        if prev is not None:
            # the box only moves when the object would otherwise leave it
            if prev.x1 <= grown_f[0] and prev.x1 + prev.w >= grown_f[2] and prev.w == st_.w:
                assert st_.x1 == prev.x1
        prev = type(st_)(st_.x1, st_.y1, st_.w, st_.h, st_.hold_w, st_.hold_h, st_.field)


def test_stable_content_is_identical_while_the_object_jitters_in_place() -> None:
    img = photos()[0].pixels
    deid = StableDeidentifier(grid_px=16, shrink_per_frame=0.0)
    rng = np.random.default_rng(0)
    outs = [deid(img, regions_of([[179, 70, 273, 188]], [FACE], [3]))]  # the widest the jitter gets
    for _ in range(6):
        j = rng.uniform(-2, 2, 4)
        outs.append(deid(img, regions_of([[181 + j[0], 72 + j[1], 271 + j[2], 186 + j[3]]], [FACE], [3])))
    for o in outs[1:]:
        assert np.array_equal(o.rects, outs[0].rects)
        assert np.array_equal(o.image, outs[0].image)  # same pixels below: nothing changes at all
    frame = FrameDeidentifier()
    per_frame = [frame(img, regions_of([[181 + d, 72, 271 + d, 186]], [FACE], [3])).image for d in (0, 1)]
    assert not np.array_equal(per_frame[0], per_frame[1])  # the per-frame blur follows the jitter


def test_a_large_face_found_in_the_frame_hides_its_grown_box_not_the_stable_box_slack() -> None:
    """The stabilised box grows at once and shrinks slowly; a large face found in this frame hides only
    its grown box pushed out to the grid, so scenery the box held from an earlier, larger detection
    stays as it was, while the face is still wholly covered."""
    img = photos()[0].pixels
    deid = StableDeidentifier(margin=0.3, grid_px=8)
    deid(img, regions_of([[150, 40, 310, 220]], [FACE], [3]))  # a jittery first box, much too large
    box = np.array([[190, 70, 280, 180]], np.float32)
    res = deid(img, regions_of(box, [FACE], [3]))
    grown = grow_boxes(box, None, 0.3)[0]
    x1, y1, x2, y2 = res.rects[0]
    assert x1 <= grown[0] and y1 <= grown[1] and x2 >= grown[2] and y2 >= grown[3]  # the grown box is hidden
    assert grown[0] - x1 < 16 and grown[1] - y1 < 16 and x2 - grown[2] < 16 and y2 - grown[3] < 16
    st_ = deid._tracks[(FACE, 3)]
    assert st_.w > x2 - x1 + 32 and st_.h > y2 - y1 + 32  # the stable box still holds the old size
    outside = np.ones(img.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(res.image[outside], img[outside])  # nothing beyond the fitted rectangle changed
    assert not np.array_equal(res.image[y1:y2, x1:x2], img[y1:y2, x1:x2])


def test_small_and_predicted_regions_keep_the_whole_stable_box() -> None:
    """A small face's box (a held scan box) or a predicted one may lag the face: the box's slack stays hidden."""
    img = photos()[0].pixels
    for box, detected in (([200, 80, 230, 110], True), ([150, 60, 300, 200], False)):
        deid = StableDeidentifier(margin=0.3, grid_px=8, fit_from_px=64)
        regions = regions_of([box], [FACE], [5])
        regions.detected = np.array([detected])
        res = deid(img, regions)
        st_ = deid._tracks[(FACE, 5)]
        assert res.rects[0].tolist() == [st_.x1, st_.y1, st_.x1 + st_.w, st_.y1 + st_.h]
    deid = StableDeidentifier(margin=0.3, grid_px=8, fit_from_px=100_000)  # fitting off: the old box
    res = deid(img, regions_of([[150, 60, 300, 200]], [FACE], [5]))
    st_ = deid._tracks[(FACE, 5)]
    assert res.rects[0].tolist() == [st_.x1, st_.y1, st_.x1 + st_.w, st_.y1 + st_.h]


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(-12, 12), st.floats(-6, 6), st.floats(0.8, 1.25)), min_size=2, max_size=25),
    start=st.tuples(st.floats(0, 400), st.floats(0, 150), st.floats(60, 160)),
)
def test_fitted_rectangle_always_covers_the_grown_box_and_stays_within_two_grid_steps(steps, start) -> None:
    img = np.full((360, 640, 3), 200, np.uint8)
    deid = StableDeidentifier("fill", margin=0.3, grid_px=8, fit_from_px=64)
    x, y, s = start
    prev_fitted = None
    for dx, dy, ds in steps:
        x, y, s = x + dx, y + dy, float(np.clip(s * ds, 50, 160))
        box = np.array([[x, y, x + s, y + s * 1.2]], np.float32)
        res = deid(img, regions_of(box, [FACE], [7]))
        grown = pixel_boxes(grow_boxes(box, None, 0.3), 640, 360)[0]
        rect = res.rects[0]
        assert rect[0] <= grown[0] and rect[1] <= grown[1] and rect[2] >= grown[2] and rect[3] >= grown[3]
        lo = np.maximum(grown[:2] - 16, 0)
        hi = np.minimum(grown[2:] + 16, [640, 360])
        assert (rect[:2] >= lo).all() and (rect[2:] <= hi).all()
        fitted = np.array(deid._tracks[(FACE, 7)].fitted)
        edges = grow_boxes(box, None, 0.3)[0]
        if prev_fitted is not None:  # a side stays while the object is inside it by less than a grid step
            slack = np.concatenate([edges[:2] - prev_fitted[:2], prev_fitted[2:] - edges[2:]])
            stays = (slack >= 0) & (slack < 8)
            assert (fitted[stays] == prev_fitted[stays]).all()
        prev_fitted = fitted


def test_stable_state_follows_the_tracks_on_the_fake_scene() -> None:
    deid = StableDeidentifier()
    for pixels, gt in scene_frames()[:20]:
        tracks = gt_tracks(gt)
        res = deid(pixels, sensitive_regions(tracks, None, 0.3))
        assert deid.live_tracks == len(tracks)
        assert len(res.rects) == len(tracks)
    deid(scene_frames()[0][0], SensitiveRegions())
    assert deid.live_tracks == 0


def test_stable_content_is_redrawn_only_when_the_average_moves() -> None:
    rng = np.random.default_rng(1)
    base = photos()[0].pixels.astype(np.int16)
    deid = StableDeidentifier(redraw_levels=4.0, fill_update=0.1)
    regions = regions_of([[181, 72, 271, 186]], [FACE], [3])
    first = deid(base.astype(np.uint8), regions)
    x1, y1, x2, y2 = first.rects[0]
    for _ in range(5):  # sensor noise below the field's resolution: region pixel-identical
        noisy = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
        assert np.array_equal(deid(noisy, regions).image[y1:y2, x1:x2], first.image[y1:y2, x1:x2])
    dark = (base * 0.5).astype(np.uint8)  # the light halves: the region follows within a few frames
    means = [float(deid(dark, regions).image[y1:y2, x1:x2].mean()) for _ in range(30)]
    start = float(first.image[y1:y2, x1:x2].mean())
    assert means[0] > start - 10 and means[-1] < start * 0.6
    assert len(set(np.round(means, 3))) < 15  # redrawn in steps, not every frame


def test_unconfident_regions_stay_within_their_share_and_confident_ones_always_show() -> None:
    from edged.stages.privacy.deid import UNTRACKED, SensitiveRegions, within_unconfident_budget

    boxes = np.array([[0, 0, 40, 40],        # tracked face that once scored 0.7: always hidden
                      [100, 100, 140, 140],  # confident untracked face (0.9): always hidden
                      [0, 0, 100, 100],      # unconfident, best of the three (0.4): fits the budget
                      [0, 100, 100, 200],    # unconfident 0.3: would pass the share
                      [150, 0, 160, 10]],    # unconfident 0.2, tiny: still fits
                     np.float32)
    regions = SensitiveRegions(boxes, np.zeros(5, np.int16), np.array([7, UNTRACKED, UNTRACKED, UNTRACKED, UNTRACKED]),
                               np.array([0.2, 0.9, 0.4, 0.3, 0.2], np.float32), np.zeros(5, np.float32), np.ones(5, bool),
                               np.array([0.7, 0.9, 0.4, 0.3, 0.2], np.float32))
    # what unconfident regions add counts (about 0.3 %, then 26 % beyond the tracked box, then 27 %)
    kept = within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 0.3)
    assert kept.scores.tolist() == pytest.approx([0.2, 0.9, 0.4, 0.2])  # the 0.3 box would add 27 %
    # smallest first: the tiny 0.2 box is kept before the larger 0.4 one, which no longer fits
    assert within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 0.1).scores.tolist() == pytest.approx([0.2, 0.9, 0.2])
    assert len(within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 1.0)) == 5  # 1.0: no limit
    # the confident regions are kept even when they alone pass the share
    assert len(within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 0.001)) == 2


def test_a_tracked_region_is_as_confident_as_its_track_started_or_is_now() -> None:
    from edged.core.types import Detections, TrackedObjects
    from edged.stages.privacy.deid import sensitive_regions

    tracks = TrackedObjects(np.array([5, 6]), np.array([FACE, FACE], np.int16),
                            np.array([[0, 0, 20, 20], [30, 0, 50, 20]], np.float32), np.array([0.2, 0.6], np.float32),
                            np.zeros(2, np.float32), np.array([False, True]), np.array([0.8, 0.45], np.float32))
    faint = Detections(np.array([[50, 50, 70, 70]], np.float32), np.array([0.3], np.float32),
                       np.array([FACE], np.int16), np.zeros(1, np.float32))
    regions = sensitive_regions(tracks, faint, 0.07)
    assert regions.scores.tolist() == pytest.approx([0.2, 0.6, 0.3])
    assert regions.confidences().tolist() == pytest.approx([0.8, 0.6, 0.3])


def test_a_track_that_never_scored_confidently_stays_within_the_unconfident_share() -> None:
    """A track a faint false box started (0.45), scoring 0.45 now, is budgeted like a faint detection;
    one that started at a confident score is hidden whatever it scores now."""
    from edged.stages.privacy.deid import SensitiveRegions, within_unconfident_budget

    boxes = np.array([[0, 0, 100, 100], [100, 100, 200, 200]], np.float32)
    regions = SensitiveRegions(boxes, np.zeros(2, np.int16), np.array([3, 4]), np.array([0.45, 0.2], np.float32),
                               np.zeros(2, np.float32), np.array([True, False]), np.array([0.45, 0.8], np.float32))
    kept = within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 0.1)  # the weak track would add 25 %
    assert kept.track_ids.tolist() == [4]
    assert len(within_unconfident_budget(regions, 200, 200, 0.0, 0.5, 0.3)) == 2


def plate_on_bodywork() -> np.ndarray:
    """A light plate with dark lettering on dark, even bodywork (a 80 x 40 plate at 120, 100)."""
    import cv2

    img = np.full((240, 320, 3), 60, np.uint8)
    img[100:140, 120:200] = 235
    cv2.putText(img, "AB 123", (126, 128), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 2)
    return img


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
@pytest.mark.parametrize("stable", [False, True])
def test_a_plate_region_shows_neither_the_plates_colour_nor_its_outline(method: str, stable: bool) -> None:
    img = plate_on_bodywork()
    regions = regions_of([[120, 100, 200, 140]], [PLATE], [1])
    deid = (StableDeidentifier(method, margin=0.3, edge_fill=(PLATE,)) if stable
            else FrameDeidentifier(method, margin=0.3, edge_fill=(PLATE,)))
    out = deid(img, regions).image.astype(np.float32)
    plate = out[100:140, 120:200]
    # painted from the region's own edge (bodywork), not from the plate: no light rectangle remains
    assert abs(float(plate.mean()) - 60) < 6 and float(plate.std()) < 6


@pytest.mark.parametrize("stable", [False, True])
def test_a_face_region_keeps_its_own_colours_when_only_plates_are_edge_filled(stable: bool) -> None:
    img = plate_on_bodywork()
    regions = regions_of([[120, 100, 200, 140]], [FACE], [1])
    deid = StableDeidentifier("blur", margin=0.3, edge_fill=(PLATE,)) if stable else FrameDeidentifier(
        "blur", margin=0.3, edge_fill=(PLATE,))
    out = deid(img, regions).image.astype(np.float32)
    assert float(out[100:140, 120:200].mean()) > 100  # a smudge of its own light middle, not the bodywork's 60


@pytest.mark.parametrize("stable", [False, True])
def test_a_text_line_region_inside_a_plate_region_takes_the_plate_regions_paint(stable: bool) -> None:
    img = plate_on_bodywork()
    # the plate and, listed after it, one of its text lines (a text detector's box inside the plate)
    regions = regions_of([[120, 100, 200, 140], [126, 112, 194, 130]], [PLATE, PLATE], [1, 2])
    deid = StableDeidentifier("blur", margin=0.3, edge_fill=(PLATE,)) if stable else FrameDeidentifier(
        "blur", margin=0.3, edge_fill=(PLATE,))
    plate = deid(img, regions).image[100:140, 120:200].astype(np.float32)
    assert abs(float(plate.mean()) - 60) < 6 and float(plate.max()) < 90
