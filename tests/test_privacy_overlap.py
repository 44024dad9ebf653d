"""Overlapping face and plate regions: neither platform sees the other's pixels, both keys restore all.

A real photo, the real privacy stage and real NaCl keys: a face rectangle and a plate rectangle that
overlap (a face behind a windscreen beside its plate). Each category's record is opened with its own
key only, the way its functional platform opens it. The new API is reached through its modules at
call time (``sealing.open_overlap``, ``restore.open_overlaps``), so each test fails on the format-1
code by its assertion or by that missing name, not at import.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import pytest
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from edged.config import PrivacyConfig
from edged.core.keys import PrivacyKeys, sealing_key_id
from edged.core.types import Frame
from edged.link import records, sealing, wire
from edged.link.crops import decode_png
from edged.link.records import SensitiveRecord
from edged.link.sealing import open_sealed, seal, trusted_signers
from edged.stages.privacy.stage import PrivacyStage
from edged_platform import restore
from edged_platform.restore import check_region, restore_image
from tests.privacy_support import FACE, PLATE, meta, photos, tracked

FACE_BOX, PLATE_BOX = [181, 72, 271, 186], [230, 150, 330, 200]
"""On the astronaut photo: the plate's rectangle cuts into the lower right of the face's."""


@dataclass(frozen=True)
class Frame1:
    """One de-identified frame, its original and each category's record opened with its own key."""

    original: np.ndarray
    deidentified: np.ndarray
    rects: np.ndarray
    """``x1, y1, x2, y2`` of the face (row 0) and the plate (row 1)."""
    face: SensitiveRecord
    plate: SensitiveRecord
    face_key: PrivateKey
    plate_key: PrivateKey

    def place(self, k: int) -> tuple[slice, slice]:
        x1, y1, x2, y2 = self.rects[k]
        return slice(y1, y2), slice(x1, x2)

    def overlap(self) -> np.ndarray:
        """``bool`` image mask of the pixels both rectangles cover."""
        out = np.zeros(self.original.shape[:2], bool)
        (fx1, fy1, fx2, fy2), (px1, py1, px2, py2) = self.rects
        out[max(fy1, py1) : min(fy2, py2), max(fx1, px1) : min(fx2, px2)] = True
        return out

    def only(self, k: int) -> np.ndarray:
        """``bool`` image mask of rectangle ``k`` less the overlap."""
        out = np.zeros(self.original.shape[:2], bool)
        out[self.place(k)] = True
        return out & ~self.overlap()


def _stage_frame(boxes: list[list[int]], classes: list[int], photo_index: int = 0) -> Frame1:
    """Run the privacy stage on a photo and open each category's record with its own key only."""
    photo = photos()[photo_index]
    h, w = photo.pixels.shape[:2]
    device, face_key, plate_key = SigningKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    keys = PrivacyKeys(device, {"face": face_key.public_key, "plate": plate_key.public_key})
    tracks = tracked(boxes, classes, list(range(11, 11 + len(boxes))))
    out = PrivacyStage(PrivacyConfig(), keys, device_id="rsu-o").process(Frame(meta(5, w, h), photo.pixels), tracks, None)
    signers = trusted_signers([device.verify_key])
    body = {e.dest: bytes(wire.sign(e, device).body) for e in out.envelopes}
    face = open_sealed(body["func.face"], face_key, signers)
    plate = open_sealed(body["func.plate"], plate_key, signers)
    return Frame1(photo.pixels, out.deidentified, out.rects, face, plate, face_key, plate_key)


@pytest.fixture(scope="module")
def frame() -> Frame1:
    f = _stage_frame([FACE_BOX, PLATE_BOX], [FACE, PLATE])
    overlap = f.overlap()
    assert overlap.any()
    assert not np.array_equal(f.deidentified[overlap], f.original[overlap]), "the overlap must be de-identified"
    return f


