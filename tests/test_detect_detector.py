"""The detector with the shipped models on real photographs, and tiling geometry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import Config, DetectConfig, ModelConfig, TilingConfig
from edged.core.classes import CLASS_NAMES
from edged.core.types import Detections
from edged.stages.detect import Detector
from edged.stages.detect.detector import Region, tile_regions
from edged.stages.detect.stage import DetectStage

FACE = CLASS_NAMES.index("face")
ASTRONAUT_FACE = np.array([181, 72, 271, 186], np.float32)
"""Eileen Collins' face in scikit-image's astronaut photo (box by eye, as in tools/eval/face_photos.py)."""


def astronaut_bgr() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def face_only(cfg: DetectConfig) -> DetectConfig:
    """The default face model alone (without its person crops, which need the person detector)."""
    import msgspec

    return DetectConfig(threads=1, models=[msgspec.structs.replace(m, crops_from=[], full_frame=True) for m in cfg.models if m.name == "face"])


def test_default_config_uses_the_shipped_int8_face_model():
    face = next(m for m in DetectConfig().models if m.name == "face")
    assert face.file.endswith("_int8.tflite") and face.layout == "blazeface"
    det = Detector.from_config(face_only(DetectConfig()))
    assert det.models[0].model.quantized


def test_int8_face_model_finds_the_astronaut():
    det = Detector.from_config(face_only(DetectConfig()))
    found = det.detect(astronaut_bgr())
    faces = found.select((found.class_ids == FACE) & (found.scores >= 0.5))
    assert len(faces) == 1
    assert iou(faces.boxes[0], ASTRONAUT_FACE) >= 0.6
    assert faces.angles.tolist() == [0.0]


def test_no_face_on_a_photo_without_people():
    skimage_data = pytest.importorskip("skimage.data")
    det = Detector.from_config(face_only(DetectConfig()))
    found = det.detect(cv2.cvtColor(skimage_data.coffee(), cv2.COLOR_RGB2BGR))
    assert not (found.scores >= 0.5).any()


def test_tiles_cover_the_frame_with_overlap():
    regions = tile_regions(1280, 720, TilingConfig(enabled=True, tile=(640, 640), overlap=0.2))
    assert regions[0].w == 1280 and regions[0].h == 720  # the whole frame first
    covered = np.zeros((720, 1280), bool)
    for r in regions[1:]:
        assert r.w == 640 and r.h == 640 and r.x + r.w <= 1280 and r.y + r.h <= 720
        covered[r.y : r.y + r.h, r.x : r.x + r.w] = True
    assert covered.all()
    xs = sorted({r.x for r in regions[1:]})
    assert all(b - a <= 640 * 0.8 + 1 for a, b in zip(xs, xs[1:]))  # neighbours overlap >= 20%
    assert len(tile_regions(600, 400, TilingConfig(enabled=True, tile=(640, 640)))) == 1


def test_a_tiling_that_cuts_the_frame_into_too_many_tiles_is_refused(tmp_path: Path) -> None:
    """64 px tiles on a 1920x1080 frame were ~800 invokes a frame (80 s): refused, naming file and key."""
    from edged.config import MAX_TILES_PER_FRAME, ConfigError, from_dict, load

    with pytest.raises(ValueError, match=r"detect.tiling: .* into 798 tiles; at most 16"):
        from_dict({"detect": {"tiling": {"enabled": True, "tile": [64, 64]}}, "camera": {"width": 1920, "height": 1080}})
    # the sensor's size bounds a camera left at its native size
    with pytest.raises(ValueError, match=r"1920x1080 frame into \d+ tiles"):
        from_dict({"detect": {"tiling": {"enabled": True, "tile": [256, 256]}}})
    ok = from_dict({"detect": {"tiling": {"enabled": True, "tile": [640, 640]}}, "camera": {"width": 1280, "height": 720}})
    assert len(tile_regions(1280, 720, ok.detect.tiling)) - 1 <= MAX_TILES_PER_FRAME
    bad = tmp_path / "edged.toml"
    bad.write_text('[detect.tiling]\nenabled = true\ntile = [64, 64]\n')
    with pytest.raises(ConfigError, match=r"edged.toml.*detect.tiling"):
        load(bad)


def test_tile_edges_are_evenly_spaced_like_linspace() -> None:
    for total in range(64, 2000, 37):
        for size in (64, 300, 640):
            for overlap in (0.0, 0.2, 0.5):
                xs, _ = TilingConfig(enabled=True, tile=(size, size), overlap=overlap).origins(total, 64)
                if size < total:
                    step = max(1, int(size * (1 - overlap)))
                    ref = np.linspace(0, total - size, int(np.ceil((total - size) / step)) + 1)
                    assert xs == [int(round(v)) for v in ref], (total, size, overlap)


def test_tiling_merges_duplicates_and_keeps_the_face():
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[100:612, 600:1112] = astronaut_bgr()
    cfg = face_only(DetectConfig())
    tiled = DetectConfig(threads=1, models=cfg.models, tiling=TilingConfig(enabled=True, tile=(640, 640), overlap=0.25))
    found = Detector.from_config(tiled).detect(frame)
    strong = found.select(found.scores >= 0.5)
    target = ASTRONAUT_FACE + np.array([600, 100, 600, 100], np.float32)
    hits = [b for b in strong.boxes if iou(b, target) >= 0.5]
    assert len(hits) == 1  # seen in several tiles, one box after NMS


def test_tiling_restricted_to_named_models_and_unknown_names_refused():
    cfg = face_only(DetectConfig())
    with pytest.raises(Exception, match="tiling.models names 'plate'"):
        Detector.from_config(DetectConfig(models=cfg.models, tiling=TilingConfig(enabled=True, models=["plate"])))


def test_stage_fills_work_detections():
    from edged.core.types import Frame
    from edged.stages.pipeline import FrameWork

    det = Detector.from_config(face_only(DetectConfig()))
    work = FrameWork(Frame(meta=None, pixels=astronaut_bgr()))  # type: ignore[arg-type]
    DetectStage(det)(work)
    assert work.detections is not None and (work.detections.class_ids == FACE).any()
    assert set(det.last_timings_ms) == {"face"}


def test_bad_frames_are_refused():
    det = Detector.from_config(face_only(DetectConfig()))
    with pytest.raises(ValueError, match="uint8 BGR"):
        det.detect(np.zeros((10, 10), np.uint8))


def test_model_paths_resolve_from_another_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    det = Detector.from_config(face_only(DetectConfig()))
    assert det.models[0].path.is_file()
    assert Path(det.models[0].path).name == "face_blazeface_short_range_int8.tflite"


def test_model_config_thresholds_apply_per_model():
    cfg = face_only(DetectConfig())
    strict = ModelConfig(**{**{f: getattr(cfg.models[0], f) for f in cfg.models[0].__struct_fields__}, "thresholds": {"face": 0.999}})
    found = Detector.from_config(DetectConfig(models=[strict])).detect(astronaut_bgr())
    assert len(found) == 0


def test_crops_from_needs_an_earlier_model_of_that_class():
    import msgspec

    face = next(m for m in DetectConfig().models if m.name == "face")
    with pytest.raises(Exception, match="crops_from 'person', which no model listed before it detects"):
        Detector.from_config(DetectConfig(models=[msgspec.structs.replace(face, crops_from=["person"])]))


def test_head_crops_are_squares_inside_the_frame():
    import msgspec

    from edged.core.types import Detections
    from edged.stages.detect.detector import crop_regions

    det = Detector.from_config(face_only(DetectConfig()))
    model = det.models[0]
    model.crop_class_ids = np.array([CLASS_NAMES.index("person")], np.int16)
    model.cfg = msgspec.structs.replace(model.cfg, crops_from=["person"], max_crops=2)
    person = CLASS_NAMES.index("person")
    found = Detections(
        np.array([[100, 200, 144, 290], [1250, 0, 1280, 400], [10, 10, 50, 100], [500, 500, 540, 590]], np.float32),
        np.array([0.9, 0.8, 0.2, 0.7], np.float32),
        np.array([person, person, person, FACE], np.int16),
        np.zeros(4, np.float32),
    )
    regions = crop_regions(found, model, 1280, 720)
    assert len(regions) == 2  # the 0.2 person is too weak, the face is not a seed class
    first, second = regions
    assert first.w == first.h == round(1.4 * 44)
    assert first.x <= 100 and first.x + first.w >= 144 and first.y <= 200  # covers the head
    assert second.x + second.w <= 1280 and second.y >= 0  # pushed inside the frame


def count_runs(model) -> list[int]:
    """Count ``model``'s interpreter runs (one per region it sees)."""
    calls = [0]
    run = model.model.run_pixels

    def counted(*a, **k):
        calls[0] += 1
        return run(*a, **k)

    model.model.run_pixels = counted
    return calls


