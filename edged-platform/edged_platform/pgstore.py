"""Platform message store in PostgreSQL: the verified envelopes of one destination, grouped by video.

One database per destination (``postgresql://host/edged_ops``, ``.../edged_func_face``). Tables
(created on first use, with their version in ``store_schema``):

- ``store_videos (id, device, video_id)``: one row per device and video, the logical storage unit
  (``video_id`` ``''`` holds a device's unsegmented messages);
- ``store_envelopes (seq, message_id, video, kind, image_id, frame_index, signer, created, stored_at,
  envelope)``: one row per message, keyed by its message id; ``envelope`` holds the signed envelope
  bytes exactly as received, the other columns are copies for lookup; ``seq`` is the arrival order.

:meth:`PgStore.append` inserts with ``ON CONFLICT (message_id) DO NOTHING``, so however many receivers
store the same message it is stored once, and returns after the commit (the receiver acknowledges
then); :meth:`PgStore.append_many` does the same for a batch in one transaction, one commit for
all. Every read verifies the stored bytes again (signature with ``device_keys``, and that the lookup
columns agree with the signed envelope): a row altered in the database is skipped and listed in
:attr:`PgStore.rejected`, as :class:`edged_platform.store.SegmentStore` does with altered files.
A database that cannot be reached raises :class:`edged_platform.stores.StoreUnavailable` (one line
naming the URL without its password); the next call connects again.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from nacl.signing import VerifyKey
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from edged.link.wire import Envelope, EnvelopeAuthError, WireError, decode, encode
from edged_platform.store import Damaged, PackageError, Rejected, package_image
from edged_platform.stores import StoreUnavailable, one_line, redact

SCHEMA_VERSION = 1
PAGE = 256
"""Rows fetched per query when reading a whole video or verifying the whole store."""
CONNECT_TIMEOUT_S = 10
_SCHEMA_LOCK = 0x6564676564  # advisory lock key: one process creates the tables, the others wait
DEVICE_COLUMN_MAX = 256
"""Longest device name kept as it is in ``store_videos.device`` (a signed envelope's device is free text)."""
MISMATCH = "row mismatch"
MALFORMED = "malformed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_schema (
    version integer PRIMARY KEY,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS store_videos (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device text NOT NULL,
    video_id text NOT NULL,
    UNIQUE (device, video_id)
);
CREATE INDEX IF NOT EXISTS store_videos_video_id ON store_videos (video_id);
CREATE TABLE IF NOT EXISTS store_envelopes (
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    message_id text PRIMARY KEY,
    video bigint NOT NULL REFERENCES store_videos (id),
    kind text NOT NULL,
    image_id text,
    frame_index bigint,
    signer text,
    created double precision NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now(),
    envelope bytea NOT NULL
);
ALTER TABLE store_envelopes ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS store_envelopes_video_seq ON store_envelopes (video, seq);
CREATE INDEX IF NOT EXISTS store_envelopes_image_seq ON store_envelopes (image_id, seq) WHERE image_id IS NOT NULL;
"""

_ROW = ("SELECT e.seq, e.message_id, e.kind, e.image_id, v.device, v.video_id, e.envelope "
        "FROM store_envelopes e JOIN store_videos v ON v.id = e.video ")
"""The columns :meth:`PgStore._check` reads, in its order."""

_INSERT = ("INSERT INTO store_envelopes (message_id, video, kind, image_id, frame_index, signer, created, envelope) "
           "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (message_id) DO NOTHING RETURNING seq")
"""Store one message unless its id is stored: however many receivers store it, one row."""

T = TypeVar("T")
Row = tuple[int, str, str, str | None, str, str, bytes]


class PgStore:
    """Envelopes of one destination in a PostgreSQL database, one row each, de-duplicated by message id."""

    def __init__(self, url: str, *, device_keys: Mapping[str, VerifyKey] | None = None) -> None:
        self.url = url
        self.device_keys = device_keys
        """Trusted device keys (key id -> verify key); ``None``: nothing is verified."""
        self.duplicates = 0
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._videos: dict[tuple[str, str], int] = {}  # (device, video id) -> store_videos.id, committed rows
        self._rejected: dict[int, Rejected] = {}  # seq -> why that row was refused
        self._checked = 0  # every row up to this seq was verified by this instance
        self._run(lambda conn: None)  # connect and create the tables now: a bad URL fails at open

    # ------------------------------------------------------------------ naming
    @property
    def location(self) -> str:
        """The URL without its password."""
        return redact(self.url)

    @property
    def spec(self) -> str:
        """The URL as given (a password in it included), for :func:`edged_platform.stores.open_store`."""
        return self.url

    # ------------------------------------------------------------------ connection
    def _connect(self) -> psycopg.Connection[Any]:
        defaults = {"connect_timeout": str(CONNECT_TIMEOUT_S), "application_name": "edged-store"}
        try:
            given = conninfo_to_dict(self.url)
            conninfo = make_conninfo(self.url, **{k: v for k, v in defaults.items() if k not in given})
        except psycopg.Error as err:
            raise StoreUnavailable(f"store {self.location}: not a PostgreSQL URL ({one_line(err)})") from None
        try:
            conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as err:
            raise StoreUnavailable(f"store {self.location}: cannot connect: {one_line(err)}") from None
        try:
            self._ensure_schema(conn)
        except psycopg.Error as err:
            conn.close()
            raise StoreUnavailable(f"store {self.location}: cannot set up its tables: {one_line(err)}") from None
        except StoreUnavailable:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        """Create the tables on first use; refuse a database written by a newer schema."""
        version = self._schema_version(conn)
        if version is None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                conn.execute(_SCHEMA)
                conn.execute("INSERT INTO store_schema (version) VALUES (%s) ON CONFLICT DO NOTHING", (SCHEMA_VERSION,))
            version = SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise StoreUnavailable(f"store {self.location}: its schema version {version} is newer than this "
                                   f"edged_platform reads ({SCHEMA_VERSION})")

    @staticmethod
    def _schema_version(conn: psycopg.Connection[Any]) -> int | None:
        try:
            row = conn.execute("SELECT max(version) FROM store_schema").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return None if row is None or row[0] is None else int(row[0])

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``work(connection)``, connecting (again) first if needed; one retry when the connection broke."""
        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                try:
                    return work(self._conn)
                except psycopg.OperationalError as err:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise StoreUnavailable(f"store {self.location}: {one_line(err)}") from None
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # ------------------------------------------------------------------ writing
    def append(self, env: Envelope, data: bytes | None = None) -> bool:
        """Store ``env`` (its exact bytes ``data`` when given) and commit; ``False`` if its id is already stored.

        With :attr:`device_keys` an envelope whose signature does not verify raises
        :class:`edged.link.wire.EnvelopeAuthError` and nothing is stored.
        """
        data = encode(env) if data is None else bytes(data)
        if self.device_keys is not None:
            decode(data, self.device_keys)
        frame = _frame_index(env)

        def insert(conn: psycopg.Connection[Any]) -> bool:
            video = self._video(conn, device_column(env.device), env.video_id)
            row = conn.execute(_INSERT, (env.id, video, str(env.kind), env.image_id, frame, env.signer, env.created,
                                         data)).fetchone()
            return row is not None

        with self._lock:  # receivers call this from worker threads
            stored = self._run(insert)
            if not stored:
                self.duplicates += 1
        return stored

    def append_bytes(self, payload: bytes) -> bool:
        """Decode (and verify, with keys) a received payload and :meth:`append` its exact bytes."""
        return self.append(decode(payload, self.device_keys), payload)

    def append_many(self, items: Sequence[tuple[Envelope, bytes | None]]) -> list[bool]:
        """Store a batch in one transaction, in order, durable at its one commit; per item ``False`` if its id was
        already stored (or came earlier in the batch).

        With :attr:`device_keys` every item is verified first: one that does not verify raises
        :class:`edged.link.wire.EnvelopeAuthError` and nothing is stored. A failure before the commit
        returned stores nothing of the batch (:class:`edged_platform.stores.StoreUnavailable`).
        """
        batch = [(env, encode(env) if data is None else bytes(data)) for env, data in items]
        if self.device_keys is not None:
            for _env, data in batch:
                decode(data, self.device_keys)
        if not batch:
            return []

        def insert(conn: psycopg.Connection[Any]) -> list[bool]:
            # The video rows first, each committed on its own (as append does), so the cache never
            # holds the id of a row a rolled-back batch took with it.
            videos = [self._video(conn, device_column(env.device), env.video_id) for env, _data in batch]
            rows = [(env.id, video, str(env.kind), env.image_id, _frame_index(env), env.signer, env.created, data)
                    for (env, data), video in zip(batch, videos, strict=True)]
            out: list[bool] = []
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT, rows, returning=True)
                while True:
                    out.append(cur.fetchone() is not None)
                    if not cur.nextset():
                        break
            return out

        with self._lock:
            stored = self._run(insert)
            self.duplicates += stored.count(False)
        return stored

    def _video(self, conn: psycopg.Connection[Any], device: str, video_id: str) -> int:
        """The ``store_videos`` id of (``device``, ``video_id``), adding the row (committed) if new."""
        key = (device, video_id)
        found = self._videos.get(key)
        if found is None:
            row = conn.execute("INSERT INTO store_videos (device, video_id) VALUES (%s, %s) "
                               "ON CONFLICT (device, video_id) DO NOTHING RETURNING id", key).fetchone()
            if row is None:
                row = conn.execute("SELECT id FROM store_videos WHERE device = %s AND video_id = %s", key).fetchone()
            assert row is not None  # inserted now, or by another process before the conflict
            found = self._videos[key] = int(row[0])
        return found

    # ------------------------------------------------------------------ reading
    def _rows(self, where: str, params: tuple[Any, ...], order: str = "e.seq") -> list[Row]:
        return self._run(lambda conn: conn.execute(f"{_ROW}{where} ORDER BY {order}", params).fetchall())

    def _pages(self, where: str, params: tuple[Any, ...], after: int = 0) -> Iterator[Row]:
        """Rows matching ``where`` in seq order, fetched a page at a time (no transaction held between pages)."""
        while True:
            page = self._rows(f"{where} AND e.seq > %s", (*params, after), f"e.seq LIMIT {PAGE}")
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1][0]

    def _check(self, row: Row) -> Envelope | None:
        """The row's envelope if it verifies and agrees with its columns; else ``None``, the row listed as rejected."""
        seq, message_id, kind, image_id, device, video_id, data = row
        try:
            env = decode(data, self.device_keys)
        except EnvelopeAuthError as err:
            self._reject(row, err.reason, str(err))
            return None
        except WireError as err:
            self._reject(row, MALFORMED, f"row {message_id}: not a readable envelope ({err})")
            return None
        columns = (message_id, kind, image_id, device, video_id)
        signed = (env.id, str(env.kind), env.image_id, device_column(env.device), env.video_id)
        if columns != signed:
            self._reject(row, MISMATCH, f"row {message_id}: its columns (id, kind, image, device, video) "
                                        f"{columns} disagree with its signed envelope {signed}")
            return None
        self._rejected.pop(seq, None)
        return env

    def _reject(self, row: Row, reason: str, error: str) -> None:
        seq, message_id, kind, image_id, _device, video_id, _data = row
        self._rejected[seq] = Rejected(video_id, message_id, kind, image_id, reason, error)

    def segments(self) -> list[str]:
        """Video ids that hold a stored message, sorted (``""`` for unsegmented messages)."""
        rows = self._run(lambda conn: conn.execute(
            "SELECT DISTINCT v.video_id FROM store_videos v "
            "WHERE EXISTS (SELECT 1 FROM store_envelopes e WHERE e.video = v.id)").fetchall())
        return sorted(r[0] for r in rows)

    def iter_segment(self, video_id: str) -> Iterator[Envelope]:
        """Every verified envelope of ``video_id`` in arrival order."""
        where = "WHERE e.video IN (SELECT id FROM store_videos WHERE video_id = %s)"
        for row in self._pages(where, (video_id,)):
            env = self._check(row)
            if env is not None:
                yield env

    def get(self, msg_id: str) -> Envelope | None:
        """The verified envelope with message id ``msg_id``, or ``None``."""
        rows = self._rows("WHERE e.message_id = %s", (msg_id,))
        return self._check(rows[0]) if rows else None

    def by_image(self, image_id: str, kind: str | None = None) -> list[Envelope]:
        """Every verified envelope with ``image_id`` (optionally only of ``kind``), arrival order."""
        out = [self._check(r) for r in self._image_rows(image_id, kind)]
        return [e for e in out if e is not None]

    def get_image(self, image_id: str, kind: str = "package") -> Envelope | None:
        """The last verified ``kind`` envelope for ``image_id``, or ``None``."""
        for row in reversed(self._image_rows(image_id, kind)):
            env = self._check(row)
            if env is not None:
                return env
        return None

    def _image_rows(self, image_id: str, kind: str | None) -> list[Row]:
        if kind is None:
            return self._rows("WHERE e.image_id = %s", (image_id,))
        return self._rows("WHERE e.image_id = %s AND e.kind = %s", (image_id, kind))

    # ------------------------------------------------------------------ verification views
    def _check_all(self) -> int:
        """Verify every row stored since the last call (refusals go to :attr:`rejected`); the last seq checked."""
        for row in self._pages("WHERE TRUE", (), self._checked):
            self._check(row)
            self._checked = row[0]
        return self._checked

    @property
    def rejected(self) -> list[Rejected]:
        """Rows that failed verification, in arrival order (verifies every row not yet verified)."""
        self._check_all()
        return [self._rejected[s] for s in sorted(self._rejected)]

    @property
    def damaged(self) -> list[Damaged]:
        """Always empty: a row cannot tear (an unreadable row is listed in :attr:`rejected`)."""
        return []

    def torn(self) -> list[Damaged]:
        """Always empty: a commit stores a whole row or nothing."""
        return []

    @property
    def torn_tails(self) -> int:
        """Always 0 (see :meth:`torn`)."""
        return 0

    def rejected_for(self, image_id: str | None = None, kind: str | None = None) -> list[Rejected]:
        """Rows refused by verification, optionally only those naming ``image_id`` / of ``kind``."""
        if image_id is None:
            return [r for r in self.rejected if kind is None or r.kind == kind]
        rows = self._image_rows(image_id, kind)
        for row in rows:
            self._check(row)
        return [self._rejected[r[0]] for r in rows if r[0] in self._rejected]

    def rejected_counts(self) -> dict[str, int]:
        """Refused rows per reason (``unsigned``, ``unknown key``, ``bad signature``, ``row mismatch``, ...)."""
        out: dict[str, int] = {}
        for r in self.rejected:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out

    def ids(self) -> set[str]:
        """All verified message ids (verifies every row not yet verified)."""
        upto = self._check_all()
        rows = self._run(lambda conn: conn.execute(
            "SELECT message_id FROM store_envelopes WHERE seq <= %s", (upto,)).fetchall())
        refused = {r.message_id for r in self._rejected.values()}
        return {r[0] for r in rows} - refused

    def __contains__(self, msg_id: object) -> bool:
        return isinstance(msg_id, str) and self.get(msg_id) is not None

    def __len__(self) -> int:
        upto = self._check_all()
        row = self._run(lambda conn: conn.execute(
            "SELECT count(*) FROM store_envelopes WHERE seq <= %s", (upto,)).fetchone())
        return (int(row[0]) if row is not None else 0) - sum(1 for s in self._rejected if s <= upto)

    def refresh(self) -> None:
        """Nothing to do: every query sees what other processes committed."""


def device_column(device: str) -> str:
    """The ``store_videos.device`` text of an envelope's device name: as sent, unless it holds a NUL (which
    PostgreSQL text cannot) or is too long for an index entry (then a prefix and a hash of the whole)."""
    text = device.replace("\x00", "\ufffd")
    if len(text) <= DEVICE_COLUMN_MAX:
        return text
    return f"{text[:64]}~{hashlib.blake2b(device.encode('utf-8', 'surrogatepass'), digest_size=16).hexdigest()}"


def _frame_index(env: Envelope) -> int | None:
    """The frame index an upload package's body names (``None`` for other kinds or a body that is no package)."""
    if env.kind != "package":
        return None
    try:
        return package_image(env).frame_index
    except PackageError:
        return None
