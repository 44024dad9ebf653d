"""Functional-platform restore: exact on real photos and fake-scene frames, refusals, CLI paths."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edged.config import PrivacyConfig
from edged.core.keys import (
    PrivacyKeys,
    generate_device_key,
    generate_platform_key,
    load_platform_public_key,
    load_signing_key,
)
from edged.core.types import Frame
from edged.link import wire
from edged.link.sealing import open_sealed, seal, seal_overlap, trusted_signers
from edged.stages.privacy.deid import FrameDeidentifier, sensitive_regions
from edged.stages.privacy.records import attach_overlaps, build_overlaps, build_records
from edged.stages.privacy.stabilize import StableDeidentifier
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.select.package import UploadPackage
from edged.stages.track.observations import OBS_DTYPE
from edged_platform import restore
from edged_platform.restore import RestoreError, open_overlaps, restore_image
from edged_platform.store import SegmentStore, export_image
from tests.privacy_support import gt_tracks, key_material, meta, photos, scene_frames

DEIDENTIFIERS = {
    "blur": lambda: FrameDeidentifier("blur"),
    "pixelate": lambda: FrameDeidentifier("pixelate"),
    "fill": lambda: FrameDeidentifier("fill"),
    "stable": lambda: StableDeidentifier(),
}


def _all_records(pixels, tracks, deid, i=1):
    regions = sensitive_regions(tracks, None, 0.3)
    res = deid(pixels, regions)
    h, w = pixels.shape[:2]
    records = build_records(meta(i, w, h), pixels, res, regions, ["face", "plate"])
    device, face, plate = key_material()
    keys = {"face": face, "plate": plate}
    public = {c: k.public_key for c, k in keys.items()}
    overlaps = build_overlaps(meta(i, w, h), pixels, res, regions, ["face", "plate"])
    records = attach_overlaps(records, [seal_overlap(o, public) for o in overlaps])
    signers = trusted_signers([device.verify_key])
    opened = [open_sealed(seal(r, keys[c].public_key, device), keys[c], signers) for c, r in records.items()]
    return res, opened


def restore_all(image, records, check: bool = True):
    """Restore with both platforms' keys: the records and every overlap they carry."""
    _, face, plate = key_material()
    return restore_image(image, records, check, overlaps=open_overlaps(records, [face, plate]))


def assert_exact(original, deid_image, restored, rects) -> None:
    mask = np.zeros(original.shape[:2], bool)
    for x1, y1, x2, y2 in rects:
        mask[y1:y2, x1:x2] = True
    assert mask.any()
    assert np.array_equal(restored[mask], original[mask]), "restored region differs from the original"
    assert np.array_equal(restored[~mask], deid_image[~mask]), "restore touched pixels outside the regions"


@pytest.mark.parametrize("method", sorted(DEIDENTIFIERS))
def test_restore_is_exact_on_real_photos(method: str) -> None:
    for photo in photos():
        res, records = _all_records(photo.pixels, photo.tracks, DEIDENTIFIERS[method]())
        assert not np.array_equal(res.image, photo.pixels)
        restored = restore_all(res.image, records)
        assert_exact(photo.pixels, res.image, restored, res.rects)
        assert np.array_equal(restored, photo.pixels)  # every changed pixel was a region pixel


@pytest.mark.parametrize("method", ["blur", "stable"])
def test_restore_is_exact_on_fake_scene_frames(method: str) -> None:
    deid = DEIDENTIFIERS[method]()
    n = overlapping = 0
    for i, (pixels, gt) in enumerate(scene_frames()):
        tracks = gt_tracks(gt)
        res, records = _all_records(pixels, tracks, deid, i)
        if not records:
            continue
        restored = restore_all(res.image, records)
        assert np.array_equal(restored, pixels)
        n += 1
        overlapping += any(r.overlaps for r in records)
    assert n >= 30 and overlapping, "the scene frames have overlapping face and plate regions"


def test_one_category_restores_only_its_own_regions() -> None:
    photo = photos()[0]
    res, records = _all_records(photo.pixels, photo.tracks, FrameDeidentifier())
    face_only = [r for r in records if r.category == "face"]
    restored = restore_image(res.image, face_only)
    face_rects = res.rects[photo.tracks.class_ids == 0]
    assert_exact(photo.pixels, res.image, restored, face_rects)


def test_restore_into_a_jpeg_of_the_deidentified_image() -> None:
    photo = photos()[1]
    res, records = _all_records(photo.pixels, photo.tracks, StableDeidentifier())
    jpeg = cv2.imdecode(cv2.imencode(".jpg", res.image, [cv2.IMWRITE_JPEG_QUALITY, 50])[1], cv2.IMREAD_COLOR)
    restored = restore_all(jpeg, records)
    assert_exact(photo.pixels, jpeg, restored, res.rects)


