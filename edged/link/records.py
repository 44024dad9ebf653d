"""Sealed sensitive records: their types, errors and CBOR codec (the plaintexts inside the seal).

One record per image and sensitive category: the original crops of its regions and their mapping.
Overlaps of regions of several categories are plaintexts of their own, sealed to every one of those
categories' keys. Sealing, signing and opening are :mod:`edged.link.sealing`; crop pixels (PNG,
masks) are :mod:`edged.link.crops`; building records from frames is the privacy stage's
(:mod:`edged.stages.privacy.records`).

The byte format is specified in ``docs/SEALED_RECORDS.md``; this module and :mod:`edged.link.sealing`
are its reference implementation. Reading is declarative: each CBOR map is converted into a msgspec
struct that spells out the format, and every refusal is a :class:`RecordFormatError` naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar

import cbor2
import msgspec

from edged.core.validation import problem

FORMAT_VERSION = 2
"""Version written: 2 masks other categories' pixels out of each crop and seals overlaps to both keys."""
READABLE_VERSIONS = (1, 2)
"""Versions read: a version-1 record (whole crops, no masks, no overlaps) restores as it always did."""
Rect = tuple[int, int, int, int]
"""``x, y, w, h``: pixels ``[y, y+h) x [x, x+w)``."""
UNTRACKED = -1
"""Track id of a region that comes from a detection the tracker has not confirmed."""


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


# ------------------------------------------------------------------------------------------ types
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


# ------------------------------------------------------------------------------------ CBOR encoding
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


# ---------------------------------------------------------------------- the format as msgspec structs
Offset = Annotated[int, msgspec.Meta(ge=0)]
Extent = Annotated[int, msgspec.Meta(gt=0)]


def _inside(masked: tuple[Rect, ...], w: int, h: int) -> None:
    """Refuse a ``masked`` rectangle that does not lie inside its ``w`` x ``h`` crop."""
    for k, (x, y, mw, mh) in enumerate(masked):
        if x + mw > w or y + mh > h:
            raise ValueError(f"masked rectangle {k} {[x, y, mw, mh]} is not inside the {w}x{h} crop")


class _Versioned(msgspec.Struct):
    """The version field alone, read before the rest so an unknown version is named as such."""

    v: int


class _WireRegion(msgspec.Struct, kw_only=True):
    """One entry of a version-1 record's ``regions``."""

    track: int
    type: str
    x: Offset
    y: Offset
    w: Extent
    h: Extent
    angle: float
    box: tuple[float, float, float, float]
    score: float
    detected: bool
    crop: bytes
    sig: bytes
    sig_shape: tuple[Extent, Extent, Extent]

    def __post_init__(self) -> None:
        if math.prod(self.sig_shape) != len(self.sig):
            raise ValueError(
                f"'sig' has {len(self.sig)} bytes, 'sig_shape' {list(self.sig_shape)} needs {math.prod(self.sig_shape)}"
            )

    def region(self) -> RecordRegion:
        """The region as the record type holds it."""
        return RecordRegion(self.track, self.type, self.x, self.y, self.w, self.h, self.angle, self.box, self.score,
                            self.detected, self.crop, self.sig, self.sig_shape, ())


