"""The object classes edged knows, in one fixed order (class id = index)."""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "face",
    "plate",
    "person",
    "car",
    "truck",
    "bus",
    "bicycle",
    "motorcycle",
)
"""Class id ``i`` is ``CLASS_NAMES[i]``; wire formats carry the name, not the id."""

SENSITIVE_CLASSES: frozenset[str] = frozenset({"face", "plate"})
"""Classes whose pixels never leave the device in the clear."""

SENSITIVE_IDS: tuple[int, ...] = tuple(sorted(CLASS_NAMES.index(c) for c in SENSITIVE_CLASSES))
"""Class ids of :data:`SENSITIVE_CLASSES`."""


def class_id(name: str) -> int:
    """Class id of ``name``; raises ``KeyError`` naming the known classes."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown class {name!r}; known: {', '.join(CLASS_NAMES)}") from None
