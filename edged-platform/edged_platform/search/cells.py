"""Face cells: a coarse prefilter so a face query reads a small share of the descriptors.

The platform clusters stored descriptors with k-means into cells (``edged-search cells``); the
centroids are rows of ``face_cells`` and each face object records its nearest centroid
(``objects.face_cell``, indexed). A query ranks the centroids by distance to the photo's descriptor
and compares it only with the faces of the nearest few cells (and faces not yet given a cell); an
exact query (``--exact``, or an index without cells) reads them all. Nothing here needs a database
extension: the distances are computed on the platform, as in the exact scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edged_platform.search.backend import IndexDB

DIM = 128
SAMPLE = 100_000
"""Descriptors k-means trains on (a uniform sample; assigning the rest is one pass)."""
ITERATIONS = 12


def default_cells(faces: int) -> int:
    """Cells for ``faces`` descriptors: about the square root, at least 1 and at most 4,096."""
    return int(min(4096, max(1, round(np.sqrt(faces)))))


def default_probe(cells: int) -> int:
    """Cells a query reads by default: 1/32 of them, at least 8 (all of them for small indexes)."""
    return min(cells, max(8, cells // 32))


def nearest(x: np.ndarray, centroids: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Index of the nearest centroid of each row of ``x``."""
    c2 = (centroids * centroids).sum(axis=1)
    out = np.empty(len(x), np.int32)
    for k in range(0, len(x), chunk):
        part = x[k:k + chunk]
        out[k:k + chunk] = np.argmin(c2[None, :] - 2.0 * part @ centroids.T, axis=1)
    return out


def train(x: np.ndarray, cells: int, seed: int = 0) -> np.ndarray:
    """``cells`` k-means centroids (float32) of the rows of ``x`` (a sample of at most :data:`SAMPLE`)."""
    rng = np.random.default_rng(seed)
    if len(x) > SAMPLE:
        x = x[rng.choice(len(x), SAMPLE, replace=False)]
    x = x.astype(np.float32)
    cells = min(cells, len(x))
    centroids = x[rng.choice(len(x), cells, replace=False)].copy()
    for _ in range(ITERATIONS):
        label = nearest(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, label, x)
        counts = np.bincount(label, minlength=cells)
        empty = counts == 0
        centroids[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():  # an empty cell restarts on a random descriptor
            centroids[empty] = x[rng.choice(len(x), int(empty.sum()), replace=False)]
    return centroids


def probe(q: np.ndarray, centroids: np.ndarray, n: int) -> list[int]:
    """The ``n`` cells whose centroids are nearest to ``q``."""
    d = np.linalg.norm(centroids - q.astype(np.float32), axis=1)
    return [int(c) for c in np.argsort(d)[:n]]


def load(db: IndexDB) -> np.ndarray | None:
    """The index's centroids (row ``k`` is cell ``k``), or ``None`` if it has no cells."""
    rows = db.execute("SELECT cell, centroid FROM face_cells ORDER BY cell").fetchall()
    if not rows:
        return None
    return np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)


def rebuild(db: IndexDB, cells: int | None = None, seed: int = 0) -> tuple[int, int]:
    """Cluster the index's face descriptors into ``cells`` cells (default: :func:`default_cells`) and
    give every face object its cell; returns (cells, faces)."""
    ids: list[int] = []
    parts: list[np.ndarray] = []
    for rows in db.scan("SELECT id, face FROM objects WHERE face IS NOT NULL ORDER BY id"):
        ids += [r[0] for r in rows]
        parts.append(np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1))
    with db.transaction():
        db.write_lock()
        db.execute("UPDATE objects SET face_cell=NULL WHERE face_cell IS NOT NULL")
        db.execute("DELETE FROM face_cells")
        if not ids:
            return 0, 0
        x = np.concatenate(parts)
        centroids = train(x, cells or default_cells(len(x)), seed)
        db.executemany("INSERT INTO face_cells VALUES (?, ?)", [(k, c.tobytes()) for k, c in enumerate(centroids)])
        label = nearest(x, centroids)
        db.executemany("UPDATE objects SET face_cell=? WHERE id=?", zip(label.tolist(), ids, strict=True))
    return len(centroids), len(ids)
