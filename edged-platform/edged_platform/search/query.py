"""Queries on the index: objects whose plate text is within a few edits of a text, and face objects
nearest to a photo's face descriptor; each hit with its sightings and best crop. The same SQL runs
on either engine (:mod:`edged_platform.search.backend`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edged_platform.search import cells
from edged_platform.search.backend import IndexDB
from edged_platform.search.db import deletion_keys
from edged_platform.search.plates import edit_distance, fold

CHUNK = 50_000


@dataclass(frozen=True, slots=True)
class Sighting:
    """One image of a hit: frame index, image id and the de-identified rectangle ``x, y, w, h``."""

    frame: int
    image_id: str
    box: tuple[int, int, int, int]
    t: float


@dataclass(frozen=True, slots=True)
class Hit:
    """One object found: what, where, when, how close, and its sightings."""

    hit: int
    """The object's id in the index (``edged-search restore HIT``)."""
    category: str
    device: str
    video: str
    track: int
    score: float
    """Plate: edit distance; face: descriptor distance (smaller is closer)."""
    plate: str | None
    first_t: float
    last_t: float
    best_crop: str | None
    sightings: list[Sighting]

    def as_json(self) -> dict:
        d = asdict(self)
        d["sightings"] = [
            {"frame": s.frame, "image_id": s.image_id, "box": list(s.box), "t": s.t} for s in self.sightings
        ]
        return d


def _hits(db: IndexDB, scored: list[tuple[float, int]]) -> list[Hit]:
    out = []
    for score, object_id in scored:
        o = db.execute("SELECT category, device, video, track, plate, first_t, last_t, best_crop FROM objects "
                       "WHERE id=?", (object_id,)).fetchone()
        rows = db.execute("SELECT frame, image, x, y, w, h, t FROM sightings WHERE object=? ORDER BY t, frame",
                          (object_id,)).fetchall()
        crop = db.crop_file(object_id, o[7])
        out.append(Hit(object_id, o[0], o[1], o[2], o[3], round(float(score), 4), o[4], o[5], o[6], crop,
                       [Sighting(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in rows]))
    return out


def plate_hits(db: IndexDB, text: str, max_edits: int = 0) -> list[Hit]:
    """Plate objects whose read text is within ``max_edits`` edits of ``text`` (both folded: case,
    spaces and punctuation ignored, O as 0, I as 1), closest first, then by plate text (the same
    plate across videos together) and time."""
    want = fold(text)
    if max_edits <= 1:  # texts within one edit share a deletion key: an index lookup, no scan
        keys = [want] if max_edits <= 0 else sorted(deletion_keys(want))
        rows = db.execute(
            f"SELECT DISTINCT o.id, o.plate, o.first_t FROM plate_keys k JOIN objects o ON o.id = k.object "
            f"WHERE k.key IN ({', '.join('?' * len(keys))})", keys).fetchall()
    else:
        rows = db.execute("SELECT id, plate, first_t FROM objects WHERE plate IS NOT NULL AND length(plate) "
                          "BETWEEN ? AND ?", (len(want) - max_edits, len(want) + max_edits)).fetchall()
    scored = []
    for object_id, plate, first_t in rows:
        d = edit_distance(want, fold(plate), max(0, max_edits))
        if d <= max(0, max_edits):
            scored.append((d, object_id, plate, first_t))
    scored.sort(key=lambda s: (s[0], s[2], s[3], s[1]))
    return _hits(db, [(s[0], s[1]) for s in scored])


def face_hits(db: IndexDB, descriptor: np.ndarray, top: int = 5, max_distance: float | None = None,
              probe: int | None = None, exact: bool = False) -> list[Hit]:
    """The ``top`` face objects nearest to ``descriptor`` (Euclidean), optionally within ``max_distance``:
    among the faces of the ``probe`` cells nearest to it where the index has face cells
    (:mod:`edged_platform.search.cells`), among all faces when ``exact`` or it has none."""
    q = descriptor.astype(np.float32)
    centroids = None if exact else cells.load(db)
    if centroids is None:
        scans: list[tuple[str, list[int]]] = [("face IS NOT NULL", [])]
    else:
        chosen = cells.probe(q, centroids, probe or cells.default_probe(len(centroids)))
        scans = [(f"face_cell IN ({', '.join('?' * len(chosen))})", chosen),
                 ("face IS NOT NULL AND face_cell IS NULL", [])]  # faces not given a cell yet
    best: list[tuple[float, int]] = []
    for where, params in scans:
        for rows in db.scan(f"SELECT id, face FROM objects WHERE {where}", params, CHUNK):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            mat = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
            dist = np.linalg.norm(mat - q, axis=1)
            keep = np.argsort(dist)[:top]
            best += [(float(dist[k]), int(ids[k])) for k in keep]
            best = sorted(best)[:top]
    if max_distance is not None:
        best = [b for b in best if b[0] <= max_distance]
    return _hits(db, best)
