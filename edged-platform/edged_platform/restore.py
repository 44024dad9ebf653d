"""Functional platform: restore original images from de-identified ones and sealed records.

::

    python -m edged_platform.restore --key face.key --signer device.pub \\
        --record R.cbor --image deid.jpg --out restored.png
    python -m edged_platform.restore --key face.key --key plate.key --signer device.pub \\
        --record ID.face.cbor --record ID.plate.cbor --image deid.jpg --out restored.png
    python -m edged_platform.restore --key face.key --key plate.key --signer device.pub \\
        --func-store platform/func.face --func-store platform/func.plate --ops-store platform/ops \\
        --image-id 01J... --out restored.png
    python -m edged_platform.restore --key face.key --signer device.pub \\
        --record R.cbor --video segment.mp4 --frame 123 --out restored.png

Steps: verify each record's signature against the trusted device keys (``--signer``, also spelled
``--device-key``; a record or image that comes in a wire envelope must carry that envelope's valid
signature too), check it is sealed to one of the ``--key`` files, decrypt, check that every record
names the target image (:func:`check_target`), check every position of every record lies in a
de-identified region of the given image (:func:`check_region`), and only then paste all the original
crops back and write the result losslessly (PNG). Nothing a signed record or package declares is
decoded unchecked (:mod:`edged_platform.pixels`): each crop PNG must declare exactly its region's
size, 8-bit grey or colour without alpha, and every region must lie inside its record's frame,
before the crop is decoded; package images must be PNG or JPEG of at most
:data:`edged_platform.pixels.MAX_FRAME_PIXELS` pixels, read from their header.

**Several categories at once.** Each category's records are sealed to its own key (``face.key``,
``plate.key``); give every key (``--key``, repeatable) and every record (``--record`` and
``--func-store``, both repeatable) to one call to restore all categories onto one image. Restoring
them one call after another does not work where regions overlap, and must not: the second call's
input is the first's output, which no sidecar or package names, and where a region of the second
category overlaps a restored one the image shows the original's fine detail there, so its
de-identification check refuses it. One call checks every region against the de-identified image as
received before it pastes any crop (all records must name the same image and frame); crops of
overlapping regions are the same original pixels, so the paste order does not matter.

**The target check.** Every record's image id and frame index must be the target image's, and the
device key that signed the record must be the one that signed the image's upload package:

- ``--ops-store``: the target is the newest ops upload package of the image id whose envelope
  signature verifies (forged or altered packages are skipped); its body names image id and frame.
- ``--image FILE``: ``FILE`` is a signed package envelope (verified like the ops store's), or an
  image with a sidecar ``FILE.json`` written by ``python -m edged_platform.store export`` (whose
  SHA-256 must match the file), or, without either, an image the operator names with
  ``--image-id`` and ``--frame``. An image nothing names is refused.
- ``--video``: frames of a video file carry no ids; all records must name one image and frame.

A record from another image or frame is refused with one line naming both.

**The de-identification check.** A position passes when both hold:

1. *It shows this record's de-identified content*: the image inside the rectangle, shrunk to the
   record's signature grid (at most 8 x 8 cells, area average), differs from the signature the
   device computed from its de-identified output by at most :data:`SIG_MAX_DIFF` grey levels (mean
   absolute difference). Cell averages survive JPEG and H.264 re-encoding (a few levels) but not a
   different image or a different place.
2. *It does not show the original*: the share of the crop's fine detail that the image still
   shows inside the object's own box (the margin around it may be partly bare: an ellipse-shaped
   region leaves the rectangle's corners as they were) is at most :data:`DETAIL_MAX_SHARE`. Fine detail is
   the grey level minus its Gaussian blur of sigma 1.5 px; the share is the least-squares weight of the
   crop's detail in the image's, ``<d_img, d_crop> / <d_crop, d_crop>``: 1 for a bare region, >= 0.53 for a bare region
   after JPEG at quality 30 (>= 0.68 at 50), and <= 0.08 for every blurred, pixelated, filled or
   track-stable region of the fake scene and the test photos at the default strength, JPEG'd or
   not (<= 0.34 even at 5 cells; ``tests/test_privacy_restore.py`` checks both sides). A crop without fine
   detail (its detail's standard deviation below :data:`DETAIL_FLOOR`) shows nothing to hide, and only the
   first test applies.

Either failure refuses the whole restore with a :class:`RestoreError` naming the region.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import cbor2
import cv2
import numpy as np
from nacl.public import PrivateKey
from nacl.signing import VerifyKey

from edged.core.keys import KeyFileError, load_platform_private_key, sealing_key_id
from edged.core.paths import os_reason
from edged.core.progname import prog_name
from edged.link.crops import intersect, masked_pixels
from edged.link.records import OverlapPixels, RecordError, RecordHeader, RecordRegion, SensitiveRecord
from edged.link.sealing import can_open_overlap, open_overlap, open_sealed, verify_sealed
from edged.link.wire import EnvelopeAuthError, WireError, decode, trusted_keys
from edged_platform.pixels import PixelsError, check_record, decode_crop, decode_image
from edged_platform.store import PackageError, package_image, refused_note, sidecar_path
from edged_platform.stores import StoreUnavailable, missing_folder, open_store, shown

SIG_MAX_DIFF = 16.0
"""Largest mean absolute difference (grey levels) between the image's cells and the record's
de-identification signature: JPEG at quality >= 30 and H.264 keep cell averages within ~5."""
DETAIL_MAX_SHARE = 0.45
"""Largest share of the crop's fine detail the image may show for a region to count as
de-identified: between the worst de-identified region seen (0.34, at 5 cells; 0.08 at the default
2) and a bare one after JPEG at quality 30 (0.53)."""
DETAIL_FLOOR = 1.0
"""Crops whose fine detail has a standard deviation below this (grey levels) are featureless."""
DETAIL_SIGMA = 1.5
LOSSLESS_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm")


class RestoreError(ValueError):
    """A restore was refused or could not be done; the message says which record or region and why."""


@dataclass(frozen=True, slots=True)
class Target:
    """The image to restore into and what names it (``None``: not known for this source)."""

    image: np.ndarray
    what: str
    """How the command line gave it, for messages: ``--image deid.jpg``, ``ops message 01J...``."""
    image_id: str | None
    frame_index: int | None
    signer: str | None = None
    """Key id of the device key that signed the image's upload package."""


