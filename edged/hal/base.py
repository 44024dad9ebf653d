"""The camera interface every backend implements, and the errors it raises."""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from edged.core.types import CapturedImage, Exposure


class Pacing(enum.StrEnum):
    """Who sets the frame rate, which decides what the daemon does when detection falls behind."""

    SENSOR = "sensor"
    """A live sensor delivers frames at its own rate; the oldest waiting frame is dropped."""
    REALTIME = "realtime"
    """A replay the daemon paces at ``camera.fps``, dropping like a live sensor would."""
    FREE = "free"
    """A replay read as fast as the pipeline takes frames; none is dropped."""


class CameraError(RuntimeError):
    """A camera could not be opened, configured or read; the message says which and why."""


class EndOfStream(CameraError):
    """A finite source (file replay) has no more frames: a clean end, not a fault."""


@runtime_checkable
class Camera(Protocol):
    """A frame source with exposure controls.

    Exposure units: shutter in microseconds, gain as a linear analogue gain (1.0 = unity).
    ``capture`` blocks until the next frame is available; it is called from an executor thread.
    """

    width: int
    height: int
    pacing: Pacing
    gain_range: tuple[float, float]
    """Smallest and largest analogue gain the sensor accepts."""
    shutter_range_us: tuple[float, float]

    def start(self) -> None:
        """Open the device and start streaming; raises :class:`CameraError`."""

    def stop(self) -> None:
        """Stop streaming and release the device; safe to call twice."""

    def capture(self) -> CapturedImage:
        """Return the next frame with the exposure in effect when it was taken."""

    def set_auto_exposure(self) -> None:
        """Hand shutter and gain to the camera's auto-exposure loop."""

    def set_manual_exposure(self, shutter_us: float, gain: float) -> None:
        """Lock shutter and gain to the given values (AE off)."""

    def read_exposure(self) -> Exposure:
        """Exposure currently in effect (mode, shutter, gain), as the sensor reports it."""
