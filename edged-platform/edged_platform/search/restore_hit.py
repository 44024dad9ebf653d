"""Restore a hit: each of its frames through the platform's restore (every check unchanged), then
its clip (the restored frames in time order, lossless FFV1).

For each image the hit was seen in, the records of that image the index knows of (every category
whose key is given, so overlapping face and plate pixels come back too) and the de-identified image
from the ops store go to :func:`edged_platform.restore.run`, which verifies, checks the target and
every region, and writes ``OUT/<frame>-<image id>.png``. A frame that restore refuses, or whose
image ops never received (ops gets only the selected images), is listed with the reason.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from edged.core.keys import KeyFileError, load_platform_private_key, sealing_key_id
from edged_platform import restore
from edged_platform.clips import write_clip


@dataclass(slots=True)
class HitRestore:
    """What restoring a hit wrote and refused."""

    frames: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    clip: str | None = None


def _record_sources(db: sqlite3.Connection, image_id: str, key_ids: set[str]) -> tuple[list[str], list[str]]:
    """The record files and func store folders holding records of ``image_id`` sealed to ``key_ids``."""
    files, stores = [], []
    for location, recipient in db.execute("SELECT DISTINCT location, recipient FROM sources WHERE image=?", (image_id,)):
        if recipient not in key_ids:
            continue
        kind, _, path = location.partition(":")
        (files if kind == "file" else stores).append(path)
    return sorted(set(files)), sorted(set(stores))


def restore_hit(db: sqlite3.Connection, hit: int, keys: list[str], signers: list[str], ops_store: str, out: Path,
                fps: float = 10.0) -> HitRestore:
    """Restore every frame of object ``hit`` that ops holds; write its clip and ``hit.json``."""
    if db.execute("SELECT 1 FROM objects WHERE id=?", (hit,)).fetchone() is None:
        raise restore.RestoreError(f"hit {hit} is not in the index")
    key_ids = {sealing_key_id(load_platform_private_key(k)) for k in keys}
    images = db.execute("SELECT image, MIN(frame), MIN(t) FROM sightings WHERE object=? GROUP BY image ORDER BY MIN(t), "
                        "MIN(frame)", (hit,)).fetchall()
    out.mkdir(parents=True, exist_ok=True)
    result = HitRestore()
    for image_id, frame, _t in images:
        files, stores = _record_sources(db, image_id, key_ids)
        target = out / f"{frame:06d}-{image_id}.png"
        args = argparse.Namespace(key=keys, signer=signers, record=files, func_store=stores, image=None,
                                  ops_store=ops_store, video=None, image_id=image_id, frame=None, out=str(target))
        try:
            restore.run(args)
        except (restore.RestoreError, KeyFileError) as err:
            result.refused.append({"frame": frame, "image_id": image_id, "reason": str(err)})
            continue
        result.frames.append({"frame": frame, "image_id": image_id, "file": str(target)})
    if result.frames:
        clip = out / f"hit-{hit}.mkv"
        write_clip((cv2.imread(f["file"], cv2.IMREAD_COLOR) for f in result.frames), clip, fps)
        result.clip = str(clip)
    (out / "hit.json").write_text(json.dumps({"hit": hit, "frames": result.frames, "refused": result.refused,
                                              "clip": result.clip}, indent=2), encoding="utf-8")
    return result
