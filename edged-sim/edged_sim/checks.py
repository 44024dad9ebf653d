"""Outcome checks of a simulated run against the fake camera's ground truth.

Each check returns a :class:`Check`: ``pass``, ``fail`` or ``n/a`` (with the reason it cannot apply,
e.g. no configured model detects that class), a one-line summary and its figures.

* :func:`check_delivery` -- every selection-class object in view for at least ``min_in_view_s``
  has a best image at ops: a delivered upload package holds an observation matching the object's
  ground-truth box in that image (same class, IoU >= ``match_iou``).
* :func:`check_deidentification` -- the default face detector, re-run on every delivered ops image,
  finds at most ``max_face_rate`` of the ground-truth faces in them.
* :func:`check_restore` -- every sealed record at each functional platform verifies and decrypts
  with that platform's private key, and each crop equals the raw pixels of its rectangle (SHA-256 of
  the raw frame taken on the device, in memory); records of images at ops also restore through
  :func:`edged_platform.restore.restore_image` with its de-identification check.
* :func:`check_zero_loss` -- every envelope the outbox stored arrived at its receiver (de-duplicated
  by message id), nothing was evicted or failed, the outbox is empty after the drain.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cbor2
import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from edged.core.classes import CLASS_NAMES
from edged.core.geometry import iou_matrix
from edged.link.crops import decode_png
from edged.link.records import RecordError, SensitiveRecord
from edged.link.sealing import open_sealed, trusted_signers
from edged.link.wire import Envelope
from edged_platform.restore import (
    KnownPixels,
    RestoreError,
    fill_masked,
    open_overlaps,
    overlap_pixels,
    restore_image,
)
from edged_platform.store import SegmentStore
from edged_sim.truth import FACE, Sent, TruthSink, crop_digest

PASS, FAIL, NA = "pass", "fail", "n/a"


@dataclass
class Check:
    name: str
    status: str
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "figures": self.figures}


@dataclass(frozen=True)
class CheckSettings:
    """Thresholds of the outcome checks (the issue's bars, and how ground truth is counted)."""

    min_in_view_s: float = 1.0
    """An object must be delivered when it was in view at least this long."""
    min_visible: float = 0.5
    """A frame counts as the object being in view when at least half of it is visible (clipping and
    occlusion): a car whose nose pokes into the frame is not yet in view."""
    match_iou: float = 0.5
    """A package observation is that object when its box overlaps the ground-truth box this much."""
    max_face_rate: float = 0.02
    """De-identification success >= 98 %: at most 2 % of ground-truth faces found."""
    face_min_size_px: float = 8.0
    """Faces with a shorter side below this are not counted (as in the run's detection recall)."""
    face_found_score: float = 0.5
    """A face counts as found when the detector scores it at least this: ``privacy.confident_score``,
    the score at which the pipeline itself takes a detection as confident. The detector also outputs
    boxes down to 0.1 (so that privacy hides doubtful faces too); on the flat patches the
    de-identification leaves, it fires at 0.1-0.3 on the head-shaped blob above a body, which is not
    a face found. Those are counted and reported (``found_after_any_score``), not failed."""
    face_found_iou: float = 0.3
    """A detection 'finds' a face when its IoU with the face's box is at least this: looser than the
    usual 0.5 on purpose, so a detector firing on a blurred blob somewhat larger than the face still
    counts against de-identification (the same rule as ``tools/eval/privacy.py``). A detection far
    larger than the face, fired on a flat de-identified patch around it, is not the face found."""


# ------------------------------------------------------------------------------------------ helpers
def packages(store: SegmentStore) -> Iterator[tuple[Envelope, dict[str, Any]]]:
    """Every upload package at ops with its decoded body."""
    for video in store.segments():
        for env in store.iter_segment(video):
            if env.kind == "package":
                yield env, cbor2.loads(env.body)


def all_envelopes(store: SegmentStore, kind: str | None = None) -> Iterator[Envelope]:
    for video in store.segments():
        for env in store.iter_segment(video):
            if kind is None or env.kind == kind:
                yield env


def _excluded(events: Iterable[str]) -> bool:
    """Frames in which the camera sees nothing new (frozen) or nothing at all (covered)."""
    return "freeze" in events or "cover" in events


@dataclass
class GroundObject:
    object_id: int
    class_name: str
    frames: list[float] = field(default_factory=list)
    """Scene seconds of the frames where it was in view (at least ``min_visible`` visible)."""
    present: list[float] = field(default_factory=list)
    """Scene seconds of the frames where any part of it was visible."""
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def intervals(self, gap_s: float, partly: bool = False) -> list[tuple[float, float]]:
        """Runs of in-view (``partly``: partly visible) frames, joined across gaps up to ``gap_s``."""
        out: list[list[float]] = []
        for t in self.present if partly else self.frames:
            if out and t - out[-1][1] <= gap_s:
                out[-1][1] = t
            else:
                out.append([t, t])
        return [(a, b) for a, b in out]


def ground_objects(truth: TruthSink, classes: Iterable[str], min_visible: float) -> dict[int, GroundObject]:
    """Objects of ``classes`` with the scene times of the frames where they were in view."""
    ids = np.array([CLASS_NAMES.index(c) for c in classes], dtype=np.int16)
    objects: dict[int, GroundObject] = {}
    for f in truth.frames:
        gt = f.gt
        if len(gt) == 0 or _excluded(gt.events):
            continue
        rows = np.isin(gt.class_ids, ids)
        t = truth.scene_s(f.timestamp)
        for oid, cid, vis in zip(gt.object_ids[rows].tolist(), gt.class_ids[rows].tolist(), gt.visible[rows].tolist(),
                                 strict=True):
            obj = objects.get(oid)
            if obj is None:
                obj = objects[oid] = GroundObject(oid, CLASS_NAMES[cid])
            obj.present.append(t)
            if vis >= min_visible:
                obj.frames.append(t)
    return objects


def match_boxes(gt_boxes: np.ndarray, gt_classes: np.ndarray, boxes: np.ndarray, classes: np.ndarray,
                min_iou: float) -> list[tuple[int, int]]:
    """One-to-one (gt row, box row) pairs of the same class with IoU >= ``min_iou``."""
    if len(gt_boxes) == 0 or len(boxes) == 0:
        return []
    iou = iou_matrix(gt_boxes, boxes) * (gt_classes[:, None] == classes[None, :])
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


# ------------------------------------------------------------------------------------------ checks
def check_delivery(truth: TruthSink, ops: SegmentStore, classes: list[str], fps: float, settings: CheckSettings,
                   arrivals: dict[str, float], started: float = 0.0, na_reason: str | None = None
                   ) -> tuple[Check, list[GroundObject]]:
    """Every object in view >= ``min_in_view_s`` has a delivered best image (see module doc).

    ``arrivals``: message id -> Unix time of its arrival at ops; ``started`` is the run's start on
    that clock (deliveries record their arrival relative to it).
    """
    objects = ground_objects(truth, classes, settings.min_visible) if classes else {}
    class_ids = {c: CLASS_NAMES.index(c) for c in CLASS_NAMES}
    delivered_packages = 0
    for env, body in packages(ops):
        delivered_packages += 1
        frame = truth.frame(body["image_id"])
        if frame is None or not body.get("objects"):
            continue
        objs = body["objects"]
        boxes = np.array([o["box"] for o in objs], dtype=np.float64).reshape(-1, 4)
        cls = np.array([class_ids[o["class"]] for o in objs], dtype=np.int16)
        gt = frame.gt
        for r, c in match_boxes(gt.boxes, gt.class_ids, boxes, cls, settings.match_iou):
            obj = objects.get(int(gt.object_ids[r]))
            if obj is None:
                continue
            arrived = arrivals.get(env.id)
            obj.deliveries.append({
                "scene_s": round(truth.scene_s(frame.timestamp), 3),
                "immediate": bool(body.get("immediate")),
                "trigger": objs[c]["track"] == body.get("trigger"),
                "delay_s": None if arrived is None else round(arrived - frame.sunk_wall, 3),
                "arrived_wall_s": None if arrived is None else round(arrived - started, 3),
            })
    need = settings.min_in_view_s * fps
    long = [o for o in objects.values() if len(o.frames) >= need - 1e-9]
    missing = [o for o in long if not o.deliveries]
    per_class: dict[str, list[int]] = {}
    for o in long:
        per_class.setdefault(o.class_name, [0, 0])
        per_class[o.class_name][0] += 1
        per_class[o.class_name][1] += bool(o.deliveries)
    figures = {
        "classes": classes,
        "objects_in_view_min_s": settings.min_in_view_s,
        "objects": len(long),
        "delivered": len(long) - len(missing),
        "missing_ids": [o.object_id for o in missing][:50],
        "per_class": {k: {"objects": v[0], "delivered": v[1]} for k, v in sorted(per_class.items())},
        "packages_at_ops": delivered_packages,
    }
    timeline = sorted(objects.values(), key=lambda o: o.present[0])
    if na_reason:
        return Check("best image per object", NA, na_reason, figures), timeline
    if not long:
        why = "no selection-class object stayed in view long enough"
        return Check("best image per object", NA, why, figures), timeline
    status = PASS if not missing else FAIL
    summary = (f"{len(long) - len(missing)}/{len(long)} objects in view >= {settings.min_in_view_s:g} s have a best "
               "image at ops")
    return Check("best image per object", status, summary, figures), timeline


def _found(gt_boxes: np.ndarray, det_boxes: np.ndarray, min_iou: float) -> np.ndarray:
    """Per ground-truth box: does some detection overlap it with IoU >= ``min_iou``?"""
    if len(gt_boxes) == 0 or len(det_boxes) == 0:
        return np.zeros(len(gt_boxes), dtype=bool)
    return np.asarray((iou_matrix(gt_boxes, det_boxes) >= min_iou).any(axis=1))


def check_deidentification(truth: TruthSink, ops: SegmentStore,
                           face_detect: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None,
                           settings: CheckSettings, na_reason: str = "") -> Check:
    """The face detector on the delivered (de-identified) ops images finds <= ``max_face_rate`` of
    GT faces at ``face_found_score``; the count at any score the detector outputs is reported."""
    name = "de-identification"
    if face_detect is None:
        return Check(name, NA, na_reason or "no face model is configured (the check re-runs the default face detector)")
    images = faces = found = found_any = raw_counted = raw_found = raw_found_any = 0
    for _env, body in packages(ops):
        frame = truth.frame(body["image_id"])
        if frame is None:
            continue
        images += 1
        gt = frame.gt
        size = np.minimum(gt.boxes[:, 2] - gt.boxes[:, 0], gt.boxes[:, 3] - gt.boxes[:, 1])
        rows = (gt.class_ids == FACE) & (gt.visible >= settings.min_visible) & (size >= settings.face_min_size_px)
        gt_faces = gt.boxes[rows].astype(np.float64)
        if len(gt_faces) == 0:
            continue
        img = cv2.imdecode(np.frombuffer(body["image"], np.uint8), cv2.IMREAD_COLOR)
        faces += len(gt_faces)
        boxes, scores = face_detect(img)  # type: ignore[arg-type]  # the device encoded it: it decodes
        found += int(_found(gt_faces, boxes[scores >= settings.face_found_score], settings.face_found_iou).sum())
        found_any += int(_found(gt_faces, boxes, settings.face_found_iou).sum())
        if frame.raw_faces is not None and frame.raw_face_scores is not None:
            raw_counted += len(gt_faces)
            raw = frame.raw_faces.astype(np.float64)
            confident = raw[frame.raw_face_scores >= settings.face_found_score]
            raw_found += int(_found(gt_faces, confident, settings.face_found_iou).sum())
            raw_found_any += int(_found(gt_faces, raw, settings.face_found_iou).sum())
    figures = {
        "ops_images": images,
        "gt_faces": faces,
        "found_score": settings.face_found_score,
        "found_after": found,
        "rate_after": round(found / faces, 4) if faces else None,
        "found_after_any_score": found_any,
        "found_on_raw": raw_found,
        "found_on_raw_any_score": raw_found_any,
        "rate_on_raw": round(raw_found / raw_counted, 4) if raw_counted else None,
        "max_rate": settings.max_face_rate,
    }
    if faces == 0:
        why = f"no ground-truth face (>= {settings.face_min_size_px:g} px) in the {images} delivered images"
        return Check(name, NA, why, figures)
    rate = found / faces
    raw_note = (f"; on the raw frames it finds {raw_found}/{raw_counted} ({raw_found_any} at any score)"
                if raw_counted else "")
    if raw_counted and raw_found == 0:
        raw_note += " (so this run does not exercise de-identification)"
    summary = (f"face detector finds {found}/{faces} ground-truth faces ({rate:.1%}) at score >= "
               f"{settings.face_found_score:g} in the delivered de-identified images (at most "
               f"{settings.max_face_rate:.0%}; {found_any} at any score >= the model's threshold){raw_note}")
    return Check(name, PASS if rate <= settings.max_face_rate else FAIL, summary, figures)


def _compare_crops(
    truth: TruthSink, category: str, rec: SensitiveRecord, patches: list[KnownPixels], problems: list[str]
) -> tuple[int, int, int, int]:
    """(regions, exact, mismatch, not a de-identified rectangle) of one opened record's crops against the raw
    frames; each problem is added to ``problems``."""
    exact = mismatch = unknown = 0
    for region in rec.regions:
        crop = fill_masked(region, decode_png(region.crop), patches).pixels
        want = truth.crops.get((rec.image_id, region.x, region.y, region.w, region.h))
        if want is None:
            unknown += 1
            problems.append(f"{category} {rec.image_id}: region at {region.x},{region.y} {region.w}x{region.h} "
                            "not a de-identified rectangle of that frame")
        elif crop_digest(crop) == want:
            exact += 1
        else:
            mismatch += 1
            problems.append(f"{category} {rec.image_id}: crop at {region.x},{region.y} differs from the raw frame")
    return len(rec.regions), exact, mismatch, unknown


def check_restore(truth: TruthSink, func_stores: dict[str, SegmentStore], ops: SegmentStore,
                  private_keys: dict[str, Any], verify_keys: list[Any]) -> Check:
    """Every sealed record opens and each crop (its masked overlap filled from the overlaps every key
    opens) equals the raw pixels; ops images restore."""
    name = "restore exact"
    signers = trusted_signers(verify_keys)
    records = regions = exact = mismatch = unknown = refused = 0
    restored_images = restore_failed = 0
    problems: list[str] = []
    ops_cache: dict[str, np.ndarray | None] = {}

    def ops_image(image_id: str) -> np.ndarray | None:
        if image_id not in ops_cache:
            env = ops.get_image(image_id)
            img = None
            if env is not None:
                body = cbor2.loads(env.body)
                img = cv2.imdecode(np.frombuffer(body["image"], np.uint8), cv2.IMREAD_COLOR)
            if len(ops_cache) > 64:
                ops_cache.pop(next(iter(ops_cache)))
            ops_cache[image_id] = img
        return ops_cache[image_id]

    for category, store in sorted(func_stores.items()):
        for env in all_envelopes(store, "sensitive"):
            records += 1
            try:
                rec = open_sealed(bytes(env.body), private_keys[category], signers)
            except RecordError as err:
                refused += 1
                problems.append(f"{category} {env.id}: {err}")
                continue
            overlaps = open_overlaps([rec], list(private_keys.values()))  # every key: the masked pixels too
            patches = overlap_pixels(overlaps, (rec.width, rec.height))
            n, e, m, u = _compare_crops(truth, category, rec, patches, problems)
            regions, exact, mismatch, unknown = regions + n, exact + e, mismatch + m, unknown + u
            img = ops_image(rec.image_id)
            if img is not None:
                try:
                    out = restore_image(img, [rec], overlaps=overlaps)
                except RestoreError as err:
                    restore_failed += 1
                    problems.append(f"{category} {rec.image_id}: restore refused: {err}")
                    continue
                ok = all(
                    truth.crops.get((rec.image_id, r.x, r.y, r.w, r.h))
                    == crop_digest(out[r.y : r.y + r.h, r.x : r.x + r.w])
                    for r in rec.regions
                )
                restored_images += ok
                restore_failed += not ok
    figures = {
        "records": records, "regions": regions, "exact": exact, "mismatch": mismatch,
        "not_a_deidentified_rect": unknown, "refused": refused,
        "ops_images_restored": restored_images, "ops_restores_failed": restore_failed,
        "problems": problems[:20],
    }
    if records == 0:
        return Check(name, NA, "no sensitive record was produced (no face or plate detected)", figures)
    ok = exact == regions and refused == 0 and restore_failed == 0
    summary = (f"{exact}/{regions} crops of {records} sealed records equal the raw pixels; "
               f"{restored_images} records restored onto their ops image ({restore_failed} refused)")
    return Check(name, PASS if ok else FAIL, summary, figures)


def check_zero_loss(sent: list[Sent], stores: dict[str, SegmentStore], outbox_after: dict[str, Any],
                    duplicates: dict[str, int]) -> Check:
    """Every stored envelope arrived once at its receiver; no eviction, failure or leftover."""
    name = "zero messages lost"
    per_dest: dict[str, dict[str, int]] = {}
    lost: list[str] = []
    foreign = 0
    for dest, store in sorted(stores.items()):
        produced = {s.id for s in sent if s.dest == dest}
        received = store.ids()
        missing = produced - received
        foreign += len(received - produced)
        lost += sorted(missing)
        per_dest[dest] = {"stored": len(produced), "received": len(produced & received), "missing": len(missing),
                          "duplicates_dropped": duplicates.get(dest, 0)}
    other = {s.dest for s in sent} - set(stores)
    for dest in sorted(other):
        n = sum(1 for s in sent if s.dest == dest)
        per_dest[dest] = {"stored": n, "received": 0, "missing": n, "duplicates_dropped": 0}
        lost += [s.id for s in sent if s.dest == dest]
    evicted = sum(outbox_after.get("evicted_total", {}).values())
    failed = sum(outbox_after.get("failed", {}).values()) + outbox_after.get("enqueue_failed", 0)
    left = sum(v["messages"] for prios in outbox_after.get("backlog", {}).values() for v in prios.values())
    figures = {"per_destination": per_dest, "lost_ids": lost[:20], "evicted": evicted, "enqueue_failed": failed,
               "left_in_outbox": left, "unexpected_at_receivers": foreign}
    total = sum(d["stored"] for d in per_dest.values())
    ok = not lost and evicted == 0 and failed == 0 and left == 0 and foreign == 0
    summary = (f"{total - len(lost)}/{total} stored messages arrived ({sum(duplicates.values())} re-deliveries "
               f"dropped as duplicates); evicted {evicted}, failed {failed}, left in outbox {left}")
    return Check(name, PASS if ok else FAIL, summary, figures)


def immediate_order(sent: list[Sent], arrivals_in_order: list[str]) -> dict[str, Any]:
    """Whether immediate packages arrived at ops in the order they were made (inversions counted)."""
    immediate = [s.id for s in sent if s.kind == "package" and s.prio == "immediate"]
    rank = {m: i for i, m in enumerate(immediate)}
    seq = [rank[m] for m in arrivals_in_order if m in rank]
    inversions = sum(1 for a, b in zip(seq, seq[1:], strict=False) if b < a)
    return {"immediate_packages": len(immediate), "arrived": len(seq), "out_of_order_steps": inversions}
