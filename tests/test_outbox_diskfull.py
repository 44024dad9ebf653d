"""A full disk never raises, never corrupts, never loses what is stored (SQLITE_FULL for real)."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.link import wire
from edged.link.outbox import EVICT_CLASS, EVICT_RANK, Outbox
from tools.bench.fault_inject import MountError, tmpfs


def make(prio: str, size: int) -> wire.Envelope:
    return wire.make("package", "ops", prio, os.urandom(size), video_id="V")


def fill_until_full(ob: Outbox, size: int, limit: int) -> tuple[list[str], int]:
    """Enqueue until the disk is full at least once; returns (ids reported stored, attempts)."""
    stored: list[str] = []
    for i in range(limit):
        e = make("cached" if i % 3 else "normal", size)
        r = ob.enqueue(e)  # must never raise
        if r:
            stored.append(e.id)
        s = ob.stats()
        if s["failed"]["disk_full"] or s["evicted_total"].get("evicted_disk_full"):
            return stored, i + 1
    raise AssertionError(f"the disk never filled in {limit} messages")


def check_consistent(ob: Outbox, stored: list[str]) -> None:
    present = ob.ids()
    gone = sum(ob.stats()["evicted"].values()) + ob.stats()["acked"]
    assert set(present) <= set(stored), "something not reported stored is in the outbox"
    assert len(stored) - len(present) == gone, "a message vanished without being counted as evicted or acked"
    assert ob.integrity_check() == "ok"


def test_max_page_count_full_evicts_by_policy_then_reports_failure(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", budget_bytes=1 << 30)
    pages = ob.db.execute("PRAGMA page_count").fetchone()[0]
    ob.db.execute(f"PRAGMA max_page_count = {pages + 64}")  # ~256 kB more, for real
    stored, _ = fill_until_full(ob, 3000, 500)
    s = ob.stats()
    assert s["evicted_total"]["evicted_disk_full"] >= 1 and s["evicted"]["cached"] >= 1
    check_consistent(ob, stored)
    # a message that cannot fit even with everything else evicted: refused, nothing lost
    before = ob.ids()
    r = ob.enqueue(make("immediate", 400_000))
    assert not r and r.error == "disk full"
    assert ob.ids() == before
    assert ob.stats()["failed"]["disk_full"] == 1 and "disk full" in ob.stats()["last_error"]
    # acking still works and makes room again
    batch = ob.next_batch("ops", 10, cached_limit=10)
    assert ob.ack([p.id for p in batch]) == len(batch)
    assert ob.enqueue(make("immediate", 3000))
    check_consistent(ob, stored + ob.ids()[-1:])
    ob.close()
    assert Outbox(tmp_path / "o.db").integrity_check() == "ok"


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` (e.g. ``2m``) at ``where``; skips the test where mounting is not allowed
    (the max_page_count test covers SQLITE_FULL there)."""
    try:
        with tmpfs(where, size) as mnt:
            yield mnt
    except MountError as err:
        pytest.skip(str(err))


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "mnt", "2m") as mnt:
        yield mnt


