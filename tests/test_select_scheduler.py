"""Send policy: immediate first, cached oldest first at the configured rate, removed only on confirmation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edged.config import SelectConfig
from edged.select.scheduler import CachedRate, UploadQueue


def test_immediate_items_go_at_once_and_before_cached():
    q = UploadQueue(period_s=2.0)
    q.add("c1", immediate=False)
    q.add("i1", immediate=True)
    q.add("c2", immediate=False)
    q.add("i2", immediate=True)
    assert q.due(0.0) == ["i1", "i2", "c1"]
    q.add("i3", immediate=True)
    assert q.due(0.1) == ["i3"]  # immediate does not wait for the cached rate


def test_cached_drain_oldest_first_one_per_period_and_only_after_confirmation():
    q = UploadQueue(period_s=2.0)
    for k in ("a", "b", "c"):
        q.add(k, immediate=False)
    assert q.due(0.0) == ["a"]
    assert q.due(1.0) == []  # neither the rate nor the in-flight limit allows
    q.confirmed("a")
    assert q.due(1.9) == []  # confirmed early, but the next slot opens at 2.0
    assert q.due(2.0) == ["b"]
    assert q.due(5.0) == []  # b not yet confirmed: strictly one in flight
    q.confirmed("b")
    assert q.due(5.0) == ["c"]
    q.confirmed("c")
    assert len(q) == 0 and q.next_time(6.0) is None


def test_failed_cached_item_is_retried_at_the_head_at_the_next_slot():
    q = UploadQueue(period_s=2.0)
    q.add("a", immediate=False)
    q.add("b", immediate=False)
    assert q.due(0.0) == ["a"]
    q.failed("a")
    assert "a" in q
    assert q.due(1.0) == []
    assert q.due(2.0) == ["a"]


def test_failed_immediate_item_joins_the_cached_queue_in_age_order():
    q = UploadQueue(period_s=2.0)
    q.add("old-cached", immediate=False)
    q.add("imm", immediate=True)
    q.add("new-cached", immediate=False)
    assert q.due(0.0) == ["imm", "old-cached"]
    q.failed("imm")
    q.confirmed("old-cached")
    assert q.pending() == (0, 2)
    assert q.due(2.0) == ["imm"]  # older than new-cached
    q.confirmed("imm")
    assert q.due(4.0) == ["new-cached"]


def test_unconfirmed_send_times_out_and_is_sent_again():
    q = UploadQueue(period_s=2.0, ack_timeout_s=10.0)
    q.add("a", immediate=False)
    assert q.due(0.0) == ["a"]
    assert q.next_time(1.0) == 10.0
    assert q.due(9.0) == []
    assert q.due(10.0) == ["a"]


def test_backlog_and_pending():
    q = UploadQueue.from_config(SelectConfig())
    q.extend([("a", False), ("b", False), ("c", True)])
    assert q.pending() == (1, 2)
    assert q.backlog_s() == 4.0


def test_cached_rate_as_policy_for_an_outbox():
    rate = CachedRate(period_s=2.0, max_in_flight=1)
    assert rate.allowance(0.0) == 1
    rate.sent(1, 0.0)
    assert rate.allowance(3.0) == 0  # still in flight
    rate.done()
    assert rate.allowance(1.0) == 0 and rate.allowance(2.0) == 1
    assert rate.next_time(1.0) == 2.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["ok", "fail", "silent"])), min_size=1, max_size=30),
       st.floats(0.5, 5.0))
def test_every_item_is_delivered_once_cached_in_age_order_at_the_rate(items, period):
    """Whatever fails, every item is eventually confirmed exactly once; confirmed cached items are
    in age order (failures are retried in place) and cached sends are at least ``period`` apart."""
    q = UploadQueue(period_s=period, ack_timeout_s=3 * period)
    outcome = {}
    for n, (immediate, fate) in enumerate(items):
        q.add(n, immediate)
        outcome[n] = fate
    confirmed: list[int] = []
    cached_sends: list[float] = []
    now = 0.0
    tries: dict[int, int] = {}
    while len(q) and now < 10_000:
        for key in q.due(now):
            tries[key] = tries.get(key, 0) + 1
            if not (items[key][0] and tries[key] == 1):  # a cached send (a failed immediate is cached)
                cached_sends.append(now)
            fate = outcome[key] if tries[key] == 1 else "ok"  # each item fails at most once
            if fate == "ok":
                q.confirmed(key)
                confirmed.append(key)
            elif fate == "fail":
                q.failed(key)
            # silent: no answer, the ack timeout fails it
        nxt = q.next_time(now)
        now = max(now + 1e-3, nxt if nxt is not None else now + 1)
    assert sorted(confirmed) == list(range(len(items)))
    assert len(confirmed) == len(set(confirmed))
    first_try_cached = [k for k in confirmed if not items[k][0]]
    assert first_try_cached == sorted(first_try_cached)
    gaps = [b - a for a, b in zip(cached_sends, cached_sends[1:])]
    assert all(g >= period - 1e-9 for g in gaps)
