"""Functional platform: restoration clips per sensitive object, indexed by their best crop.

::

    python -m edged_platform.clips --key face.key --signer device.pub --store platform/func.face --out clips/

For every video segment in the functional platform's store: open each sealed record addressed to
``--key`` (verified against the trusted ``--signer`` keys), group the regions by object (category and
track id; a region seen before its track was confirmed joins the track it overlaps in the next
frames), and per object write

- ``<out>/<video>/<category>-<object>.mkv``: the restoration clip, lossless (FFV1), one frame per
  observation in time order: a blank (black) frame of the original image size with the object's
  original crop pasted at its position (pixels masked because they also lie in a region of
  another category stay black: this key cannot open them);
- ``<out>/<video>/<category>-<object>-best.png``: its best crop, the clip's search index (masked
  pixels black, as in the clip);

and ``<out>/index.json``: per object its category, track id, video, image ids and frame indexes in
time order (to fetch de-identified images from ops and restore them), the clip, the best crop and
the image it came from; ``positions`` gives each sighting's rectangle. Records sealed to other keys are
skipped and counted; records that fail verification (the sealed record's signature, or the signature of the
wire envelope it arrived in, against the trusted ``--signer``/``--device-key`` keys) are listed under
``rejected`` with the reason and never used, and so are signed records the tools cannot use safely
(:func:`check_usable`): a category or image id that is not a plain name (names from records become
file names under ``--out`` and nowhere else), a frame over
:data:`edged_platform.pixels.MAX_FRAME_PIXELS` pixels, a region outside its frame, or a crop PNG
whose header does not declare its region's size in 8-bit grey or colour (checked before decoding).

**Best crop** (the highest-quality crop, the clip's index): detection score x area of the object's box x
sharpness / (sharpness + 100), where sharpness is the variance of the Laplacian of the crop's grey
levels inside the object's box. Large, confident, in-focus views win; the saturating sharpness
term keeps noise from dominating. Predicted (undetected) observations score 0 unless an object has
no other.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from nacl.public import PrivateKey
from nacl.signing import VerifyKey

from edged.core.keys import KeyFileError, load_platform_private_key, sealing_key_id
from edged.core.progname import prog_name
from edged.core.progress import Progress
from edged.link.crops import masked_pixels
from edged.link.records import UNTRACKED, RecordError, RecordRegion, SensitiveRecord
from edged.link.sealing import open_sealed, read_header
from edged.link.wire import is_id, trusted_keys
from edged_platform.pixels import PixelsError, check_record, decode_crop
from edged_platform.store import CATEGORY_NAME
from edged_platform.stores import Store, StoreUnavailable, missing_folder, open_store

LINK_FRAMES = 3
"""An untracked region joins a track seen within this many frames after it ..."""
LINK_IOU = 0.3
"""... whose object box overlaps it by at least this IoU (same category)."""
SHARPNESS_HALF = 100.0


@dataclass(slots=True)
class Sighting:
    """One region of one record: an object seen in one image."""

    record: SensitiveRecord
    region: RecordRegion

    @property
    def sort_key(self) -> tuple[float, int]:
        return (self.record.timestamp, self.record.frame_index)


@dataclass(slots=True)
class SensitiveObject:
    """All sightings of one object in one video, in time order."""

    category: str
    name: str
    """``t<track id>`` or ``u<image id>-<n>`` for a region never linked to a track."""
    track_id: int
    video_id: str
    sightings: list[Sighting] = field(default_factory=list)


@dataclass(slots=True)
class SegmentRecords:
    """The records of one video segment this key could open."""

    records: list[SensitiveRecord] = field(default_factory=list)
    other_recipient: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """``(message id, reason)`` of records refused by verification or decryption."""


def open_segment(
    store: Store, video_id: str, key: PrivateKey, signers: dict[str, VerifyKey]
) -> SegmentRecords:
    """Verify and decrypt every sensitive record of ``video_id`` sealed to ``key``.

    Envelopes are verified against ``signers`` too: the store is opened with them as its device keys
    here unless it already has some, and every envelope it refused is listed as rejected.
    """
    own = sealing_key_id(key)
    out = SegmentRecords()
    if store.device_keys is None:
        store = open_store(store.spec, signers)
    out.rejected += [(r.message_id, r.error) for r in store.rejected_for(kind="sensitive") if r.video_id == video_id]
    for env in store.iter_segment(video_id):
        if env.kind != "sensitive":
            continue
        header_image = read_header_or_none(bytes(env.body))
        if header_image is not None and env.image_id is not None and header_image != env.image_id:
            why = f"envelope names image {env.image_id}, its sealed record image {header_image}"
            out.rejected.append((env.id, why))
            continue
        try:
            if read_header(bytes(env.body)).recipient_key_id != own:
                out.other_recipient += 1
                continue
            record = open_sealed(bytes(env.body), key, signers)
            check_usable(record)
        except (RecordError, PixelsError) as err:
            out.rejected.append((env.id, str(err)))
            continue
        except (ValueError, TypeError) as err:  # a signed record whose content has values of the wrong kind
            out.rejected.append((env.id, f"malformed record content ({type(err).__name__}: {str(err)[:80]})"))
            continue
        out.records.append(record)
    out.records.sort(key=lambda r: (r.timestamp, r.frame_index))
    return out


def check_usable(record: SensitiveRecord) -> None:
    """Refuse (:class:`PixelsError`) a record whose names are not safe in file names, whose frame or
    regions do not fit (:func:`edged_platform.pixels.check_record`) or whose crops do not decode as
    their regions say (sizes checked before decoding)."""
    if not CATEGORY_NAME.match(record.category):
        raise PixelsError(f"record {record.image_id[:40]!r}: category {record.category[:40]!r} is not a category name")
    if not is_id(record.image_id):
        raise PixelsError(
            f"record image id {record.image_id[:40]!r} is not an id name ([A-Za-z0-9_.:-], no leading dot)"
        )
    check_record(record)
    for k, g in enumerate(record.regions):
        try:
            decode_crop(g.crop, g.w, g.h)
        except PixelsError as err:
            raise PixelsError(f"record {record.image_id}/{record.category} region {k}: {err}") from None


def read_header_or_none(sealed: bytes) -> str | None:
    """The image id in a sealed record's clear header, or ``None`` if it has none readable."""
    try:
        return read_header(sealed).image_id
    except RecordError:
        return None


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def group_objects(records: list[SensitiveRecord]) -> list[SensitiveObject]:
    """Group the regions of time-ordered records by object (see the module doc)."""
    objects: dict[tuple[str, str], SensitiveObject] = {}
    sightings = [Sighting(r, g) for r in records for g in r.regions]
    sightings.sort(key=lambda s: s.sort_key)
    tracked = [s for s in sightings if s.region.track_id != UNTRACKED]
    for s in sightings:
        cat, tid = s.record.category, s.region.track_id
        if tid == UNTRACKED:
            f = s.record.frame_index
            link = next(
                (
                    t for t in tracked
                    if t.record.category == cat and f < t.record.frame_index <= f + LINK_FRAMES
                    and _iou(s.region.box, t.region.box) >= LINK_IOU
                ),
                None,
            )
            if link is not None:
                tid = link.region.track_id
        if tid == UNTRACKED:
            key = (cat, f"u{s.record.image_id}-{s.record.regions.index(s.region)}")
        else:
            key = (cat, f"t{tid}")
        obj = objects.get(key)
        if obj is None:
            obj = objects[key] = SensitiveObject(cat, key[1], tid, s.record.video_id)
        obj.sightings.append(s)
    return sorted(objects.values(), key=lambda o: (o.sightings[0].sort_key, o.name))


