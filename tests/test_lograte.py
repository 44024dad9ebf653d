"""BoundedLog: the first line at once, then one per period with counts, and a flush of what is untold."""

from __future__ import annotations

import logging

import pytest

from edged.core.lograte import BoundedLog


def test_one_line_per_key_and_period_with_counts_and_a_final_flush(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    events = BoundedLog(logging.getLogger("t"), period_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        assert events.warning("full", "disk full 1")
        for i in range(2, 101):
            assert not events.warning("full", f"disk full {i}")
        assert events.error("other", "other trouble"), "each key has its own period"
        now[0] = 61.0
        assert events.warning("full", "disk full 101")
        events.warning("full", "disk full 102")
        events.flush()
        events.flush()  # nothing untold is left: no second line
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.WARNING, "disk full 1"),
        (logging.ERROR, "other trouble"),
        (logging.WARNING, "disk full 101 (100 since the last report, 101 in all)"),
        (logging.WARNING, "disk full 102 (1 since the last report, 102 in all)"),
    ]
    assert events.total == {"full": 102, "other": 1} and events.lines == 4
