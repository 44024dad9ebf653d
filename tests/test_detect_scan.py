"""The small-face scan: window geometry, which windows a frame scans, held boxes, and real small faces found."""

from __future__ import annotations

import cv2
import msgspec
import numpy as np
import pytest

from edged.config import ConfigError, DetectConfig, ScanConfig, default_models, from_dict
from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.core.types import Detections
from edged.stages.detect.detector import Detector, Region, explained_boxes
from edged.stages.detect.scan import CELL_PX, FrameChange, ScanPlanner, Window, WindowGrid

FACE = CLASS_NAMES.index("face")


def test_every_cell_falls_to_a_window_that_holds_it() -> None:
    grid = WindowGrid.build(1280, 720, (178, 107), 0.5)
    assert grid.xs[0] == 0 and grid.xs[-1] + grid.side_w == 1280 and grid.ys[-1] + grid.side_h == 720
    for c, win in enumerate(grid.col_window):
        x = (c + 0.5) * CELL_PX
        assert grid.xs[win] <= x <= grid.xs[win] + grid.side_w
    for r, win in enumerate(grid.row_window):
        y = (r + 0.5) * CELL_PX
        assert grid.ys[win] <= y <= grid.ys[win] + grid.side_h


def test_an_object_up_to_the_overlap_lies_inside_the_window_of_its_centre() -> None:
    grid = WindowGrid.build(1280, 720, (178, 107), 0.5)
    rng = np.random.default_rng(3)
    for _ in range(500):
        w, h = rng.uniform(4, 0.5 * 178), rng.uniform(4, 0.5 * 107)
        x, y = rng.uniform(0, 1280 - w), rng.uniform(0, 720 - h)
        col, row = int((x + w / 2) // CELL_PX), int((y + h / 2) // CELL_PX)
        wx, wy, ww, wh = grid.rect(int(grid.row_window[row]) * grid.xs.size + int(grid.col_window[col]))
        assert wx <= x + 1 and wy <= y + 1 and x + w <= wx + ww + 1 and y + h <= wy + wh + 1


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (720, 1280, 3), dtype=np.uint8)


class Stream:
    """A planner fed frame by frame, as the detector feeds it."""

    def __init__(self, planner: ScanPlanner) -> None:
        self.planner, self.change = planner, FrameChange()

    def plan(self, image: np.ndarray, explained: np.ndarray | None = None) -> list[Window]:
        self.change.update(image)
        return self.planner.plan(image.shape[1], image.shape[0], self.change.change, explained)


def test_first_frame_whole_then_changes_then_the_sweep_within_the_budget() -> None:
    planner = ScanPlanner(ScanConfig(enabled=True, max_windows=3, sweep_windows=2), (178, 107))
    stream = Stream(planner)
    still = frame()
    first = stream.plan(still)
    assert len(first) == planner.grid.count and planner.last_counts == {"first": planner.grid.count}
    assert stream.plan(still.copy()) and planner.last_counts == {"motion": 0, "follow": 0, "sweep": 2, "close": 0}
    moved = still.copy()
    moved[300:340, 600:640] = 255 - moved[300:340, 600:640]
    windows = stream.plan(moved)
    assert planner.last_counts["motion"] >= 1
    assert any(x <= 600 and y <= 300 and 640 <= x + w and 340 <= y + h for x, y, w, h in windows)
    busy = frame(1)  # everything changed: the budget holds
    stream.plan(busy)
    assert planner.last_counts["motion"] == 3 and planner.last_counts["sweep"] == 2


def test_changes_inside_boxes_other_models_explain_call_for_no_window() -> None:
    planner = ScanPlanner(ScanConfig(enabled=True, sweep_windows=0), (178, 107))
    stream = Stream(planner)
    still = frame()
    stream.plan(still)
    moved = still.copy()
    moved[300:340, 600:640] = 255 - moved[300:340, 600:640]
    assert stream.plan(moved, np.array([[590, 290, 650, 350]], np.float32)) == []
    assert planner.last_counts["motion"] == 0
    stream.plan(still)  # changed back, nothing explains it this time
    assert planner.last_counts["motion"] >= 1