def feature_value(region: RecordRegion, crop: np.ndarray) -> float:
    """The "picture feature value" of a crop (see the module doc)."""
    if not region.detected:
        return 0.0
    x1, y1, x2, y2 = region.box
    bx1, by1 = max(0, int(x1) - region.x), max(0, int(y1) - region.y)
    bx2, by2 = min(region.w, int(np.ceil(x2)) - region.x), min(region.h, int(np.ceil(y2)) - region.y)
    inside = (slice(by1, by2), slice(bx1, bx2)) if bx2 > bx1 and by2 > by1 else (slice(None), slice(None))
    inner = crop[inside]
    grey = cv2.cvtColor(inner, cv2.COLOR_BGR2GRAY) if inner.ndim == 3 else inner
    laplacian = cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F)
    if region.masked:  # only where the Laplacian sees no masked (zeroed) pixel
        unmasked = (~masked_pixels(region.w, region.h, region.masked)).astype(np.uint8)
        shown = cv2.erode(unmasked, np.ones((3, 3), np.uint8))
        laplacian = laplacian[shown[inside].astype(bool)]
    sharp = float(laplacian.var()) if laplacian.size else 0.0
    area = max(0.0, (x2 - x1) * (y2 - y1))
    return region.score * area * sharp / (sharp + SHARPNESS_HALF)


def best_sighting(obj: SensitiveObject) -> tuple[int, float]:
    """Index of the object's best sighting and its feature value."""
    values = [feature_value(s.region, decode_crop(s.region.crop, s.region.w, s.region.h)) for s in obj.sightings]
    best = int(np.argmax(values)) if any(v > 0 for v in values) else 0
    return best, values[best]


def shown_crop(region: RecordRegion) -> np.ndarray:
    """The region's crop as BGR with its masked pixels (another category's) blacked out."""
    crop = decode_crop(region.crop, region.w, region.h)
    if crop.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
    crop[masked_pixels(region.w, region.h, region.masked)] = 0
    return crop


def clip_frames(obj: SensitiveObject) -> Iterator[np.ndarray]:
    """The restoration clip: per sighting, a black frame of the original size with the crop pasted."""
    for s in obj.sightings:
        r, g = s.record, s.region
        frame = np.zeros((r.height, r.width, 3), dtype=np.uint8)
        frame[g.y : g.y + g.h, g.x : g.x + g.w] = shown_crop(g)
        yield frame


