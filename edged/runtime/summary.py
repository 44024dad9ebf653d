"""The run summary: what a daemon run reports when it ends (``summary.json``), as typed structs."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from edged.core.paths import private_dir, write_private

log = logging.getLogger("edged")


class FrameCounts(msgspec.Struct):
    """Frames of the run; ``accounted``: every captured frame was processed or dropped."""

    captured: int
    processed: int
    dropped: int
    auto_exposure: int
    retimed: int
    accounted: bool


class MeterCycle(msgspec.Struct):
    """One exposure metering cycle: what auto exposure chose and what was locked."""

    time: float
    auto_shutter_us: float
    auto_gain: float
    locked_shutter_us: float
    locked_gain: float
    clamped: bool


class ExposureSummary(msgspec.Struct):
    """The run's metering cycles and how many locks were clamped."""

    meter_cycles: list[MeterCycle]
    clamped: int


class FramesWritten(msgspec.Struct):
    """The local frames sink's part (``frames_written``)."""

    folder: str
    count: int
    refused: int
    failed: int
    skipped_low_space: int


class RunSummary(msgspec.Struct):
    """A daemon run's summary; ``sinks`` holds each sink's own part under its name."""

    stop_reason: str
    wall_s: float
    frames: FrameCounts
    fps: float
    """Processed frames / ``wall_s``."""
    first_frame_s: float | None
    """From camera start to the first frame out of the last stage: start-up of the camera and the first
    frame's detection (a stream's first frame is scanned whole); ``None`` when no frame was processed."""
    steady_fps: float | None
    """Frames after the first / the time after it (``None`` with fewer than two frames)."""
    stage_ms: dict[str, dict[str, float]]
    exposure: ExposureSummary
    sink_failures: dict[str, int]
    device: dict[str, Any]
    sinks: dict[str, Any] = msgspec.field(default_factory=dict)
    """Sink part name -> its figures (a struct or plain values), written at the top level of the JSON."""
    summary_written: bool | None = None
    """Whether ``summary.json`` was written (``None``: the run had no summary path)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain values in ``summary.json``'s layout: the fields, each sink part at the top level."""
        out: dict[str, Any] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "sinks":
                out.update({part: _plain(figures) for part, figures in value.items()})
            elif name != "summary_written" or value is not None:
                out[name] = _plain(value)
        return out


RESERVED_PARTS = frozenset(RunSummary.__struct_fields__)
"""Names a sink part may not take (they are the summary's own keys)."""


def _plain(value: Any) -> Any:
    return msgspec.to_builtins(value, enc_hook=str) if isinstance(value, msgspec.Struct) else value


def add_sink_parts(parts: dict[str, Any], figures: Mapping[str, Any], sink: str) -> None:
    """Add one sink's parts to ``parts``; a name the summary or an earlier sink has is refused (logged)."""
    for name, value in figures.items():
        if name in RESERVED_PARTS or name in parts:
            log.error("sink %s: summary part %r is taken; left out of the summary", sink, name)
            continue
        parts[name] = value


def write_summary(path: Path, summary: RunSummary) -> bool:
    """Write the run summary atomically and private; on failure log why and the summary itself (one line)."""
    doc = summary.to_dict()
    try:
        private_dir(path.parent, configured=True)
        write_private(path, (json.dumps(doc, indent=2, default=str) + "\n").encode())
        return True
    except OSError as err:
        log.error("summary not written to %s (%s); summary: %s", path, err.strerror or err,
                  json.dumps(doc, separators=(",", ":"), default=str))
        return False