def test_positions_not_deidentified_in_the_given_image_are_refused() -> None:
    photo = photos()[0]
    res, records = _all_records(photo.pixels, photo.tracks, FrameDeidentifier())
    with pytest.raises(RestoreError, match=r"region 0 \(face, track 11\) at x=\d+ y=\d+ w=\d+ h=\d+ is not de-identified"):
        restore_image(photo.pixels, records)
    # one region de-identified, the other bare: still refused, naming the bare one
    half = res.image.copy()
    x1, y1, x2, y2 = res.rects[1]
    half[y1:y2, x1:x2] = photo.pixels[y1:y2, x1:x2]
    with pytest.raises(RestoreError, match=r"plate, track 12.*not de-identified"):
        restore_image(half, records)
    # another image of the same size: not this record's de-identified content
    other = cv2.resize(photos()[1].pixels, (photo.pixels.shape[1], photo.pixels.shape[0]))
    other_res = FrameDeidentifier()(other, sensitive_regions(photo.tracks, None, 0.3))
    with pytest.raises(RestoreError, match="does not show this record's de-identified content"):
        restore_image(other_res.image, records)
    with pytest.raises(RestoreError, match="is for a 512x512 image; the given image is 600x400"):
        restore_image(photos()[1].pixels, records)


# --------------------------------------------------------------------------------------- CLI
@pytest.fixture
def platform(tmp_path: Path):
    """Key files, a privacy stage, and 12 fake-scene frames processed into ops and func stores."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    face = generate_platform_key(tmp_path / "keys" / "face")
    plate = generate_platform_key(tmp_path / "keys" / "plate")
    sk = load_signing_key(dev.private)
    keys = PrivacyKeys(sk, {"face": load_platform_public_key(face.public), "plate": load_platform_public_key(plate.public)})
    stage = PrivacyStage(PrivacyConfig(), keys, device_id="rsu-t")
    ops, func = SegmentStore(tmp_path / "ops"), SegmentStore(tmp_path / "func.face")
    frames = []
    for i, (pixels, gt) in enumerate(scene_frames()[20:32]):
        h, w = pixels.shape[:2]
        m = meta(100 + i, w, h)
        out = stage.process(Frame(m, pixels), gt_tracks(gt), None)
        png = cv2.imencode(".png", out.deidentified)[1].tobytes()
        pkg = UploadPackage(m, True, -1, np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, OBS_DTYPE))
        ops.append(wire.sign(pkg.envelope(png, image_format="png"), sk))  # signed as the outbox signs
        out.envelopes[:] = [wire.sign(env, sk) for env in out.envelopes]
        for env in out.envelopes:
            if env.dest == "func.face":
                func.append(env)
        frames.append((m, pixels, out))
    return tmp_path, dev, face, plate, frames


def test_cli_restores_from_files_stores_and_video(platform) -> None:
    tmp, dev, face, plate, frames = platform
    m, pixels, out = next(f for f in frames if any(e.dest == "func.face" for e in f[2].envelopes))
    env = next(e for e in out.envelopes if e.dest == "func.face")
    (tmp / "r.cbor").write_bytes(env.to_bytes())
    export_image(SegmentStore(tmp / "ops", device_keys=wire.trusted_keys([dev.public])), m.image_id, tmp / "deid.png")
    assert (tmp / "deid.png.json").exists()
    base = ["--key", str(face.private), "--signer", str(dev.public)]
    assert restore.main([*base, "--record", str(tmp / "r.cbor"), "--image", str(tmp / "deid.png"), "--out", str(tmp / "a.png")]) == 0
    face_mask = np.zeros(pixels.shape[:2], bool)
    for k in np.flatnonzero(out.regions.class_ids == 0):
        x1, y1, x2, y2 = out.rects[k]
        face_mask[y1:y2, x1:x2] = True
    a = cv2.imread(str(tmp / "a.png"))
    assert np.array_equal(a[face_mask], pixels[face_mask]) and np.array_equal(a[~face_mask], out.deidentified[~face_mask])

    # by image id from the ops and functional-platform stores
    assert restore.main([*base, "--func-store", str(tmp / "func.face"), "--ops-store", str(tmp / "ops"),
                         "--image-id", m.image_id, "--out", str(tmp / "b.png")]) == 0
    assert np.array_equal(cv2.imread(str(tmp / "b.png")), a)

    # a frame of a de-identified video (lossless FFV1) by frame index
    video = tmp / "deid.mkv"
    with av.open(str(video), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = pixels.shape[1], pixels.shape[0], "bgr0"
        for _, _, o in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(o.deidentified, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    k = next(j for j, f in enumerate(frames) if f[0] is m)
    assert restore.main([*base, "--record", str(tmp / "r.cbor"), "--video", str(video), "--frame", str(k), "--out", str(tmp / "c.png")]) == 0
    assert np.array_equal(cv2.imread(str(tmp / "c.png")), a)


def test_cli_refusals_are_one_clear_line(platform, capsys) -> None:
    tmp, dev, face, plate, frames = platform
    m, pixels, out = next(f for f in frames if any(e.dest == "func.face" for e in f[2].envelopes))
    env = next(e for e in out.envelopes if e.dest == "func.face")
    (tmp / "r.cbor").write_bytes(env.to_bytes())
    cv2.imwrite(str(tmp / "orig.png"), pixels)
    export_image(SegmentStore(tmp / "ops"), m.image_id, tmp / "deid.png")
    other_dev = generate_device_key(tmp / "keys" / "other")
    named = ["--image-id", m.image_id, "--frame", str(m.frame_index)]
    cases = [
        (["--key", str(face.private), "--signer", str(dev.public), "--image", str(tmp / "orig.png"), *named],
         "not de-identified"),
        (["--key", str(face.private), "--signer", str(dev.public), "--image", str(tmp / "orig.png")],
         "cannot tell which image and frame"),
        (["--key", str(plate.private), "--signer", str(dev.public), "--image", str(tmp / "deid.png")], "sealed to key id"),
        (["--key", str(face.private), "--signer", str(other_dev.public), "--image", str(tmp / "deid.png")], "unknown device key id"),
        (["--key", str(face.private), "--image", str(tmp / "deid.png")], "--signer"),
        (["--key", str(dev.private), "--signer", str(dev.public), "--image", str(tmp / "deid.png")], "expected an x25519-secret"),
    ]
    for args, expected in cases:
        assert restore.main([*args, "--record", str(tmp / "r.cbor"), "--out", str(tmp / "x.png")]) == 1
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1, err
        assert not (tmp / "x.png").exists()
    assert restore.main(["--key", str(face.private), "--signer", str(dev.public), "--record", str(tmp / "r.cbor"),
                         "--image", str(tmp / "deid.png"), "--out", str(tmp / "x.jpg")]) == 1
    assert "lossless" in capsys.readouterr().err


@pytest.mark.parametrize("method", sorted(DEIDENTIFIERS))
def test_deidentification_check_survives_jpeg_and_catches_bare_regions(method: str) -> None:
    """The check's two sides, region by region: de-identified (even after JPEG at quality 30) passes;
    bare (even after JPEG at quality 30, which removes much of the detail) fails."""
    from edged.link.crops import decode_png
    from edged_platform.restore import check_region

    def jpeg(a):
        return cv2.imdecode(cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)

    deid = DEIDENTIFIERS[method]()
    items = [(p.pixels, p.tracks) for p in photos()] + [(px, gt_tracks(gt)) for px, gt in scene_frames()[::4]]
    checked = 0
    for i, (pixels, tracks) in enumerate(items):
        res, records = _all_records(pixels, tracks, deid, i)
        deid_j, bare_j = jpeg(res.image), jpeg(pixels)
        for rec in records:
            for region in rec.regions:
                crop = decode_png(region.crop)
                ok = check_region(deid_j, region, crop)
                assert ok.ok, ok.reason
                bad = check_region(bare_j, region, crop)
                assert not bad.ok  # JPEG at 30 may leave too little of a small object's detail; the signature then refuses it
                checked += 1
    assert checked >= 40


def test_video_frame_errors_are_clear(tmp_path) -> None:
    from edged_platform.restore import video_frame

    with pytest.raises(RestoreError, match="video not found"):
        video_frame(tmp_path / "none.mkv", 0)
    (tmp_path / "junk.mkv").write_bytes(b"not a video at all" * 10)
    with pytest.raises(RestoreError, match="not a video"):
        video_frame(tmp_path / "junk.mkv", 0)
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(10))
        s.width, s.height, s.pix_fmt = 32, 16, "bgr0"
        for v in (10, 200):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((16, 32, 3), v, np.uint8), format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    assert int(video_frame(path, 1)[0, 0, 0]) == 200
    with pytest.raises(RestoreError, match="has no frame 5 \\(it has 2 frames\\)"):
        video_frame(path, 5)