@dataclass(frozen=True, slots=True)
class OpenedRecord:
    """A verified, decrypted record and where it came from."""

    name: str
    record: SensitiveRecord
    signer: str
    """Key id of the device key that signed the sealed record."""
    envelope_image_id: str | None = None
    """Image id of the wire envelope the record came in, when it came in one."""


@dataclass(frozen=True, slots=True)
class RegionCheck:
    """Outcome of the de-identification check of one region."""

    ok: bool
    sig_diff: float
    """Mean absolute difference to the de-identification signature (grey levels)."""
    detail_share: float | None
    """Share of the crop's fine detail the image shows there; ``None`` for a featureless crop."""
    reason: str = ""


def _grey(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
    return a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2)


def _detail(grey: np.ndarray, known: np.ndarray | None = None) -> np.ndarray:
    """Fine detail of ``grey``; with ``known``, from the known pixels only (zero elsewhere)."""
    if known is None or known.all():
        return grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REFLECT)
    weight = known.astype(np.float32)
    blur = cv2.GaussianBlur(grey * weight, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REFLECT)
    norm = cv2.GaussianBlur(weight, (0, 0), DETAIL_SIGMA, borderType=cv2.BORDER_REFLECT)
    return (grey - blur / np.maximum(norm, 1e-6)) * weight


def detail_share(patch: np.ndarray, crop_detail: np.ndarray, known: np.ndarray | None = None) -> float:
    """Least-squares weight of the crop's fine detail in the patch's fine detail (known pixels only)."""
    img_detail = _detail(_grey(patch), known)
    return float((img_detail * crop_detail).sum() / max(float((crop_detail**2).sum()), 1e-9))


