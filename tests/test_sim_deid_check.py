"""The simulation's de-identification check on a real photograph and the real face model: it fails
when a delivered ops image still shows a face and passes once the face is de-identified."""

from __future__ import annotations

from pathlib import Path

import cbor2
import cv2
import msgspec
import numpy as np
import pytest

from edged.config import Config, DetectConfig
from edged.core.classes import CLASS_NAMES
from edged.link import wire
from edged.stages.privacy.deid import FrameDeidentifier, SensitiveRegions
from edged_platform.store import SegmentStore
from edged_sim import checks
from edged_sim.ground_truth import GroundTruth
from edged_sim.run import face_detector
from edged_sim.truth import FrameTruth, TruthSink

skimage_data = pytest.importorskip("skimage.data")
FACE = CLASS_NAMES.index("face")


def whole_frame_face_config() -> Config:
    face = next(m for m in DetectConfig().models if m.name == "face")
    face = msgspec.structs.replace(face, crops_from=[], full_frame=True, max_box_fraction=1.0)
    return msgspec.structs.replace(Config(), detect=DetectConfig(threads=1, models=[face]))


def run_check(tmp: Path, image: np.ndarray, face_box: np.ndarray, detect) -> checks.Check:
    truth = TruthSink()
    gt = GroundTruth(np.array([1]), np.array([FACE], np.int16), face_box[None].astype(np.float32),
                     np.array([-1]), np.array([1.0], np.float32))
    image_id = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    truth.by_image[image_id] = 0
    truth.frames.append(FrameTruth(image_id, 0, 0.0, True, 0.0, gt))
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    store = SegmentStore(tmp)
    body = cbor2.dumps({"image_id": image_id, "image": jpeg.tobytes()})
    store.append(wire.make("package", "ops", "normal", body, video_id="v1", image_id=image_id, created=0.0))
    return checks.check_deidentification(truth, store, detect, checks.CheckSettings())


def test_check_fails_on_a_visible_face_and_passes_once_it_is_hidden(tmp_path: Path) -> None:
    bgr = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    detect = face_detector(whole_frame_face_config())
    boxes, scores = detect(bgr)
    assert len(boxes) and scores.max() >= 0.5, "the real face model must find the astronaut's face"
    face_box = boxes[int(np.argmax(scores))]

    shown = run_check(tmp_path / "shown", bgr, face_box, detect)
    assert shown.status == checks.FAIL and shown.figures["found_after"] == 1, shown.summary

    regions = SensitiveRegions(face_box[None].astype(np.float32), np.array([FACE], np.int16),
                               np.array([1]), np.array([0.9], np.float32), np.zeros(1, np.float32),
                               np.ones(1, bool))
    hidden = FrameDeidentifier()(bgr, regions).image
    result = run_check(tmp_path / "hidden", hidden, face_box, detect)
    assert result.status == checks.PASS and result.figures["found_after"] == 0, result.summary
    assert result.figures["found_after_any_score"] >= result.figures["found_after"]
