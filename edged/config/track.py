"""``[track]``: the ByteTrack-style tracker's thresholds, buffers and Kalman noise."""

from __future__ import annotations

from typing import Annotated

from edged.config.base import Bounds, Fraction, Section


class TrackConfig(Section):
    """ByteTrack-style tracker, one track set per class: detections are matched to the tracks'
    Kalman-predicted boxes in two passes, high scores first, then the low-score rest.

    The tracker decides which faces stay hidden through missed and faint detections, so a remote
    change may only move its thresholds towards more and longer tracks, and the Kalman noise is
    local (``edged/remote/policy.py``)."""

    high_score: Fraction = 0.5
    """Detections scoring at least this take part in the first association (ByteTrack's
    ``track_thresh``); the rest, down to ``low_score``, only in the second."""
    low_score: Fraction = 0.1
    """Detections below this are ignored; 0.1 as ByteTrack, and the detector's own score threshold
    must be at or below it, or the second association gets no input."""
    birth_score: Fraction = 0.6
    """An unmatched detection starts a candidate track only at or above this (ByteTrack's
    ``track_thresh + 0.1``): borderline false positives do not spawn tracks."""
    sensitive_high_score: Fraction = 0.4
    """``high_score`` for faces and plates: their detectors score small and partly hidden ones
    lower, and a track keeps a face covered through the frames its detector misses."""
    sensitive_birth_score: Fraction = 0.4
    """``birth_score`` for faces and plates. A track born below ``privacy.confident_score`` is
    covered within the unconfident budget (``privacy.unconfident_max_share``) on every frame its
    detection scores below it too, so a false box that starts a track cannot blur much scenery."""
    min_iou_first: Fraction = 0.2
    """Least IoU between a predicted box and a high-score detection to match them; low (ByteTrack's
    ``match_thresh`` 0.8 as a cost), as a fast near car moves a large part of its width per frame."""
    min_iou_second: Fraction = 0.5
    """Least IoU for the second (low-score) association: stricter, as in ByteTrack, because low
    scores are often false positives."""
    min_iou_candidate: Fraction = 0.3
    """Least IoU to extend an unconfirmed candidate (ByteTrack's 0.7 cost for unconfirmed tracks),
    measured on boxes grown by ``candidate_buffer``."""
    candidate_buffer: Annotated[float, Bounds(0, 10)] = 0.5
    """Fraction of their size by which a candidate's box and the detections grow on every side
    before the IoU (buffered IoU, as C-BIoU), as a candidate's velocity is unknown."""
    confirm_hits: Annotated[int, Bounds(1, 100)] = 2
    """Consecutive matched frames before a candidate becomes a track (an id, reports, uploads); 2
    keeps one-frame false positives out at the cost of one frame of a real object."""
    lost_buffer_s: Annotated[float, Bounds(0.1, 600)] = 3.0
    """How long (s) an unmatched track coasts on its Kalman prediction before removal; 3 s bridges
    a pedestrian hidden behind a passing bus."""
    leaving_growth: Annotated[float, Bounds(0, 10)] = 0.3
    """A track leaving through a border (its last box clipped there) is never paired with a
    detection more than this fraction wider (taller) than what is left of it: a leaving object only
    shrinks, an entering one grows."""
    predicted_output_s: Annotated[float, Bounds(0, 60)] = 0.5
    """How long (s) after its last detection a lost track is still reported (``detected=False``,
    predicted box), so privacy keeps covering a face or plate the detector missed for a few frames."""
    history_len: Annotated[int, Bounds(1, 10_000)] = 64
    """Observations kept per track (plus its first one): 6.4 s at 10 fps, enough for a trail's
    direction and speed; memory stays bounded for parked cars."""
    id_block: Annotated[int, Bounds(1, 1 << 20)] = 1024
    """Track ids reserved per write of the id store; a restart skips at most that many ids."""
    std_position: Annotated[float, Bounds(1e-6, 10)] = 0.05
    """Kalman position noise as a fraction of box size per frame (ByteTrack's 1/20)."""
    std_velocity: Annotated[float, Bounds(1e-6, 10)] = 0.00625
    """Kalman velocity noise as a fraction of box size per frame (ByteTrack's 1/160)."""
    std_init_velocity: Annotated[float, Bounds(1e-6, 10)] = 0.25
    """Velocity uncertainty of a new track, fraction of box size per frame; wider than ByteTrack's
    10/160, as roadside objects at 10 fps move up to about half their width per frame."""

    def __post_init__(self) -> None:
        if not self.low_score <= self.high_score <= self.birth_score:
            raise ValueError(
                f"need low_score <= high_score <= birth_score, got {self.low_score}, {self.high_score}, "
                f"{self.birth_score}"
            )
        if not self.low_score <= self.sensitive_high_score <= self.sensitive_birth_score:
            raise ValueError(
                f"need low_score <= sensitive_high_score <= sensitive_birth_score, got {self.low_score}, "
                f"{self.sensitive_high_score}, {self.sensitive_birth_score}"
            )