def test_a_weak_box_over_most_of_the_frame_explains_no_change() -> None:
    """A weak box over a whole crowd does not blind the scan to a face appearing inside it, while a
    pedestrian's box as weak, and a confident close person's box, still explain their own motion."""
    person, ids = CLASS_NAMES.index("person"), np.array([CLASS_NAMES.index("person")], np.int16)
    seen = Detections(np.array([[20, 10, 1260, 700], [590, 290, 650, 450]], np.float32),
                      np.array([0.35, 0.35], np.float32), np.array([person, person], np.int16))
    scan = ScanConfig(enabled=True, sweep_windows=0)
    assert (scan.explained_large_share, scan.explained_large_min_score) == (0.5, 0.5)
    explain = (scan.explained_min_score, scan.explained_large_share * 1280 * 720, scan.explained_large_min_score)
    explained = explained_boxes(seen, ids, *explain)
    assert explained.tolist() == [[590, 290, 650, 450]]
    close = Detections(seen.boxes, np.array([0.6, 0.35], np.float32), seen.class_ids)
    assert len(explained_boxes(close, ids, *explain)) == 2
    planner = ScanPlanner(scan, (178, 107))
    stream = Stream(planner)
    still = frame()
    stream.plan(still)
    moved = still.copy()
    moved[300:340, 600:640] = 255 - moved[300:340, 600:640]  # inside the pedestrian: explained
    moved[100:120, 200:220] = 255 - moved[100:120, 200:220]  # a newcomer inside the crowd's box
    windows = stream.plan(moved, explained)
    assert any(x <= 200 and y <= 100 and 220 <= x + w and 120 <= y + h for x, y, w, h in windows)
    assert not any(x <= 600 < x + w and y <= 300 < y + h for x, y, w, h in windows)


def test_a_still_crop_reuses_the_last_result_a_changed_one_runs_again() -> None:
    """Same pixels at about the same place: the last frame's detections; a changed cell: a new run."""
    models = [m for m in default_models() if m.name in ("objects", "face")]
    det = Detector.from_config(DetectConfig(models=models))
    face = det.models[1]
    calls = []
    run = face.detect_region
    face.detect_region = lambda bgr, region: calls.append(region) or run(bgr, region)  # type: ignore[method-assign]
    image = frame()
    crop = Region(100, 100, 128, 128)

    def crops(pixels: np.ndarray) -> list[Detections]:
        return face.detect_crops([crop], det.change, lambda r: det.executor.submit(face.detect_crop, pixels, r))()

    det.change.update(image)
    first = crops(image)
    det.change.update(image.copy())
    again = crops(image)
    assert len(calls) == 1 and again[0] is first[0]
    changed = image.copy()
    changed[150:170, 150:170] = 255 - changed[150:170, 150:170]
    det.change.update(changed)
    crops(changed)
    assert len(calls) == 2
    det.change.update(changed.copy())
    for _ in range(face.cfg.reuse_still_crops + 1):  # at most reuse_still_crops frames in a row
        crops(changed)
    assert len(calls) == 3


def test_found_boxes_are_held_until_a_window_holds_them_again_or_they_expire() -> None:
    planner = ScanPlanner(ScanConfig(enabled=True, hold_frames=2), (178, 107))
    box = Detections(np.array([[100, 100, 120, 120]], np.float32), np.array([0.8], np.float32),
                     np.array([FACE], np.int16), np.zeros(1, np.float32))
    assert len(planner.hold(box, [])) == 1
    assert len(planner.hold(Detections(), [(900, 500, 178, 107)])) == 1  # not looked at: held
    assert len(planner.hold(Detections(), [(50, 50, 178, 107)])) == 0  # looked at, not found: gone
    planner.hold(box, [])
    planner.hold(Detections(), [])
    planner.hold(Detections(), [])
    assert len(planner.hold(Detections(), [])) == 0  # older than hold_frames