def object_pixels(region: RecordRegion) -> np.ndarray:
    """``bool (h, w)``: the pixels of the region's rectangle inside the object's own box (what must
    not show; the rest of the rectangle is margin, which an ellipse-shaped region leaves partly bare)."""
    bx1, by1, bx2, by2 = region.box
    cols = np.arange(region.w) + region.x + 0.5
    rows = np.arange(region.h) + region.y + 0.5
    return ((rows >= by1) & (rows <= by2))[:, None] & ((cols >= bx1) & (cols <= bx2))[None, :]


def check_region(
    image: np.ndarray, region: RecordRegion, crop: np.ndarray, known: np.ndarray | None = None
) -> RegionCheck:
    """Whether ``region`` lies in a de-identified area of ``image`` (see the module doc); ``known``
    (``bool (h, w)``, default: the region's unmasked pixels) says which crop pixels are original:
    the others are left out of the comparison."""
    h_img, w_img = image.shape[:2]
    x, y, w, h = region.x, region.y, region.w, region.h
    if x + w > w_img or y + h > h_img:
        return RegionCheck(False, float("inf"), None, f"lies outside the {w_img}x{h_img} image")
    if crop.shape[0] != h or crop.shape[1] != w:
        return RegionCheck(False, float("inf"), None, f"crop is {crop.shape[1]}x{crop.shape[0]}, position says {w}x{h}")
    patch = image[y : y + h, x : x + w]
    rows, cols, chans = region.deid_sig_shape
    sig = np.frombuffer(region.deid_sig, dtype=np.uint8).reshape(rows, cols, chans).astype(np.float32)
    small = cv2.resize(patch.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA).reshape(rows, cols, -1)
    if small.shape[2] != chans:  # grey image against a colour signature, or the reverse
        small, sig = small.mean(axis=2, keepdims=True), sig.mean(axis=2, keepdims=True)
    sig_diff = float(np.abs(small - sig).mean())
    if known is None:
        known = ~masked_pixels(w, h, region.masked)
    known = known & object_pixels(region)
    share: float | None = None
    if known.any():
        crop_detail = _detail(_grey(crop), known)
        if float(crop_detail[known].std()) >= DETAIL_FLOOR:
            share = detail_share(patch, crop_detail, known)
    if share is not None and share > DETAIL_MAX_SHARE:
        return RegionCheck(
            False, sig_diff, share,
            f"is not de-identified in this image (it still shows {share:.0%} of the original crop's "
            f"fine detail, at most {DETAIL_MAX_SHARE:.0%} allowed)",
        )
    if sig_diff > SIG_MAX_DIFF:
        return RegionCheck(
            False, sig_diff, share,
            f"does not show this record's de-identified content (differs by {sig_diff:.1f} grey levels, "
            f"at most {SIG_MAX_DIFF:g} allowed): wrong image or frame?",
        )
    return RegionCheck(True, sig_diff, share)


@dataclass(frozen=True, slots=True)
class KnownPixels:
    """Original pixels of a rectangle of the image and which of them are known (not masked)."""

    x: int
    y: int
    pixels: np.ndarray
    known: np.ndarray
    """``bool (h, w)``."""


def overlap_pixels(overlaps: Sequence[OverlapPixels], size: tuple[int, int]) -> list[KnownPixels]:
    """The decoded patches of opened overlaps; refuse a patch that does not fit an image of ``size`` (width, height)."""
    out = []
    for o in overlaps:
        for k, p in enumerate(o.patches):
            what = f"overlap {'+'.join(o.categories)} of image {o.image_id} patch {k}"
            if p.x + p.w > size[0] or p.y + p.h > size[1]:
                raise RestoreError(f"{what} does not fit the image")
            try:
                crop = decode_crop(p.crop, p.w, p.h)
            except PixelsError as err:
                raise RestoreError(f"{what}: {err}") from None
            out.append(KnownPixels(p.x, p.y, crop, ~masked_pixels(p.w, p.h, p.masked)))
    return out