def fill_disk(folder: Path, leave: int) -> Path:
    """Another writer (local frames, logs) takes all but ``leave`` bytes of the disk."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_real_enospc_on_a_full_filesystem(small_tmpfs: Path) -> None:
    path = small_tmpfs / "o.db"
    ob = Outbox(path, budget_bytes=1 << 30, reserve_bytes=256 << 10)  # budget far above the 2 MB disk
    reserve = (small_tmpfs / "o.db.reserve").stat().st_size
    assert 64 << 10 <= reserve <= 256 << 10
    assert ob.budget_bytes < 2 << 20, "the budget is sized to the disk"
    fill_disk(small_tmpfs, 300 << 10)  # then the disk fills under the outbox's feet
    stored, attempts = fill_until_full(ob, 20_000, 300)
    assert attempts < 300
    # keep writing into the full disk: every call returns, none raises; the ring shrinks to the disk
    results = []
    for _ in range(30):
        e = make("normal", 20_000)
        r = ob.enqueue(e)
        results.append(r)
        if r:
            stored.append(e.id)
        else:
            assert r.error == "disk full"
    s = ob.stats()
    assert sum(map(bool, results)) >= 20, [r.error for r in results if not r]
    assert s["evicted_total"]["evicted_disk_full"] > 0 and s["reserve_used"] >= 1
    check_consistent(ob, stored)
    # acks still work on the full disk
    batch = ob.next_batch("ops", 5)
    assert ob.ack([p.id for p in batch]) == len(batch) > 0
    check_consistent(ob, stored)
    ob.close()
    again = Outbox(path, reserve_bytes=256 << 10)
    assert again.integrity_check() == "ok"
    assert set(again.ids()) <= set(stored)
    again.close()


def mixed_traffic(n: int, seed: int) -> Iterator[wire.Envelope]:
    """Stats, images and sealed records, 2-60 kB, in every priority class."""
    rnd = random.Random(seed)
    for _ in range(n):
        prio = rnd.choice(["cached", "normal", "sensitive", "immediate"])
        body = os.urandom(rnd.choice([2_000, 20_000, 60_000]))
        if prio == "sensitive":
            yield wire.make("sealed", "func.face", prio, body, video_id="V")
        else:
            yield wire.make("package", "ops", prio, body, video_id="V")


@pytest.mark.parametrize("size", ["1m", "3m", "12m"])
def test_the_eviction_policy_holds_on_any_disk_size(tmp_path: Path, size: str, caplog: pytest.LogCaptureFixture) -> None:
    """The default config (1 GiB budget, 8 MiB reserve) on disks far smaller: nothing is refused, the
    oldest messages of the lowest class go first, and a few log lines tell it (not one line per eviction)."""
    with mounted_tmpfs(tmp_path / "mnt", size) as mnt, caplog.at_level(logging.WARNING, "edged.link.outbox"):
        ob = Outbox(mnt / "o.db")
        assert (mnt / "o.db.reserve").exists(), "a reserve sized to the disk"
        stored: dict[str, list[str]] = {"cached": [], "others": [], "sensitive": []}
        refused = 0
        for env in mixed_traffic(800, seed=int(size[:-1])):
            r = ob.enqueue(env)
            refused += not r
            if r:
                stored[EVICT_CLASS[EVICT_RANK[env.prio]]].append(env.id)
        s = ob.stats()
        assert refused == 0, s["last_error"]
        assert s["evicted"].get("cached", 0) > 0 and s["evicted"].get("others", 0) > 0
        present = set(ob.ids())
        for cls, ids in stored.items():  # within a class the survivors are the newest (oldest evicted first)
            kept = [i for i in ids if i in present]
            assert kept == ids[len(ids) - len(kept):], cls
        check_consistent(ob, [i for ids in stored.values() for i in ids])
        ob.close()
    lines = [r for r in caplog.records if r.name == "edged.link.outbox"]
    assert 1 <= len(lines) <= 12, [r.getMessage() for r in lines]
    assert sum(s["evicted"].values()) > 10 * len(lines), "evictions are summarised, not logged one by one"


def test_an_ack_that_cannot_be_saved_is_not_sent_again(small_tmpfs: Path) -> None:
    """Other files fill the disk and the delete of an ack fails: the message is not offered again (it
    was delivered: sending it again would make a duplicate), and the delete succeeds later."""
    ob = Outbox(small_tmpfs / "o.db", reserve_bytes=0)
    sent = [make("normal", 20_000) for _ in range(5)]
    assert all(ob.enqueue_many(sent))
    ob._checkpoint()
    filler = fill_disk(small_tmpfs, 0)
    batch = ob.next_batch("ops", 2)
    full = ob.ack([p.id for p in batch])
    if full:  # SQLite found room in the WAL after all: nothing to show on this file system
        pytest.skip("the ack fitted into the existing WAL")
    assert ob.stats()["ack_failed"] == 2 and ob.stats()["acked_unsaved"] == 2
    again = ob.next_batch("ops", 10)
    assert {p.id for p in again}.isdisjoint(p.id for p in batch), "a delivered message is not sent again"
    filler.unlink()
    assert ob.ack([again[0].id]) == 2 + 1, "the unsaved deletes go with the next ack"
    assert ob.stats()["acked_unsaved"] == 0 and ob.pending()[0] == 2
    ob.close()
