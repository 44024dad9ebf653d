"""Figures for edged-search (``docs/BENCHMARKS.md``, section ``search``).

    python -m tools.eval.search_bench [--rows 100000 1000000]

- plate read rate by plate height: the three real plates with known text (``alpr_test.jpg``:
  "NO 23456", "MLB 803"; ``fastalpr_test_image.png``: "5AU 5341", from :mod:`tools.eval.realset`'s
  cache), each photograph scaled so the plate is H px tall, cropped to the plate box plus 15 %;
  and 60 plates rendered by the fake scene's renderer (random texts, front and rear colours);
- face rank-1 / rank-5 across photographs (``--identities`` runs this part alone): the photographs of
  named people of :mod:`tools.eval.face_identities`, faces found by dlib's detector; each photograph
  in turn is the query at full resolution (``photo_descriptor``, as ``edged-search face``), the
  gallery holds every other photograph's face as the device would seal it (downscaled so the face is
  32 or 48 px, JPEG 90, a 25 % margin) plus the distractors below; misses and false matches at 0.6;
- face rank-1 / rank-5 on the same photograph: the 22 real faces of the face-api demo photographs,
  sealed as above, in a gallery with the 100 LFW faces of scikit-image as distractors; queried with
  the full-resolution photograph;
- query time over 10^5 and 10^6 synthetic index rows (random plates, random descriptors);
- index time per object on a 10 s simulated run (1920x1080, oracle detections).
"""

from __future__ import annotations

import argparse
import string
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

PLATE_HEIGHTS = (8, 10, 12, 16, 20, 24, 32)
REAL_PLATES = {"alpr_test.jpg": (((85, 486, 178, 518), "NO23456"), ((578, 494, 705, 533), "MLB803")),
               "fastalpr_test_image.png": (((307, 189, 388, 211), "5AU5341"),)}


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: not an image OpenCV can read")
    return img


def _plate_crop(img: np.ndarray, box: tuple[int, int, int, int], height: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    s = height / (y2 - y1)
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    p = max(1, round(0.15 * height))
    return small[max(0, round(y1 * s) - p):round(y2 * s) + p, max(0, round(x1 * s) - p):round(x2 * s) + p]


def plate_rates() -> dict[str, dict[int, tuple[int, int, int]]]:
    """Per set, per height: (exact, within one edit, total)."""
    import sys

    from edged_platform.search.plates import edit_distance, normalise, reader
    from tools.eval.realset import cache_path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "edged-sim"))
    from edged_sim.sprites import render_plate

    out: dict[str, dict[int, tuple[int, int, int]]] = {"real": {}, "rendered": {}}
    cache = cache_path()
    real = [(_read(cache / f), box, text) for f, plates in REAL_PLATES.items() for box, text in plates]
    rng = np.random.default_rng(3)
    texts = ["".join(rng.choice(list(string.ascii_uppercase[:20]), 2)) + "".join(rng.choice(list(string.digits), 2))
             + " " + "".join(rng.choice(list("ABCDEFGHJKLMNPRSTVWXY"), 3)) for _ in range(60)]
    for h in PLATE_HEIGHTS:
        for name, items in (("real", [(_plate_crop(img, box, h), t) for img, box, t in real]),
                            ("rendered", [(render_plate(t, k % 2 == 1, round(h * 520 / 111), h), normalise(t))
                                          for k, t in enumerate(texts)])):
            reads = [reader().read(c).text for c, _ in items]
            exact = sum(r == t for r, (_, t) in zip(reads, items, strict=True))
            near = sum(edit_distance(r, t) <= 1 for r, (_, t) in zip(reads, items, strict=True))
            out[name][h] = (exact, near, len(items))
    return out