def fill_masked(region: RecordRegion, crop: np.ndarray, patches: Sequence[KnownPixels]) -> KnownPixels:
    """The region's crop with its masked pixels filled from the overlap patches that cover them."""
    pixels, known = crop.copy(), ~masked_pixels(region.w, region.h, region.masked)
    for p in patches:
        part = intersect((region.x, region.y, region.w, region.h), (p.x, p.y, p.known.shape[1], p.known.shape[0]))
        if part is None or known.all():
            continue
        x, y, w, h = part
        mine = (slice(y - region.y, y - region.y + h), slice(x - region.x, x - region.x + w))
        theirs = (slice(y - p.y, y - p.y + h), slice(x - p.x, x - p.x + w))
        take = p.known[theirs] & ~known[mine]
        pixels[mine][take] = p.pixels[theirs][take]
        known[mine] |= take
    return KnownPixels(region.x, region.y, pixels, known)


def _refuse(rec: SensitiveRecord, k: int, region: RecordRegion, reason: str) -> NoReturn:
    """Refuse the restore because of region ``k`` of ``rec``, naming it."""
    raise RestoreError(
        f"record {rec.image_id}/{rec.category} region {k} ({region.object_type}, track "
        f"{region.track_id}) at x={region.x} y={region.y} w={region.w} h={region.h} {reason}"
    )


def restore_image(
    image: np.ndarray, records: list[SensitiveRecord], check: bool = True, overlaps: Sequence[OverlapPixels] = ()
) -> np.ndarray:
    """Paste every region's original pixels back into a copy of ``image`` (masked pixels only from
    the opened ``overlaps``); refuse (``RestoreError``) when the image does not match a record or a
    position is not de-identified in it."""
    if not records:
        raise RestoreError("no records to restore from")
    out = image.copy()
    patches = overlap_pixels(overlaps, (image.shape[1], image.shape[0]))
    crops: list[KnownPixels] = []
    for rec in records:
        if (rec.width, rec.height) != (image.shape[1], image.shape[0]):
            raise RestoreError(
                f"record {rec.image_id}/{rec.category} is for a {rec.width}x{rec.height} image; "
                f"the given image is {image.shape[1]}x{image.shape[0]}"
            )
        try:
            check_record(rec)
        except PixelsError as err:
            raise RestoreError(str(err)) from None
        for k, region in enumerate(rec.regions):
            try:
                crop = decode_crop(region.crop, region.w, region.h)  # its size is checked before it is decoded
            except PixelsError as err:
                _refuse(rec, k, region, str(err))
            if crop.ndim == 2 and image.ndim == 3:
                raise RestoreError(f"record {rec.image_id}/{rec.category} region {k}: grey crop for a colour image")
            filled = fill_masked(region, crop, patches)
            if check:
                result = check_region(image, region, filled.pixels, filled.known)
                if not result.ok:
                    _refuse(rec, k, region, result.reason)
            crops.append(filled)
    for c in crops:  # only after every check passed
        h, w = c.known.shape
        place = out[c.y : c.y + h, c.x : c.x + w]
        place[c.known] = c.pixels.reshape(place.shape)[c.known]
    return out


def open_overlaps(records: Sequence[SensitiveRecord], keys: PrivateKey | Sequence[PrivateKey]) -> list[OverlapPixels]:
    """Open every distinct sealed overlap of ``records`` for which ``keys`` holds every layer's key;
    the others stay sealed (their pixels stay as received)."""
    ring = key_ring(keys)
    seen: set[bytes] = set()
    out = []
    for rec in records:
        for sealed in rec.overlaps:
            if sealed.ciphertext in seen or not can_open_overlap(sealed, ring):
                continue
            seen.add(sealed.ciphertext)
            try:
                out.append(open_overlap(sealed, ring, rec.image_id))
            except (RecordError, ValueError, TypeError) as err:  # a signed overlap may still hold odd values
                raise RestoreError(f"record {rec.image_id}/{rec.category}: {err}") from None
    return out


