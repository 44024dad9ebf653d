"""Add opened records to the index: regions grouped into objects (category, device, video, track),
each object's best crop kept, plate text read and face descriptors computed where they changed.

Grouping and the best crop are the clips tool's (:func:`edged_platform.clips.group_objects`,
:func:`edged_platform.clips.feature_value`): a region seen before its track was confirmed joins the
track it overlaps in the next frames. Plates that stay untracked (small, fast plates often do) are
read one by one and grouped by the text read within a video (object ``p<TEXT>``); those read as
nothing stay one object per sighting. A later run adds new sightings to the same object and
replaces its best crop only with a better one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edged.link.records import UNTRACKED
from edged_platform.clips import SensitiveObject, feature_value, group_objects, shown_crop
from edged_platform.pixels import decode_crop
from edged_platform.search import cells
from edged_platform.search.backend import IndexDB
from edged_platform.search.db import add_plate_keys
from edged_platform.search.sources import Opened

if TYPE_CHECKING:
    from edged_platform.search.faces import FaceDescriber

PLATE_READS = 3
"""A plate object's text is read from its best few crops (this many), the most confident kept."""


@dataclass(slots=True)
class Added:
    """What one indexing run added."""

    records: int = 0
    objects_new: int = 0
    objects_grown: int = 0
    sightings: int = 0
    plates_read: int = 0
    faces_described: int = 0
    face_note: str | None = None
    """Why no face descriptor was computed (models missing), else ``None``."""
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def _png(crop: np.ndarray) -> bytes:
    """An object's best crop as PNG."""
    ok, png = cv2.imencode(".png", crop)
    assert ok
    return png.tobytes()


def _own_box(sighting, pad: float = 0.0) -> tuple[int, int, int, int]:
    """The object's own box in its crop's coordinates, grown by ``pad`` x its height on each side."""
    g = sighting.region
    x1, y1, x2, y2 = g.box
    p = pad * (y2 - y1)
    x1, y1, x2, y2 = int(x1 - p) - g.x, int(y1 - p) - g.y, int(np.ceil(x2 + p)) - g.x, int(np.ceil(y2 + p)) - g.y
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(g.w, x2), min(g.h, y2)
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else (0, 0, g.w, g.h)


