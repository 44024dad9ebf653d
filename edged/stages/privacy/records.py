"""Sensitive records: original crops and their mapping, CBOR-encoded, sealed and signed.

One record per image and sensitive category. Everything is built in memory: crops are PNG-encoded
into ``bytes``, the record is CBOR-encoded, sealed with NaCl ``SealedBox`` to the category's
functional-platform public key, and the clear header plus ciphertext are signed with the device's
Ed25519 key. Only the sealed container ever leaves this module; no plaintext is written anywhere.

Where regions of two categories overlap (a face behind a windscreen next to its plate), each
category's crop holds the de-identified pixels, not the original ones, where it lies in a region of
another category, and lists those rectangles as ``masked``; the overlap's
original pixels travel in nested sealed boxes (one layer per category, :func:`seal_overlap`), so
only someone holding every one of those categories' keys can open them.

The byte format is specified in ``docs/SEALED_RECORDS.md``; this module is its reference
implementation. :func:`open_sealed` is the functional platform's side: it checks, in order, the
container, the format version, that the signer is trusted, the signature, that the record is sealed
to the given key, decrypts, and checks the sealed content agrees with the clear header, raising a
:class:`RecordError` subclass that says which check failed.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import combinations, product
from typing import Any

import cbor2
import cv2
import numpy as np
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from edged.core.classes import CLASS_NAMES
from edged.core.keys import sealing_key_id, signing_key_id
from edged.core.types import FrameMeta
from edged.stages.privacy.deid import DeidResult, SensitiveRegions

FORMAT_VERSION = 2
"""Version written: 2 masks other categories' pixels out of each crop and seals overlaps to both keys."""
READABLE_VERSIONS = (1, 2)
"""Versions read: a version-1 record (whole crops, no masks, no overlaps) restores as it always did."""
Rect = tuple[int, int, int, int]
"""``x, y, w, h``: pixels ``[y, y+h) x [x, x+w)``."""
SIGNATURE_DOMAIN = b"edged sealed record v1\x00"
"""Prefix of every signed message, so a record signature can never be replayed as another kind."""
SIG_CELLS = 8
"""The de-identification signature of a region is its de-identified content shrunk to at most
8 x 8 cells (robust to JPEG re-encoding, meaningless without the image)."""


class RecordError(ValueError):
    """A sealed record was refused; subclasses say which check failed."""


class RecordFormatError(RecordError):
    """Not a sealed record of a known format version, or its parts are malformed."""


class UnknownKeyError(RecordError):
    """The record's signer key id is not among the trusted device keys."""


class SignatureError(RecordError):
    """The signature does not verify: header or ciphertext altered, or signature damaged."""


class WrongKeyError(RecordError):
    """The record is sealed to another recipient key than the one given."""


class DecryptError(RecordError):
    """The ciphertext does not open with the recipient key (damaged or not sealed to it)."""


@dataclass(frozen=True, slots=True)
class RecordRegion:
    """One sensitive object of a record: where its crop goes and the crop itself."""

    track_id: int
    object_type: str
    x: int
    y: int
    w: int
    h: int
    """The de-identified rectangle of the image (pixels ``[y, y+h) x [x, x+w)``): the crop's place."""
    angle: float
    """Orientation of the object (radians, 0 axis-aligned)."""
    box: tuple[float, float, float, float]
    """The object's own box ``x1, y1, x2, y2`` (before the margin), as detected or predicted."""
    score: float
    detected: bool
    crop: bytes
    """PNG of the original pixels of the rectangle (lossless)."""
    deid_sig: bytes
    """The de-identified rectangle shrunk to ``deid_sig_shape`` (uint8, row-major, BGR)."""
    deid_sig_shape: tuple[int, int, int]
    masked: tuple[Rect, ...] = ()
    """Rectangles (crop coordinates) of pixels that lie in a region of another category: ``crop``
    holds the de-identified pixels there; their originals are only in the record's sealed overlaps."""