# ------------------------------------------------------------------------------- input helpers
def sealed_bytes(data: bytes, signers: dict[str, VerifyKey] | None = None) -> bytes:
    """The sealed record inside ``data``: a wire envelope of kind ``sensitive`` (its signature checked
    against ``signers`` when given) or the bare container."""
    return _sealed_envelope(data, signers)[0]


def _sealed_envelope(data: bytes, signers: dict[str, VerifyKey] | None) -> tuple[bytes, str | None]:
    try:
        env = decode(data)
    except WireError:
        return data, None
    if signers is not None:
        try:
            decode(data, signers)
        except EnvelopeAuthError as err:
            raise RestoreError(str(err)) from None
    if env.kind != "sensitive":
        raise RestoreError(f"message {env.id} is a {env.kind!r} message, not a sensitive record")
    return bytes(env.body), env.image_id


def decode_image_bytes(data: bytes, what: str, from_message: bool = False) -> np.ndarray:
    """Decode an image file's bytes (PNG, JPEG, ...) to BGR; a PNG or JPEG that declares more than
    :data:`edged_platform.pixels.MAX_FRAME_PIXELS` pixels is refused before decoding, and an image
    ``from_message`` (an upload package) must be one of the two."""
    try:
        return decode_image(data, what, png_or_jpeg=from_message)
    except PixelsError as err:
        raise RestoreError(str(err)) from None


def image_from_package(body: bytes, what: str) -> tuple[np.ndarray, str | None]:
    """The de-identified image of an ops upload package body (CBOR map with ``image`` bytes), or of
    a body that is an encoded image itself. Returns the image and the package's image id."""
    try:
        m = cbor2.loads(body)
    except Exception:
        m = None
    if isinstance(m, dict):
        if not isinstance(m.get("image"), bytes):
            raise RestoreError(f"{what}: package has no 'image' bytes")
        image_id = m.get("image_id")
        return decode_image_bytes(m["image"], what, from_message=True), image_id if isinstance(image_id, str) else None
    return decode_image_bytes(body, what), None