@pytest.fixture(scope="module")
def small_faces() -> tuple[np.ndarray, np.ndarray]:
    """Real LFW faces, 18-24 px wide, on a real photograph without people, 1280x720."""
    data = pytest.importorskip("skimage.data")
    bg = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (1280, 720))
    faces = data.lfw_subset()[50:62]
    boxes = []
    for i, f in enumerate(faces):
        side = 18 + (i % 4) * 2
        tile = cv2.cvtColor(cv2.resize((f * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_GRAY2BGR)
        x, y = 80 + (i % 6) * 190, 150 + (i // 6) * 300
        bg[y:y + side, x:x + side] = tile
        boxes.append((x, y, x + side, y + side))
    return bg, np.asarray(boxes, np.float32)


def found(dets: Detections, truth: np.ndarray) -> np.ndarray:
    faces = dets.boxes[dets.class_ids == FACE]
    return iou_matrix(truth, faces).max(axis=1) >= 0.3 if len(faces) else np.zeros(len(truth), bool)


@pytest.mark.slow
def test_small_faces_are_found_by_the_scan_and_missed_without_it(small_faces) -> None:
    image, truth = small_faces
    with_scan = Detector.from_config(DetectConfig())
    without = Detector.from_config(DetectConfig(models=[m for m in default_models() if not m.scan.enabled]))
    assert found(with_scan.detect(image), truth).mean() >= 0.7
    assert found(without.detect(image), truth).mean() <= 0.2


@pytest.mark.slow
def test_a_small_face_is_found_on_the_frame_it_appears(small_faces) -> None:
    """Twelve faces appear at once in twelve windows: a budget of twelve changed windows finds on that
    frame what a whole scan of it finds."""
    image, truth = small_faces
    models = [m for m in default_models() if m.name == "face_scan"]
    det = Detector.from_config(DetectConfig(models=[msgspec.structs.replace(
        models[0], scan=msgspec.structs.replace(models[0].scan, sweep_windows=0, max_windows=12))]))
    empty = cv2.resize(cv2.cvtColor(pytest.importorskip("skimage.data").coffee(), cv2.COLOR_RGB2BGR), (1280, 720))
    assert not found(det.detect(empty), truth).any()  # the first frame: scanned whole, nothing there
    assert not found(det.detect(empty.copy()), truth).any()
    hits = found(det.detect(image), truth)  # the faces appear: the changed windows are scanned
    whole = found(Detector.from_config(DetectConfig(models=models)).detect(image), truth)  # a first frame
    assert whole.mean() >= 0.5 and hits.mean() >= 0.5 and hits.sum() >= whole.sum() - 3


def held_face(x: float, y: float, side: float = 20) -> Detections:
    return Detections(np.array([[x, y, x + side, y + side]], np.float32), np.array([0.8], np.float32),
                      np.array([FACE], np.int16), np.zeros(1, np.float32))


def test_changed_windows_the_budget_left_out_are_scanned_on_the_next_frames() -> None:
    planner = ScanPlanner(ScanConfig(enabled=True, max_windows=1, sweep_windows=0), (178, 107))
    stream = Stream(planner)
    still = frame()
    stream.plan(still)
    moved = still.copy()
    spots = [(100, 100), (600, 300), (1100, 600)]
    for x, y in spots:
        moved[y:y + 30, x:x + 30] = 255 - moved[y:y + 30, x:x + 30]
    scanned = stream.plan(moved)
    for _ in range(2):  # the picture stops changing: the left-out windows still come, one a frame
        scanned += stream.plan(moved.copy())
        assert planner.last_counts["motion"] == 1
    for x, y in spots:
        assert any(wx <= x and wy <= y and x + 30 <= wx + ww and y + 30 <= wy + wh for wx, wy, ww, wh in scanned)
    stream.plan(moved.copy())
    assert planner.last_counts["motion"] == 0


def test_a_held_box_about_to_expire_is_checked_before_new_motion() -> None:
    planner = ScanPlanner(ScanConfig(enabled=True, max_windows=2, sweep_windows=0, hold_frames=3), (178, 107))
    stream = Stream(planner)
    stream.plan(frame())
    planner.hold(held_face(640, 360), [])
    for _ in range(2):
        planner.hold(Detections(), [])
    windows = stream.plan(frame(5))  # everything changed: motion alone would fill the budget
    assert any(x <= 640 and y <= 360 and 660 <= x + w and 380 <= y + h for x, y, w, h in windows)
    assert planner.last_counts["follow"] >= 1


def faces(boxes: list[list[float]], scores: list[float]) -> Detections:
    n = len(boxes)
    return Detections(np.asarray(boxes, np.float32).reshape(n, 4), np.asarray(scores, np.float32),
                      np.full(n, FACE, np.int16), np.zeros(n, np.float32))


def test_weak_window_boxes_get_a_centred_closer_window_best_first_within_the_limit() -> None:
    from edged.stages.detect.scan import zoom_windows

    weak = faces([[100, 100, 118, 118], [600, 300, 617, 318], [1270, 710, 1280, 720],
                  [400, 400, 460, 460], [200, 200, 218, 218]], [0.22, 0.28, 0.25, 0.29, 0.21])
    strong = faces([[202, 201, 219, 219]], [0.8])  # the last weak box is this face, found at the threshold
    looked, windows = zoom_windows(weak, strong, (64, 43), 1280, 720, None)
    # the 60 px box is too large for the closer window, the one over a strong box is that face
    assert looked.scores.tolist() == pytest.approx([0.28, 0.25, 0.22])
    assert windows == [(576, 288, 64, 43), (1216, 677, 64, 43), (77, 88, 64, 43)]  # centred, inside the frame
    looked, windows = zoom_windows(weak, strong, (64, 43), 1280, 720, 1)
    assert looked.scores.tolist() == pytest.approx([0.28]) and len(windows) == 1
    assert zoom_windows(faces([], []), strong, (64, 43), 1280, 720, None)[1] == []


def test_a_weak_box_is_kept_only_when_its_closer_look_finds_it() -> None:
    from edged.stages.detect.scan import zoomed

    weak = faces([[100, 100, 118, 118], [600, 300, 617, 318], [300, 300, 318, 318]], [0.22, 0.28, 0.25])
    looks = [faces([[101, 99, 119, 119], [130, 100, 140, 110]], [0.6, 0.9]),  # the face, and another box
             faces([[640, 300, 657, 318]], [0.7]),  # something else in the window
             faces([], [])]
    kept = zoomed(weak, looks)
    assert kept.boxes.tolist() == [[101, 99, 119, 119]] and kept.scores.tolist() == pytest.approx([0.6])


@pytest.mark.slow
def test_a_second_closer_look_finds_weak_small_faces_and_loses_none() -> None:
    """Real LFW faces 16-17 px wide: boxes the windows score just below the threshold, looked at
    again in a closer window centred on them, add faces to what the windows find, and drop none."""
    data = pytest.importorskip("skimage.data")
    image = cv2.resize(cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR), (1280, 720))
    truth = []
    for i, f in enumerate(data.lfw_subset()[20:32]):
        side = 16 + i % 2
        tile = cv2.resize((f * 255).astype(np.uint8), (side, side), interpolation=cv2.INTER_AREA)
        x, y = 80 + (i % 6) * 190, 150 + (i // 6) * 300
        image[y:y + side, x:x + side] = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
        truth.append((x, y, x + side, y + side))
    boxes = np.asarray(truth, np.float32)
    scan = next(m for m in default_models() if m.name == "face_scan")
    assert scan.scan.zoom_scale > 0  # the default model set looks again
    without = msgspec.structs.replace(scan, scan=msgspec.structs.replace(scan.scan, zoom_scale=0.0, zoom_follow=False))
    closer = Detector.from_config(DetectConfig(models=[scan]))
    hits = found(closer.detect(image), boxes)
    assert closer.models[0].scan is not None and closer.models[0].scan.last_counts["zoom"] >= 2
    plain = found(Detector.from_config(DetectConfig(models=[without])).detect(image), boxes)
    assert (hits >= plain).all() and hits.sum() >= plain.sum() + 2


def test_small_held_boxes_are_checked_again_in_a_closer_window_outside_the_budget() -> None:
    """With ``zoom_follow``, a small held box gets a closer window centred on it (and is replaced or
    dropped by what that window finds), and its grid window is not taken from the budget."""
    planner = ScanPlanner(ScanConfig(enabled=True, max_windows=2, sweep_windows=0, hold_frames=20, zoom_follow=True,
                                     zoom_scale=3.0, zoom_windows=1), (107, 71))
    planner.zoom_window = (64, 43)
    stream = Stream(planner)
    image = frame(1)
    stream.plan(image)  # first frame: whole
    planner.hold(Detections.concat([held_face(300, 300, 18), held_face(700, 200, 18), held_face(100, 500, 30)]), [])
    windows = stream.plan(image.copy())  # nothing changed
    assert planner.last_counts["close"] == 1 and windows[-1] == (277, 288, 64, 43)  # the oldest small box, centred
    # the other small box and the large one are followed in their grid windows, within the budget
    assert planner.last_counts["follow"] == 2 and len(windows) == 3
    kept = planner.hold(Detections(), windows)
    assert len(kept) == 0  # every held box was looked at again and not found: gone


def test_config_rejects_closer_follows_without_a_closer_window() -> None:
    """``zoom_follow`` without ``zoom_scale`` would follow in no closer window: one line names the key."""
    model = {"name": "face_scan", "file": "models/face_centerface_480x288_int8.tflite", "layout": "centerface",
             "input_size": [192, 128], "labels": ["face"], "full_frame": False,
             "scan": {"enabled": True, "zoom_follow": True, "zoom_scale": 0.0}}
    with pytest.raises(ConfigError, match=r"detect\.models\[0\]\.scan.*zoom_follow needs zoom_scale > 0"):
        from_dict({"detect": {"models": [model]}})
    model["scan"] = {"enabled": True, "zoom_follow": True, "zoom_scale": 3.0}
    assert from_dict({"detect": {"models": [model]}}).detect.models[0].scan.zoom_follow
