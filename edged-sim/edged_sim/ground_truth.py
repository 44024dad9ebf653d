"""What the fake camera knows it drew in each frame (struct-of-arrays, like the device's detections)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np

from edged.core.classes import CLASS_NAMES
from edged.core.types import empty_boxes


@dataclass(slots=True)
class GroundTruth:
    """What the fake camera knows it drew in one frame.

    ``object_ids`` are stable across frames for the same scene object; a face or plate has its own id
    and ``parent_ids`` holds the id of the person or car that carries it (``-1`` for none).
    ``visible`` is the fraction of the object's drawn pixels that can be seen (after clipping to the
    image and occlusion by nearer objects); boxes bound the visible pixels.
    """

    object_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    boxes: np.ndarray = field(default_factory=empty_boxes)
    parent_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    visible: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    texts: tuple[str, ...] = ()
    """Plate text for plate rows, ``""`` for others."""
    events: tuple[str, ...] = ()
    """Scene events active in this frame, e.g. ``"freeze"``, ``"cover"``, ``"light"``."""

    def __len__(self) -> int:
        return int(self.object_ids.shape[0])

    def of_class(self, name: str) -> GroundTruth:
        """Rows of one class."""
        keep = self.class_ids == CLASS_NAMES.index(name)
        return GroundTruth(
            object_ids=self.object_ids[keep],
            class_ids=self.class_ids[keep],
            boxes=self.boxes[keep],
            parent_ids=self.parent_ids[keep],
            visible=self.visible[keep],
            texts=tuple(t for t, k in zip(self.texts, keep, strict=True) if k),
            events=self.events,
        )


def truth_of(attached: object) -> GroundTruth | None:
    """The ground truth the fake camera attached to a frame (the device carries it without knowing its type)."""
    return cast("GroundTruth | None", attached)
