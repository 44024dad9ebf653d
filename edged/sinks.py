"""Sinks: what happens to a finished frame on the device (local output, evaluation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from edged.outbox import Outbox
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


class OutboxSink:
    """Stores every outgoing envelope of a frame in the persistent outbox, then wakes the uplinks.

    The sink owns the outbox and closes it in :meth:`close`.

    Storage comes before sending, always: an uplink only ever sends what this sink stored. A message
    the outbox cannot store (a full disk beyond its reserve) is counted and logged by the outbox,
    never raised: capture goes on.
    """

    def __init__(self, outbox: Outbox, wake: Callable[[], None] = lambda: None) -> None:
        self.outbox = outbox
        self.wake = wake
        self.stored = 0
        self.failed = 0
        self.by_kind: dict[str, int] = {}

    def consume(self, work: FrameWork) -> None:
        if not work.outgoing:
            return
        results = self.outbox.enqueue_many(work.outgoing)
        for env, result in zip(work.outgoing, results, strict=True):
            if result:
                self.stored += 1
                self.by_kind[env.kind] = self.by_kind.get(env.kind, 0) + 1
            else:
                self.failed += 1
        self.wake()

    def close(self) -> dict[str, Any]:
        """Final figures, then close the outbox (sinks close after the uplinks have finished)."""
        figures = {"stored": self.stored, "failed": self.failed, "by_kind": dict(self.by_kind), **self.outbox.stats()}
        self.outbox.close()
        return {"outbox": figures}