def video_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decode order) of a video file, BGR."""
    import av

    if index < 0:
        raise RestoreError(f"frame index must be >= 0, got {index}")
    count = 0
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                if count == index:
                    return frame.to_ndarray(format="bgr24")
                count += 1
    except (av.error.FileNotFoundError, FileNotFoundError):
        raise RestoreError(f"video not found: {path}") from None
    except av.error.InvalidDataError:
        raise RestoreError(f"{path} is not a video PyAV can decode") from None
    raise RestoreError(f"video {path} has no frame {index} (it has {count} frames)")


def key_ring(keys: PrivateKey | Sequence[PrivateKey]) -> dict[str, PrivateKey]:
    """Key id -> functional-platform private key, for :func:`open_named`."""
    return {sealing_key_id(k): k for k in ([keys] if isinstance(keys, PrivateKey) else keys)}


def _key_for(header: RecordHeader, ring: Mapping[str, PrivateKey]) -> PrivateKey:
    """The private key in ``ring`` that a verified record is sealed to; refuse when none is."""
    key = ring.get(header.recipient_key_id)
    if key is None:
        ids = ", ".join(sorted(ring)) or "none"
        which = "the given private key has id" if len(ring) == 1 else "the given private keys have ids"
        raise RestoreError(f"record {header.image_id}/{header.category} is sealed to key id "
                           f"{header.recipient_key_id}; {which} {ids}")
    return key


def open_named(
    blobs: list[tuple[str, bytes]], keys: PrivateKey | Sequence[PrivateKey], signers: dict[str, VerifyKey]
) -> list[OpenedRecord]:
    """Verify (envelope and record) and decrypt ``(name, bytes)`` records, each with the key it is
    sealed to; a refusal names the record."""
    ring = key_ring(keys)
    out = []
    for name, data in blobs:
        try:
            sealed, env_image = _sealed_envelope(data, signers)
            header = verify_sealed(sealed, signers)
            record = open_sealed(sealed, _key_for(header, ring), signers)
            out.append(OpenedRecord(name, record, header.signer_key_id, env_image))
        except (RecordError, RestoreError) as err:
            raise RestoreError(f"{name}: {err}") from None
        except (ValueError, TypeError) as err:  # a signed record whose content has values of the wrong kind
            raise RestoreError(f"{name}: malformed record content ({type(err).__name__}: {str(err)[:80]})") from None
    return out


def open_records(
    blobs: list[tuple[str, bytes]], keys: PrivateKey | Sequence[PrivateKey], signers: dict[str, VerifyKey]
) -> list[SensitiveRecord]:
    """Verify and decrypt ``(name, bytes)`` records; a refusal names the record it came from."""
    return [o.record for o in open_named(blobs, keys, signers)]


def check_target(opened: list[OpenedRecord], target: Target) -> None:
    """Refuse (``RestoreError``) any record that does not name the target image and frame."""
    for o in opened:
        r = o.record
        if o.envelope_image_id is not None and o.envelope_image_id != r.image_id:
            raise RestoreError(
                f"{o.name}: its envelope names image {o.envelope_image_id}, the sealed record image {r.image_id}"
            )
        if target.image_id is not None and r.image_id != target.image_id:
            raise RestoreError(
                f"{o.name}: record {r.image_id}/{r.category} (frame {r.frame_index}) is for another image than "
                f"{target.what} (image {target.image_id}, frame {target.frame_index}); refusing to restore it there"
            )
        if target.frame_index is not None and r.frame_index != target.frame_index:
            raise RestoreError(
                f"{o.name}: record {r.image_id}/{r.category} is for frame {r.frame_index}, {target.what} is frame "
                f"{target.frame_index}; refusing to restore it there"
            )
        if target.signer is not None and o.signer != target.signer:
            raise RestoreError(
                f"{o.name}: record {r.image_id}/{r.category} is signed by device key {o.signer}, {target.what} by "
                f"device key {target.signer}; refusing to restore it there"
            )
    first = opened[0].record if opened else None
    for o in opened[1:]:
        if (o.record.image_id, o.record.frame_index) != (first.image_id, first.frame_index):  # type: ignore[union-attr]
            raise RestoreError(
                f"records are for different images or frames ({first.image_id} frame {first.frame_index}, "  # type: ignore[union-attr]
                f"{o.record.image_id} frame {o.record.frame_index}); restore one image at a time"
            )


def image_target(
    path: str | Path, signers: dict[str, VerifyKey], image_id: str | None = None, frame: int | None = None
) -> Target:
    """The target of ``--image``: a signed package envelope, an image with its sidecar, or an image
    the operator names with ``image_id`` and ``frame`` (see the module doc)."""
    what = f"--image {path}"
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise RestoreError(f"{what}: {err.strerror}") from None
    try:
        decode(data)
        is_envelope = True
    except WireError:
        is_envelope = False
    if is_envelope:
        try:
            pkg = package_image(decode(data, signers))
        except (EnvelopeAuthError, PackageError) as err:
            raise RestoreError(f"{what}: {err}") from None
        pixels = decode_image_bytes(pkg.image, what, from_message=True)
        target = Target(pixels, what, pkg.image_id, pkg.frame_index, pkg.signer)
    else:
        image = decode_image_bytes(data, what)
        side = sidecar_path(path)
        if side.exists():
            target = _sidecar_target(image, data, what, side)
        elif image_id is not None and frame is not None:
            return Target(image, what, image_id, frame)
        else:
            raise RestoreError(
                f"{what}: cannot tell which image and frame it shows: no sidecar {side.name} (export the image with "
                "'python -m edged_platform.store export') and no --image-id with --frame naming it"
            )
    if image_id is not None and image_id != target.image_id:
        raise RestoreError(f"{what} is image {target.image_id}, --image-id says {image_id}")
    if frame is not None and frame != target.frame_index:
        raise RestoreError(f"{what} is frame {target.frame_index}, --frame says {frame}")
    return target


def _sidecar_target(image: np.ndarray, data: bytes, what: str, side: Path) -> Target:
    import hashlib
    import json

    try:
        m = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RestoreError(f"{what}: sidecar {side} is not readable JSON ({err})") from None
    ok = (isinstance(m, dict) and isinstance(m.get("image_id"), str) and isinstance(m.get("sha256"), str)
          and isinstance(m.get("frame_index"), int) and not isinstance(m.get("frame_index"), bool))
    if not ok:
        raise RestoreError(f"{what}: sidecar {side} lacks 'image_id', 'frame_index' or 'sha256'")
    if hashlib.sha256(data).hexdigest() != m["sha256"]:
        raise RestoreError(f"{what}: sidecar {side} describes another file (SHA-256 differs); export the image again")
    signer = m.get("signer") if isinstance(m.get("signer"), str) else None
    return Target(image, what, m["image_id"], m["frame_index"], signer)


def ops_target(folder: str | Path, image_id: str, signers: dict[str, VerifyKey]) -> Target:
    """The target of ``--ops-store``: the newest verified upload package of ``image_id``."""
    try:
        store = open_store(folder, signers)
        env = store.get_image(image_id)
        refused = store.rejected_for(image_id, "package") if env is None else []
    except StoreUnavailable as err:
        raise RestoreError(f"--ops-store: {err}") from None
    folder = shown(folder)
    if env is None:
        why = f" ({len(refused)} package(s) for it refused: {refused[-1].error})" if refused else ""
        raise RestoreError(f"--ops-store {folder} has no verified de-identified image {image_id}{why}")
    what = f"ops message {env.id}"
    try:
        pkg = package_image(env)
    except PackageError as err:
        raise RestoreError(f"--ops-store {folder}: {err}") from None
    pixels = decode_image_bytes(pkg.image, what, from_message=True)
    return Target(pixels, what, pkg.image_id, pkg.frame_index, pkg.signer)


# ------------------------------------------------------------------------------------------ CLI
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("edged_platform.restore"),
        description="Restore an original image from a de-identified one and sealed sensitive records.",
    )
    p.add_argument("--key", action="append", required=True, metavar="PATH",
                   help="functional platform private key (.key, mode 0600); repeatable: one per category "
                   "(each record opens with the key it is sealed to)")
    p.add_argument("--signer", "--device-key", dest="signer", action="append", default=[], metavar="PATH",
                   help="trusted device public key (.pub); verifies records and envelopes; repeatable")
    p.add_argument("--record", action="append", default=[], help="sealed record file (bare or wire envelope, e.g. "
                   "from 'python -m edged_platform.store export-records'); repeatable (default with --image: the "
                   "records its sidecar IMAGE.json lists, as 'edged deid --sealed' writes it)")
    p.add_argument("--func-store", action="append", default=[], metavar="STORE",
                   help="functional platform store (folder or postgresql:// URL): take every sensitive record of "
                   "--image-id; repeatable")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="de-identified image file")
    src.add_argument("--ops-store", help="ops store folder or postgresql:// URL: take the de-identified image of "
                     "--image-id")
    src.add_argument("--video", help="de-identified video file: take frame --frame")
    p.add_argument("--image-id", help="image id to fetch from --ops-store / --func-store (with a bare --image: the "
                   "id of the image it shows)")
    p.add_argument("--frame", type=int, help="frame index in --video (default: the record's frame index); with a "
                   "bare --image (no sidecar): the frame index it shows")
    p.add_argument("--out", required=True, help="output image (lossless: .png, .tif, .bmp, .ppm)")
    return p


def _record_files(paths: list[str]) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of each ``--record`` file; a missing or unreadable one is refused by name."""
    blobs = []
    for r in paths:
        try:
            blobs.append((r, Path(r).read_bytes()))
        except OSError as err:
            raise RestoreError(f"--record {r}: {err.strerror}") from None
    return blobs


