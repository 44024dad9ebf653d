"""The ring budget: eviction exactly by policy (cached, then others, sensitive last), counted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.link import wire
from edged.link.outbox import EVICT_RANK, ROW_OVERHEAD, Outbox


def make(prio: str, size: int) -> wire.Envelope:
    dest, kind = ("func.face", "sensitive") if prio == "sensitive" else ("ops", "package")
    return wire.make(kind, dest, prio, b"\0" * size, video_id="V")


def sized(prio: str, stored: int) -> wire.Envelope:
    """An envelope whose stored size (envelope + row overhead) is exactly ``stored`` bytes."""
    probe = len(wire.encode(make(prio, 1000))) + ROW_OVERHEAD
    e = make(prio, 1000 + stored - probe)
    assert len(wire.encode(e)) + ROW_OVERHEAD == stored
    return e


class Model:
    """The stated policy, written independently of the SQL: evict min (class rank, age) until it fits."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.items: list[tuple[int, str, str, int]] = []  # (seq, id, prio, stored size)
        self.seq = 0
        self.evicted = {"cached": 0, "others": 0, "sensitive": 0}

    def enqueue(self, e: wire.Envelope) -> bool:
        size = len(wire.encode(e)) + ROW_OVERHEAD
        if size > self.budget:
            return False
        while sum(i[3] for i in self.items) + size > self.budget:
            victim = min(self.items, key=lambda i: (EVICT_RANK[i[2]], i[0]))
            self.items.remove(victim)
            cls = {0: "cached", 1: "others", 2: "sensitive"}[EVICT_RANK[victim[2]]]
            self.evicted[cls] += 1
        self.seq += 1
        self.items.append((self.seq, e.id, e.prio, size))
        return True

    def ack(self, ids: set[str]) -> None:
        self.items = [i for i in self.items if i[1] not in ids]


def test_overflow_evicts_cached_then_others_then_sensitive(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    unit = 1200
    ob = Outbox(tmp_path / "o.db", budget_bytes=10 * unit)
    order = ["sensitive", "cached", "normal", "immediate", "cached", "sensitive", "normal", "cached", "immediate", "normal"]
    first = [sized(p, unit) for p in order]
    for e in first:
        assert ob.enqueue(e).evicted == 0
    assert ob.used_bytes == 10 * unit
    caplog.set_level(logging.WARNING, logger="edged.link.outbox")
    # 3 more: the 3 cached go, oldest first
    more = [sized("normal", unit) for _ in range(3)]
    assert [ob.enqueue(e).evicted for e in more] == [1, 1, 1]
    assert {e.id for e in first} - set(ob.ids()) == {first[i].id for i in (1, 4, 7)}
    assert "evicted 1 cached" in caplog.text
    # 5 more immediates: the 5 oldest normal/immediate go, whatever their class, oldest first
    for _ in range(5):
        ob.enqueue(sized("immediate", unit))
    assert {e.id for e in first} & set(ob.ids()) == {first[0].id, first[5].id}  # only sensitive left
    assert set(ob.ids()) >= {e.id for e in more}  # newer "others" untouched
    assert ob.stats()["evicted"] == {"cached": 3, "others": 5}
    # a message needing 8 units' room: the 8 "others" go, the sensitive records stay
    big = sized("normal", 8 * unit)
    assert ob.enqueue(big).evicted == 8
    assert ob.ids() == [first[0].id, first[5].id, big.id]
    # a cached one: the big "others" goes before any sensitive record
    c = sized("cached", 2 * unit)
    ob.enqueue(c)
    assert ob.ids() == [first[0].id, first[5].id, c.id]
    # a sensitive one needing 1 unit: the cached goes first
    s7 = sized("sensitive", 7 * unit)
    ob.enqueue(s7)
    assert ob.ids() == [first[0].id, first[5].id, s7.id]
    # only sensitive records left: the oldest of them go
    n3 = sized("normal", 3 * unit)
    assert ob.enqueue(n3).evicted == 2
    assert ob.ids() == [s7.id, n3.id]
    stats = ob.stats()
    assert stats["evicted"] == {"cached": 4, "others": 14, "sensitive": 2}
    assert stats["evicted_bytes"] == {"cached": 5 * unit, "others": 21 * unit, "sensitive": 2 * unit}
    assert ob.used_bytes == ob.budget_bytes == 10 * unit
    # counters persist across a restart
    ob.close()
    totals = Outbox(tmp_path / "o.db", budget_bytes=10 * unit).stats()["evicted_total"]
    assert totals["evicted_cached"] == 4 and totals["evicted_others"] == 14 and totals["evicted_sensitive"] == 2


def test_message_larger_than_budget_is_refused_and_nothing_lost(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", budget_bytes=5000)
    small = make("cached", 100)
    ob.enqueue(small)
    r = ob.enqueue(make("immediate", 6000))
    assert not r and r.error is not None and "larger than the budget" in r.error
    assert ob.ids() == [small.id]
    s = ob.stats()
    assert s["enqueue_failed"] == 1 and s["failed"]["too_large"] == 1 and "not stored" in s["last_error"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("put"), st.sampled_from(["immediate", "cached", "normal", "sensitive"]), st.integers(0, 3000)),
            st.tuples(st.just("ack"), st.just(""), st.integers(0, 5)),
        ),
        max_size=60,
    ),
    st.integers(2000, 20000),
)
def test_outbox_matches_the_policy_model(tmp_path_factory: pytest.TempPathFactory, ops: list, budget: int) -> None:
    ob = Outbox(tmp_path_factory.mktemp("ob") / "o.db", budget_bytes=budget, synchronous="normal", check_on_open=False)
    model = Model(budget)
    for op, prio, n in ops:
        if op == "put":
            e = make(prio, n)
            assert bool(ob.enqueue(e)) == model.enqueue(e)
        else:
            dests = ["ops", "func.face"]
            batch = ob.next_batch(dests[n % 2], n, cached_limit=n)
            ids = {p.id for p in batch}
            ob.ack(ids)
            model.ack(ids)
        assert ob.ids() == [i[1] for i in model.items]
        assert ob.used_bytes == sum(i[3] for i in model.items) <= budget
    assert ob.stats()["evicted"] == {k: v for k, v in model.evicted.items() if v}
    ob.close()