class _WireRegionV2(_WireRegion, kw_only=True):
    """One entry of a version-2 record's ``regions``: with its masked rectangles."""

    masked: tuple[tuple[Offset, Offset, Extent, Extent], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        _inside(self.masked, self.w, self.h)

    def region(self) -> RecordRegion:
        """The region with its masked rectangles."""
        return replace(super().region(), masked=self.masked)


class _WireSealedOverlap(msgspec.Struct):
    """One entry of a version-2 record's ``overlaps``."""

    cats: tuple[str, ...]
    rk: tuple[str, ...]
    c: bytes

    def __post_init__(self) -> None:
        if len(self.cats) < 2 or len(self.rk) != len(self.cats):
            raise ValueError("'cats' and 'rk' must name two or more categories and one key id each")


class _WireRecord(msgspec.Struct, kw_only=True):
    """A version-1 record's plaintext."""

    v: int
    image: str
    video: str
    frame: int
    t: float
    category: str
    size: tuple[Extent, Extent]
    regions: tuple[_WireRegion, ...]
    device: str = ""
    camera: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def record(self) -> SensitiveRecord:
        """The record as the platforms and the device hold it."""
        return SensitiveRecord(
            image_id=self.image, video_id=self.video, frame_index=self.frame, timestamp=self.t,
            category=self.category, width=self.size[0], height=self.size[1], device=self.device,
            regions=tuple(r.region() for r in self.regions), position=self.camera,
            overlaps=tuple(SealedOverlap(o.cats, o.rk, o.c) for o in self.sealed_overlaps()), format_version=self.v,
        )

    def sealed_overlaps(self) -> tuple[_WireSealedOverlap, ...]:
        """The record's sealed overlaps: none before version 2."""
        return ()


class _WireRecordV2(_WireRecord, kw_only=True):
    """A version-2 record's plaintext: masked regions and sealed overlaps."""

    regions: tuple[_WireRegionV2, ...]
    overlaps: tuple[_WireSealedOverlap, ...]

    def sealed_overlaps(self) -> tuple[_WireSealedOverlap, ...]:
        """The record's sealed overlaps."""
        return self.overlaps


class _WirePatch(msgspec.Struct):
    """One entry of an overlap plaintext's ``patches``."""

    x: Offset
    y: Offset
    w: Extent
    h: Extent
    crop: bytes
    masked: tuple[tuple[Offset, Offset, Extent, Extent], ...]

    def __post_init__(self) -> None:
        _inside(self.masked, self.w, self.h)


class _WireOverlap(msgspec.Struct):
    """A sealed overlap's innermost plaintext."""

    v: int
    image: str
    cats: tuple[str, ...]
    patches: tuple[_WirePatch, ...]


# ------------------------------------------------------------------------------------ CBOR decoding
S = TypeVar("S", bound=msgspec.Struct)


def _format_error(where: str, err: msgspec.ValidationError) -> RecordFormatError:
    """msgspec's message as ``<where>: field <path>: <what is wrong>``."""
    p = problem(err)
    if p.missing is not None:
        return RecordFormatError(f"{where}: field {p.missing}: missing")
    what = f"{p.what} (a map key)" if p.on_key else p.what
    return RecordFormatError(f"{where}: field {p.path or '(top)'}: {what}")


def as_struct(value: object, kind: type[S], where: str) -> S:
    """``value`` as the struct ``kind``; a bytes field takes only a byte string, never base64 text."""
    try:
        return msgspec.convert(value, kind, strict=True, builtin_types=(bytes,))
    except msgspec.ValidationError as err:
        raise _format_error(where, err) from None


def cbor_map(data: bytes, what: str) -> dict[Any, Any]:
    """The CBOR map ``data`` holds; ``what`` names it in the refusal."""
    try:
        m = cbor2.loads(data)
    except Exception as err:  # cbor2 raises several types on garbage
        raise RecordFormatError(f"{what} is not valid CBOR ({err})") from None
    if not isinstance(m, dict):
        raise RecordFormatError(f"{what} is not a CBOR map")
    return m


def readable_versions() -> str:
    """The versions this build reads, for a refusal: ``1 and 2``."""
    return " and ".join(str(v) for v in READABLE_VERSIONS)


def decode_record(data: bytes) -> SensitiveRecord:
    """Parse a record's CBOR plaintext; :class:`RecordFormatError` names the field that is wrong."""
    m = cbor_map(data, "record plaintext")
    v = as_struct(m, _Versioned, "record").v
    if v not in READABLE_VERSIONS:
        raise RecordFormatError(f"record plaintext has format version {v}, this build reads {readable_versions()}")
    return as_struct(m, _WireRecordV2 if v >= 2 else _WireRecord, "record").record()


def decode_overlap(data: bytes) -> OverlapPixels:
    """Parse a sealed overlap's innermost plaintext; :class:`RecordFormatError` names what is wrong."""
    m = cbor_map(data, "overlap plaintext")
    v = as_struct(m, _Versioned, "overlap").v
    if v != FORMAT_VERSION:
        raise RecordFormatError(f"overlap plaintext has format version {v}, this build reads {FORMAT_VERSION}")
    o = as_struct(m, _WireOverlap, "overlap")
    patches = tuple(OverlapPatch(p.x, p.y, p.w, p.h, p.crop, p.masked) for p in o.patches)
    return OverlapPixels(o.image, o.cats, patches)
