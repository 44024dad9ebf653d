"""Persistent outbox: a bounded ring of outgoing envelopes in SQLite.

Every outgoing message is stored here before it is sent and deleted only when its receiver
acknowledged it (:meth:`Outbox.ack` on MQTT PUBACK). Delivery is at least once; the envelope's
message id lets receivers de-duplicate.

Durability (fsync policy)
    The database runs in WAL mode. With ``synchronous="full"`` (the default) every commit fsyncs
    the WAL before it returns: a message whose :meth:`Outbox.enqueue` returned ``stored`` survives
    SIGKILL *and* power loss. :meth:`Outbox.enqueue_many` and :meth:`Outbox.ack` commit a whole
    batch in one transaction, i.e. one fsync per batch; each message of the batch is durable when the
    call returns, none before. ``synchronous="normal"`` syncs only at WAL checkpoints: it survives
    SIGKILL (the OS has the data) but the last commits before a power cut may be lost; the file is
    never corrupted in either mode.

Send order (per destination)
    ``immediate`` first, then ``sensitive``, then ``normal``, each oldest first; ``cached`` items
    are handed out only as many as the caller allows (its rate policy, see
    :meth:`Outbox.next_batch`), oldest first.

Ring budget and eviction
    The stored size of a message is its envelope bytes plus :data:`ROW_OVERHEAD` (keys and index
    entries). When storing a new message would exceed ``budget_bytes``, older messages are evicted
    in the same transaction: oldest ``cached`` first, then oldest ``immediate``/``normal`` (any
    destination), and ``sensitive`` records last. A message larger than the whole budget is refused.
    The ``counters`` table keeps totals over the file's life, written in the same transactions as
    the rows they count: ``enqueued``, ``acked``, ``salvaged`` and ``evicted_*`` (``evicted_in_flight``:
    evicted while sent and not yet acknowledged, so possibly delivered), so after any crash
    ``enqueued + salvaged - acked - evicted == pending`` can be checked (``stats()["totals"]``).
    Every eviction is counted per class (persistently, in the ``counters`` table), shown by
    :meth:`Outbox.stats` and logged at a bounded rate (the first at once, then a line a minute with
    counts). The file on disk is larger than the budget by SQLite's page slack and the WAL
    (checkpointed at half the reserve) and the reserve file; freed pages are reused.

Sized to the disk
    At open the outbox measures the room it can use (free space plus its own files). The reserve is
    ``reserve_bytes`` but at most an eighth of that room (at least 64 KiB), and the budget is capped
    to 80 % of what is left after the reserve and the WAL, so on a disk smaller than the configured
    budget the budget still decides evictions and nothing is refused (measured from 1 MiB up,
    ``tests/test_outbox_diskfull.py``). When other files fill the disk later, the full-disk path
    below takes over.

Full disk
    SQLite reports a full disk (ENOSPC, or ``max_page_count`` reached) as SQLITE_FULL. The
    transaction is rolled back, so nothing already stored is lost and the file stays consistent.
    The outbox then deletes its *reserve file* (``<path>.reserve``, ``reserve_bytes`` preallocated
    at open), checkpoints the WAL into the database with TRUNCATE (the WAL is kept below half the
    reserve by ``wal_autocheckpoint`` and ``journal_size_limit``, so this fits in the freed space
    and returns the WAL's space to the file system), makes room by the same eviction policy
    (counted as ``disk_full`` evictions), tries once more, checkpoints again and re-creates the
    reserve. The ring
    thus shrinks to the disk it actually has. If the retry fails too, :meth:`Outbox.enqueue`
    returns a result with ``stored=False`` and the reason, counts it in ``enqueue_failed``, and
    logs it (bounded rate). An :meth:`Outbox.ack` that hits a full disk uses the reserve the same
    way. Nothing raises for a full disk. Freed pages are zeroed only where SQLite writes them anyway
    (``secure_delete=FAST``): fully zeroing them would make every eviction write its victims again.

Signing
    With the device's signing key (``signing_key``, the daemon passes ``privacy.signing_key``)
    every envelope is signed as it is stored (:func:`edged.link.wire.encode`): a row holds the signed
    bytes, so what is sent, and sent again after a restart, is byte-identical. Without a key rows
    are unsigned, which receivers that verify (``edged_platform.receiver --device-key``) drop.

Files
    The database, its WAL and shared-memory files and the reserve file are private (0600); the
    folder is made 0700 when the outbox creates it. A symbolic link where one of them belongs is
    refused (:class:`OutboxError` at open, naming it; a logged warning for the reserve later), never
    followed: SQLite itself would follow a link to the database and keep its files beside the target.

Threads
    One connection, guarded by a lock: safe to call from several threads (the daemon runs the
    blocking calls in an executor). All methods are synchronous.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

from nacl.signing import SigningKey

from edged.core.lograte import BoundedLog
from edged.core.paths import PlantedLinkError, open_private, private_dir, refuse_links
from edged.link.outbox_salvage import salvage_outbox
from edged.link.wire import Envelope, Kind, Priority, as_kind, as_priority, decode, encode, trusted_keys

log = logging.getLogger(__name__)

ROW_OVERHEAD = 128
"""Bytes charged per stored message on top of its envelope: row header, the id and index entries."""

LOG_PERIOD_S = 60.0
"""Each kind of eviction, refusal or disk trouble is logged at once, then summarised at most once a
minute with counts (every one is counted in :meth:`Outbox.stats` too)."""

MIN_RESERVE_BYTES = 64 << 10
"""The smallest reserve file: 16 pages of 4 KiB, room to checkpoint and evict on a tiny disk."""
RESERVE_SHARE_OF_DISK = 1 / 8
"""The reserve takes at most this share of the space the outbox can use (``reserve_bytes`` caps it)."""
WAL_INDEX_BYTES = 32 << 10
"""The ``-shm`` file SQLite keeps beside a WAL database (32 KiB for a WAL of up to 4000 pages)."""
BUDGET_SHARE_OF_DISK = 0.8
"""The ring budget is capped to this share of what is left for it after the reserve and the WAL, so
the budget, not the disk, decides evictions (page slack and other files get the rest)."""



class SendRank(IntEnum):
    """Column ``send_rank``: lower goes first; cached items are released separately, at the caller's rate."""

    IMMEDIATE = 0
    SENSITIVE = 1
    NORMAL = 2
    CACHED = 3


