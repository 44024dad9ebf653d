"""The search index: one SQLite file (mode 0600) and a folder of best crops beside it (0700).

Tables: ``seen`` (every sealed record already indexed, by message id or file digest: re-running
adds only what is new), ``objects`` (category, device, video, track; first/last time; best crop;
plate text; face descriptor), ``sightings`` (per object and image: frame, image id, rectangle) and
``sources`` (where each indexed record is, for restore), ``plate_keys`` (each plate text and its
one-character deletions: two texts within one edit share one, so a one-edit query is a lookup). The index is
as sensitive as the crops: it never leaves the functional platform, and :func:`prune` drops objects last seen
before a cut-off.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (source TEXT PRIMARY KEY, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id INTEGER PRIMARY KEY,
    category TEXT NOT NULL, device TEXT NOT NULL, video TEXT NOT NULL, name TEXT NOT NULL,
    track INTEGER NOT NULL,
    first_t REAL NOT NULL, last_t REAL NOT NULL,
    best_value REAL NOT NULL, best_image TEXT NOT NULL, best_frame INTEGER NOT NULL,
    best_crop TEXT,
    plate TEXT, plate_conf REAL, face BLOB,
    UNIQUE (category, device, video, name)
);
CREATE INDEX IF NOT EXISTS objects_plate ON objects (plate);
CREATE INDEX IF NOT EXISTS objects_last ON objects (last_t);
CREATE TABLE IF NOT EXISTS sightings (
    object INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    image TEXT NOT NULL, frame INTEGER NOT NULL, t REAL NOT NULL,
    x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
    PRIMARY KEY (object, image, x, y)
);
CREATE TABLE IF NOT EXISTS plate_keys (
    key TEXT NOT NULL, object INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    PRIMARY KEY (key, object)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS plate_keys_object ON plate_keys (object);
CREATE TABLE IF NOT EXISTS sources (
    image TEXT NOT NULL, category TEXT NOT NULL, recipient TEXT NOT NULL,
    location TEXT NOT NULL, message TEXT NOT NULL, t REAL NOT NULL,
    PRIMARY KEY (image, category, location, message)
);
"""


class IndexError_(RuntimeError):
    """The index file cannot be used; the message names it."""


def crops_dir(index: Path) -> Path:
    """The folder of best crops beside the index file."""
    return index.with_name(index.name + ".crops")


def _private_file(path: Path) -> None:
    """Create ``path`` (0600) if missing; refuse a link or a file group or others can read."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise IndexError_(f"index {path}: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise IndexError_(f"index {path}: not a regular file")
        if mode & 0o077:
            raise IndexError_(f"index {path}: readable by group or others (mode {oct(mode & 0o777)}); "
                              "the index is as sensitive as the crops: chmod 600 it")
    finally:
        os.close(fd)


def connect(path: str | Path, create: bool = True) -> sqlite3.Connection:
    """Open (``create``: or make) the index with its private modes and schema."""
    path = Path(path)
    if not create and not path.is_file():
        raise IndexError_(f"index {path} not found: build it with 'edged-search index'")
    if path.parent and not path.parent.is_dir():
        raise IndexError_(f"index {path}: folder {path.parent} not found")
    old = os.umask(0o077)  # SQLite's journal and WAL files beside it: private too
    try:
        _private_file(path)
        crops = crops_dir(path)
        crops.mkdir(mode=0o700, exist_ok=True)
        if crops.is_symlink() or stat.S_IMODE(crops.stat().st_mode) & 0o077:
            raise IndexError_(f"index crops folder {crops}: must be a private (0700) folder, not a link")
        db = sqlite3.connect(path)
    finally:
        os.umask(old)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        db.executescript(SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except sqlite3.DatabaseError as err:
        db.close()
        raise IndexError_(f"index {path}: not a search index ({err})") from None
    if row is None:
        db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.commit()
    elif row[0] != str(SCHEMA_VERSION):
        db.close()
        raise IndexError_(f"index {path}: schema version {row[0]}, this tool reads {SCHEMA_VERSION}")
    return db


def deletion_keys(text: str) -> set[str]:
    """``text`` and every string made by deleting one of its characters."""
    return {text} | {text[:k] + text[k + 1:] for k in range(len(text))}


def add_plate_keys(db: sqlite3.Connection, object_id: int, plate: str) -> None:
    """Replace an object's plate lookup keys by those of ``plate`` (folded: O as 0, I as 1)."""
    from edged_platform.search.plates import fold

    db.execute("DELETE FROM plate_keys WHERE object=?", (object_id,))
    keys = [(k, object_id) for k in deletion_keys(fold(plate))]
    db.executemany("INSERT OR IGNORE INTO plate_keys VALUES (?, ?)", keys)


def prune(db: sqlite3.Connection, index: Path, before: float) -> int:
    """Delete objects last seen before ``before`` (Unix time), their sightings, sources and crops."""
    rows = db.execute("SELECT id, best_crop FROM objects WHERE last_t < ?", (before,)).fetchall()
    for _id, crop in rows:
        if crop:
            (crops_dir(index) / crop).unlink(missing_ok=True)
    for table in ("sightings", "plate_keys"):
        db.execute(f"DELETE FROM {table} WHERE object IN (SELECT id FROM objects WHERE last_t < ?)", (before,))
    db.execute("DELETE FROM objects WHERE last_t < ?", (before,))
    db.execute("DELETE FROM sources WHERE t < ?", (before,))
    db.commit()
    db.execute("VACUUM")  # deleted rows leave the file, not just the tables
    return len(rows)
