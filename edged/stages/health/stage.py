"""Stage ``health``: runs the camera health checks on each frame (pure, no I/O)."""

from __future__ import annotations

from edged.config import HealthConfig
from edged.stages.health.checks import HealthChecker
from edged.stages.pipeline import FrameWork


class HealthStage:
    """Stage ``health``: block stability of the outgoing image vs the raw one, freeze/cover/defects.

    Raises the checker's events into ``work.events`` and leaves the report in ``work.health``.
    """

    name = "health"

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self._checker: HealthChecker | None = None

    def __call__(self, work: FrameWork) -> None:
        meta = work.frame.meta
        checker = self._checker
        if checker is None or (checker.grid.width, checker.grid.height) != (meta.width, meta.height):
            checker = self._checker = HealthChecker.from_config(self.config, meta.width, meta.height)
        report = checker.check_frame(work.frame, work.deidentified, work.sensitive_rects)
        work.health = report
        for event in report.events:
            work.events.append(event)
