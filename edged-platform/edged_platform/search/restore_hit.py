"""Restore a hit: each of its frames through the platform's restore (every check unchanged), then
its clip (the restored frames in time order, lossless FFV1).

For each image the hit was seen in, the records of that image the index knows of (every category
whose key is given, so overlapping face and plate pixels come back too) and the de-identified image
go to :func:`edged_platform.restore.run`, which verifies, checks the target and every region, and
writes ``OUT/<frame>-<image id>.png``. The de-identified image comes from the ops store (by image
id), or, for records of ``edged deid --sealed``, from its ``--out`` folder: the photo or video
named by the sidecar (``OUTPUT.json``) that lists the image id. A frame that restore refuses, or
whose image is not there (ops gets only the selected images), is listed with the reason.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from edged.core.keys import KeyFileError, load_platform_private_key, sealing_key_id
from edged_platform import restore
from edged_platform.clips import write_clip
from edged_platform.search.backend import IndexDB


@dataclass(slots=True)
class HitRestore:
    """What restoring a hit wrote and refused."""

    frames: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)
    clip: str | None = None


def _record_sources(db: IndexDB, image_id: str, key_ids: set[str]) -> tuple[list[str], list[str]]:
    """The record files and func store folders holding records of ``image_id`` sealed to ``key_ids``."""
    files: list[str] = []
    stores: list[str] = []
    rows = db.execute("SELECT DISTINCT location, recipient FROM sources WHERE image=?", (image_id,)).fetchall()
    for location, recipient in rows:
        if recipient not in key_ids:
            continue
        kind, _, path = location.partition(":")
        (files if kind == "file" else stores).append(path)
    return sorted(set(files)), sorted(set(stores))


def deid_images(folder: Path) -> dict[str, tuple[str, int | None]]:
    """Image id -> (``edged deid`` output file, frame index in it for a video / ``None`` for a photo),
    from the sidecars (``OUTPUT.json``) under ``folder``."""
    found: dict[str, tuple[str, int | None]] = {}
    for side in sorted(folder.rglob("*.json")):
        try:
            doc = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(doc, dict) or side.name == "deid-summary.json":
            continue
        target = str(side.with_name(side.name[: -len(".json")]))
        if isinstance(doc.get("image_id"), str):
            found[doc["image_id"]] = (target, None)
        for f in doc.get("frames", []) if isinstance(doc.get("frames"), list) else []:
            if isinstance(f, dict) and isinstance(f.get("image_id"), str) and isinstance(f.get("frame_index"), int):
                found[f["image_id"]] = (target, f["frame_index"])
    return found


def restore_hit(db: IndexDB, hit: int, keys: list[str], signers: list[str], ops_store: str | None,
                out: Path, fps: float = 10.0, deid_out: Path | None = None) -> HitRestore:
    """Restore every frame of object ``hit`` whose de-identified image ``ops_store`` (or the ``edged
    deid`` output folder ``deid_out``) holds; write its clip and ``hit.json``."""
    if db.execute("SELECT 1 FROM objects WHERE id=?", (hit,)).fetchone() is None:
        raise restore.RestoreError(f"hit {hit} is not in the index")
    key_ids = {sealing_key_id(load_platform_private_key(k)) for k in keys}
    images = db.execute("SELECT image, MIN(frame), MIN(t) FROM sightings WHERE object=? GROUP BY image "
                        "ORDER BY MIN(t), MIN(frame)", (hit,)).fetchall()
    out.mkdir(parents=True, exist_ok=True)
    result = HitRestore()
    deid = deid_images(deid_out) if deid_out is not None else {}
    for image_id, frame, _t in images:
        files, stores = _record_sources(db, image_id, key_ids)
        target = out / f"{frame:06d}-{image_id}.png"
        args = argparse.Namespace(key=keys, signer=signers, record=files, func_store=stores, image=None,
                                  ops_store=ops_store, video=None, image_id=image_id, frame=None, out=str(target))
        if deid_out is not None:
            if image_id not in deid:
                result.refused.append({"frame": frame, "image_id": image_id,
                                       "reason": f"no sidecar under {deid_out} names image {image_id}"})
                continue
            path, index = deid[image_id]
            args.ops_store = None
            if index is None:
                args.image = path
            else:
                args.video, args.frame, args.image_id = path, index, None
        try:
            restore.run(args)
        except (restore.RestoreError, KeyFileError) as err:
            result.refused.append({"frame": frame, "image_id": image_id, "reason": str(err)})
            continue
        result.frames.append({"frame": frame, "image_id": image_id, "file": str(target)})
    if result.frames:
        clip = out / f"hit-{hit}.mkv"
        # imread gives None only for a file it cannot read, and these were just written
        write_clip((cv2.imread(f["file"], cv2.IMREAD_COLOR) for f in result.frames), clip, fps)  # type: ignore[misc]
        result.clip = str(clip)
    (out / "hit.json").write_text(json.dumps({"hit": hit, "frames": result.frames, "refused": result.refused,
                                              "clip": result.clip}, indent=2), encoding="utf-8")
    return result