def write_clip(frames: Iterator[np.ndarray], path: Path, fps: float = 10.0) -> int:
    """Write frames losslessly (FFV1 in Matroska); returns the frame count."""
    from fractions import Fraction

    import av

    n = 0
    with av.open(str(path), "w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("ffv1", rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "bgr0"
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                container.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return n


def build_clips(
    store: Store, key: PrivateKey, signers: dict[str, VerifyKey], out: Path,
    video_ids: list[str] | None = None, fps: float = 10.0, quiet: bool = True,
) -> dict:
    """Write every object's clip and best crop under ``out`` and return (and write) the index; unless
    ``quiet``, show progress on stderr (:class:`edged.core.progress.Progress`: videos, and objects per video)."""
    out.mkdir(parents=True, exist_ok=True)
    if store.device_keys is None:  # verify every envelope against the trusted device keys
        store = open_store(store.spec, signers)
    index: dict = {"objects": [], "other_recipient": 0, "rejected": []}
    videos = list(video_ids if video_ids is not None else store.segments())
    with Progress("videos", len(videos), "video", "clips", quiet) as bar:
        for video in videos:
            _build_video(store, video, key, signers, out, fps, index, quiet)
            bar.update()
    (out / "index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    return index


def _build_video(
    store: Store, video: str, key: PrivateKey, signers: dict[str, VerifyKey], out: Path, fps: float,
    index: dict, quiet: bool,
) -> None:
    """Add one video segment's objects (clips, best crops) to ``index``."""
    seg = open_segment(store, video, key, signers)
    index["other_recipient"] += seg.other_recipient
    index["rejected"] += [{"message": m, "video": video, "reason": why} for m, why in seg.rejected]
    if not seg.records:
        return
    if video and not is_id(video):  # file names from the store folder: never a path
        index["rejected"].append({"message": None, "video": video, "reason": "video id is not an id name"})
        return
    folder = out / (video or "_unsegmented")
    folder.mkdir(parents=True, exist_ok=True)
    objects = group_objects(seg.records)
    with Progress(video or "_unsegmented", len(objects), "object", "clips", quiet, position=1, leave=False) as bar:
        for obj in objects:
            stem = f"{obj.category}-{obj.name}"
            clip = folder / f"{stem}.mkv"
            n = write_clip(clip_frames(obj), clip, fps)
            b, value = best_sighting(obj)
            best = obj.sightings[b]
            best_path = folder / f"{stem}-best.png"
            cv2.imwrite(str(best_path), shown_crop(best.region))
            index["objects"].append({
                "category": obj.category,
                "object": obj.name,
                "track_id": obj.track_id,
                "video_id": video,
                "frames": n,
                "first_t": obj.sightings[0].record.timestamp,
                "last_t": obj.sightings[-1].record.timestamp,
                "image_ids": [s.record.image_id for s in obj.sightings],
                "frame_indexes": [s.record.frame_index for s in obj.sightings],
                "positions": [[s.region.x, s.region.y, s.region.w, s.region.h] for s in obj.sightings],
                "clip": str(clip.relative_to(out)),
                "best_crop": str(best_path.relative_to(out)),
                "best_image_id": best.record.image_id,
                "best_frame_index": best.record.frame_index,
                "best_value": round(value, 3),
            })
            bar.update()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog_name("edged_platform.clips"), description=__doc__.split("\n\n")[0])
    p.add_argument("--key", required=True, help="this functional platform's private key (.key)")
    p.add_argument("--signer", "--device-key", dest="signer", action="append", required=True, metavar="PATH",
                   help="trusted device public key (.pub); verifies records and envelopes; repeatable")
    p.add_argument("--store", required=True,
                   help="the functional platform's store: a folder (one file per video) or a postgresql:// URL")
    p.add_argument("--out", required=True, help="output folder for clips, best crops and index.json")
    p.add_argument("--video", action="append", help="only this video id (repeatable; default all)")
    p.add_argument("--fps", type=float, default=10.0, help="clip frame rate")
    p.add_argument("--quiet", action="store_true",
                   help="no progress (default: a bar on a terminal, a line every few seconds otherwise)")
    args = p.parse_args(argv)
    try:
        key = load_platform_private_key(args.key)
        signers = trusted_keys(args.signer)
    except KeyFileError as err:
        print(f"clips: {err}", file=sys.stderr)
        return 1
    if missing_folder(args.store):
        print(f"clips: store folder not found: {args.store}", file=sys.stderr)
        return 1
    try:
        index = build_clips(open_store(args.store, signers), key, signers, Path(args.out), args.video,
                            args.fps, quiet=args.quiet)
    except StoreUnavailable as err:
        print(f"clips: {err}", file=sys.stderr)
        return 1
    print(
        f"clips: {len(index['objects'])} objects written to {args.out} "
        f"({index['other_recipient']} records for other keys skipped, {len(index['rejected'])} rejected)"
    )
    for r in index["rejected"]:
        print(f"clips: rejected {r['message']} ({r['video']}): {r['reason']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