@pytest.mark.slow
def test_full_frame_off_runs_the_face_model_on_person_crops_only():
    import msgspec

    from edged.stages.detect.detector import crop_regions
    from edged_sim.camera import FakeCamera

    cam = FakeCamera(1280, 720, 10.0, seed=7, events=False)
    cam.start()
    frames = [cam.capture().pixels for _ in range(40)][::10]
    for full_frame in (False, True):
        models = [m if m.name != "face" else msgspec.structs.replace(m, full_frame=full_frame) for m in DetectConfig().models]
        det = Detector.from_config(DetectConfig(threads=1, models=models))
        face_runs = count_runs(det.models[1])
        seen_crops = 0
        for pixels in [np.zeros((720, 1280, 3), np.uint8), *frames]:
            before = face_runs[0]
            det.detect(pixels)
            found = Detections.concat([det.models[0].detect_region(pixels, Region(0, 0, 1280, 720))])
            crops = len(crop_regions(found, det.models[1], 1280, 720))
            assert face_runs[0] - before == crops + int(full_frame)
            seen_crops += crops
        assert seen_crops > 0  # the scene's people seeded crops


def test_full_frame_off_without_crop_sources_is_refused():
    from edged.config import ConfigError, from_dict, to_dict

    d = to_dict(Config())
    plate = next(m for m in d["detect"]["models"] if m["name"] == "plate")
    plate["crops_from"] = []
    with pytest.raises(ConfigError, match=r"detect.models\[4\]: full_frame = false needs crops_from or scan"):
        from_dict(d)
