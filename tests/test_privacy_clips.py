"""Restoration clips: per object, crops in time order on blank frames, indexed by the best crop."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edged.config import PrivacyConfig, TrackConfig
from edged.core.types import Frame
from edged.link import wire
from edged.link.crops import decode_png, masked_pixels
from edged.link.sealing import open_sealed, trusted_signers
from edged.stages.pipeline import FrameWork
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.track.ids import MemoryIds
from edged.stages.track.tracker import Tracker
from edged_platform import clips
from edged_platform.store import SegmentStore
from tests.privacy_support import key_material, meta, noisy_detections, privacy_keys, scene_frames


def face_store(tmp_path: Path) -> SegmentStore:
    """A functional platform store holding the privacy stage's signed records of a tracked scene."""
    store = SegmentStore(tmp_path / "func")
    tracker = Tracker(TrackConfig(), MemoryIds(), fps=10.0)
    stage = PrivacyStage(PrivacyConfig(), privacy_keys(), device_id="rsu-c")
    rng = np.random.default_rng(9)
    device = key_material()[0]
    for i, (pixels, gt) in enumerate(scene_frames()):
        h, w = pixels.shape[:2]
        work = FrameWork(Frame(meta(i, w, h), pixels))
        work.detections = noisy_detections(gt, rng)
        work.tracks = tracker.update(work.frame.meta, work.detections).objects
        stage(work)
        for env in work.outgoing:  # this store receives both categories: plate records are not ours
            store.append(wire.sign(env, device))  # signed as the outbox signs
    return store


@pytest.mark.slow
def test_clips_per_object_in_time_order_with_best_crop(tmp_path: Path) -> None:
    store = face_store(tmp_path)
    device, face, plate = key_material()
    signers = trusted_signers([device.verify_key])
    index = clips.build_clips(store, face, signers, tmp_path / "clips")
    assert index["rejected"] == [] and index["other_recipient"] > 0
    assert json.loads((tmp_path / "clips" / "index.json").read_text()) == index
    objs = index["objects"]
    assert objs and all(o["category"] == "face" for o in objs)
    # every face region of every record is in exactly one clip frame
    faces = [open_sealed(bytes(e.body), face, signers) for v in store.segments() for e in store.iter_segment(v)
             if e.dest == "func.face"]
    assert sum(o["frames"] for o in objs) == sum(len(r.regions) for r in faces)
    tracked = [o for o in objs if o["track_id"] >= 0]
    assert tracked and max(o["frames"] for o in tracked) >= 10
    by_image = {r.image_id: r for r in faces}
    # a face's first frame (before the tracker confirms it) joins its track's clip
    linked = [o for o in tracked for iid, pos in zip(o["image_ids"], o["positions"], strict=True)
              if next(g for g in by_image[iid].regions if [g.x, g.y, g.w, g.h] == pos).track_id == -1]
    assert linked
    masked_seen = 0
    for o in tracked:
        assert o["frame_indexes"] == sorted(o["frame_indexes"])
        with av.open(str(tmp_path / "clips" / o["clip"])) as c:
            decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
        assert len(decoded) == o["frames"]
        for frame, image_id, pos in zip(decoded, o["image_ids"], o["positions"], strict=True):
            rec = by_image[image_id]
            region = next(g for g in rec.regions if [g.x, g.y, g.w, g.h] == pos)
            assert region.track_id in (o["track_id"], -1)  # -1: seen before the track was confirmed
            crop = decode_png(region.crop)
            assert frame.shape == (rec.height, rec.width, 3)
            shown = frame[region.y:region.y + region.h, region.x:region.x + region.w]
            hidden = masked_pixels(region.w, region.h, region.masked)  # in a plate region: not this key's
            assert np.array_equal(shown[~hidden], crop[~hidden]) and not shown[hidden].any()
            masked_seen += int(hidden.any())
            mask = np.ones(frame.shape[:2], bool)
            mask[region.y:region.y + region.h, region.x:region.x + region.w] = False
            assert not frame[mask].any()  # blank elsewhere
        best = cv2.imread(str(tmp_path / "clips" / o["best_crop"]))
        best_rec = by_image[o["best_image_id"]]
        assert any(np.array_equal(best, clips.shown_crop(g)) for g in best_rec.regions)
    assert masked_seen, "some face overlapped a plate: its clip frames leave the plate's pixels blank"


def test_best_crop_prefers_large_sharp_detected_views() -> None:
    from edged.link.crops import encode_png
    from edged.link.records import RecordRegion

    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 3)

    def region(img, box, detected=True):
        return RecordRegion(1, "face", 0, 0, 40, 40, 0.0, box, 0.9, detected, encode_png(img), b"", (0, 0, 0))

    big = clips.feature_value(region(sharp, (0, 0, 40, 40)), sharp)
    assert big > clips.feature_value(region(sharp, (10, 10, 30, 30)), sharp)  # larger box
    assert big > clips.feature_value(region(soft, (0, 0, 40, 40)), soft)  # sharper
    assert clips.feature_value(region(sharp, (0, 0, 40, 40), detected=False), sharp) == 0.0


def test_masked_pixels_do_not_count_as_sharpness() -> None:
    """A flat crop whose masked corner holds other content is as unsharp as the flat crop itself."""
    from edged.link.crops import encode_png
    from edged.link.records import RecordRegion

    flat = np.full((40, 40, 3), 120, np.uint8)
    holed = flat.copy()
    holed[:20, :20] = np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    masked = RecordRegion(1, "face", 0, 0, 40, 40, 0.0, (0, 0, 40, 40), 0.9, True, encode_png(holed), b"", (0, 0, 0),
                          masked=((0, 0, 20, 20),))
    assert clips.feature_value(masked, holed) == 0.0
    assert not clips.shown_crop(masked)[:20, :20].any()


def test_clips_cli_reports_bad_keys(tmp_path: Path, capsys) -> None:
    assert clips.main(["--key", str(tmp_path / "no.key"), "--signer", str(tmp_path / "no.pub"),
                       "--store", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.slow
def test_clips_cli_shows_progress_unless_quiet(tmp_path: Path, capsys, monkeypatch) -> None:
    import edged.core.progress as progress
    from edged.core.keys import _encode, _write_private, _write_public

    face_store(tmp_path)
    device, face, _ = key_material()
    _write_private(tmp_path / "face.key", _encode("x25519-secret", bytes(face)), False)
    _write_public(tmp_path / "device.pub", _encode("ed25519-public", bytes(device.verify_key)), False)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # stderr is not a terminal here: plain lines
    argv = ["--key", str(tmp_path / "face.key"), "--signer", str(tmp_path / "device.pub"),
            "--store", str(tmp_path / "func"), "--out", str(tmp_path / "clips")]
    assert clips.main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(x.startswith("clips: videos: 1/1 videos (100%)") for x in err)
    assert any(x.startswith("clips: ") and " objects (" in x for x in err)
    assert clips.main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""
