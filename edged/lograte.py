"""A log line per kind of trouble at a bounded rate, with counts: a full disk logs once a minute, not once a frame."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class BoundedLog:
    """Logs the first occurrence of each key at once, then at most one line per ``period_s`` with the
    number of occurrences since the last line."""

    def __init__(self, logger: logging.Logger, period_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period_s = period_s
        self.clock = clock
        self.total: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def warning(self, key: str, message: str) -> bool:
        """Count one ``key`` event; log ``message`` (with counts) when due. Returns whether it logged."""
        self.total[key] = self.total.get(key, 0) + 1
        self._pending[key] = self._pending.get(key, 0) + 1
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            return False
        n, self._pending[key], self._last[key] = self._pending[key], 0, now
        more = f" ({n} since the last report, {self.total[key]} in all)" if last is not None else ""
        self.logger.warning("%s%s", message, more)
        return True
