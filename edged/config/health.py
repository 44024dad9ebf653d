"""``[health]``: camera health checks from block pixel stability."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Bounds, Fraction, Section


class HealthConfig(Section):
    """Camera health checks from block pixel stability (``edged/stages/health/checks.py``):
    distortion by the processing, freeze, cover and defect pixels, in grey levels (0-255) on the frame
    shrunk by ``downscale``."""

    enabled: bool = True
    block_size: Annotated[int, msgspec.Meta(ge=4, le=512)] = 32
    """Block edge in full-frame pixels; 32 (40x23 blocks at 1280x720) makes a face-sized distortion
    one or two whole blocks."""
    downscale: Annotated[int, msgspec.Meta(ge=1, le=8)] = 2
    """Statistics run on a frame this many times smaller (must divide ``block_size``); 2 gives 4x
    fewer pixels and halves sensor noise."""
    distortion_index: Annotated[float, msgspec.Meta(ge=-1, le=1)] = 0.90
    """A block outside the sensitive regions whose processed-vs-raw stability index (1 when untouched)
    falls below this is distorted; 0.90 lies between a JPEG round trip's cost and the faintest visible
    damage."""
    region_margin_px: Annotated[float, Bounds(0, 1000)] = 0.0
    """Growth (px) of the sensitive regions before their blocks are excluded; 0 when the caller
    passes the regions as blurred (grown by privacy's margin), more if it passes detector boxes."""
    freeze_rms: Annotated[float, Bounds(0, 255)] = 0.25
    """A frame is still when no block changed by more than this RMS (grey levels, small frame) since
    the previous frame; 0.25 lies between a frozen camera's 0 and a clean sensor's noise."""
    cover_block_std: Annotated[float, Bounds(0.01, 255)] = 3.0
    """A block is flat when its pixel standard deviation is below this: a lens cap or hand leaves
    only noise, a few grey levels."""
    cover_fraction: Fraction = 0.95
    """A frame is covered when at least this fraction of blocks is flat ..."""
    cover_mean_spread: Annotated[float, Bounds(0, 255)] = 12.0
    """... and the block means spread (std) by at most this: uniform across the frame, where a road
    scene spreads far more, even at night."""
    baseline_frames: Annotated[int, Bounds(1, 100_000)] = 100
    """Frames the running noise floor (reported telemetry) averages over: 10 s at 10 fps."""
    on_frames: Annotated[int, Bounds(1, 10_000)] = 3
    """Consecutive positive frames that start a freeze or cover event; 3 (0.3 s at 10 fps) ignores
    a single odd frame yet catches a real freeze quickly."""
    off_frames: Annotated[int, Bounds(1, 10_000)] = 3
    """Consecutive negative frames that end an event, so one occurrence is one event."""
    defect_every: Annotated[int, Bounds(0, 1_000_000)] = 10
    """Sample every n-th frame for defect pixels (full resolution, ~10 ms; 0 disables); once a
    second at 10 fps, as defects are permanent."""
    defect_min_abs: Annotated[float, Bounds(0.01, 255)] = 40.0
    """A pixel is an outlier when it is at least this many grey levels from the mean of its 3x3
    block (8 neighbours), a sixth of the range and far beyond noise ..."""
    defect_isolation: Annotated[float, Bounds(0.01, 255)] = 20.0
    """... and brighter (darker) than all 8 neighbours by this much: a single pixel, not a lamp."""
    defect_persistence: Fraction = 0.75
    """A pixel that is an outlier in this fraction of samples is a defect; 0.75 lets content hide a
    stuck pixel in some samples while scene detail and night lights stay well below."""
    defect_min_samples: Annotated[int, Bounds(1, 1_000_000)] = 30
    """Samples before any defect is reported (30 s at the defaults)."""

    def __post_init__(self) -> None:
        if self.block_size % self.downscale:
            raise ValueError(f"block_size {self.block_size} must be a multiple of downscale {self.downscale}")
