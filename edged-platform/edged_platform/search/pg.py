"""The search index on PostgreSQL, for fleets: several platform machines index into and query one
database. Its tables live in their own schema (``edged_search``), kept from ``PUBLIC``; best crops
are ``bytea`` rows of its ``crops`` table, so nothing of the index is on any machine's disk but the
database's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from edged_platform.search.backend import IndexDB, IndexError_
from edged_platform.stores import one_line, redact

SCHEMA_NAME = "edged_search"
LOCK = 0x65646765  # the advisory lock id indexers and schema creation take ("edge")


class PgIndex(IndexDB):
    """An index in a PostgreSQL database (autocommit; :meth:`transaction` groups statements)."""

    engine = "postgresql"

    def __init__(self, conn: psycopg.Connection, url: str) -> None:
        super().__init__(conn, redact(url))

    _IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO", re.IGNORECASE)

    def sql(self, text: str) -> str:
        if self._IGNORE.match(text):
            text = self._IGNORE.sub("INSERT INTO", text) + " ON CONFLICT DO NOTHING"
        return text.replace("?", "%s")

    def executemany(self, text: str, rows: Any) -> int:
        rows = list(rows)
        if not rows:
            return 0
        with self.conn.cursor() as cur:
            cur.executemany(self.sql(text), rows)
            return cur.rowcount

    def insert_id(self, text: str, params: Sequence[Any]) -> int:
        row = self.conn.execute(self.sql(text) + " RETURNING id", params).fetchone()
        assert row is not None  # an INSERT ... RETURNING returns its row
        return int(row[0])

    def transaction(self) -> AbstractContextManager[Any]:
        return self.conn.transaction()

    def scan(self, text: str, params: Sequence[Any] = (), chunk: int = 50_000) -> Iterator[list[tuple]]:
        with self.conn.transaction(), self.conn.cursor(name="edged_search_scan", binary=True) as cur:
            cur.itersize = chunk
            cur.execute(self.sql(text), params)
            while rows := cur.fetchmany(chunk):
                yield rows

    def write_lock(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))

    def put_crop(self, object_id: int, png: bytes) -> str:
        self.conn.execute("INSERT INTO crops (object, png) VALUES (%s, %s) ON CONFLICT (object) DO UPDATE "
                          "SET png = EXCLUDED.png", (object_id, png))
        return f"db:{object_id}"

    def read_crop(self, object_id: int, name: str) -> bytes | None:
        row = self.conn.execute("SELECT png FROM crops WHERE object=%s", (object_id,)).fetchone()
        return bytes(row[0]) if row else None

    def compact(self, tables: Sequence[str]) -> None:
        for table in tables:  # plain VACUUM: the space of deleted rows is reused; no exclusive lock
            self.conn.execute(f"VACUUM {table}")


def connect(url: str, schema: str, create: bool, version: int, migrate: Any) -> PgIndex:
    """Open (``create``: or make) the index in the database at ``url``: its schema, private to its owner."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as err:
        raise IndexError_(f"index {redact(url)}: cannot connect: {one_line(err)}") from None
    db = PgIndex(conn, url)
    try:
        _prepare(db, schema, create, version, migrate)
    except psycopg.Error as err:
        db.close()
        raise IndexError_(f"index {db.where}: {one_line(err)}") from None
    except IndexError_:
        db.close()
        raise
    return db


def _prepare(db: PgIndex, schema: str, create: bool, version: int, migrate: Any) -> None:
    exists = db.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA_NAME,)).fetchone()
    if exists is None and not create:
        raise IndexError_(f"index {db.where}: no search index in this database: build it with 'edged-search index'")
    db.conn.execute(f"SET search_path TO {SCHEMA_NAME}")
    if exists is not None and not create and _version(db) == str(version):
        _check_private(db)  # queries need no more than USAGE on the schema and SELECT on its tables
        return
    with db.conn.transaction():
        db.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        if exists is None:
            db.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME}")
            db.conn.execute(f"REVOKE ALL ON SCHEMA {SCHEMA_NAME} FROM PUBLIC")
        for statement in filter(str.strip, schema.split(";")):
            db.conn.execute(statement)
        found = _version(db)
        if found is None:
            db.conn.execute("INSERT INTO meta VALUES ('schema', %s)", (str(version),))
        elif found != str(version):
            migrate(db, int(found) if found.isdigit() else -1)
    _check_private(db)


def _version(db: PgIndex) -> str | None:
    """The schema version the index records, or ``None`` before it has tables."""
    if db.conn.execute("SELECT to_regclass('meta')").fetchone() == (None,):
        return None
    row = db.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    return None if row is None else str(row[0])


def _check_private(db: PgIndex) -> None:
    """Refuse an index that ``PUBLIC`` (every role of the server) may read or change."""
    open_to_all = db.conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm') "
        "AND has_table_privilege('public', c.oid, 'SELECT, INSERT, UPDATE, DELETE') ORDER BY 1",
        (SCHEMA_NAME,)).fetchall()
    schema_open = db.conn.execute("SELECT has_schema_privilege('public', %s, 'USAGE')", (SCHEMA_NAME,)).fetchone()
    if open_to_all or (schema_open and schema_open[0]):
        what = f"tables {', '.join(r[0] for r in open_to_all)}" if open_to_all else f"schema {SCHEMA_NAME}"
        raise IndexError_(f"index {db.where}: {what} open to PUBLIC; the index is as sensitive as the crops: "
                          f"REVOKE ALL ON SCHEMA {SCHEMA_NAME} FROM PUBLIC and REVOKE ALL ON ALL TABLES IN SCHEMA "
                          f"{SCHEMA_NAME} FROM PUBLIC")
