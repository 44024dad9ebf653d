"""A full disk never raises, never corrupts, never loses what is stored (SQLITE_FULL for real)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged import wire
from edged.outbox import Outbox


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


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the max_page_count test covers SQLITE_FULL)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_enospc_on_a_full_filesystem(small_tmpfs: Path) -> None:
    path = small_tmpfs / "o.db"
    ob = Outbox(path, budget_bytes=1 << 30, reserve_bytes=256 << 10)  # budget far above the 2 MB disk
    assert (small_tmpfs / "o.db.reserve").stat().st_size == 256 << 10
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