class EvictRank(IntEnum):
    """Column ``evict_rank``: lower is evicted first (then oldest first within a rank)."""

    CACHED = 0
    OTHERS = 1
    SENSITIVE = 2


SEND_RANK: dict[Priority, SendRank] = {Priority.IMMEDIATE: SendRank.IMMEDIATE, Priority.SENSITIVE: SendRank.SENSITIVE,
                                       Priority.NORMAL: SendRank.NORMAL, Priority.CACHED: SendRank.CACHED}
"""Each priority's send rank."""
EVICT_RANK: dict[Priority, EvictRank] = {Priority.CACHED: EvictRank.CACHED, Priority.NORMAL: EvictRank.OTHERS,
                                         Priority.IMMEDIATE: EvictRank.OTHERS, Priority.SENSITIVE: EvictRank.SENSITIVE}
"""Each priority's eviction rank."""
EVICT_CLASS: dict[int, str] = {int(r): r.name.lower() for r in EvictRank}
"""Eviction rank -> the class name the figures count it under."""
assert set(SEND_RANK) == set(Priority) == set(EVICT_RANK)

_SCHEMA_USER_VERSION = 1
_SCHEMA = (
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        dest TEXT NOT NULL,
        prio TEXT NOT NULL,
        kind TEXT NOT NULL,
        send_rank INTEGER NOT NULL,
        evict_rank INTEGER NOT NULL,
        video_id TEXT,
        image_id TEXT,
        created REAL,
        size INTEGER NOT NULL,
        payload BLOB NOT NULL
    )""",
    "CREATE UNIQUE INDEX idx_messages_id ON messages (id)",
    "CREATE INDEX idx_messages_dest_send_rank_seq ON messages (dest, send_rank, seq)",
    "CREATE INDEX idx_messages_evict_rank_seq ON messages (evict_rank, seq)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)",
)
"""Version 1 of the file (``PRAGMA user_version``); the names are those of the files already in the field."""


class OutboxError(RuntimeError):
    """The outbox file cannot be opened or used (not raised for a full disk)."""


class OutboxDamagedError(OutboxError):
    """The outbox file is not a database, is malformed or failed its integrity check (salvageable)."""


DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
"""SQLite's primary result codes for a damaged file or one that is not a database."""


def _open_error(err: sqlite3.DatabaseError | OSError) -> type[OutboxError]:
    """The error an outbox that failed to open raises: damaged (by SQLite's result code) or not."""
    code = getattr(err, "sqlite_errorcode", None)
    return OutboxDamagedError if isinstance(code, int) and code & 0xFF in DAMAGE_CODES else OutboxError


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """What :meth:`Outbox.enqueue` did. Truthy when the message is stored."""

    stored: bool
    evicted: int = 0
    """Messages evicted to make room for this one."""
    duplicate: bool = False
    """A message with this id was already stored (nothing changed; ``stored`` is True)."""
    error: str | None = None
    """Why it was not stored: ``disk full``, ``larger than the budget`` or the SQLite error."""

    def __bool__(self) -> bool:
        return self.stored