@dataclass(frozen=True, slots=True)
class OverlapPatch:
    """Original pixels of one rectangle where regions of several categories overlap."""

    x: int
    y: int
    w: int
    h: int
    """Image pixels ``[y, y+h) x [x, x+w)``."""
    crop: bytes
    """PNG of the original pixels of the rectangle (de-identified ones where ``masked``)."""
    masked: tuple[Rect, ...] = ()
    """Rectangles (patch coordinates) that also lie in a region of a category not in the overlap."""


@dataclass(frozen=True, slots=True)
class OverlapPixels:
    """The plaintext of a sealed overlap: the original pixels covered by every listed category."""

    image_id: str
    categories: tuple[str, ...]
    patches: tuple[OverlapPatch, ...]


@dataclass(frozen=True, slots=True)
class SealedOverlap:
    """Overlap pixels in nested sealed boxes, outermost layer first: opens only with every key."""

    categories: tuple[str, ...]
    recipient_key_ids: tuple[str, ...]
    """Key id of each layer's recipient, in the order the layers are opened."""
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class SensitiveRecord:
    """The plaintext of a sealed record: one image, one category, one or more regions."""

    image_id: str
    video_id: str
    frame_index: int
    timestamp: float
    category: str
    width: int
    height: int
    device: str
    regions: tuple[RecordRegion, ...]
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Camera latitude, longitude, altitude."""
    overlaps: tuple[SealedOverlap, ...] = ()
    """The sealed overlaps of this category with others (each also in the other categories' records)."""
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True, slots=True)
class RecordHeader:
    """The clear header of a sealed record (readable without any key, covered by the signature)."""

    format_version: int
    recipient_key_id: str
    signer_key_id: str
    category: str
    image_id: str
    video_id: str


