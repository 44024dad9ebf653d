"""Restore every category onto one image in one call, from sealed record files exported from the stores.

The records come from the real daemon (``edged run`` on the demo config's fake scene and models, real
key files); its outbox's payloads are stored as the receivers store them. Face and plate regions
overlap in several of its frames: there each record's crop masks the other category's pixels, and the
overlap opens only with both keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cbor2
import cv2
import numpy as np
import pytest
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from edged.cli import main as edged_main
from edged.config import PrivacyConfig
from edged.core.keys import (
    KeyPairFiles,
    PrivacyKeys,
    generate_device_key,
    generate_platform_key,
    load_platform_private_key,
    load_signing_key,
)
from edged.core.types import Frame
from edged.link import wire
from edged.link.crops import decode_png, masked_pixels
from edged.link.outbox import Outbox
from edged.link.records import SensitiveRecord
from edged.stages.privacy.stage import PrivacyStage
from edged_platform import restore, store
from edged_platform.restore import RestoreError, check_region, open_overlaps, open_records, restore_image
from edged_platform.store import SegmentStore, common_images
from tests.privacy_support import FACE, PLATE, meta, photos, tracked

ROOT = Path(__file__).resolve().parent.parent
DESTS = ("ops", "func.face", "func.plate")
FRAMES = 40
"""Frames of the demo scene the daemon runs: frames 18-31 have packages with face and plate records."""


@dataclass(frozen=True)
class Site:
    """A daemon run's platform side: key files, the three stores, and the images they can restore."""

    root: Path
    device: KeyPairFiles
    face: KeyPairFiles
    plate: KeyPairFiles
    restorable: list[str]
    """Image ids with an ops package and face and plate records."""
    overlapping: str
    """One of them where face and plate regions overlap."""

    def store(self, dest: str) -> Path:
        """The folder of a destination's store."""
        return self.root / "platform" / dest

    def keys(self) -> list[PrivateKey]:
        """Both functional platforms' private keys."""
        return [load_platform_private_key(self.face.private), load_platform_private_key(self.plate.private)]

    def records(self, image_id: str) -> list[SensitiveRecord]:
        """The decrypted records of ``image_id`` (test-side inspection)."""
        keys = wire.trusted_keys([self.device.public])
        blobs = [(e.id, e.to_bytes()) for d in DESTS[1:]
                 for e in SegmentStore(self.store(d), device_keys=keys).by_image(image_id, "sensitive")]
        return open_records(blobs, self.keys(), keys)


def _overlaps(records: list[SensitiveRecord]) -> int:
    """Pairs of a face and a plate region that overlap."""
    faces = [r for rec in records if rec.category == "face" for r in rec.regions]
    plates = [r for rec in records if rec.category == "plate" for r in rec.regions]
    return sum(a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h
               for a in faces for b in plates)