def _crop_in_image(record: SensitiveRecord, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The record's single crop placed in an image of ``shape`` and the mask of where it lies."""
    (region,) = record.regions
    image, mask = np.zeros(shape, np.uint8), np.zeros(shape[:2], bool)
    image[region.y : region.y + region.h, region.x : region.x + region.w] = decode_png(region.crop)
    mask[region.y : region.y + region.h, region.x : region.x + region.w] = True
    return image, mask


# ------------------------------------------------------------------------------ (a) one key alone
@pytest.mark.parametrize("category", ["face", "plate"])
def test_one_record_alone_holds_no_pixel_of_the_other_category(frame: Frame1, category: str) -> None:
    """(a) Decrypted with its own key, a record's crop shows, inside the overlap, the de-identified
    pixels (as in the image every receiver gets), not one original pixel; outside it, the original."""
    record = frame.face if category == "face" else frame.plate
    crop, where = _crop_in_image(record, frame.original.shape)
    overlap = frame.overlap()
    assert (overlap & where).sum() == overlap.sum()
    differs = (frame.original != frame.deidentified).any(axis=2) & overlap  # where an original pixel would show
    assert differs.sum() > 0.9 * overlap.sum()
    assert not (crop[differs] == frame.original[differs]).all(axis=1).any(), "an original overlap pixel is in the crop"
    assert np.array_equal(crop[overlap], frame.deidentified[overlap])
    own = where & ~overlap
    assert np.array_equal(crop[own], frame.original[own])
    (region,) = record.regions
    x1, y1 = region.x, region.y
    ys, xs = np.nonzero(overlap)
    assert region.masked == ((xs.min() - x1, ys.min() - y1, xs.max() - xs.min() + 1, ys.max() - ys.min() + 1),)


def test_the_overlap_opens_only_with_both_keys(frame: Frame1) -> None:
    """Both records carry the same nested boxes; each key alone stops at its layer."""
    (sealed,) = frame.face.overlaps
    assert frame.plate.overlaps == (sealed,)
    assert sealed.categories == ("face", "plate")
    assert sealed.recipient_key_ids == (sealing_key_id(frame.face_key), sealing_key_id(frame.plate_key))
    for key in (frame.face_key, frame.plate_key):
        ring = {sealing_key_id(key): key}
        assert not sealing.can_open_overlap(sealed, ring)
        with pytest.raises(records.WrongKeyError, match="missing"):
            sealing.open_overlap(sealed, ring, frame.face.image_id)
        assert restore.open_overlaps([frame.face, frame.plate], [key]) == []
    with pytest.raises(CryptoError):  # the plate key cannot even open the outer layer
        SealedBox(frame.plate_key).decrypt(sealed.ciphertext)
    inner = SealedBox(frame.face_key).decrypt(sealed.ciphertext)
    with pytest.raises(CryptoError):  # and the face key stops at the inner one
        SealedBox(frame.face_key).decrypt(inner)
    (opened,) = restore.open_overlaps([frame.face, frame.plate], [frame.face_key, frame.plate_key])
    (patch,) = opened.patches
    place = (slice(patch.y, patch.y + patch.h), slice(patch.x, patch.x + patch.w))
    assert frame.overlap()[place].all() and frame.overlap().sum() == patch.w * patch.h
    assert np.array_equal(decode_png(patch.crop), frame.original[place])


# ------------------------------------------------------------------------------ (b) both keys
def test_both_keys_restore_the_original_exactly_overlap_included(frame: Frame1) -> None:
    """(b) With both keys the overlap is pasted too: the original, bit for bit, in both regions; the
    two crops alone (no overlap opened) leave the overlap as received."""
    both = [frame.face, frame.plate]
    without = restore_image(frame.deidentified, both)
    overlap = frame.overlap()
    assert np.array_equal(without[overlap], frame.deidentified[overlap])
    overlaps = restore.open_overlaps(both, [frame.face_key, frame.plate_key])
    assert np.array_equal(restore_image(frame.deidentified, both, overlaps=overlaps), frame.original)
    assert np.array_equal(restore_image(frame.deidentified, both[::-1], overlaps=overlaps), frame.original)


# ------------------------------------------------------------------------------ (c) one key
@pytest.mark.parametrize("category", ["face", "plate"])
def test_one_key_restores_its_own_pixels_and_leaves_the_overlap_as_received(frame: Frame1, category: str) -> None:
    """(c) Into a JPEG of the de-identified image: its category's pixels outside the overlap exactly,
    the overlap and everything else exactly as received."""
    record, key, k = (frame.face, frame.face_key, 0) if category == "face" else (frame.plate, frame.plate_key, 1)
    received = cv2.imdecode(cv2.imencode(".jpg", frame.deidentified, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
    assert restore.open_overlaps([record], [key]) == []
    out = restore_image(received, [record], overlaps=restore.open_overlaps([record], [key]))
    own = frame.only(k)
    assert np.array_equal(out[own], frame.original[own])
    assert np.array_equal(out[~own], received[~own])
    (region,) = record.regions
    assert region.masked and check_region(received, region, decode_png(region.crop)).ok


def test_the_check_ignores_masked_pixels_and_still_catches_a_bare_region(frame: Frame1) -> None:
    """The de-identification check compares the crop's own pixels only: a region whose own pixels show
    the original is refused even though its masked part is de-identified."""
    doctored = frame.deidentified.copy()
    own = frame.only(1)
    doctored[own] = frame.original[own]
    (plate,) = frame.plate.regions
    result = check_region(doctored, plate, decode_png(plate.crop))
    assert not result.ok and result.detail_share is not None and result.detail_share > 0.9
    with pytest.raises(restore.RestoreError, match=r"plate, track 12.*is not de-identified"):
        restore_image(doctored, [frame.face, frame.plate])


# ------------------------------------------------------------------------------ (d) no overlap
def test_regions_that_do_not_overlap_are_sealed_and_restored_as_before() -> None:
    """(d) Face and plate apart: whole original crops, no mask, no overlap; a version-1 record of the
    same content (what the previous build wrote) restores to the same image and checks the same."""
    f = _stage_frame([FACE_BOX, [380, 420, 470, 450]], [FACE, PLATE])
    assert not f.overlap().any()
    for record, k in ((f.face, 0), (f.plate, 1)):
        assert record.format_version == 2 and record.overlaps == ()
        (region,) = record.regions
        assert region.masked == ()
        assert np.array_equal(decode_png(region.crop), f.original[f.place(k)])
    both = [f.face, f.plate]
    assert np.array_equal(restore_image(f.deidentified, both), f.original)
    old = [replace(r, format_version=1) for r in both]
    device = SigningKey.generate()
    signers = trusted_signers([device.verify_key])
    reopened = [open_sealed(seal(r, key.public_key, device), key, signers) for r, key in zip(old, (f.face_key, f.plate_key), strict=True)]
    assert [r.format_version for r in reopened] == [1, 1] and reopened == old
    assert np.array_equal(restore_image(f.deidentified, reopened), f.original)
    for new, before in zip(both, reopened, strict=True):
        assert check_region(f.deidentified, new.regions[0], decode_png(new.regions[0].crop)) == check_region(
            f.deidentified, before.regions[0], decode_png(before.regions[0].crop))


def test_a_version_1_record_cannot_carry_masks() -> None:
    """Masked crops are written as version 2 only: a reader of version 1 would paste them whole."""
    f = _stage_frame([FACE_BOX, PLATE_BOX], [FACE, PLATE])
    with pytest.raises(records.RecordFormatError, match="version-1 record has no masked pixels"):
        seal(replace(f.face, format_version=1, overlaps=()), f.face_key.public_key, SigningKey.generate())
