"""Decoding images from signed messages with their declared sizes checked first.

A crop in a sealed record or an image in an upload package is signed by a device key, which does
not make it harmless: a small PNG can declare 16000 x 16000 pixels. Every size is read from the
file's header and checked before anything is decoded:

- a crop must declare exactly the size its record gives it (``w`` x ``h`` of its region, which
  itself lies inside the record's frame), 8 bits per sample, grey or colour without alpha (what
  the device writes); anything else is refused with a :class:`PixelsError` naming what is wrong;
- a record's frame and a package image may have at most :data:`MAX_FRAME_PIXELS` pixels.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from edged.link.records import SensitiveRecord

MAX_FRAME_PIXELS = 7680 * 4320
"""Most pixels a frame (a record's image, a package image) may have: 8K UHD, 100 MB as BGR."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOURS = {0: "grey", 2: "colour", 3: "palette", 4: "grey with alpha", 6: "colour with alpha"}
_CHANNELS = {0: 1, 2: 3}
"""PNG colour types a crop may have and their channel count."""
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class PixelsError(ValueError):
    """An image or crop was refused before decoding, or did not decode; the message says why."""


@dataclass(frozen=True, slots=True)
class PngHeader:
    """What a PNG's IHDR chunk declares."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


def png_header(data: bytes) -> PngHeader:
    """The declared size and pixel format of a PNG, read from its header only."""
    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise PixelsError("not a PNG (no PNG signature and IHDR header)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return PngHeader(width, height, depth, colour)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """The declared width and height of a JPEG, read from its start-of-frame marker."""
    if not data.startswith(b"\xff\xd8"):
        raise PixelsError("not a JPEG (no start-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise PixelsError("not a JPEG (a marker is missing)")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    raise PixelsError("not a JPEG (no start-of-frame marker before the data ends)")


def declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height a PNG or JPEG declares, or ``None`` for another format."""
    if data.startswith(PNG_SIGNATURE):
        header = png_header(data)
        return header.width, header.height
    if data.startswith(b"\xff\xd8"):
        return jpeg_size(data)
    return None


def check_frame_size(width: int, height: int, what: str) -> None:
    """Refuse a frame of more than :data:`MAX_FRAME_PIXELS` pixels."""
    if width * height > MAX_FRAME_PIXELS:
        raise PixelsError(f"{what} is {width}x{height}, more than the {MAX_FRAME_PIXELS} pixels allowed")


def decode_crop(data: bytes, w: int, h: int) -> np.ndarray:
    """A crop PNG's pixels, ``(h, w)`` grey or ``(h, w, 3)`` BGR, refused unless its header declares
    exactly ``w`` x ``h`` pixels of 8-bit grey or colour."""
    header = png_header(data)
    if (header.width, header.height) != (w, h):
        raise PixelsError(f"crop PNG is {header.width}x{header.height}, its position says {w}x{h}")
    if header.colour_type not in _CHANNELS:
        kind = _PNG_COLOURS.get(header.colour_type, f"colour type {header.colour_type}")
        raise PixelsError(f"crop PNG is {kind}; a crop is 8-bit grey or colour without alpha")
    if header.bit_depth != 8:
        raise PixelsError(f"crop PNG has {header.bit_depth} bits per sample; a crop has 8")
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    expected = (h, w) if _CHANNELS[header.colour_type] == 1 else (h, w, 3)
    if pixels is None or pixels.shape != expected or pixels.dtype != np.uint8:
        raise PixelsError("crop PNG does not decode to the pixels its header declares")
    return pixels


def check_record(record: SensitiveRecord) -> None:
    """Refuse a record whose frame is too large, or with a region outside its frame or with values
    the tools cannot compute with (a signature shape that does not fit, a box that is not finite)."""
    what = f"record {record.image_id}/{record.category}"
    check_frame_size(record.width, record.height, f"{what}: its frame")
    for k, g in enumerate(record.regions):
        where = f"{what} region {k} at x={g.x} y={g.y} w={g.w} h={g.h}"
        if g.x + g.w > record.width or g.y + g.h > record.height:
            raise PixelsError(f"{where} lies outside its {record.width}x{record.height} frame")
        rows, cols, chans = g.deid_sig_shape
        if not (1 <= rows <= g.h and 1 <= cols <= g.w and chans in (1, 3)):
            raise PixelsError(f"{where}: its de-identification signature shape {g.deid_sig_shape} does not fit it")
        if not all(math.isfinite(v) for v in (*g.box, g.score, g.angle)):
            raise PixelsError(f"{where}: its box, score or angle is not a finite number")


def decode_image(data: bytes, what: str, png_or_jpeg: bool = False) -> np.ndarray:
    """Decode an image file's bytes to BGR after checking the size a PNG or JPEG declares; with
    ``png_or_jpeg`` (an image from a message) any other format is refused."""
    size = declared_size(data)
    if size is None and png_or_jpeg:
        raise PixelsError(f"{what}: the image is neither PNG nor JPEG")
    if size is not None:
        check_frame_size(*size, what)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PixelsError(f"{what} is not an image OpenCV can decode")
    return image
