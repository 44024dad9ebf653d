"""Sinks: what happens to a finished frame on the device (local output, evaluation)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from edged.core.lograte import BoundedLog
from edged.core.paths import open_private, private_dir
from edged.link.outbox import Outbox
from edged.runtime.summary import FramesWritten
from edged.stages.pipeline import FrameWork

log = logging.getLogger("edged.runtime.sinks")


class FrameWriter:
    """Writes every n-th finished frame as a private JPEG (0600, in a 0700 folder; a name already taken
    is not overwritten): the de-identified image when the privacy stage ran.

    Raw frames are written only when no privacy stage is configured (``allow_raw``); a frame that
    should have been de-identified and was not is refused, never written bare. A write that fails
    (a full disk, a folder removed) is counted and logged at a bounded rate, never raised: local
    frames are a convenience, capture and uploads go on. While the disk has less than
    ``min_free_bytes`` free, frames are skipped (counted), leaving the room to the outbox.
    """

    def __init__(self, folder: Path, every: int, quality: int, allow_raw: bool, min_free_bytes: int = 0) -> None:
        self.folder = folder
        self.min_free_bytes = min_free_bytes
        self.skipped_low_space = 0
        self.every = every
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.allow_raw = allow_raw
        self.written = 0
        self.refused = 0
        self.failed = 0
        self._seen = 0
        self._log = BoundedLog(log)
        if every:
            try:
                private_dir(folder)
            except OSError as err:
                self._log.warning("mkdir", f"local frames folder {folder} cannot be created: {err.strerror or err}")

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
        if self.min_free_bytes and _free_bytes(self.folder) < self.min_free_bytes:
            self.skipped_low_space += 1
            self._log.warning("low_space", f"local frame {path.name} not written: less than "
                              f"{self.min_free_bytes} bytes free on {self.folder} (output.min_free_bytes)")
            return
        ok, jpeg = cv2.imencode(".jpg", pixels, self.params)
        created = False
        try:
            if not ok:
                raise OSError("JPEG encoding failed")
            with os.fdopen(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as f:
                created = True
                f.write(jpeg.tobytes())
        except OSError as err:
            self.failed += 1
            self._log.warning("write", f"local frame {path.name} not written to {self.folder}: {err.strerror or err}")
            if created:
                with contextlib.suppress(OSError):
                    os.unlink(path)  # no truncated JPEG left behind
            return
        self.written += 1

    def close(self) -> dict[str, FramesWritten]:
        return {"frames_written": FramesWritten(folder=str(self.folder), count=self.written, refused=self.refused,
                                                failed=self.failed, skipped_low_space=self.skipped_low_space)}


def _free_bytes(folder: Path) -> int:
    """Free bytes on ``folder``'s file system (0 when it cannot be told: nothing is written then)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


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
