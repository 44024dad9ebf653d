"""A damaged outbox file is salvaged row by row before it is set aside (a few bad pages must not drop
every pending message)."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from edged.config import OutboxConfig
from edged.link import wire
from edged.link.outbox import Outbox, open_from_config
from edged.link.outbox_salvage import salvage_outbox

PAGE_LEAF_TABLE, PAGE_OVERFLOW = 0x0D, 0x00


def fill(path: Path, n: int, key: SigningKey | None, seed: int = 1) -> dict[str, bytes]:
    """``n`` messages of 1-9 kB in every class; returns id -> the stored (signed) bytes."""
    rnd = random.Random(seed)
    ob = Outbox(path, budget_bytes=1 << 30, signing_key=key)
    envs = []
    for _ in range(n):
        prio = rnd.choice(["cached", "normal", "immediate", "sensitive"])
        body = os.urandom(rnd.randint(1_000, 9_000))
        if prio == "sensitive":
            envs.append(wire.make("sealed", "func.face", prio, body, video_id="V"))
        else:
            envs.append(wire.make("package", "ops", prio, body, video_id="V"))
    ob.enqueue_many(envs)
    stored = {p.id: p.payload for p in ob.next_batch("ops", n, cached_limit=n) + ob.next_batch("func.face", n)}
    assert len(stored) == n
    ob.close()
    return stored


def pages_of_type(path: Path, kinds: set[int]) -> list[int]:
    """Page numbers (from 2; page 1 holds the header) whose first byte is one of ``kinds``."""
    data = path.read_bytes()
    return [i // 4096 + 1 for i in range(4096, len(data), 4096) if data[i] in kinds]


def damage(path: Path, pages: list[int]) -> None:
    """Overwrite whole pages with random bytes, as a failing SD card might."""
    rnd = random.Random(7)
    with open(path, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * 4096)
            f.write(bytes(rnd.randrange(256) for _ in range(4096)))


def test_two_bad_pages_lose_only_their_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = SigningKey.generate()
    path = tmp_path / "ob.sqlite"
    stored = fill(path, 1500, key)
    leaves = pages_of_type(path, {PAGE_LEAF_TABLE})
    overflow = [p for p in pages_of_type(path, {PAGE_OVERFLOW}) if p not in leaves]
    damage(path, [leaves[len(leaves) // 2], overflow[len(overflow) // 3]])
    with caplog.at_level(logging.ERROR, "edged.link.outbox"):
        ob = open_from_config(OutboxConfig(path="ob.sqlite", budget_bytes=1 << 30), tmp_path, signing_key=key)
    kept = {p.id: p.payload for p in ob.next_batch("ops", 2000, cached_limit=2000) + ob.next_batch("func.face", 2000)}
    lost = set(stored) - set(kept)
    assert 1 <= len(lost) <= 12, f"{len(lost)} of {len(stored)} lost to two bad pages"
    assert all(stored[i] == kept[i] for i in kept), "salvaged rows are byte-identical (same signature)"
    assert ob.integrity_check() == "ok"
    lines = [r.getMessage() for r in caplog.records if "salvaged" in r.getMessage()]
    assert len(lines) == 1 and f"salvaged {len(kept)} message(s)" in lines[0], lines
    assert "unreadable" in lines[0] and "moved the file aside" in lines[0]
    assert list(tmp_path.glob("ob.sqlite.damaged-*")), "the damaged file is kept for inspection"
    assert ob.enqueue(wire.make("package", "ops", "normal", b"x", video_id="V")), "the new outbox works"


def test_rows_that_do_not_verify_are_not_salvaged(tmp_path: Path) -> None:
    """Bytes that read back but were altered (or signed by another key) are counted, not kept."""
    key = SigningKey.generate()
    path = tmp_path / "ob.sqlite"
    stored = fill(path, 40, key)
    assert len(salvage_outbox(path, wire.trusted_keys([key.verify_key])).payloads) == 40
    found = salvage_outbox(path, wire.trusted_keys([SigningKey.generate().verify_key]))
    assert found.payloads == [] and found.unreadable == len(stored)


def test_garbage_is_set_aside_and_a_fresh_outbox_starts(tmp_path: Path) -> None:
    (tmp_path / "ob.sqlite").write_bytes(b"garbage" * 1000)
    ob = open_from_config(OutboxConfig(path="ob.sqlite", budget_bytes=1 << 20), tmp_path)
    assert ob.ids() == [] and ob.integrity_check() == "ok"