@dataclass(frozen=True, slots=True)
class Pending:
    """A stored message handed to the uplink by :meth:`Outbox.next_batch`."""

    id: str
    dest: str
    prio: Priority
    kind: Kind | str
    payload: bytes
    """The encoded envelope: send these bytes as they are."""


@dataclass
class _Counters:
    enqueued: int = 0
    duplicates: int = 0
    acked: int = 0
    enqueue_failed: int = 0
    failed_disk_full: int = 0
    failed_too_large: int = 0
    failed_other: int = 0
    ack_failed: int = 0
    reserve_used: int = 0
    last_error: str | None = None
    evicted: dict[str, int] = field(default_factory=dict)
    evicted_bytes: dict[str, int] = field(default_factory=dict)


class Outbox:
    """SQLite-backed bounded ring of outgoing envelopes (see the module docstring for the policy)."""

    def __init__(
        self,
        path: str | Path,
        *,
        budget_bytes: int = 1 << 30,
        synchronous: Literal["full", "normal"] = "full",
        check_on_open: bool = True,
        busy_timeout_ms: int = 5000,
        reserve_bytes: int = 8 << 20,
        signing_key: SigningKey | None = None,
    ) -> None:
        if budget_bytes < 1:
            raise ValueError(f"budget_bytes must be >= 1, got {budget_bytes}")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        self.path = Path(path)
        self.budget_bytes = int(budget_bytes)
        self.synchronous = synchronous
        self.signing_key = signing_key
        """The device key each stored envelope is signed with (``None``: stored unsigned)."""
        self._lock = threading.RLock()
        self.closed = False
        """Set by :meth:`close`."""
        self._leased: set[str] = set()
        self._unsaved_acks: set[str] = set()
        """Delivered messages whose delete failed (full disk): never offered again, deleted later."""
        self._c = _Counters()
        self._events = BoundedLog(log, LOG_PERIOD_S)
        self._reserve = Path(f"{self.path}.reserve")
        try:
            self._prepare_files()
            self._open(busy_timeout_ms, check_on_open)
        except (sqlite3.DatabaseError, OSError) as err:
            raise _open_error(err)(f"cannot open outbox {self.path}: {err}") from None
        self._used = int(self._q1("SELECT coalesce(sum(size), 0) FROM messages"))
        self.configured_budget_bytes = self.budget_bytes
        self.configured_reserve_bytes = int(reserve_bytes)
        self._fit_to_disk()

    def _fit_to_disk(self) -> None:
        """Size the reserve and the budget to the space this outbox can use, and set the WAL limits."""
        room = _disk_room(self.path, self._reserve)
        page = int(self._q1("PRAGMA page_size"))
        self.reserve_bytes = reserve_for_disk(self.configured_reserve_bytes, room, page)
        if self.reserve_bytes > 0:
            # keep the WAL within half the reserve, so a checkpoint on a full disk always has room
            self._conn.execute(f"PRAGMA wal_autocheckpoint={max(16, self.reserve_bytes // 2 // page)}")
            self._conn.execute(f"PRAGMA journal_size_limit={self.reserve_bytes // 2}")
        if _size(self._reserve) > self.reserve_bytes:
            fd = open_private(self._reserve, os.O_WRONLY)
            try:
                os.ftruncate(fd, self.reserve_bytes)
            finally:
                os.close(fd)
        self._ensure_reserve()
        if room is None:
            return
        self.budget_bytes = budget_for_disk(self.configured_budget_bytes, room, self.reserve_bytes)
        if self.budget_bytes < self.configured_budget_bytes:
            log.warning(
                "outbox: %s has room for %d bytes (free space plus its own files): ring budget %d bytes "
                "instead of the configured %d, reserve %d bytes; the oldest messages are evicted by policy within it",
                self.path.parent, room, self.budget_bytes, self.configured_budget_bytes, self.reserve_bytes,
            )

    # ------------------------------------------------------------------ open / schema
    def _files(self) -> list[Path]:
        """The database and every file SQLite or the outbox keeps beside it."""
        return [self.path, *(Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm", "-journal")), self._reserve]

    def _prepare_files(self) -> None:
        """Refuse links where the outbox's files belong; create the database private, make older
        files private."""
        private_dir(self.path.parent, configured=True)
        refuse_links(self._files())
        for path in self._files():
            try:
                fd = open_private(path, os.O_RDWR | (os.O_CREAT if path == self.path else 0))
            except FileNotFoundError:
                continue
            os.close(fd)

    def _open(self, busy_timeout_ms: int, check: bool) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"outbox {self.path}: WAL mode not available (got {mode})")
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        # Debian's SQLite zeroes every freed page (secure_delete=ON): an eviction would then write its
        # victims' bytes again, and the WAL outgrow the reserve. FAST zeroes only pages written anyway;
        # what is deleted is de-identified or sealed, so nothing in the clear is left behind.
        conn.execute("PRAGMA secure_delete=FAST")
        if check:
            result = conn.execute("PRAGMA quick_check(5)").fetchone()[0]
            if result != "ok":
                conn.close()
                raise OutboxDamagedError(f"outbox {self.path} failed its integrity check: {_first_problems(result)}")
        self._conn = conn
        self.db = conn
        """The SQLite connection (for tools and tests; the outbox's own calls hold ``_lock``)."""
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone() is None:
            with self._tx():
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={_SCHEMA_USER_VERSION}")
        version = self._q1("PRAGMA user_version")
        if version != _SCHEMA_USER_VERSION:
            raise OutboxError(f"outbox {self.path}: schema version {version}, this build knows {_SCHEMA_USER_VERSION}")

    def close(self) -> None:
        """Checkpoint the WAL and close the file; later calls of :meth:`ack` are refused and counted."""
        with self._lock:
            self.closed = True
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as err:  # a full disk must not stop a shutdown
                log.warning("outbox: checkpoint at close failed: %s", err)
            self._conn.close()
            self._events.flush()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing
    def enqueue(self, env: Envelope) -> EnqueueResult:
        """Store one message durably (per the fsync policy) before it is sent.

        Never raises for a storage problem (full disk, SQLite error): the result says why it was not
        stored. An invalid envelope raises :class:`edged.link.wire.WireError` (a caller's bug).
        """
        return self.enqueue_many([env])[0]

    def enqueue_many(self, envs: Sequence[Envelope]) -> list[EnqueueResult]:
        """Store several messages in one transaction (one fsync). Each result says what happened.

        If the batch cannot be stored as a whole because the disk is full, the messages are stored
        one by one so that as many as fit get in.
        """
        with self._lock:
            return self._store_batch([(env, encode(env, self.signing_key)) for env in envs], "enqueued")

    def store_salvaged(self, payloads: Sequence[bytes]) -> int:
        """Store already encoded envelopes as they are (salvaged from a damaged file), in one
        transaction as :meth:`enqueue_many` does; returns how many were stored."""
        items = [(decode(p), bytes(p)) for p in payloads]
        with self._lock:
            return sum(r.stored and not r.duplicate for r in self._store_batch(items, "salvaged"))

    def _store_batch(self, items: list[tuple[Envelope, bytes]], counted: str) -> list[EnqueueResult]:
        """Store encoded envelopes in one transaction, else one by one on a full disk (lock held)."""
        results: dict[int, EnqueueResult] = {}
        rows: list[tuple[Envelope, bytes, int]] = []
        index: list[int] = []
        for i, (env, payload) in enumerate(items):
            size = len(payload) + ROW_OVERHEAD
            if size > self.budget_bytes:
                reason = f"larger than the budget ({size} > {self.budget_bytes} bytes)"
                results[i] = self._fail(env, reason, "failed_too_large")
            else:
                rows.append((env, payload, size))
                index.append(i)
        if rows:
            try:
                results.update(zip(index, self._store(rows, counted), strict=True))
            except _DiskFull:
                if len(rows) == 1:
                    results[index[0]] = self._fail(rows[0][0], "disk full", "failed_disk_full")
                else:
                    for i, row in zip(index, rows, strict=True):  # store as many as fit, one by one
                        try:
                            results[i] = self._store([row], counted)[0]
                        except _DiskFull:
                            results[i] = self._fail(row[0], "disk full", "failed_disk_full")
        return [results[i] for i in range(len(items))]

    def _store(self, rows: list[tuple[Envelope, bytes, int]], counted: str = "enqueued") -> list[EnqueueResult]:
        """Store rows in one transaction; on a full disk evict by policy and retry once (else _DiskFull).

        ``counted`` names the persistent counter the stored rows add to (``enqueued`` or ``salvaged``).
        """
        try:
            return self._store_once(rows, extra_room=0, counted=counted)
        except sqlite3.Error as err:
            if not _is_full(err):
                msg = f"sqlite error: {err}"
                return [self._fail(env, msg, "failed_other") for env, _, _ in rows]
        # Disk full: free the reserve file (room for the WAL), make room by policy (as if the budget
        # were smaller), try once more, then checkpoint so the WAL's space returns and re-reserve.
        need = sum(size for _, _, size in rows) + 16 * int(self._q1("PRAGMA page_size"))
        had_reserve = self._drop_reserve()
        self._events.warning("disk_full", f"outbox: disk full storing {len(rows)} message(s) ({need} bytes); "
                             f"{'released the reserve file, ' if had_reserve else ''}evicting by policy and retrying")
        self._checkpoint()  # empty the WAL first: the retry then writes into its freed space
        try:
            results = self._store_once(rows, extra_room=need, reason="disk_full", counted=counted)
        except sqlite3.Error as err:
            if _is_full(err):
                raise _DiskFull from None
            msg = f"sqlite error: {err}"
            return [self._fail(env, msg, "failed_other") for env, _, _ in rows]
        self._after_disk_full()
        return results

    # ------------------------------------------------------------------ disk-full reserve
    def _ensure_reserve(self) -> bool:
        """Make sure the reserve file holds ``reserve_bytes`` of disk space (False if no space)."""
        if self.reserve_bytes <= 0:
            return True
        if _size(self._reserve) >= self.reserve_bytes and not self._reserve.is_symlink():
            return True
        try:
            fd = open_private(self._reserve, os.O_WRONLY | os.O_CREAT)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)
                os.fsync(fd)
            finally:
                os.close(fd)
            return True
        except OSError as err:
            if not isinstance(err, PlantedLinkError):
                self._reserve.unlink(missing_ok=True)
            self._events.warning("reserve", f"outbox: cannot reserve {self.reserve_bytes} bytes beside {self.path}: "
                                            f"{err.strerror}")
            return False

    def _drop_reserve(self) -> bool:
        try:
            self._reserve.unlink()
            self._c.reserve_used += 1
            return True
        except FileNotFoundError:
            return False

    def _after_disk_full(self) -> None:
        """Checkpoint (truncating the WAL returns its space to the file system), then re-reserve."""
        self._checkpoint()
        self._ensure_reserve()

    def _checkpoint(self) -> bool:
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return busy == 0
        except sqlite3.OperationalError as err:
            self._events.warning("checkpoint", f"outbox: checkpoint failed: {err}")
            return False

    def _count_evictions(self, ids: list[str], by_class: dict[str, tuple[int, int]], disk_full: int | None,
                         evicted_now: dict[str, tuple[int, int]], counters_delta: dict[str, int]) -> None:
        """Add one eviction's messages to this batch's figures (``disk_full``: how many a full disk forced)."""
        in_flight = sum(i in self._leased or i in self._unsaved_acks for i in ids)  # may have arrived
        if in_flight:
            counters_delta["evicted_in_flight"] = counters_delta.get("evicted_in_flight", 0) + in_flight
        for cls, (n, b) in by_class.items():
            on, ob = evicted_now.get(cls, (0, 0))
            evicted_now[cls] = (on + n, ob + b)
            counters_delta[f"evicted_{cls}"] = counters_delta.get(f"evicted_{cls}", 0) + n
            counters_delta[f"evicted_bytes_{cls}"] = counters_delta.get(f"evicted_bytes_{cls}", 0) + b
        if disk_full is not None:
            counters_delta["evicted_disk_full"] = counters_delta.get("evicted_disk_full", 0) + disk_full

    def _store_once(self, rows: list[tuple[Envelope, bytes, int]], extra_room: int, reason: str = "budget",
                    counted: str = "enqueued") -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        added_bytes = 0
        evicted_now: dict[str, tuple[int, int]] = {}
        counters_delta: dict[str, int] = {}
        used = self._used
        dropped_leases: list[str] = []
        new_ids: set[str] = set()
        with self._tx():
            for env, payload, size in rows:
                if env.id in new_ids or self._q1("SELECT 1 FROM messages WHERE id = ?", [env.id]):
                    results.append(EnqueueResult(stored=True, duplicate=True))
                    continue
                room_needed = used + size - self.budget_bytes
                if extra_room:  # disk full: free this much on top of the budget's needs
                    room_needed = max(room_needed, 0) + extra_room
                n_evicted = 0
                if room_needed > 0:
                    n_evicted, freed, by_class, ids = self._evict(room_needed)
                    used -= freed
                    dropped_leases += ids
                    self._count_evictions(ids, by_class, n_evicted if reason == "disk_full" else None,
                                          evicted_now, counters_delta)
                    extra_room = 0  # the retry's extra room is needed once per batch
                self._conn.execute(
                    "INSERT INTO messages"
                    " (id, dest, prio, kind, send_rank, evict_rank, video_id, image_id, created, size, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (env.id, env.dest, env.prio, env.kind, int(SEND_RANK[env.prio]), int(EVICT_RANK[env.prio]),
                     env.video_id, env.image_id, env.created, size, payload),
                )
                new_ids.add(env.id)
                counters_delta[counted] = counters_delta.get(counted, 0) + 1
                used += size
                added_bytes += size
                results.append(EnqueueResult(stored=True, evicted=n_evicted))
            for name, delta in counters_delta.items():
                self._conn.execute(
                    "INSERT INTO counters (name, value) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    (name, delta),
                )
        # committed: only now update the in-memory view
        self._used = used
        self._leased.difference_update(dropped_leases)
        self._unsaved_acks.difference_update(dropped_leases)
        for r in results:
            if r.duplicate:
                self._c.duplicates += 1
            elif r.stored:
                self._c.enqueued += 1
        for cls, (n, b) in evicted_now.items():
            self._c.evicted[cls] = self._c.evicted.get(cls, 0) + n
            self._c.evicted_bytes[cls] = self._c.evicted_bytes.get(cls, 0) + b
        if evicted_now:
            now = ", ".join(f"{n} {cls}" for cls, (n, _) in sorted(evicted_now.items()))
            total = ", ".join(f"{n} {cls}" for cls, n in sorted(self._c.evicted.items()))
            self._events.warning(
                f"evicted_{reason}",
                f"outbox: evicted {now} message(s), oldest first by policy ({reason}; budget {self.budget_bytes} "
                f"bytes, used {self._used}); evicted this run: {total}",
            )
        return results

    def _evict(self, need: int) -> tuple[int, int, dict[str, tuple[int, int]], list[str]]:
        """Delete messages by policy until ``need`` bytes are freed (inside the caller's transaction)."""
        freed, count = 0, 0
        by_class: dict[str, tuple[int, int]] = {}
        ids: list[str] = []
        cursor = self._conn.execute("SELECT seq, id, size, evict_rank FROM messages ORDER BY evict_rank, seq")
        victims = []
        for seq, msg_id, size, rank in cursor:
            if freed >= need:
                break
            victims.append((seq,))
            ids.append(msg_id)
            freed += size
            count += 1
            cls = EVICT_CLASS[rank]
            n, b = by_class.get(cls, (0, 0))
            by_class[cls] = (n + 1, b + size)
        cursor.close()
        self._conn.executemany("DELETE FROM messages WHERE seq = ?", victims)
        return count, freed, by_class, ids

    def _fail(self, env: Envelope, reason: str, counter: str) -> EnqueueResult:
        self._c.enqueue_failed += 1
        setattr(self._c, counter, getattr(self._c, counter) + 1)
        self._c.last_error = f"message {env.id} ({env.kind} to {env.dest}) not stored: {reason}"
        self._events.error(counter, f"outbox: {self._c.last_error}")
        return EnqueueResult(stored=False, error=reason)

    # ------------------------------------------------------------------ sending
    def next_batch(self, dest: str, limit: int, *, cached_limit: int = 0) -> list[Pending]:
        """Up to ``limit`` stored messages for ``dest`` that are not already handed out, in send order.

        At most ``cached_limit`` of them are ``cached`` items (the caller's rate policy decides how
        many may go now); they come after every other class. Returned messages are *leased*: later
        calls skip them until :meth:`ack` deletes them or :meth:`release` hands them back (call it
        when the connection drops). Leases live in memory only: after a restart everything stored is
        sent again.
        """
        if limit <= 0:
            return []
        with self._lock:
            skip = len(self._leased) + len(self._unsaved_acks)
            out = self._select(
                "SELECT id, dest, prio, kind, payload FROM messages"
                f" WHERE dest = ? AND send_rank < {int(SendRank.CACHED)} ORDER BY send_rank, seq LIMIT ?",
                (dest, limit + skip),
                limit,
            )
            room = min(limit - len(out), cached_limit)
            if room > 0:
                out += self._select(
                    "SELECT id, dest, prio, kind, payload FROM messages"
                    f" WHERE dest = ? AND send_rank = {int(SendRank.CACHED)} ORDER BY seq LIMIT ?",
                    (dest, room + skip),
                    room,
                )
            self._leased.update(p.id for p in out)
            return out

    def _select(self, sql: str, params: tuple[Any, ...], limit: int) -> list[Pending]:
        out: list[Pending] = []
        for row in self._conn.execute(sql, params):
            if row[0] in self._leased or row[0] in self._unsaved_acks:
                continue
            msg_id, dest, prio, kind, payload = row
            out.append(Pending(msg_id, dest, as_priority(prio), as_kind(kind), payload))
            if len(out) >= limit:
                break
        return out

    def ack(self, ids: Iterable[str]) -> int:
        """Delete acknowledged messages (one transaction); returns how many were still stored.

        An id that is no longer stored (evicted meanwhile, or acked twice) is ignored. If the delete
        fails (e.g. a disk that other files filled) the failure is counted in ``ack_failed`` and
        this returns 0; the ids are remembered as delivered, so they are not sent again, and their
        delete is retried with every later ack (after a restart they are sent once more).
        """
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            if self._unsaved_acks and not self.closed:
                given = set(ids)
                ids += [i for i in self._unsaved_acks if i not in given]
            if self.closed:  # a caller's bug (the uplinks finish before the outbox closes): say so once
                self._c.ack_failed += len(ids)
                self._c.last_error = f"ack of {len(ids)} message(s) after the outbox was closed"
                self._events.error("ack_closed", f"outbox: {self._c.last_error}; they will be sent again after restart")
                return 0
            try:
                freed, deleted = 0, 0
                with self._tx():
                    for msg_id in ids:
                        row = self._conn.execute("DELETE FROM messages WHERE id = ? RETURNING size",
                                                 (msg_id,)).fetchone()
                        if row is not None:
                            freed += row[0]
                            deleted += 1
                    if deleted:
                        self._conn.execute(
                            "INSERT INTO counters (name, value) VALUES ('acked', ?)"
                            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (deleted,))
            except sqlite3.Error as err:
                if _is_full(err) and self._drop_reserve():
                    self._events.warning("ack_disk_full", "outbox: disk full acknowledging; released the reserve file "
                                                          "and retrying")
                    self._leased.difference_update(ids)
                    self._checkpoint()
                    n = self.ack(ids)
                    self._after_disk_full()
                    return n
                fresh = [i for i in ids if i not in self._unsaved_acks]
                self._c.ack_failed += len(fresh)
                self._c.last_error = f"ack of {len(ids)} message(s) failed: {err}"
                self._events.error("ack_failed", f"outbox: {self._c.last_error}; they are not sent again, and "
                                   "deleting them is retried with the next ack")
                self._unsaved_acks.update(ids)
                self._leased.difference_update(ids)
                return 0
            self._used -= freed
            self._c.acked += deleted
            self._leased.difference_update(ids)
            self._unsaved_acks.difference_update(ids)
            return deleted

    def release(self, ids: Iterable[str] | None = None) -> None:
        """Hand leased messages back (not acknowledged): they are offered again by :meth:`next_batch`.

        ``None`` releases every lease (e.g. all of a destination's in-flight messages after a disconnect
        when the caller did not track them).
        """
        with self._lock:
            if ids is None:
                self._leased.clear()
            else:
                self._leased.difference_update(ids)

    def keep_counters(self, counters: dict[str, int]) -> None:
        """Add persistent counters (eviction totals) salvaged from a damaged file."""
        if not counters:
            return
        with self._lock, self._tx():
            self._conn.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                sorted(counters.items()),
            )

    # ------------------------------------------------------------------ inspection
    def pending(self, dest: str | None = None) -> tuple[int, int]:
        """(messages, stored bytes) waiting, for one destination or all."""
        with self._lock:
            if dest is None:
                row = self._conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM messages").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM messages WHERE dest = ?", (dest,)
                ).fetchone()
            return int(row[0]), int(row[1])

    def ids(self, dest: str | None = None) -> list[str]:
        """Stored message ids in insertion order (for tools and tests)."""
        with self._lock:
            if dest is None:
                rows = self._conn.execute("SELECT id FROM messages ORDER BY seq")
            else:
                rows = self._conn.execute("SELECT id FROM messages WHERE dest = ? ORDER BY seq", (dest,))
            return [r[0] for r in rows]

    @property
    def used_bytes(self) -> int:
        """Stored bytes as charged against the budget (envelopes + :data:`ROW_OVERHEAD` each)."""
        return self._used

    def stats(self) -> dict[str, Any]:
        """Counters of this run, persistent eviction totals and the backlog per destination and class."""
        with self._lock:
            backlog: dict[str, dict[str, dict[str, int]]] = {}
            for dest, prio, n, b in self._conn.execute(
                "SELECT dest, prio, count(*), sum(size) FROM messages GROUP BY dest, prio"
            ):
                backlog.setdefault(dest, {})[prio] = {"messages": n, "bytes": b}
            totals = dict(self._conn.execute("SELECT name, value FROM counters"))
            c = self._c
            return {
                "budget_bytes": self.budget_bytes,
                "configured_budget_bytes": self.configured_budget_bytes,
                "reserve_bytes": self.reserve_bytes,
                "used_bytes": self._used,
                "file_bytes": _file_bytes(self.path),
                "enqueued": c.enqueued,
                "duplicates": c.duplicates,
                "acked": c.acked,
                "in_flight": len(self._leased),
                "acked_unsaved": len(self._unsaved_acks),
                "enqueue_failed": c.enqueue_failed,
                "failed": {"disk_full": c.failed_disk_full, "too_large": c.failed_too_large, "other": c.failed_other},
                "ack_failed": c.ack_failed,
                "reserve_used": c.reserve_used,
                "evicted": dict(c.evicted),
                "evicted_bytes": dict(c.evicted_bytes),
                "evicted_total": {k: v for k, v in totals.items() if k.startswith("evicted")},
                "totals": totals,
                "backlog": backlog,
                "last_error": c.last_error,
            }

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``"ok"`` or SQLite's description of the damage."""
        with self._lock:
            return "; ".join(r[0] for r in self._conn.execute("PRAGMA integrity_check"))

    # ------------------------------------------------------------------ helpers
    def _q1(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _tx(self) -> _Transaction:
        return _Transaction(self._conn)


class _DiskFull(Exception):
    pass


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.OperationalError as err:  # SQLite may have rolled back already
                log.debug("outbox: rollback: %s", err)


def _first_problems(report: str, limit: int = 3) -> str:
    """The first lines of SQLite's integrity report on one line (it can list every page)."""
    lines = [ln.strip() for ln in report.splitlines() if ln.strip() and not ln.startswith("***")]
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more


def _is_full(err: sqlite3.Error) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(err)


def reserve_for_disk(configured: int, room: int | None, page: int) -> int:
    """The reserve file's size: the configured size, but at most a share of the room (never under 16 pages)."""
    if configured <= 0 or room is None:
        return max(configured, 0)
    return min(configured, max(MIN_RESERVE_BYTES, 16 * page, int(room * RESERVE_SHARE_OF_DISK)))


def budget_for_disk(configured: int, room: int, reserve: int) -> int:
    """The ring budget: the configured one, capped to a share of the room left after reserve and WAL."""
    usable = room - reserve - reserve // 2 - WAL_INDEX_BYTES
    return max(1, min(configured, int(usable * BUDGET_SHARE_OF_DISK)))


def _disk_room(path: Path, reserve: Path) -> int | None:
    """Bytes this outbox can occupy: the free space plus its own files (None when unknown)."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    return free + _file_bytes(path) + _size(reserve)


def _size(path: Path) -> int:
    """The size of the file at ``path`` itself (a link's own size, 0 when missing)."""
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _file_bytes(path: Path) -> int:
    return sum(_size(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm"))


def open_from_config(cfg: Any, data_dir: str | Path, signing_key: SigningKey | None = None) -> Outbox:
    """Open the outbox described by an :class:`edged.config.OutboxConfig` under ``data_dir``.

    ``signing_key`` (the device key) signs every envelope as it is stored.

    A file that is not a database or fails its integrity check is moved aside (with its WAL) to
    ``<path>.damaged-<unix time>``, its readable rows are salvaged row by row into a fresh outbox
    (:mod:`edged.link.outbox_salvage`; with ``signing_key`` only rows this device signed), and the daemon
    runs on; one line logs how many were kept and how many were unreadable. Other errors (no
    permission, schema from a newer build) are raised.
    """
    path = Path(cfg.path)
    if not path.is_absolute():
        path = Path(data_dir) / path

    def make() -> Outbox:
        return Outbox(path, budget_bytes=cfg.budget_bytes, synchronous=cfg.synchronous,
                      check_on_open=cfg.check_on_open, reserve_bytes=cfg.reserve_bytes, signing_key=signing_key)

    try:
        return make()
    except OutboxDamagedError as err:
        text = str(err)
        aside = Path(f"{path}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{path}{suffix}")
            if src.exists():
                src.rename(Path(f"{aside}{suffix}"))
        trusted = trusted_keys([signing_key.verify_key]) if signing_key is not None else None
        found = salvage_outbox(aside, trusted)
        fresh = make()
        kept = fresh.store_salvaged(found.payloads)
        fresh.keep_counters(found.counters)
        log.error("outbox: %s; salvaged %d message(s) row by row (%d unreadable, %d not stored again), "
                  "moved the file aside to %s", text, kept, found.unreadable, len(found.payloads) - kept, aside)
        return fresh


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as it lies in an outbox file (see :func:`list_stored`)."""

    seq: int
    id: str
    dest: str
    prio: str
    kind: str
    created: float | None
    payload: bytes
    """The encoded envelope."""


def list_stored(path: str | Path, kind: Kind | str | None = None, limit: int | None = None) -> list[StoredMessage]:
    """The messages stored in the outbox file ``path``, newest first (``kind``: only that envelope
    kind), read through a read-only connection: nothing is written, and it works while the daemon
    has the file open. :class:`OutboxError` names the file when it cannot be read (missing, a
    symbolic link, not an outbox)."""
    path = Path(path)
    if path.is_symlink():
        raise OutboxError(f"outbox {path} is a symbolic link; not followed")
    if not path.is_file():
        raise OutboxError(f"no outbox at {path} (device.data_dir / outbox.path; has the daemon run yet?)")
    sql = "SELECT seq, id, dest, prio, kind, created, payload FROM messages"
    params: list[Any] = []
    if kind is not None:
        sql += " WHERE kind = ?"
        params.append(str(kind))
    sql += " ORDER BY seq DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as err:
        raise OutboxError(f"cannot open outbox {path}: {err}") from None
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        return [StoredMessage(*row) for row in conn.execute(sql, params)]
    except sqlite3.Error as err:
        raise OutboxError(f"cannot read outbox {path}: {err}") from None
    finally:
        conn.close()
