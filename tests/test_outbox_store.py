"""Outbox basics: send order, leases, ack, duplicates, persistence across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edged.link import wire
from edged.link.outbox import Outbox, OutboxDamagedError, OutboxError


def env(prio: str = "normal", dest: str = "ops", size: int = 10, kind: str = "package") -> wire.Envelope:
    if prio == "sensitive":
        dest, kind = ("func.face" if dest == "ops" else dest), "sensitive"
    return wire.make(kind, dest, prio, b"x" * size, video_id="V1", image_id="I1")


def test_send_order_immediate_first_cached_only_when_allowed(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    sent = [env(p) for p in ["cached", "normal", "immediate", "cached", "normal", "immediate"]]
    for e in sent:
        assert ob.enqueue(e)
    first = ob.next_batch("ops", 10)
    assert [p.prio for p in first] == ["immediate", "immediate", "normal", "normal"]
    assert [p.id for p in first] == [sent[2].id, sent[5].id, sent[1].id, sent[4].id]
    assert ob.next_batch("ops", 10) == []  # all leased, cached not allowed
    cached = ob.next_batch("ops", 10, cached_limit=1)
    assert [p.id for p in cached] == [sent[0].id]  # oldest cached first
    assert wire.decode(cached[0].payload) == sent[0]


def test_ack_deletes_release_reoffers(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    es = [env("immediate") for _ in range(4)]
    ob.enqueue_many(es)
    batch = ob.next_batch("ops", 2)
    assert ob.ack([batch[0].id]) == 1
    ob.release([batch[1].id])
    again = ob.next_batch("ops", 10)
    assert [p.id for p in again] == [e.id for e in es[1:]]  # order kept after release
    assert ob.ack([p.id for p in again] + ["01ARZ3NDEKTSV4RRFFQ69G5FAV"]) == 3
    assert ob.pending() == (0, 0) and ob.used_bytes == 0
    assert ob.stats()["acked"] == 4


def test_destinations_are_separate(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ob.enqueue(env("normal"))
    ob.enqueue(env("sensitive", dest="func.face"))
    ob.enqueue(env("sensitive", dest="func.plate"))
    assert [p.dest for p in ob.next_batch("ops", 10)] == ["ops"]
    face = ob.next_batch("func.face", 10)
    assert [(p.dest, p.kind) for p in face] == [("func.face", "sensitive")]


def test_duplicate_id_is_stored_once(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    e = env()
    assert ob.enqueue(e).stored
    r = ob.enqueue(e)
    assert r.stored and r.duplicate
    assert ob.pending() == (1, ob.used_bytes)
    assert ob.enqueue_many([env(), env()])  # list is truthy; each result stored
    assert ob.pending()[0] == 3 and ob.stats()["duplicates"] == 1


def test_everything_survives_reopen_leases_do_not(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path)
    es = [env(p, size=100) for p in ["normal", "immediate", "cached"]]
    ob.enqueue_many(es)
    leased = ob.next_batch("ops", 10, cached_limit=5)
    assert len(leased) == 3
    used = ob.used_bytes
    ob.close()
    ob2 = Outbox(path)
    assert ob2.used_bytes == used
    assert {p.id for p in ob2.next_batch("ops", 10, cached_limit=5)} == {e.id for e in es}
    assert ob2.integrity_check() == "ok"


def test_wal_and_full_sync_are_in_effect(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    assert ob.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ob.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    ob2 = Outbox(tmp_path / "n.db", synchronous="normal")
    assert ob2.db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_damaged_file_is_reported_not_used(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxDamagedError, match="cannot open outbox|integrity"):
        Outbox(path)


def test_open_from_config_raises_what_is_not_damage(tmp_path: Path) -> None:
    """A file from a newer build is no damage: it is reported and left where it is."""
    from edged.config import OutboxConfig
    from edged.link.outbox import open_from_config

    cfg = OutboxConfig(path="ob.sqlite", budget_bytes=1 << 20)
    open_from_config(cfg, tmp_path).close()
    with sqlite3.connect(tmp_path / "ob.sqlite") as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(OutboxError, match="schema version 99") as raised:
        open_from_config(cfg, tmp_path)
    assert not isinstance(raised.value, OutboxDamagedError) and not list(tmp_path.glob("ob.sqlite.damaged-*"))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="budget_bytes"):
        Outbox(tmp_path / "o.db", budget_bytes=0)
    with pytest.raises(ValueError, match="synchronous"):
        Outbox(tmp_path / "o.db", synchronous="off")  # type: ignore[arg-type]


def test_open_from_config_moves_a_damaged_file_aside(tmp_path: Path) -> None:
    from edged.config import OutboxConfig
    from edged.link.outbox import open_from_config

    cfg = OutboxConfig(path="ob.sqlite", budget_bytes=1 << 20)
    ob = open_from_config(cfg, tmp_path)
    e = env()
    ob.enqueue(e)
    ob.close()
    assert open_from_config(cfg, tmp_path).ids() == [e.id]  # healthy file reopened as is
    (tmp_path / "ob.sqlite").write_bytes(b"garbage" * 1000)
    fresh = open_from_config(cfg, tmp_path)
    assert fresh.ids() == [] and fresh.integrity_check() == "ok"
    assert list(tmp_path.glob("ob.sqlite.damaged-*"))


def test_life_totals_balance_across_reopen(tmp_path: Path) -> None:
    """enqueued - acked - evicted == pending, from the file alone (what the fault trials check after SIGKILL)."""
    ob = Outbox(tmp_path / "o.db", budget_bytes=3_000)
    for _ in range(30):
        ob.enqueue(env())
    batch = ob.next_batch("ops", 5)
    ob.ack([p.id for p in batch])
    ob.close()
    again = Outbox(tmp_path / "o.db", budget_bytes=3_000)
    t = again.stats()["totals"]
    evicted = sum(v for k, v in t.items() if k.startswith("evicted_") and k[8:] in ("cached", "others", "sensitive"))
    assert t["enqueued"] == 30 and t["acked"] == 5 and evicted > 0
    assert t["enqueued"] - t["acked"] - evicted == again.pending()[0]
