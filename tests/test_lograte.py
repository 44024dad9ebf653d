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


def test_a_timer_flush_tells_only_keys_whose_period_has_passed(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    events = BoundedLog(logging.getLogger("t"), period_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        events.warning("a", "a 1")
        now[0] = 5.0
        events.warning("b", "b 1")
        events.warning("a", "a 2")
        events.warning("b", "b 2")
        now[0] = 12.0
        events.flush(due_only=True)  # a's period (from 0) has passed, b's (from 5) has not
        events.flush(due_only=True)
        now[0] = 16.0
        events.flush(due_only=True)
    assert [r.getMessage() for r in caplog.records] == [
        "a 1", "b 1", "a 2 (1 since the last report, 2 in all)", "b 2 (1 since the last report, 2 in all)"]
