"""The reconnect backoff the uplinks and the remote control share."""

from __future__ import annotations

from edged.link.mqtt import Backoff


def test_delays_double_up_to_the_maximum_and_reset_after_a_connection() -> None:
    b = Backoff(1.0, 10.0)
    assert [b.next_s() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.next_s() == 1.0
    for _ in range(10_000):  # a broker away for weeks: the delay stays at the maximum, no overflow
        b.next_s()
    assert b.next_s() == 10.0


def test_jitter_shortens_each_delay_by_up_to_its_share() -> None:
    draws = iter([0.0, 1.0, 0.5])
    b = Backoff(2.0, 60.0, jitter=0.5, rand=lambda: next(draws))
    assert [b.next_s() for _ in range(3)] == [2.0, 2.0, 6.0]  # 2*(1-0), 4*(1-0.5), 8*(1-0.25)
