"""The selection stage for :class:`edged.stages.pipeline.Pipeline` (after ``track``).

Reads ``work.observations`` and ``work.ended_tracks`` (written by
:class:`edged.stages.track.stage.TrackStage`); writes ``work.upload``: an
:class:`~edged.stages.select.package.UploadPackage` or ``None``. The sink that encodes the de-identified
image turns it into an outbox envelope with ``package.envelope(jpeg_bytes, device_id)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edged.config import Config
from edged.stages.select.selector import BestImageSelector

if TYPE_CHECKING:
    from edged.stages.pipeline import FrameWork


class SelectStage:
    """Pipeline stage ``select``."""

    name = "select"

    def __init__(self, selector: BestImageSelector) -> None:
        self.selector = selector

    @classmethod
    def from_config(cls, config: Config) -> SelectStage:
        return cls(BestImageSelector(config.select))

    def __call__(self, work: FrameWork) -> None:
        observations = work.observations
        package = None
        if observations is not None:
            package = self.selector.select(observations).package
        ended = work.ended_tracks
        if ended is not None:
            self.selector.forget(ended)
        work.upload = package