def _demo_config(tmp: Path, device: KeyPairFiles, face: KeyPairFiles, plate: KeyPairFiles) -> Path:
    """The demo config with its data, output and keys under ``tmp``, unpaced."""
    text = (ROOT / "config" / "default.toml").read_text(encoding="utf-8")
    for old, new in (('data_dir = "data"', f'data_dir = "{tmp / "data"}"'), ('dir = "out"', f'dir = "{tmp / "out"}"'),
                     ("realtime = true", "realtime = false"), ('"models/', f'"{ROOT / "models"}/'),
                     ('"data/keys/device.key"', f'"{device.private}"'), ('"data/keys/func-face.pub"', f'"{face.public}"'),
                     ('"data/keys/func-plate.pub"', f'"{plate.public}"')):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _deliver(tmp: Path, device: KeyPairFiles) -> None:
    """Store every outbox payload as the receivers do (verified, exact bytes), one store per destination."""
    keys = wire.trusted_keys([device.public])
    outbox = Outbox(tmp / "data" / "outbox.sqlite")
    try:
        for dest in DESTS:
            target = SegmentStore(tmp / "platform" / dest, device_keys=keys)
            for pending in outbox.next_batch(dest, 1_000_000, cached_limit=1_000_000):
                target.append_bytes(pending.payload)
    finally:
        outbox.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Run the daemon on the demo scene and deliver its messages to the three platform stores."""
    tmp = tmp_path_factory.mktemp("site")
    device = generate_device_key(tmp / "keys" / "device")
    face, plate = generate_platform_key(tmp / "keys" / "face"), generate_platform_key(tmp / "keys" / "plate")
    assert edged_main(["run", "--config", str(_demo_config(tmp, device, face, plate)), "--frames", str(FRAMES)]) == 0
    _deliver(tmp, device)
    keys = wire.trusted_keys([device.public])
    restorable = common_images([SegmentStore(tmp / "platform" / d, device_keys=keys) for d in DESTS])
    partial = Site(tmp, device, face, plate, restorable, "")
    overlapping = [i for i in restorable if _overlaps(partial.records(i))]
    assert overlapping, "the demo scene has no frame with overlapping face and plate regions"
    return Site(tmp, device, face, plate, restorable, overlapping[0])


def _export(site: Site, image_id: str, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, Path]:
    """Export the image and both records with the store's command line; returns their paths."""
    dev = ["--device-key", str(site.device.public)]
    assert store.main(["export", "--store", str(site.store("ops")), *dev, "--image-id", image_id,
                       "--out", str(out / "deid.jpg")]) == 0
    for dest in DESTS[1:]:
        assert store.main(["export-records", "--store", str(site.store(dest)), *dev, "--image-id", image_id,
                           "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{image_id}.face.cbor (face record of image {image_id}" in printed
    return out / "deid.jpg", out / f"{image_id}.face.cbor", out / f"{image_id}.plate.cbor"


def _both_keys(site: Site) -> list[str]:
    return ["--key", str(site.face.private), "--key", str(site.plate.private), "--signer", str(site.device.public)]


def _from_stores(site: Site, image_id: str) -> list[str]:
    """Restore arguments taking the image and both categories' records from the stores."""
    return ["--ops-store", str(site.store("ops")), "--func-store", str(site.store("func.face")),
            "--func-store", str(site.store("func.plate")), "--image-id", image_id]


def _refused(args: list[str], out: Path, expected: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run restore, expect exit 1, one stderr line containing ``expected``, and no output file."""
    assert restore.main([*args, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()
    return err


# ------------------------------------------------------------------------------------ restore all
@pytest.mark.slow
def test_one_call_restores_face_and_plate_where_they_overlap(site: Site, tmp_path: Path, capsys) -> None:
    image_id = site.overlapping
    deid, face_file, plate_file = _export(site, image_id, tmp_path, capsys)
    out = tmp_path / "restored.png"
    assert restore.main([*_both_keys(site), "--image", str(deid), "--record", str(face_file),
                         "--record", str(plate_file), "--out", str(out)]) == 0
    assert "2 record(s) (face, plate)" in capsys.readouterr().out
    records = site.records(image_id)
    assert _overlaps(records) > 0
    restored, received = cv2.imread(str(out)), cv2.imread(str(deid))
    mask = np.zeros(restored.shape[:2], bool)
    from_crops = np.zeros(restored.shape[:2], bool)
    for rec in records:
        for region in rec.regions:
            crop = decode_png(region.crop)
            place = (slice(region.y, region.y + region.h), slice(region.x, region.x + region.w))
            own = ~masked_pixels(region.w, region.h, region.masked)
            assert np.array_equal(restored[place][own], crop[own]), f"{rec.category} track {region.track_id} not restored"
            assert check_region(received, region, crop).ok  # de-identified as received
            mask[place] = True
            from_crops[place] |= own
    overlaps = open_overlaps(records, site.keys())
    assert overlaps and (mask & ~from_crops).any()
    for patch in (p for o in overlaps for p in o.patches):  # the overlap pixels: from the nested boxes
        place = (slice(patch.y, patch.y + patch.h), slice(patch.x, patch.x + patch.w))
        own = ~masked_pixels(patch.w, patch.h, patch.masked)
        assert np.array_equal(restored[place][own], decode_png(patch.crop)[own])
        from_crops[place] |= own
    assert np.array_equal(from_crops, mask), "every region pixel comes from a crop or an overlap patch"
    assert np.array_equal(restored[~mask], received[~mask]), "restore touched pixels outside the regions"
    assert not np.array_equal(restored[mask], received[mask])

    # the same from the stores, by image id
    again = tmp_path / "again.png"
    assert restore.main([*_both_keys(site), *_from_stores(site, image_id), "--out", str(again)]) == 0
    assert np.array_equal(cv2.imread(str(again)), restored)


def test_every_restorable_demo_image_restores_in_one_call(site: Site, tmp_path: Path, capsys) -> None:
    assert len(site.restorable) >= 3
    for image_id in site.restorable:
        out = tmp_path / f"{image_id}.png"
        assert restore.main([*_both_keys(site), *_from_stores(site, image_id), "--out", str(out)]) == 0, \
            capsys.readouterr().err
        assert out.exists()


def test_one_key_after_the_other_restores_all_but_the_overlap(site: Site, tmp_path: Path, capsys) -> None:
    """One key per call: each category's own pixels, never the overlap, which needs both keys in one call;
    a restored image is no input for another restore."""
    image_id = site.overlapping
    deid, face_file, plate_file = _export(site, image_id, tmp_path, capsys)
    signer = ["--signer", str(site.device.public)]
    first, second, both = tmp_path / "face.png", tmp_path / "then-plate.png", tmp_path / "both.png"
    assert restore.main(["--key", str(site.face.private), *signer, "--image", str(deid),
                         "--record", str(face_file), "--out", str(first)]) == 0
    frame = str(site.records(image_id)[0].frame_index)
    named = ["--image-id", image_id, "--frame", frame]
    assert restore.main(["--key", str(site.plate.private), *signer, "--image", str(first), *named,
                         "--record", str(plate_file), "--out", str(second)]) == 0
    assert restore.main([*_both_keys(site), "--image", str(deid), "--record", str(face_file),
                         "--record", str(plate_file), "--out", str(both)]) == 0
    capsys.readouterr()
    received, one_by_one, together = cv2.imread(str(deid)), cv2.imread(str(second)), cv2.imread(str(both))
    overlap = np.zeros(received.shape[:2], bool)
    for patch in (p for o in open_overlaps(site.records(image_id), site.keys()) for p in o.patches):
        overlap[patch.y : patch.y + patch.h, patch.x : patch.x + patch.w] = True
    assert overlap.any()
    assert np.array_equal(one_by_one[overlap], received[overlap]), "one key at a time restored overlap pixels"
    assert np.array_equal(one_by_one[~overlap], together[~overlap])
    assert not np.array_equal(together[overlap], received[overlap])
    _refused(["--key", str(site.face.private), *signer, "--image", str(both), *named, "--record", str(face_file)],
             tmp_path / "again.png", "is not de-identified in this image", capsys)


def test_a_wrong_key_or_record_refuses_the_whole_restore(site: Site, tmp_path: Path, capsys) -> None:
    image_id = site.overlapping
    deid, face_file, plate_file = _export(site, image_id, tmp_path, capsys)
    both = ["--image", str(deid), "--record", str(face_file), "--record", str(plate_file)]
    out = tmp_path / "x.png"
    signer = ["--signer", str(site.device.public)]
    other = generate_platform_key(tmp_path / "keys" / "other")
    other_dev = generate_device_key(tmp_path / "keys" / "other-device")

    _refused(["--key", str(site.face.private), *signer, *both], out,
             f"{plate_file}: record {image_id}/plate is sealed to key id", capsys)
    _refused(["--key", str(site.face.private), "--key", str(other.private), *signer, *both], out,
             "the given private keys have ids", capsys)
    _refused(["--key", str(site.face.private), "--key", str(site.plate.private), "--signer", str(other_dev.public),
              *both], out, "unknown device key id", capsys)
    _refused([*_both_keys(site), "--image", str(deid), "--record", str(face_file), "--record", str(tmp_path / "none.cbor")],
             out, f"--record {tmp_path / 'none.cbor'}: No such file or directory", capsys)

    # a record of another image beside the right ones
    neighbour = next(i for i in site.restorable if i != image_id)
    assert store.main(["export-records", "--store", str(site.store("func.plate")), "--device-key", str(site.device.public),
                       "--image-id", neighbour, "--out", str(tmp_path / "n")]) == 0
    capsys.readouterr()
    _refused([*_both_keys(site), *both, "--record", str(tmp_path / "n" / f"{neighbour}.plate.cbor")], out,
             "is for another image", capsys)

    # an altered record file: the envelope's (and the record's) signature fails; garbage is no record
    m = cbor2.loads(plate_file.read_bytes())
    body = bytearray(m["body"])
    body[len(body) // 2] ^= 0x01
    (tmp_path / "altered.cbor").write_bytes(cbor2.dumps({**m, "body": bytes(body)}))
    altered = [*_both_keys(site), "--image", str(deid), "--record", str(face_file), "--record", str(tmp_path / "altered.cbor")]
    err = _refused(altered, out, "signature does not verify", capsys)
    assert err.startswith(f"restore: {tmp_path / 'altered.cbor'}: envelope "), err
    (tmp_path / "junk.cbor").write_bytes(b"\xa1junk" * 9)
    _refused([*_both_keys(site), "--image", str(deid), "--record", str(face_file), "--record", str(tmp_path / "junk.cbor")],
             out, f"{tmp_path / 'junk.cbor'}: not a sealed record", capsys)


def test_a_region_bare_in_the_given_image_refuses_every_record(site: Site, tmp_path: Path, capsys) -> None:
    """One region shows its original in the input: nothing is restored, not even the other category."""
    image_id = site.overlapping
    deid, face_file, plate_file = _export(site, image_id, tmp_path, capsys)
    records = site.records(image_id)
    own = [(rec.category, r, decode_png(r.crop)[~masked_pixels(r.w, r.h, r.masked)]) for rec in records for r in rec.regions]
    shown = [(c, r) for c, r, pixels in own if pixels.size and pixels.std() > 10]
    category, bare = next((c, r) for c, r in sorted(shown, key=lambda cr: cr[0] != "plate"))
    doctored = cv2.imread(str(deid))
    doctored[bare.y : bare.y + bare.h, bare.x : bare.x + bare.w] = decode_png(bare.crop)
    cv2.imwrite(str(tmp_path / "doctored.png"), doctored)
    _refused([*_both_keys(site), "--image", str(tmp_path / "doctored.png"), "--image-id", image_id,
              "--frame", str(records[0].frame_index), "--record", str(face_file), "--record", str(plate_file)],
             tmp_path / "x.png", f"({category}, track {bare.track_id}) at x={bare.x} y={bare.y}", capsys)


def test_restore_image_checks_every_record_against_the_received_image() -> None:
    """Overlapping face and plate from the privacy stage on a real photo: all restore exactly together;
    the plate restores onto the face's restored output too (the overlap stays de-identified there), but
    not onto the image both restored."""
    dev_key = SigningKey.generate()
    photo = photos()[0]
    tracks = tracked([[181, 72, 271, 186], [230, 150, 330, 200]], [FACE, PLATE], [11, 12])
    h, w = photo.pixels.shape[:2]
    face_key, plate_key = PrivateKey.generate(), PrivateKey.generate()
    keys = PrivacyKeys(dev_key, {"face": face_key.public_key, "plate": plate_key.public_key})
    out = PrivacyStage(PrivacyConfig(), keys, device_id="rsu-t").process(Frame(meta(5, w, h), photo.pixels), tracks, None)
    signers = wire.trusted_keys([dev_key.verify_key])
    blobs = [(e.dest, wire.sign(e, dev_key).to_bytes()) for e in out.envelopes]
    records = open_records(blobs, [face_key, plate_key], signers)
    assert _overlaps(records) == 1
    overlaps = open_overlaps(records, [face_key, plate_key])
    restored = restore_image(out.deidentified, records, overlaps=overlaps)
    assert np.array_equal(restored, photo.pixels)
    face_only = restore_image(out.deidentified, [r for r in records if r.category == "face"])
    one_by_one = restore_image(face_only, [r for r in records if r.category == "plate"])
    (fx1, fy1, fx2, fy2), (px1, py1, px2, py2) = out.rects
    overlap = (slice(max(fy1, py1), min(fy2, py2)), slice(max(fx1, px1), min(fx2, px2)))
    assert np.array_equal(one_by_one[overlap], out.deidentified[overlap])
    one_by_one[overlap] = photo.pixels[overlap]
    assert np.array_equal(one_by_one, photo.pixels)
    with pytest.raises(RestoreError, match=r"plate, track 12.*is not de-identified in this image"):
        restore_image(restored, [r for r in records if r.category == "plate"])


# --------------------------------------------------------------------------------- export-records
def test_exported_record_files_are_the_signed_envelopes(site: Site, tmp_path: Path, capsys) -> None:
    image_id = site.overlapping
    _, face_file, plate_file = _export(site, image_id, tmp_path, capsys)
    keys = wire.trusted_keys([site.device.public])
    stored = {e.id: e for d in DESTS[1:] for e in SegmentStore(site.store(d), device_keys=keys).by_image(image_id, "sensitive")}
    for path, category in ((face_file, "face"), (plate_file, "plate")):
        env = wire.decode(path.read_bytes(), keys)  # signature verified
        assert env.kind == "sensitive" and env.image_id == image_id and env.dest == f"func.{category}"
        assert env.to_bytes() == stored[env.id].to_bytes()
    assert sorted(p.name for p in tmp_path.glob("*.cbor")) == sorted([face_file.name, plate_file.name])


def test_a_second_record_of_a_category_gets_its_message_id_in_the_name(site: Site, tmp_path: Path, capsys) -> None:
    image_id = site.overlapping
    keys = wire.trusted_keys([site.device.public])
    folder = tmp_path / "func.face"
    copy = SegmentStore(folder, device_keys=keys)
    (original,) = SegmentStore(site.store("func.face"), device_keys=keys).by_image(image_id, "sensitive")
    copy.append(original)
    again = wire.make("sensitive", original.dest, original.prio, bytes(original.body), video_id=original.video_id,
                      image_id=image_id, created=original.created, device=original.device)
    copy.append(wire.sign(again, load_signing_key(site.device.private)))
    assert store.main(["export-records", "--store", str(folder), "--device-key", str(site.device.public),
                       "--image-id", image_id, "--out", str(tmp_path / "r")]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == sorted(
        [f"{image_id}.face.cbor", f"{image_id}.face.{again.id}.cbor"])
    capsys.readouterr()


def test_export_records_refusals_are_one_line(site: Site, tmp_path: Path, capsys) -> None:
    image_id = site.overlapping
    dev = ["--device-key", str(site.device.public)]
    other = generate_device_key(tmp_path / "other")
    cases = [
        (["--store", str(tmp_path / "none"), *dev, "--image-id", image_id], "store folder not found"),
        (["--store", str(site.store("func.face")), *dev, "--image-id", "01NOSUCHIMAGE"],
         "no verified sensitive record for image 01NOSUCHIMAGE"),
        (["--store", str(site.store("ops")), *dev, "--image-id", image_id], "no verified sensitive record"),
        (["--store", str(site.store("func.face")), "--device-key", str(other.public), "--image-id", image_id], "refused: "),
        (["--store", str(site.store("func.face")), "--device-key", str(tmp_path / "no.pub"), "--image-id", image_id], "no.pub"),
    ]
    for args, expected in cases:
        assert store.main(["export-records", *args, "--out", str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "r").exists()


def test_images_lists_what_every_store_can_restore(site: Site, tmp_path: Path, capsys) -> None:
    dev = ["--device-key", str(site.device.public)]
    args = [a for d in DESTS for a in ("--store", str(site.store(d)))]
    assert store.main(["images", *args, *dev]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == site.restorable and site.overlapping in listed
    keys = wire.trusted_keys([site.device.public])
    ops = SegmentStore(site.store("ops"), device_keys=keys)
    assert store.main(["images", "--store", str(site.store("ops")), *dev]) == 0
    packages = capsys.readouterr().out.split()
    assert packages and all(ops.get_image(i) is not None for i in packages)
    events = {e.image_id for v in ops.segments() for e in ops.iter_segment(v) if e.kind == "event"}
    assert events - set(packages), "expected events of frames without a package (they are not listed)"
    (tmp_path / "empty").mkdir()
    assert store.main(["images", "--store", str(site.store("ops")), "--store", str(tmp_path / "empty"), *dev]) == 1
    captured = capsys.readouterr()
    assert not captured.out and "no image has a verified package or sealed record" in captured.err
