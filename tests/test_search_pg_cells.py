"""Face cells and the index's dialect layer on both engines, with synthetic descriptors: the same rows
give the same hits in a file and in a real PostgreSQL database; a query through the nearest cells
finds a planted face, reads only those cells (and faces not given a cell yet), and ``--exact`` reads
all; an index file of the first schema is brought to the current one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from edged_platform.search import cells
from edged_platform.search.backend import IndexDB, IndexError_
from edged_platform.search.db import SCHEMA_VERSION, connect
from edged_platform.search.query import face_hits

FACES = 2000


def _fill(db: IndexDB, faces: np.ndarray) -> None:
    with db.transaction():
        db.executemany("INSERT INTO objects (category, device, video, name, track, first_t, last_t, best_value, "
                       "best_image, best_frame, face) VALUES ('face', 'rsu', 'v', ?, 1, ?, ?, 1, 'i', 0, ?)",
                       [(f"t{k}", float(k), float(k), f.tobytes()) for k, f in enumerate(faces)])


@pytest.fixture
def engines(pg_url: str, tmp_path: Path):
    dbs = {"file": connect(tmp_path / "i.sqlite"), "pg": connect(pg_url)}
    yield dbs
    for db in dbs.values():
        db.close()


def test_cells_find_planted_faces_the_same_on_both_engines(engines: dict[str, IndexDB]) -> None:
    rng = np.random.default_rng(7)
    faces = (rng.standard_normal((FACES, 128)) * 0.05).astype(np.float32)
    for db in engines.values():
        _fill(db, faces)
        assert cells.load(db) is None
        assert cells.rebuild(db, 16) == (16, FACES)
    centroids = {k: cells.load(db) for k, db in engines.items()}
    assert centroids["file"] is not None and centroids["pg"] is not None
    assert np.array_equal(centroids["file"], centroids["pg"])
    for k in rng.choice(FACES, 20, replace=False):
        noise = rng.standard_normal(128).astype(np.float32)
        q = faces[k] + noise * (0.35 / np.linalg.norm(noise))
        hits = {e: face_hits(db, q, 5) for e, db in engines.items()}
        assert [(h.hit, h.score) for h in hits["file"]] == [(h.hit, h.score) for h in hits["pg"]]
        assert hits["pg"][0].hit == k + 1 and hits["pg"][0].score == pytest.approx(0.35, abs=1e-3)
    q = rng.standard_normal(128).astype(np.float32) * 0.05
    chosen = cells.probe(q, centroids["pg"], 1)[0]
    for db in engines.values():
        in_cell = {r[0] for r in db.execute("SELECT id FROM objects WHERE face_cell=?", (chosen,)).fetchall()}
        probed = {h.hit for h in face_hits(db, q, 50, probe=1)}
        assert probed and probed <= in_cell
        assert {h.hit for h in face_hits(db, q, 50, exact=True)} - in_cell  # exact: beyond that cell
        late = faces[0] + 1.0  # a face indexed after the cells were made, and no cell of its own
        with db.transaction():
            new = db.insert_id("INSERT INTO objects (category, device, video, name, track, first_t, last_t, "
                               "best_value, best_image, best_frame, face) VALUES ('face', 'rsu', 'v', 'late', 1, 0, "
                               "0, 1, 'i', 0, ?)", (late.tobytes(),))
        assert face_hits(db, late, 1, probe=1)[0].hit == new


def test_an_index_file_of_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    connect(path).close()
    old = sqlite3.connect(path)  # back to the first schema: no face cells
    old.executescript("DROP INDEX objects_face_cell; DROP INDEX objects_face_unassigned; "
                      "ALTER TABLE objects DROP COLUMN face_cell; DROP TABLE face_cells; "
                      "UPDATE meta SET value='1' WHERE key='schema';")
    old.close()
    db = connect(path, create=False)
    try:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
        assert db.execute("SELECT face_cell FROM objects").fetchall() == []
        assert cells.load(db) is None
    finally:
        db.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema'")
    raw.close()
    with pytest.raises(IndexError_, match="schema version 99, this tool reads"):
        connect(path, create=False)
