"""Replay source: a video file or a folder of images, read with OpenCV.

Frames keep the source's own size unless ``width x height`` is configured; then they are resized
to it (``INTER_AREA`` when shrinking, ``INTER_LINEAR`` when enlarging). An image folder without a
configured size runs at its first image's size, so the rest of the pipeline sees one size.

Rate: each :meth:`FileCamera.capture` is one tick of the configured ``fps``. A video recorded at a
higher rate is subsampled (frame ``k`` returned is source frame ``round(k * source_fps / fps)``) so
replayed motion keeps its real speed; a slower video repeats nothing and simply plays faster.
Timestamps are media time: ``t0 + k / fps`` with ``t0`` the wall clock at :meth:`start`, whatever
speed the caller pulls frames at (the daemon paces replay when ``camera.file.realtime`` is on).

Exposure: a recording cannot be re-exposed. The controls are accepted and *recorded*: frames report
the mode, shutter and gain last set, so the meter-and-lock timeline runs as on a real camera, but
the pixels do not change. In auto mode the read-back is the nominal :data:`NOMINAL_AUTO` exposure
(2 ms at unity gain), so a lock computes unity gain at the default fixed shutter.

End of a source without ``loop`` raises :class:`edged.hal.base.EndOfStream`.

Progress: replay logs ``file camera: NAME: 120/900 frames (13%)`` (INFO) at most every
:data:`PROGRESS_EVERY_S` seconds, and once at the end of each pass; the total is the frames one
pass returns (the source's length at the configured rate), when the source says how long it is.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import cv2
import numpy as np

from edged.core.types import CapturedImage, Exposure, ExposureMode
from edged.hal.base import CameraError, EndOfStream, Pacing

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
NOMINAL_AUTO = Exposure(ExposureMode.AUTO, 2000.0, 1.0)
"""What a replay source reports while in auto mode (it has no real metering)."""
GAIN_RANGE = (1.0, 16.0)
SHUTTER_RANGE_US = (10.0, 1_000_000.0)
PROGRESS_EVERY_S = 30.0
"""Seconds between replay progress log lines."""

log = logging.getLogger(__name__)


def to_bgr(image: np.ndarray, source: str) -> np.ndarray:
    """A decoded image as ``(H, W, 3) uint8`` BGR (grey and BGRA are converted)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            raise CameraError(f"{source}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise CameraError(f"{source}: unsupported image shape {image.shape}")


class FileCamera:
    """A video file or an image folder (sorted by file name) as a :class:`edged.hal.base.Camera`."""

    gain_range = GAIN_RANGE
    shutter_range_us = SHUTTER_RANGE_US

    def __init__(
        self, path: str | Path, width: int | None, height: int | None, fps: float, loop: bool = False,
        realtime: bool = False,
    ) -> None:
        if fps <= 0:
            raise CameraError(f"file camera: fps must be positive, got {fps}")
        self._given = str(path)
        self.path = Path(path)
        self.width, self.height, self.fps, self.loop = width, height, fps, loop
        self.pacing = Pacing.REALTIME if realtime else Pacing.FREE
        self._capture: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self._source_fps = fps
        self._source_pos = 0  # next source frame index the reader will return
        self._tick = 0  # frames returned since start (one per fps tick)
        self._played = 0  # ticks since the current pass started
        self._t0 = 0.0
        self._exposure = NOMINAL_AUTO
        self._started = False
        self._source_total: int | None = None  # frames in the source, when it says
        self._logged = 0.0

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._given.strip() in ("", "."):
            raise CameraError("file camera: camera.file.path is empty or '.'; set it to a video file or image folder")
        if not self.path.exists():
            raise CameraError(f"file camera: {self.path} does not exist")
        if self.path.is_dir():
            self._images = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise CameraError(
                    f"file camera: folder {self.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            self._source_fps = self.fps
            self._source_total = len(self._images)
        else:
            self._open_video()
        self._source_pos = 0
        self._tick = self._played = 0
        self._t0 = time.time()
        self._logged = time.monotonic()
        self._started = True

    def probe(self) -> None:
        """The checks of :meth:`start` (the source exists and its first frame reads), then closed again."""
        self.start()
        self.stop()

    def stop(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._started = False

    def _open_video(self) -> None:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"file camera: OpenCV cannot open {self.path} as a video")
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise CameraError(f"file camera: {self.path} holds no readable video frame")
        cap.release()
        cap = cv2.VideoCapture(str(self.path))  # reopen: seeking back is unreliable for some codecs
        src_fps = cap.get(cv2.CAP_PROP_FPS)
        self._source_fps = src_fps if np.isfinite(src_fps) and 0 < src_fps < 1000 else self.fps
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._source_total = int(count) if np.isfinite(count) and count > 0 else None
        self._capture = cap

    # -------------------------------------------------------------------------------- frames
    def capture(self) -> CapturedImage:
        if not self._started:
            raise CameraError("file camera: capture() before start()")
        pixels = self._next_pixels()
        if pixels is None and self._played > 0:
            self._log_progress(end=True)
        if pixels is None and self.loop and self._played > 0:
            self._rewind()
            pixels = self._next_pixels()
        if pixels is None:
            raise EndOfStream(f"file camera: end of {self.path} after {self._tick} frames")
        pixels = self._fit(pixels)
        timestamp = self._t0 + self._tick / self.fps
        self._tick += 1
        self._played += 1
        if time.monotonic() - self._logged >= PROGRESS_EVERY_S:
            self._log_progress()
        return CapturedImage(pixels=pixels, exposure=self._exposure, timestamp=timestamp)

    def pass_length(self) -> int | None:
        """Frames one pass over the source returns at the configured rate (``None``: the source does not say)."""
        if self._source_total is None:
            return None
        return math.ceil(self._source_total / max(self._source_fps / self.fps, 1.0))

    def _log_progress(self, end: bool = False) -> None:
        self._logged = time.monotonic()
        total = self.pass_length()
        done = f"{self._played}/{total} frames ({self._played / total:.0%})" if total else f"{self._played} frames"
        log.info("file camera: %s: %s%s", self.path.name, done, ", end of the file" if end else "")

    def _wanted_source_index(self) -> int:
        """Source frame for the current tick: subsample sources faster than the configured fps."""
        step = max(self._source_fps / self.fps, 1.0)
        return int(round(self._played * step))

    def _next_pixels(self) -> np.ndarray | None:
        wanted = self._wanted_source_index()
        if self._images:
            if wanted >= len(self._images):
                return None
            file = self._images[wanted]
            image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise CameraError(f"file camera: cannot decode image {file}")
            self._source_pos = wanted + 1
            return to_bgr(image, str(file))
        assert self._capture is not None
        while self._source_pos < wanted:
            if not self._capture.grab():
                return None
            self._source_pos += 1
        ok, image = self._capture.read()
        if not ok or image is None:
            return None
        self._source_pos += 1
        return to_bgr(image, str(self.path))

    def _rewind(self) -> None:
        self._played = 0
        self._source_pos = 0
        if self._capture is not None:
            self._capture.release()
            self._open_video()

    def _fit(self, pixels: np.ndarray) -> np.ndarray:
        h, w = pixels.shape[:2]
        if self.width is None or self.height is None:
            self.width, self.height = w, h  # native size: the first frame's, kept for the stream
        if (w, h) == (self.width, self.height):
            return np.ascontiguousarray(pixels)
        shrink = w > self.width or h > self.height
        return cv2.resize(
            pixels, (self.width, self.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )

    # ------------------------------------------------------------------------------ exposure
    def set_auto_exposure(self) -> None:
        self._exposure = NOMINAL_AUTO

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        if not (shutter_us > 0 and gain > 0):
            raise CameraError(f"file camera: shutter and gain must be positive, got {shutter_us} us, {gain}")
        lo, hi = self.gain_range
        slo, shi = self.shutter_range_us
        self._exposure = Exposure(
            ExposureMode.MANUAL, float(min(max(shutter_us, slo), shi)), float(min(max(gain, lo), hi))
        )

    def read_exposure(self) -> Exposure:
        return self._exposure
