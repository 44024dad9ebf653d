"""Read what is still readable in a damaged outbox file, row by row, before it is set aside.

SQLite reads a table through a b-tree of pages; a bad page fails every read that passes through it,
and a plain ``SELECT`` stops at the first. Here the table is scanned in rowid order; where a read
fails the scan steps past the failing row (point lookups of the next row ids, guided by the row ids
the indexes still list) and resumes. Rows behind a bad leaf or overflow page are lost one by one;
rows behind a bad interior page are lost as a block, since nothing in SQL reaches them. A row whose
bytes come back but do not decode as an envelope (or, with the device's key, whose signature does not
verify) is counted as unreadable too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import VerifyKey

from edged.core.paths import PlantedLinkError, refuse_links
from edged.link.wire import WireError, decode

log = logging.getLogger(__name__)

PROBE_GAP = 4096
"""Row ids probed one by one past a failing read when no index lists what comes next."""


@dataclass(frozen=True, slots=True)
class Salvage:
    """What a damaged outbox file still held."""

    payloads: list[bytes]
    """Encoded envelopes that read back whole and decode, oldest first."""
    unreadable: int
    """Rows known to be stored (listed by an index, or failing to read) that could not be recovered."""
    counters: dict[str, int]
    """The persistent counters (eviction totals), where their table is readable."""


def salvage_outbox(path: str | Path, trusted: Mapping[str, VerifyKey] | None = None) -> Salvage:
    """Every readable, decodable row of the outbox at ``path`` (opened read-only as far as SQLite allows);
    nothing when a link sits where the file or SQLite's files beside it belong (SQLite would follow it)."""
    path = Path(path)
    try:
        refuse_links([path, *(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal"))])
    except PlantedLinkError as err:
        log.error("outbox salvage: %s", err)
        return Salvage([], 0, {})
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=1")
        listed = _listed_row_ids(conn)
        found, failed = _read_rows(conn, listed)
        counters = _counters(conn)
    except sqlite3.DatabaseError:  # not even the schema is readable
        return Salvage([], 0, {})
    finally:
        conn.close()
    payloads, undecodable = [], 0
    for seq in sorted(found):
        try:
            decode(found[seq], trusted)
        except WireError:
            undecodable += 1
            continue
        payloads.append(found[seq])
    lost = (listed - set(found)) if listed else failed
    return Salvage(payloads, len(lost) + undecodable, counters)


def _listed_row_ids(conn: sqlite3.Connection) -> set[int]:
    """Row ids named by the table's indexes, as far as each index can be read."""
    listed: set[int] = set()
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
        names = [r[0] for r in rows]
    except sqlite3.DatabaseError:
        return listed
    for name in names:
        try:  # every index holds the row id, so this reads the index alone
            for (seq,) in conn.execute(f'SELECT seq FROM messages INDEXED BY "{name}"'):
                listed.add(seq)
        except sqlite3.DatabaseError:
            continue
    return listed


def _read_rows(conn: sqlite3.Connection, listed: set[int]) -> tuple[dict[int, bytes], set[int]]:
    """Scan the table in row id order, stepping past rows that fail; returns (payloads, failed ids)."""
    found: dict[int, bytes] = {}
    failed: set[int] = set()
    last = 0
    while True:
        last, finished = _scan_from(conn, last, found)
        if finished:
            break
        resume = _step_past(conn, last, listed, found, failed)
        if resume is None:
            break
        last = resume
    for seq in sorted(listed - set(found) - failed):  # listed rows the scan did not reach
        _lookup(conn, seq, found, failed)
    return found, failed


def _scan_from(conn: sqlite3.Connection, after: int, found: dict[int, bytes]) -> tuple[int, bool]:
    """Read rows with row id > ``after`` until the end (True) or the first failure (False)."""
    last = after
    try:
        for seq, payload in conn.execute("SELECT seq, payload FROM messages WHERE seq > ? ORDER BY seq", (after,)):
            found[seq] = bytes(payload)
            last = seq
    except sqlite3.DatabaseError:
        return last, False
    return last, True


def _step_past(
    conn: sqlite3.Connection, last: int, listed: set[int], found: dict[int, bytes], failed: set[int]
) -> int | None:
    """The row id to resume the scan after, past the failing rows following ``last`` (None: give up)."""
    candidates: Iterable[int] = sorted(s for s in listed if s > last) or range(last + 1, last + 1 + PROBE_GAP)
    for seq in candidates:
        if _lookup(conn, seq, found, failed) is not False:
            return seq
    return None


def _lookup(conn: sqlite3.Connection, seq: int, found: dict[int, bytes], failed: set[int]) -> bool | None:
    """Read one row: True (read), None (not stored) or False (the read failed)."""
    try:
        row = conn.execute("SELECT payload FROM messages WHERE seq = ?", (seq,)).fetchone()
    except sqlite3.DatabaseError:
        failed.add(seq)
        return False
    if row is None:
        return None
    found[seq] = bytes(row[0])
    return True


def _counters(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters")}
    except (sqlite3.DatabaseError, TypeError, ValueError):
        return {}