def _sidecar_records(image: str) -> list[str]:
    """The record files an ``--image``'s sidecar lists (``edged deid --sealed`` writes them), relative to its folder."""
    import json

    side = sidecar_path(image)
    try:
        listed = json.loads(side.read_text(encoding="utf-8")).get("records")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return []  # a missing or unreadable sidecar is reported with the image
    if not isinstance(listed, list) or not all(isinstance(r, str) for r in listed):
        return []
    return [str(side.parent / r) for r in listed]


def _store_records(folder: str, image_id: str | None, signers: dict[str, VerifyKey]) -> list[tuple[str, bytes]]:
    """``(name, bytes)`` of every verified sensitive record of ``image_id`` in a ``--func-store``."""
    if not image_id:
        raise RestoreError("--func-store needs --image-id")
    if missing_folder(folder):
        raise RestoreError(f"--func-store {folder}: store folder not found")
    try:
        store = open_store(folder, signers)
        envs = store.by_image(image_id, kind="sensitive")
        note = refused_note(store, image_id, "sensitive") if not envs else ""
    except StoreUnavailable as err:
        raise RestoreError(f"--func-store: {err}") from None
    folder = shown(folder)
    if not envs:
        raise RestoreError(f"--func-store {folder} has no verified sensitive record for image {image_id}{note}")
    return [(f"{folder} message {e.id}", e.to_bytes()) for e in envs]


