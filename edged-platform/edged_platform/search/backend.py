"""Where the search index lives, behind one small interface: an embedded SQLite file with its best
crops in a private folder beside it (:class:`SqliteIndex`), or a PostgreSQL database with the crops in
it (:class:`edged_platform.search.pg.PgIndex`).

The indexer and the queries write their SQL once, in the dialect both engines share, with ``?``
placeholders and ``INSERT OR IGNORE``; :meth:`IndexDB.sql` turns that into the engine's own. What
differs beyond SQL text (where crops are kept, how a large scan streams, how space is given back after
a deletion, who may read the index) is a method here.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any


class IndexError_(RuntimeError):
    """The index cannot be used; the message names it."""


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (0600, never through a link)."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


class IndexDB:
    """An open index: SQL in the shared dialect, transactions, streaming scans and best crops."""

    engine = "sqlite"
    where: str
    """What to call the index in messages (a file, or a URL without its password)."""
    crops_out: Path | None = None
    """Where queries write the hits' best crops (0600), if set."""

    def __init__(self, conn: Any, where: str) -> None:
        self.conn, self.where = conn, where

    def sql(self, text: str) -> str:
        """``text`` in this engine's dialect."""
        return text

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; the result has ``fetchone``, ``fetchall``, ``fetchmany`` and ``rowcount``."""
        return self.conn.execute(self.sql(text), params)

    def executemany(self, text: str, rows: Any) -> int:
        """Run one statement for each of ``rows``; return how many rows it changed."""
        rows = list(rows)
        if not rows:
            return 0
        return self.conn.executemany(self.sql(text), rows).rowcount

    def insert_id(self, text: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` into a table with an ``id`` key and return the new row's id."""
        cur = self.conn.execute(self.sql(text), params)
        return int(cur.lastrowid)

    def transaction(self) -> AbstractContextManager[Any]:
        """A context in which every statement commits together or not at all."""
        return self.conn

    def scan(self, text: str, params: Sequence[Any] = (), chunk: int = 50_000) -> Iterator[list[tuple]]:
        """The rows of a large query, ``chunk`` at a time, without holding them all in memory."""
        cur = self.conn.execute(self.sql(text), params)
        while rows := cur.fetchmany(chunk):
            yield rows

    def write_lock(self) -> None:
        """Inside a transaction: keep other indexers out until it ends (SQLite's file lock does)."""

    def put_crop(self, object_id: int, png: bytes) -> str:
        """Keep an object's best crop (PNG) and return the name ``objects.best_crop`` records."""
        raise NotImplementedError

    def read_crop(self, object_id: int, name: str) -> bytes | None:
        """An object's best crop (PNG), or ``None`` if it is gone."""
        raise NotImplementedError

    def drop_crops(self, rows: list[tuple[int, str | None]]) -> None:
        """Delete the best crops of objects ``(id, best_crop)`` being deleted."""

    def crop_file(self, object_id: int, name: str | None) -> str | None:
        """A file showing an object's best crop: in :attr:`crops_out` when set, else where it is kept
        if that is a file; ``None`` when there is none."""
        if not name:
            return None
        if self.crops_out is None:
            return None
        png = self.read_crop(object_id, name)
        if png is None:
            return None
        path = self.crops_out / f"{object_id}.png"
        _write_private(path, png)
        return str(path)

    def compact(self, tables: Sequence[str]) -> None:
        """Give the space of deleted rows back, so they leave the storage and not just the tables."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit what is pending outside :meth:`transaction`."""
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class SqliteIndex(IndexDB):
    """The embedded index: a SQLite file (0600) and its best crops as PNG files in ``FILE.crops/`` (0700)."""

    def __init__(self, conn: sqlite3.Connection, path: Path, crops: Path) -> None:
        super().__init__(conn, str(path))
        self.path, self.crops = path, crops

    def put_crop(self, object_id: int, png: bytes) -> str:
        name = f"{object_id}.png"
        _write_private(self.crops / name, png)
        return name

    def read_crop(self, object_id: int, name: str) -> bytes | None:
        try:
            return (self.crops / name).read_bytes()
        except FileNotFoundError:
            return None

    def drop_crops(self, rows: list[tuple[int, str | None]]) -> None:
        for _id, name in rows:
            if name:
                (self.crops / name).unlink(missing_ok=True)

    def crop_file(self, object_id: int, name: str | None) -> str | None:
        if name and self.crops_out is None:
            return str(self.crops / name)
        return super().crop_file(object_id, name)

    def compact(self, tables: Sequence[str]) -> None:
        self.conn.commit()
        self.conn.execute("VACUUM")  # rewrites the file: deleted rows leave it