def sealed_descriptor(img: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The descriptor of a face as the device seals it: the photograph downscaled so the face is ``size`` px
    wide (area averaging), JPEG 90, the face box plus a 25 % margin, described on the face box as the indexer does."""
    from edged_platform.search.faces import describer

    x1, y1, x2, y2 = box
    s = size / (x2 - x1)
    small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    _, jpg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])
    sealed = np.asarray(cv2.imdecode(jpg, cv2.IMREAD_COLOR))
    m = round(0.25 * size)
    bx1, by1, bx2, by2 = (round(v * s) for v in (x1, y1, x2, y2))
    ox, oy = max(0, bx1 - m), max(0, by1 - m)
    crop = sealed[oy:by2 + m, ox:bx2 + m]
    return describer().describe(crop, (bx1 - ox, by1 - oy, bx2 - ox, by2 - oy))


def _faceapi_faces() -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    from tools.eval.realset import FACEAPI_FACES, cache_path

    cache = cache_path()
    return [(img, box) for f, boxes in FACEAPI_FACES.items() for img in (_read(cache / f),) for box in boxes]


def _lfw_descriptors() -> list[np.ndarray]:
    import skimage.data

    from edged_platform.search.faces import describer

    return [describer().describe(cv2.cvtColor((x * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
            for x in skimage.data.lfw_subset()[:100]]


def face_ranks(sizes: tuple[int, ...] = (32, 48)) -> dict[int, tuple[int, int, int, int, int]]:
    """Per face size: (rank-1, rank-5, queries, false matches under the threshold, distractor pairs)."""
    from edged_platform.search.faces import SAME_PERSON, describer

    faces = _faceapi_faces()
    lfw = _lfw_descriptors()
    queries = []
    for img, (x1, y1, x2, y2) in faces:
        m = round(0.25 * (x2 - x1))
        crop = img[max(0, y1 - m):y2 + m, max(0, x1 - m):x2 + m]
        queries.append(describer().describe(crop, (x1 - max(0, x1 - m), y1 - max(0, y1 - m),
                                                   x2 - max(0, x1 - m), y2 - max(0, y1 - m))))
    out = {}
    for size in sizes:
        g = np.array([sealed_descriptor(img, box, size) for img, box in faces] + lfw)
        r1 = r5 = false = 0
        for k, q in enumerate(queries):
            d = np.linalg.norm(g - q, axis=1)
            rank = int((d < d[k]).sum())
            r1 += rank == 0
            r5 += rank < 5
            false += int((np.delete(d, k) < SAME_PERSON).sum())
        out[size] = (r1, r5, len(queries), false, len(queries) * (len(g) - 1))
    return out


@dataclass
class IdentityFigures:
    """Face search across photographs of named people, at one gallery face width."""

    queries: int = 0
    rank1: int = 0
    rank5: int = 0
    same_pairs: int = 0
    misses: int = 0
    """Same-person pairs at or above the threshold."""
    named_other_pairs: int = 0
    named_false: int = 0
    """Pairs of two named people under the threshold."""
    distractor_pairs: int = 0
    distractor_false: int = 0
    """Query against a distractor face (face-api, LFW) under the threshold."""
    same_distances: list[float] = field(default_factory=list)
    closest_other: float = float("inf")


def identity_ranks(sizes: tuple[int, ...] = (32, 48)) -> tuple[dict[int, IdentityFigures], list[str]]:
    """Per gallery face width, face search across photographs of named people (:mod:`tools.eval.face_identities`):
    each photograph in turn is the query (full resolution, through ``photo_descriptor`` as ``edged-search face``);
    the gallery holds every other photograph's face, sealed at that width, and the distractors. Also the
    photographs where dlib's detector found no face (left out)."""
    from edged_platform.search.faces import SAME_PERSON, photo_descriptor
    from tools.eval.face_identities import fetch

    named, lost = [], []
    for ph in fetch():
        img = _read(ph.path)
        q, box = photo_descriptor(img)
        if box is None:
            lost.append(ph.name)
            continue
        named.append((ph.identity, img, box, q))
    faceapi, lfw = _faceapi_faces(), _lfw_descriptors()
    out = {}
    for size in sizes:
        fig = IdentityFigures()
        gallery = [sealed_descriptor(img, box, size) for _, img, box, _ in named]
        dis = np.array([sealed_descriptor(img, box, size) for img, box in faceapi] + lfw)
        for i, (who, _, _, q) in enumerate(named):
            others = [j for j in range(len(named)) if j != i]
            if not any(named[j][0] == who for j in others):
                continue
            d_named = {j: float(np.linalg.norm(gallery[j] - q)) for j in others}
            d_dis = np.linalg.norm(dis - q, axis=1)
            best_same = min(d for j, d in d_named.items() if named[j][0] == who)
            rank = sum(d < best_same for j, d in d_named.items() if named[j][0] != who) + int((d_dis < best_same).sum())
            fig.queries += 1
            fig.rank1 += rank == 0
            fig.rank5 += rank < 5
            for j, d in d_named.items():
                if named[j][0] == who:
                    fig.same_pairs += 1
                    fig.misses += d >= SAME_PERSON
                    fig.same_distances.append(d)
                else:
                    fig.named_other_pairs += 1
                    fig.named_false += d < SAME_PERSON
                    fig.closest_other = min(fig.closest_other, d)
            fig.distractor_pairs += len(d_dis)
            fig.distractor_false += int((d_dis < SAME_PERSON).sum())
            fig.closest_other = min(fig.closest_other, float(d_dis.min()))
        out[size] = fig
    return out, lost


def query_times(rows: list[int]) -> dict[int, dict[str, float]]:
    """Seconds per query over ``rows`` synthetic objects: exact plate, plate within 1 edit, face top 5."""
    from edged_platform.search import db as dbmod
    from edged_platform.search.db import deletion_keys
    from edged_platform.search.query import face_hits, plate_hits

    out = {}
    rng = np.random.default_rng(0)
    letters = np.array(list("ABCDEFGHJKLMNPRSTVWXY0123456789"))
    for n in rows:
        with tempfile.TemporaryDirectory() as tmp:
            index = Path(tmp) / "bench.sqlite"
            db = dbmod.connect(index)
            plates = ["".join(r) for r in rng.choice(letters, (n, 7))]
            faces = rng.standard_normal((n, 128)).astype(np.float32) * 0.05
            with db.transaction():
                db.executemany(
                    "INSERT INTO objects (category, device, video, name, track, first_t, last_t, best_value, "
                    "best_image, best_frame, plate, face) VALUES (?, 'rsu', 'v', ?, 1, 0, 0, 1, 'i', 0, ?, ?)",
                    ((("plate" if k % 2 else "face"), f"t{k}", plates[k] if k % 2 else None,
                      None if k % 2 else faces[k].tobytes()) for k in range(n)))
                db.executemany("INSERT OR IGNORE INTO plate_keys VALUES (?, ?)",
                               ((key, k + 1) for k in range(1, n, 2) for key in deletion_keys(plates[k])))
            want, probe = plates[1], faces[0]
            timing = {}
            for name, fn in (("plate exact", partial(plate_hits, db, want, 0)),
                             ("plate 1 edit", partial(plate_hits, db, want, 1)),
                             ("face top 5", partial(face_hits, db, probe, 5, exact=True))):
                fn()
                t0 = time.perf_counter()
                fn()
                timing[name] = time.perf_counter() - t0
            db.close()
            out[n] = timing
    return out


def index_time() -> tuple[int, int, float, dict[str, float]]:
    """(records, objects, seconds, per-part seconds) indexing a 10 s simulated run."""
    from edged.core.keys import load_platform_private_key, sealing_key_id
    from edged.link.wire import trusted_keys
    from edged_platform.search import db as dbmod
    from edged_platform.search.indexer import Indexer
    from edged_platform.search.sources import Tally, from_store
    from edged_sim import SimOptions, run_sim
    from edged_sim.run import fake_scene_config

    with tempfile.TemporaryDirectory() as tmp:
        run = run_sim(SimOptions(seconds=10.0, width=1920, height=1080, realtime=False, outage=None, detector="truth",
                                 config=None, base=fake_scene_config(), present_models_only=True, reconnect_max_s=1.0,
                                 out=Path(tmp) / "sim", report=False))
        keys = [load_platform_private_key(run.keys[c]) for c in ("face", "plate")]
        ring = {sealing_key_id(k): k for k in keys}
        signers = trusted_keys([run.keys["device"].with_suffix(".pub")])
        index = Path(tmp) / "i.sqlite"
        db = dbmod.connect(index)
        ix = Indexer(db)
        from edged_platform.search import faces, plates
        plates.reader(), faces.describer()  # model loading is not per object
        t0 = time.perf_counter()
        for d in ("func.face", "func.plate"):
            ix.add(from_store(run.stores[d].root, ring, signers, lambda m: False, Tally()))
        total = time.perf_counter() - t0
        objects = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
        db.close()
        return ix.added.records, objects, total, dict(ix.added.seconds)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.search_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--identities", action="store_true",
                   help="only face search across photographs of named people (tools.eval.face_identities)")
    args = p.parse_args(argv)
    print("face across photographs of named people (per gallery face width):")
    figures, lost = identity_ranks()
    for size, f in figures.items():
        print(f"  {size}px: rank-1 {f.rank1}/{f.queries}, rank-5 {f.rank5}/{f.queries}; "
              f"misses {f.misses}/{f.same_pairs} same-person pairs (distances "
              + ", ".join(f"{d:.3f}" for d in sorted(f.same_distances)) + "); "
              f"false matches {f.named_false}/{f.named_other_pairs} named pairs, "
              f"{f.distractor_false}/{f.distractor_pairs} distractor pairs; closest other {f.closest_other:.3f}")
    if lost:
        print("  no face found by dlib's detector in: " + ", ".join(lost))
    if args.identities:
        return 0
    print("plate read rate (exact / within 1 edit / plates) by plate height:")
    for name, rates in plate_rates().items():
        print(f"  {name}: " + ", ".join(f"{h}px {e}/{n1}/{n}" for h, (e, n1, n) in rates.items()))
    print("face, same photograph (rank-1 / rank-5 / queries; false matches < threshold / pairs):")
    for size, (r1, r5, n, false, pairs) in face_ranks().items():
        print(f"  {size}px: {r1}/{r5}/{n}; {false}/{pairs}")
    print("query seconds:")
    for n, t in query_times(args.rows).items():
        print(f"  {n} rows: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()))
    records, objects, total, parts = index_time()
    print(f"index: {records} records, {objects} objects in {total:.2f} s ({1000 * total / objects:.1f} ms/object); "
          + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
