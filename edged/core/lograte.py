"""A log line per kind of trouble at a bounded rate, with counts: a full disk logs once a minute, not once a frame."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class BoundedLog:
    """Logs the first occurrence of each key at once, then at most one line per ``period_s`` with the
    number of occurrences since the last line; :meth:`flush` reports what is still untold."""

    def __init__(self, logger: logging.Logger, period_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period_s = period_s
        self.clock = clock
        self.total: dict[str, int] = {}
        self.lines = 0
        """Lines written so far."""
        self._pending: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._untold: dict[str, tuple[int, str]] = {}

    def warning(self, key: str, message: str) -> bool:
        """Count one ``key`` event; log ``message`` (with counts) as a warning when due. Returns whether it logged."""
        return self.report(key, message, logging.WARNING)

    def error(self, key: str, message: str) -> bool:
        """As :meth:`warning`, at error level."""
        return self.report(key, message, logging.ERROR)

    def report(self, key: str, message: str, level: int) -> bool:
        """Count one ``key`` event; log ``message`` at ``level`` when due. Returns whether it logged."""
        self.total[key] = self.total.get(key, 0) + 1
        self._pending[key] = self._pending.get(key, 0) + 1
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.period_s:
            self._untold[key] = (level, message)
            return False
        self._untold.pop(key, None)
        n, self._pending[key], self._last[key] = self._pending[key], 0, now
        more = f" ({n} since the last report, {self.total[key]} in all)" if last is not None else ""
        self.logger.log(level, "%s%s", message, more)
        self.lines += 1
        return True

    def flush(self, due_only: bool = False) -> None:
        """Log the latest message of every key with occurrences not yet reported (e.g. at shutdown);
        ``due_only``: only of keys whose period has passed (a timer's call, when no new event comes)."""
        now = self.clock()
        for key, (level, message) in sorted(self._untold.items()):
            if due_only and now - self._last[key] < self.period_s:
                continue
            self.logger.log(level, "%s (%d since the last report, %d in all)", message, self._pending[key],
                            self.total[key])
            self._pending[key] = 0
            self._last[key] = now
            self.lines += 1
            del self._untold[key]