def _target(args: argparse.Namespace, signers: dict[str, VerifyKey], first: SensitiveRecord) -> Target:
    """The image to restore into, from ``--image``, ``--ops-store`` or ``--video``."""
    if args.image:
        return image_target(args.image, signers, args.image_id, args.frame)
    if args.ops_store:
        return ops_target(args.ops_store, args.image_id or first.image_id, signers)
    index = args.frame if args.frame is not None else first.frame_index
    return Target(video_frame(args.video, index), f"--video {args.video} frame {index}", None, None)


def run(args: argparse.Namespace) -> tuple[Path, list[SensitiveRecord]]:
    """Do what the command line asks and return the output path and the records restored; raises
    :class:`RestoreError` / ``KeyFileError`` on refusal."""
    out = Path(args.out)
    if out.suffix.lower() not in LOSSLESS_SUFFIXES:
        raise RestoreError(
            f"--out {out}: use a lossless format ({', '.join(LOSSLESS_SUFFIXES)}); JPEG would alter the restored pixels"
        )
    if not args.signer:
        raise RestoreError("--signer: give at least one trusted device public key (.pub) to verify records with")
    keys = [load_platform_private_key(k) for k in args.key]
    signers = trusted_keys(args.signer)
    blobs = _record_files(args.record)
    if not blobs and not args.func_store and args.image:
        blobs = _record_files(_sidecar_records(args.image))
    for folder in args.func_store:
        blobs += _store_records(folder, args.image_id, signers)
    if not blobs:
        raise RestoreError("no record given: use --record or --func-store with --image-id")
    opened = open_named(blobs, keys, signers)
    records = [o.record for o in opened]
    target = _target(args, signers, records[0])
    check_target(opened, target)
    overlaps = open_overlaps(records, keys)  # those whose every key is given
    restored = restore_image(target.image, records, overlaps=overlaps)  # checks every region, then pastes
    write_output(out, restored)
    return out, records


def write_output(out: Path, image: np.ndarray) -> None:
    """Encode ``image`` in ``out``'s format and write it, creating its folder; :class:`RestoreError`
    says why not."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RestoreError(f"--out {out}: cannot create the folder {out.parent}: {os_reason(err)}") from None
    ok, data = cv2.imencode(out.suffix, image)
    if not ok:
        raise RestoreError(f"--out {out}: OpenCV cannot encode a {out.suffix} image")
    try:
        out.write_bytes(data.tobytes())
    except OSError as err:
        raise RestoreError(f"could not write {out}: {os_reason(err)}") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        out, records = run(args)
    except (RestoreError, KeyFileError) as err:
        print(f"restore: {err}", file=sys.stderr)
        return 1
    regions = sum(len(r.regions) for r in records)
    what = ", ".join(sorted({r.category for r in records}))
    print(f"restore: wrote {out} (image {records[0].image_id}, frame {records[0].frame_index}: "
          f"{len(records)} record(s) ({what}), {regions} region(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