# --------------------------------------------------------------------------------------- building
def deid_signature(deidentified: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """The de-identified content of ``rect`` shrunk to at most 8 x 8 cells (uint8 ``(r, c, C)``)."""
    x1, y1, x2, y2 = rect
    patch = deidentified[y1:y2, x1:x2]
    rows, cols = min(SIG_CELLS, y2 - y1), min(SIG_CELLS, x2 - x1)
    small = cv2.resize(patch.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8).reshape(rows, cols, -1)


PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
"""Fastest deflate level, Huffman coding only: camera crops (sensor noise) leave few repeated
strings to find. In a one-off check on fake-scene crops it was 18 % smaller than the default
strategy, as fast on 60 px crops and 1.3-1.6x faster on 120-190 px ones. Any PNG decoder reads it."""


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG of a BGR (or grey) uint8 array, in memory."""
    ok, buf = cv2.imencode(".png", pixels, PNG_PARAMS)
    if not ok:
        raise RecordFormatError(f"could not PNG-encode a crop of shape {pixels.shape}")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """Decode a crop PNG to a BGR (or grey) uint8 array."""
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise RecordFormatError("a crop is not a valid PNG")
    return arr


def intersect(a: Rect, b: Rect) -> Rect | None:
    """The rectangle both ``a`` and ``b`` cover, or ``None`` when they do not overlap."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x1, y1, x2 - x1, y2 - y1) if x2 > x1 and y2 > y1 else None


def masked_pixels(w: int, h: int, masked: Iterable[Rect]) -> np.ndarray:
    """``bool (h, w)``: True where a crop of that size has a masked pixel."""
    out = np.zeros((h, w), dtype=bool)
    for x, y, mw, mh in masked:
        out[y : y + mh, x : x + mw] = True
    return out


def masked_crop(original: np.ndarray, deidentified: np.ndarray, rect: Rect, masked: tuple[Rect, ...]) -> np.ndarray:
    """The original pixels of ``rect``, its ``masked`` rectangles (crop coordinates) replaced by the
    de-identified image's pixels there (what every receiver of that image sees anyway)."""
    x, y, w, h = rect
    crop = np.array(original[y : y + h, x : x + w], copy=True)
    hide = masked_pixels(w, h, masked)
    crop[hide] = deidentified[y : y + h, x : x + w][hide]
    return crop


def region_rects(result: DeidResult, regions: SensitiveRegions) -> list[tuple[int, str, Rect]]:
    """``(index, category, rect)`` of every region whose de-identified rectangle is not empty."""
    out = []
    for i in range(len(regions)):
        x1, y1, x2, y2 = (int(v) for v in result.rects[i])
        if x2 > x1 and y2 > y1:
            out.append((i, CLASS_NAMES[int(regions.class_ids[i])], (x1, y1, x2 - x1, y2 - y1)))
    return out


def masks_within(rect: Rect, others: Iterable[Rect]) -> tuple[Rect, ...]:
    """The parts of ``others`` that lie in ``rect``, in ``rect``'s coordinates."""
    out = []
    for other in others:
        part = intersect(rect, other)
        if part is not None:
            out.append((part[0] - rect[0], part[1] - rect[1], part[2], part[3]))
    return tuple(out)


def build_records(
    meta: FrameMeta,
    original: np.ndarray,
    result: DeidResult,
    regions: SensitiveRegions,
    categories: list[str] | tuple[str, ...] | frozenset[str],
    device: str = "",
) -> dict[str, SensitiveRecord]:
    """One record per listed category present in the frame: per region, the original pixels of the
    rectangle ``result`` replaced, less those inside a region of another category, and its mapping."""
    rects = region_rects(result, regions)
    by_category: dict[str, list[RecordRegion]] = {}
    for i, name, rect in rects:
        if name not in categories:
            continue
        masked = masks_within(rect, (r for _, c, r in rects if c != name))
        x, y, w, h = rect
        sig = deid_signature(result.image, (x, y, x + w, y + h))
        by_category.setdefault(name, []).append(
            RecordRegion(
                track_id=int(regions.track_ids[i]),
                object_type=name,
                x=x, y=y, w=w, h=h,
                angle=float(regions.angles[i]),
                box=tuple(float(v) for v in regions.boxes[i]),  # type: ignore[arg-type]
                score=float(regions.scores[i]),
                detected=bool(regions.detected[i]),
                crop=encode_png(masked_crop(original, result.image, rect, masked)),
                deid_sig=sig.tobytes(),
                deid_sig_shape=(int(sig.shape[0]), int(sig.shape[1]), int(sig.shape[2])),
                masked=masked,
            )
        )
    pos = meta.position
    return {
        cat: SensitiveRecord(
            image_id=meta.image_id,
            video_id=meta.video_id,
            frame_index=int(meta.frame_index),
            timestamp=float(meta.timestamp),
            category=cat,
            width=int(original.shape[1]),
            height=int(original.shape[0]),
            device=device,
            regions=tuple(rs),
            position=(float(pos.lat), float(pos.lon), float(pos.alt)),
        )
        for cat, rs in by_category.items()
    }


def overlap_patches(
    original: np.ndarray, deidentified: np.ndarray, rects: list[tuple[int, str, Rect]], categories: tuple[str, ...]
) -> tuple[OverlapPatch, ...]:
    """One patch per choice of one region of each of ``categories`` whose rectangles all overlap:
    the original pixels there, less those that also lie in a region of any other category."""
    by_cat = [[r for _, c, r in rects if c == cat] for cat in categories]
    others = [r for _, c, r in rects if c not in categories]
    patches = []
    for pick in product(*by_cat):
        area: Rect | None = pick[0]
        for r in pick[1:]:
            area = intersect(area, r) if area is not None else None
        if area is None:
            continue
        masked = masks_within(area, others)
        if masked_pixels(area[2], area[3], masked).all():
            continue
        crop = encode_png(masked_crop(original, deidentified, area, masked))
        patches.append(OverlapPatch(area[0], area[1], area[2], area[3], crop, masked))
    return tuple(patches)


def build_overlaps(
    meta: FrameMeta,
    original: np.ndarray,
    result: DeidResult,
    regions: SensitiveRegions,
    categories: list[str] | tuple[str, ...] | frozenset[str],
) -> list[OverlapPixels]:
    """Per set of two or more listed categories whose regions overlap, the original pixels covered
    by exactly those categories (pixels also in a region of an unlisted category go nowhere)."""
    rects = region_rects(result, regions)
    present = sorted({c for _, c, _ in rects if c in categories})
    out = []
    for size in range(2, len(present) + 1):
        for cats in combinations(present, size):
            patches = overlap_patches(original, result.image, rects, cats)
            if patches:
                out.append(OverlapPixels(meta.image_id, cats, patches))
    return out


def seal_overlap(overlap: OverlapPixels, recipients: Mapping[str, PublicKey]) -> SealedOverlap:
    """Seal ``overlap`` in nested sealed boxes, innermost to its last category's key, outermost to its first."""
    data = encode_overlap(overlap)
    for category in reversed(overlap.categories):
        data = bytes(SealedBox(recipients[category]).encrypt(data))
    key_ids = tuple(sealing_key_id(recipients[c]) for c in overlap.categories)
    return SealedOverlap(overlap.categories, key_ids, data)


def attach_overlaps(
    records: dict[str, SensitiveRecord], overlaps: Iterable[SealedOverlap]
) -> dict[str, SensitiveRecord]:
    """The records with every sealed overlap added to the record of each of its categories."""
    sealed = tuple(overlaps)
    return {
        cat: replace(rec, overlaps=tuple(o for o in sealed if cat in o.categories))
        for cat, rec in records.items()
    }


# ------------------------------------------------------------------------------------ CBOR codec
def _rects(rects: tuple[Rect, ...]) -> list[list[int]]:
    return [list(r) for r in rects]


def encode_record(record: SensitiveRecord) -> bytes:
    """CBOR plaintext of a record (see ``docs/SEALED_RECORDS.md``), in its ``format_version``."""
    v = record.format_version
    if v not in READABLE_VERSIONS:
        raise RecordFormatError(f"cannot write record format version {v}")
    if v == 1 and (record.overlaps or any(r.masked for r in record.regions)):
        raise RecordFormatError("a version-1 record has no masked pixels and no overlaps")
    m: dict[str, Any] = {
        "v": v,
        "image": record.image_id,
        "video": record.video_id,
        "frame": record.frame_index,
        "t": record.timestamp,
        "category": record.category,
        "size": [record.width, record.height],
        "device": record.device,
        "camera": list(record.position),
        "regions": [
            {
                "track": r.track_id,
                "type": r.object_type,
                "x": r.x, "y": r.y, "w": r.w, "h": r.h,
                "angle": r.angle,
                "box": list(r.box),
                "score": r.score,
                "detected": r.detected,
                "crop": r.crop,
                "sig": r.deid_sig,
                "sig_shape": list(r.deid_sig_shape),
                **({"masked": _rects(r.masked)} if v >= 2 else {}),
            }
            for r in record.regions
        ],
    }
    if v >= 2:
        m["overlaps"] = [
            {"cats": list(o.categories), "rk": list(o.recipient_key_ids), "c": o.ciphertext} for o in record.overlaps
        ]
    return cbor2.dumps(m)


def encode_overlap(overlap: OverlapPixels) -> bytes:
    """CBOR plaintext of a sealed overlap (the innermost layer's content)."""
    return cbor2.dumps(
        {
            "v": FORMAT_VERSION,
            "image": overlap.image_id,
            "cats": list(overlap.categories),
            "patches": [
                {"x": p.x, "y": p.y, "w": p.w, "h": p.h, "crop": p.crop, "masked": _rects(p.masked)}
                for p in overlap.patches
            ],
        }
    )


def _field(m: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in m:
        raise RecordFormatError(f"{where}: field {key!r} missing")
    v = m[key]
    if isinstance(v, bool) and typ is not bool:
        raise RecordFormatError(f"{where}: field {key!r} has wrong type bool")
    if not isinstance(v, typ):
        raise RecordFormatError(f"{where}: field {key!r} has wrong type {type(v).__name__}")
    return v


def _is_number(v: object) -> bool:
    """An int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def decode_record(data: bytes) -> SensitiveRecord:
    """Parse a record's CBOR plaintext; :class:`RecordFormatError` names the field that is wrong."""
    try:
        m = cbor2.loads(data)
    except Exception as err:  # cbor2 raises several types on garbage
        raise RecordFormatError(f"record plaintext is not valid CBOR ({err})") from None
    if not isinstance(m, dict):
        raise RecordFormatError("record plaintext is not a CBOR map")
    v = _field(m, "v", int, "record")
    if v not in READABLE_VERSIONS:
        raise RecordFormatError(f"record plaintext has format version {v}, this build reads {_versions()}")
    size = _field(m, "size", list, "record")
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise RecordFormatError(f"record: field 'size' must be [width, height], got {size!r}")
    regions = []
    for k, r in enumerate(_field(m, "regions", list, "record")):
        where = f"record region {k}"
        if not isinstance(r, dict):
            raise RecordFormatError(f"{where}: not a map")
        box = _field(r, "box", list, where)
        shape = _field(r, "sig_shape", list, where)
        if len(box) != 4 or not all(_is_number(b) for b in box):
            raise RecordFormatError(f"{where}: 'box' needs 4 numbers")
        if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise RecordFormatError(f"{where}: 'sig_shape' needs 3 positive integers")
        x, y, w, h = (_field(r, n, int, where) for n in ("x", "y", "w", "h"))
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise RecordFormatError(f"{where}: position x={x} y={y} w={w} h={h} is not a valid rectangle")
        sig = _field(r, "sig", bytes, where)
        if math.prod(shape) != len(sig):
            raise RecordFormatError(f"{where}: 'sig' has {len(sig)} bytes, 'sig_shape' {shape} needs {math.prod(shape)}")
        regions.append(
            RecordRegion(
                track_id=_field(r, "track", int, where),
                object_type=_field(r, "type", str, where),
                x=x, y=y, w=w, h=h,
                angle=float(_field(r, "angle", (int, float), where)),
                box=tuple(float(b) for b in box),  # type: ignore[arg-type]
                score=float(_field(r, "score", (int, float), where)),
                detected=bool(_field(r, "detected", bool, where)),
                crop=_field(r, "crop", bytes, where),
                deid_sig=sig,
                deid_sig_shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
                masked=_masks(r, w, h, where) if v >= 2 else (),
            )
        )
    overlaps = tuple(_sealed_overlap(o, k) for k, o in enumerate(_field(m, "overlaps", list, "record"))) if v >= 2 else ()
    camera = m.get("camera", [0.0, 0.0, 0.0])
    if not isinstance(camera, list) or len(camera) != 3 or not all(_is_number(c) for c in camera):
        raise RecordFormatError("record: field 'camera' must be 3 numbers")
    device = m.get("device", "")
    if not isinstance(device, str):
        raise RecordFormatError("record: field 'device' must be text")
    return SensitiveRecord(
        image_id=_field(m, "image", str, "record"),
        video_id=_field(m, "video", str, "record"),
        frame_index=_field(m, "frame", int, "record"),
        timestamp=float(_field(m, "t", (int, float), "record")),
        category=_field(m, "category", str, "record"),
        width=size[0],
        height=size[1],
        device=device,
        regions=tuple(regions),
        position=tuple(float(c) for c in camera),  # type: ignore[arg-type]
        overlaps=overlaps,
        format_version=v,
    )


def _versions() -> str:
    return " and ".join(str(v) for v in READABLE_VERSIONS)


def _masks(m: dict[str, Any], w: int, h: int, where: str) -> tuple[Rect, ...]:
    """The ``masked`` rectangles of a region or patch, each checked to lie inside its ``w`` x ``h`` crop."""
    out = []
    for k, r in enumerate(_field(m, "masked", list, where)):
        if not (isinstance(r, list) and len(r) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)):
            raise RecordFormatError(f"{where}: masked rectangle {k} is not [x, y, w, h]")
        x, y, mw, mh = r
        if x < 0 or y < 0 or mw <= 0 or mh <= 0 or x + mw > w or y + mh > h:
            raise RecordFormatError(f"{where}: masked rectangle {k} {r} is not inside the {w}x{h} crop")
        out.append((x, y, mw, mh))
    return tuple(out)


def _sealed_overlap(m: Any, k: int) -> SealedOverlap:
    """One entry of a record's ``overlaps``: categories, layer key ids (same count) and ciphertext."""
    where = f"record overlap {k}"
    if not isinstance(m, dict):
        raise RecordFormatError(f"{where}: not a map")
    cats, rk = _field(m, "cats", list, where), _field(m, "rk", list, where)
    if len(cats) < 2 or len(rk) != len(cats) or not all(isinstance(v, str) for v in cats + rk):
        raise RecordFormatError(f"{where}: 'cats' and 'rk' must name two or more categories and one key id each")
    return SealedOverlap(tuple(cats), tuple(rk), _field(m, "c", bytes, where))


def decode_overlap(data: bytes) -> OverlapPixels:
    """Parse a sealed overlap's innermost plaintext; :class:`RecordFormatError` names what is wrong."""
    try:
        m = cbor2.loads(data)
    except Exception as err:
        raise RecordFormatError(f"overlap plaintext is not valid CBOR ({err})") from None
    if not isinstance(m, dict):
        raise RecordFormatError("overlap plaintext is not a CBOR map")
    v = _field(m, "v", int, "overlap")
    if v != FORMAT_VERSION:
        raise RecordFormatError(f"overlap plaintext has format version {v}, this build reads {FORMAT_VERSION}")
    patches = []
    for k, r in enumerate(_field(m, "patches", list, "overlap")):
        where = f"overlap patch {k}"
        if not isinstance(r, dict):
            raise RecordFormatError(f"{where}: not a map")
        x, y, w, h = (_field(r, n, int, where) for n in ("x", "y", "w", "h"))
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise RecordFormatError(f"{where}: position x={x} y={y} w={w} h={h} is not a valid rectangle")
        patches.append(OverlapPatch(x, y, w, h, _field(r, "crop", bytes, where), _masks(r, w, h, where)))
    cats = _field(m, "cats", list, "overlap")
    return OverlapPixels(_field(m, "image", str, "overlap"), tuple(str(c) for c in cats), tuple(patches))


# ------------------------------------------------------------------------------------ sealing
def _signed_message(header: bytes, ciphertext: bytes) -> bytes:
    return SIGNATURE_DOMAIN + struct.pack(">I", len(header)) + header + ciphertext


def seal(record: SensitiveRecord, recipient: PublicKey, signer: SigningKey) -> bytes:
    """Seal ``record`` to ``recipient`` and sign it: the container bytes that travel and are stored."""
    header = cbor2.dumps(
        {
            "fmt": record.format_version,
            "rk": sealing_key_id(recipient),
            "sk": signing_key_id(signer),
            "cat": record.category,
            "image": record.image_id,
            "video": record.video_id,
        }
    )
    ciphertext = SealedBox(recipient).encrypt(encode_record(record))
    signature = signer.sign(_signed_message(header, bytes(ciphertext))).signature
    return cbor2.dumps({"h": header, "c": bytes(ciphertext), "s": bytes(signature)})


def _split(sealed: bytes) -> tuple[bytes, bytes, bytes, RecordHeader]:
    try:
        m = cbor2.loads(sealed)
    except Exception as err:
        raise RecordFormatError(f"not a sealed record: not valid CBOR ({err})") from None
    if not isinstance(m, dict) or not all(isinstance(m.get(k), bytes) for k in ("h", "c", "s")):
        raise RecordFormatError("not a sealed record: expected a CBOR map with byte strings 'h', 'c' and 's'")
    try:
        h = cbor2.loads(m["h"])
    except Exception as err:
        raise RecordFormatError(f"sealed record header is not valid CBOR ({err})") from None
    if not isinstance(h, dict):
        raise RecordFormatError("sealed record header is not a CBOR map")
    fmt = _field(h, "fmt", int, "sealed record header")
    if fmt not in READABLE_VERSIONS:
        raise RecordFormatError(f"sealed record has format version {fmt}; this build reads versions {_versions()}")
    header = RecordHeader(
        format_version=fmt,
        recipient_key_id=_field(h, "rk", str, "sealed record header"),
        signer_key_id=_field(h, "sk", str, "sealed record header"),
        category=_field(h, "cat", str, "sealed record header"),
        image_id=_field(h, "image", str, "sealed record header"),
        video_id=_field(h, "video", str, "sealed record header"),
    )
    return m["h"], m["c"], m["s"], header


def read_header(sealed: bytes) -> RecordHeader:
    """The clear header of a sealed record (nothing verified yet)."""
    return _split(sealed)[3]


def trusted_signers(keys: list[VerifyKey] | tuple[VerifyKey, ...]) -> dict[str, VerifyKey]:
    """Key id -> device verify key, for :func:`open_sealed`."""
    return {signing_key_id(k): k for k in keys}


def verify_sealed(sealed: bytes, signers: dict[str, VerifyKey]) -> RecordHeader:
    """Check format, trusted signer and signature; returns the (now authentic) header."""
    header_bytes, ciphertext, signature, header = _split(sealed)
    verify = signers.get(header.signer_key_id)
    if verify is None:
        known = ", ".join(sorted(signers)) or "none"
        raise UnknownKeyError(
            f"record {header.image_id}/{header.category} is signed by unknown device key id "
            f"{header.signer_key_id} (trusted: {known})"
        )
    try:
        verify.verify(_signed_message(header_bytes, ciphertext), signature)
    except BadSignatureError:
        raise SignatureError(
            f"record {header.image_id}/{header.category}: signature does not verify with device key "
            f"{header.signer_key_id}: header or ciphertext was altered after signing, or the signature is damaged"
        ) from None
    return header


def open_sealed(sealed: bytes, private: PrivateKey, signers: dict[str, VerifyKey]) -> SensitiveRecord:
    """Verify and decrypt a sealed record (the functional platform's side); see the module doc."""
    header = verify_sealed(sealed, signers)
    _, ciphertext, _, _ = _split(sealed)
    own = sealing_key_id(private)
    if header.recipient_key_id != own:
        raise WrongKeyError(
            f"record {header.image_id}/{header.category} is sealed to key id {header.recipient_key_id}; "
            f"the given private key has id {own}"
        )
    try:
        plaintext = SealedBox(private).decrypt(ciphertext)
    except CryptoError:
        raise DecryptError(
            f"record {header.image_id}/{header.category}: ciphertext does not open with key {own} "
            "(damaged, or sealed to another key)"
        ) from None
    record = decode_record(plaintext)
    if (record.image_id, record.video_id, record.category) != (header.image_id, header.video_id, header.category):
        raise RecordFormatError(
            f"record {header.image_id}/{header.category}: sealed content (image {record.image_id}, video "
            f"{record.video_id}, category {record.category}) disagrees with the clear header"
        )
    if record.format_version != header.format_version:
        raise RecordFormatError(
            f"record {header.image_id}/{header.category}: sealed content has format version "
            f"{record.format_version}, the clear header {header.format_version}"
        )
    for o in record.overlaps:
        if record.category not in o.categories or o.recipient_key_ids[o.categories.index(record.category)] != own:
            raise RecordFormatError(
                f"record {header.image_id}/{header.category}: carries an overlap ({'+'.join(o.categories)}) "
                "not sealed to this record's category and key"
            )
    return record


def can_open_overlap(sealed: SealedOverlap, keys: Mapping[str, PrivateKey]) -> bool:
    """Whether ``keys`` (key id -> private key) holds the key of every layer of ``sealed``."""
    return all(k in keys for k in sealed.recipient_key_ids)


def open_overlap(sealed: SealedOverlap, keys: Mapping[str, PrivateKey], image_id: str) -> OverlapPixels:
    """Peel every layer of a sealed overlap with its key from ``keys`` (key id -> private key) and
    check it is ``image_id``'s overlap of the categories it claims."""
    what = f"overlap {'+'.join(sealed.categories)} of image {image_id}"
    missing = [k for k in sealed.recipient_key_ids if k not in keys]
    if missing:
        raise WrongKeyError(f"{what} needs the keys {', '.join(sealed.recipient_key_ids)}; missing {', '.join(missing)}")
    data = sealed.ciphertext
    for key_id in sealed.recipient_key_ids:
        try:
            data = SealedBox(keys[key_id]).decrypt(data)
        except CryptoError:
            raise DecryptError(f"{what}: a layer does not open with key {key_id} (damaged, or sealed to another key)") from None
    overlap = decode_overlap(data)
    if (overlap.image_id, overlap.categories) != (image_id, sealed.categories):
        raise RecordFormatError(
            f"{what}: sealed content (image {overlap.image_id}, categories {'+'.join(overlap.categories)}) "
            "disagrees with the record that carries it"
        )
    return overlap
