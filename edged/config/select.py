"""``[select]``: best-image selection and the cached upload queue."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Fraction, Section


class SelectConfig(Section):
    """Best-image selection: which image of each track qualifies, which is better, and which is
    sent at once rather than through the rate-limited cached queue. Pixels are of the full image."""

    min_width: Annotated[float, Bounds(0, 8192)] = 32.0
    """A track's box (after its first observation) qualifies only this wide (px); 32 px is COCO's
    small/medium boundary."""
    min_height: Annotated[float, Bounds(0, 8192)] = 32.0
    """Least box height (px) to qualify, same reason as ``min_width``."""
    score1: Fraction = 0.5
    """Least detection score to qualify (conventionally below ``score2``); 0.5 is the usual detector
    operating point."""
    score2: Fraction = 0.7
    """Least score to send immediately: confident enough to spend the uplink at once."""
    edge1: Annotated[float, Bounds(0, 8192)] = 4.0
    """Least edge distance (px) of a better image, so the object is wholly in view (conventionally
    below ``edge2``); 4 px absorbs box jitter."""
    edge2: Annotated[float, Bounds(0, 8192)] = 32.0
    """An immediate image's box must be more than this (px) inside every border, well clear of
    truncation even with box error."""
    area_ratio: Fraction = 0.01
    """Box area / image area above which (with score2, edge2) an image goes immediately; 1% of a
    1280x720 image is about a 96x96 px box."""
    classes: list[str] = msgspec.field(
        default_factory=lambda: ["person", "car", "truck", "bus", "bicycle", "motorcycle"]
    )
    """Classes whose tracks select best images and appear in upload packages. Sensitive classes
    (face, plate) are left out: their data goes only to the functional platforms."""
    cached_period_s: Annotated[float, Bounds(0.1, 3600)] = 2.0
    """The cached queue sends its oldest package once per this period (s); 2 s is the required
    cached rate."""
    cached_in_flight: Annotated[int, Bounds(1, 1000)] = 1
    """Cached packages sent but not yet confirmed; 1 keeps delivery strictly oldest first."""
    ack_timeout_s: Annotated[float, Bounds(1, 3600)] = 30.0
    """A send not confirmed (or failed) within this (s) is retried; 30 s, as a PUBACK takes well
    under a second on a working link."""

    def __post_init__(self) -> None:
        from edged.core.classes import CLASS_NAMES

        unknown = [c for c in self.classes if c not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r} in classes; known: {', '.join(CLASS_NAMES)}")
