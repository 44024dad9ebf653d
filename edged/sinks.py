"""Sinks: what happens to a finished frame on the device (local output, evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from edged.pipeline import FrameWork


class FrameWriter:
    """Writes every n-th finished frame as JPEG: the de-identified image when the privacy stage ran.

    Raw frames are written only when no privacy stage is configured (``allow_raw``); a frame that
    should have been de-identified and was not is refused, never written bare.
    """

    def __init__(self, folder: Path, every: int, quality: int, allow_raw: bool) -> None:
        self.folder = folder
        self.every = every
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.allow_raw = allow_raw
        self.written = 0
        self.refused = 0
        self._seen = 0
        if every:
            folder.mkdir(parents=True, exist_ok=True)

    def consume(self, work: FrameWork) -> None:
        self._seen += 1
        if not self.every or (self._seen - 1) % self.every:
            return
        pixels = work.deidentified
        if pixels is None:
            if not self.allow_raw:
                self.refused += 1
                return
            pixels = work.frame.pixels
        meta = work.frame.meta
        path = self.folder / f"{meta.frame_index:06d}_{meta.image_id}.jpg"
        if not cv2.imwrite(str(path), pixels, self.params):
            raise OSError(f"could not write {path}")
        self.written += 1

    def close(self) -> dict[str, Any]:
        return {"frames_written": {"folder": str(self.folder), "count": self.written, "refused": self.refused}}