class Indexer:
    """Writes objects into an open index; plate reader and face describer are loaded on first use."""

    def __init__(self, db: IndexDB, faces: bool = True) -> None:
        self.db = db
        self.added = Added()
        self._faces = faces
        self._describer: FaceDescriber | None = None
        self._centroids = cells.load(db)

    def _cell(self, face: bytes | None) -> int | None:
        """The face cell of a descriptor, where the index has cells."""
        if face is None or self._centroids is None:
            return None
        return int(cells.nearest(np.frombuffer(face, np.float32)[None, :], self._centroids)[0])

    def _describe(self, crop: np.ndarray, box: tuple[int, int, int, int]) -> bytes | None:
        if not self._faces:
            return None
        if self._describer is None:
            from edged_platform.search import faces

            why = faces.available()
            if why is not None:
                self.added.face_note, self._faces = why, False
                return None
            self._describer = faces.describer()
        t0 = time.perf_counter()
        d = self._describer.describe(crop, box)
        self.added.seconds["face"] += time.perf_counter() - t0
        self.added.faces_described += 1
        return d.astype(np.float32).tobytes()

    def _values(self, obj: SensitiveObject) -> list[float]:
        return [feature_value(s.region, decode_crop(s.region.crop, s.region.w, s.region.h)) for s in obj.sightings]

    def _objects(self, records: list) -> list[tuple[SensitiveObject, tuple[str | None, float | None] | None]]:
        """The objects of one video's records, each with its plate read where it was read already."""
        out: list[tuple[SensitiveObject, tuple[str | None, float | None] | None]] = []
        by_text: dict[str, tuple[SensitiveObject, float]] = {}
        for obj in group_objects(records):
            if obj.category != "plate" or obj.track_id != UNTRACKED:
                out.append((obj, None))
                continue
            values = self._values(obj)
            text, conf = self._read_plate(obj, sorted(range(len(values)), key=lambda k: -values[k]))
            if text is None:
                out.append((obj, (None, None)))
                continue
            merged, best = by_text.get(text, (None, -1.0))
            if merged is None:
                merged = SensitiveObject(obj.category, f"p{text}", UNTRACKED, obj.video_id)
            merged.sightings += obj.sightings
            by_text[text] = (merged, max(best, conf or 0.0))
        for text, (merged, conf) in by_text.items():
            merged.sightings.sort(key=lambda s: s.sort_key)
            out.append((merged, (text, conf)))
        return out

    def _read_plate(self, obj: SensitiveObject, order: list[int]) -> tuple[str | None, float | None]:
        from edged_platform.search.plates import reader

        t0 = time.perf_counter()
        best_text, best_conf = None, -1.0
        for k in order[:PLATE_READS]:
            g = obj.sightings[k].region
            x1, y1, x2, y2 = _own_box(obj.sightings[k], pad=0.15)
            read = reader().read(shown_crop(g)[y1:y2, x1:x2])
            if read.text and read.confidence > best_conf:
                best_text, best_conf = read.text, read.confidence
        self.added.seconds["plate"] += time.perf_counter() - t0
        self.added.plates_read += 1
        return best_text, (best_conf if best_text else None)

    def add(self, opened: Iterable[Opened]) -> Added:
        """Index ``opened`` records (one transaction) and return what was added."""
        batch = list(opened)
        t0 = time.perf_counter()
        by_video: dict[tuple[str, str], list] = defaultdict(list)
        for o in batch:
            by_video[(o.record.device, o.record.video_id)].append(o.record)
        now = time.time()
        with self.db.transaction():
            self.db.write_lock()
            for (device, video), records in by_video.items():
                records.sort(key=lambda r: (r.timestamp, r.frame_index))
                for obj, plate in self._objects(records):
                    self._add_object(device, video, obj, plate)
            self.db.executemany(
                "INSERT OR IGNORE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
                [(o.record.image_id, o.record.category, o.recipient, o.location, o.message, o.record.timestamp)
                 for o in batch])
            self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?, ?)", [(o.message, now) for o in batch])
        self.added.records += len(batch)
        self.added.seconds["total"] += time.perf_counter() - t0
        return self.added

    def _add_object(self, device: str, video: str, obj: SensitiveObject,
                    plate_read: tuple[str | None, float | None] | None = None) -> None:
        values = self._values(obj)
        order = sorted(range(len(values)), key=lambda k: -values[k])
        b = order[0]
        best = obj.sightings[b]
        first_t, last_t = obj.sightings[0].record.timestamp, obj.sightings[-1].record.timestamp
        row = self.db.execute(
            "SELECT id, best_value, first_t, last_t FROM objects WHERE category=? AND device=? AND video=? AND name=?",
            (obj.category, device, video, obj.name)).fetchone()
        if row is None:
            object_id = self.db.insert_id(
                "INSERT INTO objects (category, device, video, name, track, first_t, last_t, best_value, best_image, "
                "best_frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (obj.category, device, video, obj.name, obj.track_id, first_t, last_t, values[b],
                 best.record.image_id, best.record.frame_index))
            better = True
            self.added.objects_new += 1
        else:
            object_id, better = row[0], values[b] > row[1]
            self.db.execute("UPDATE objects SET first_t=?, last_t=? WHERE id=?",
                            (min(first_t, row[2]), max(last_t, row[3]), object_id))
            self.added.objects_grown += 1
        if better:
            crop = shown_crop(best.region)
            name = self.db.put_crop(object_id, _png(crop))
            plate, conf, face = None, None, None
            if obj.category == "plate":
                plate, conf = plate_read if plate_read is not None else self._read_plate(obj, order)
                if plate:
                    add_plate_keys(self.db, object_id, plate)
            elif obj.category == "face":
                face = self._describe(crop, _own_box(best))
            self.db.execute(
                "UPDATE objects SET best_value=?, best_image=?, best_frame=?, best_crop=?, plate=COALESCE(?, plate), "
                "plate_conf=COALESCE(?, plate_conf), face=COALESCE(?, face), face_cell=COALESCE(?, face_cell) "
                "WHERE id=?", (values[b], best.record.image_id, best.record.frame_index, name, plate, conf, face,
                               self._cell(face), object_id))
        self.added.sightings += self.db.executemany(
            "INSERT OR IGNORE INTO sightings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(object_id, s.record.image_id, s.record.frame_index, s.record.timestamp,
              s.region.x, s.region.y, s.region.w, s.region.h) for s in obj.sightings])

    def backfill_faces(self) -> int:
        """Describe face objects indexed while the face models were missing; returns how many."""
        rows = self.db.execute("SELECT id, best_crop FROM objects WHERE category='face' AND face IS NULL "
                               "AND best_crop IS NOT NULL").fetchall()
        n = 0
        with self.db.transaction():
            for object_id, name in rows:
                png = self.db.read_crop(object_id, name)
                crop = None if png is None else cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
                if crop is None:
                    continue
                d = self._describe(crop, (0, 0, crop.shape[1], crop.shape[0]))
                if d is None:
                    break
                self.db.execute("UPDATE objects SET face=?, face_cell=? WHERE id=?", (d, self._cell(d), object_id))
                n += 1
        return n
