"""``edged-search``: forensic search on the functional platform.

::

    edged-search index --index search.sqlite --key func-face.key --key func-plate.key \\
        --device-key device.pub --store platform/func.face --store platform/func.plate [--records DIR] \\
        [--older-than 30d]
    edged-search plate "AB12 CDE" --index search.sqlite [--max-edits 1] [--json]
    edged-search face photo.jpg --index search.sqlite [--top 5] [--json]
    edged-search restore HIT --index search.sqlite --key ... --device-key ... --ops-store platform/ops --out DIR
    edged-search restore HIT --index search.sqlite --key ... --device-key ... --deid-out clean/ --out DIR

    edged-search cells --index postgresql://search@db.example/edged [--cells 2048]

``index`` opens every sealed record it holds a key for (device signature, envelope and record,
verified as restore does), groups regions into objects (category, device, video, track), keeps each
object's best crop, reads plate text and computes face descriptors; re-running adds only records not
indexed yet. ``--index`` is a file (SQLite, created 0600, best crops in ``FILE.crops/``, 0700) or a
``postgresql://`` URL (a fleet's platform machines sharing one database; tables in its
``edged_search`` schema, best crops in it, nothing open to ``PUBLIC``); ``--older-than`` drops
objects last seen before then. ``cells`` clusters the face descriptors so a face query reads the
nearest cells only (``face --exact`` reads all). Keep the index on the functional platform: it is as
sensitive as the crops.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import psycopg

from edged.core.keys import KeyFileError, load_platform_private_key, sealing_key_id
from edged.link.wire import trusted_keys
from edged_platform.search import db as dbmod
from edged_platform.search.models import ModelMissing
from edged_platform.search.plates import fold
from edged_platform.stores import one_line, shown

PROG = "edged-search"


def _age(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``90m`` or a plain number of days."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number of days, or NUMBER with d, h or m (30d, 12h)")
    return float(m.group(1)) * {"": 86400, "d": 86400, "h": 3600, "m": 60}[m.group(2)]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].strip("`: "),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("index", help="index sealed records from stores and record folders")
    i.add_argument("--index", required=True, metavar="FILE|URL",
                   help="the index: a file (SQLite, created 0600) or a postgresql:// URL")
    i.add_argument("--key", action="append", default=[], metavar="PRIV",
                   help="functional platform private key (.key); repeatable, one per category")
    i.add_argument("--device-key", "--signer", dest="signer", action="append", default=[], metavar="PUB",
                   help="trusted device public key (.pub); repeatable")
    i.add_argument("--store", action="append", default=[], metavar="DIR|URL",
                   help="receiver store: a folder or a postgresql:// URL; repeatable")
    i.add_argument("--records", action="append", default=[], metavar="DIR",
                   help="folder of sealed record files ('edged deid --sealed' output); repeatable")
    i.add_argument("--older-than", type=_age, metavar="AGE",
                   help="drop objects last seen more than AGE ago (30d, 12h; plain number: days)")
    i.add_argument("--no-faces", action="store_true", help="do not compute face descriptors")
    for name, helptext in (("plate", "find objects by plate text"), ("face", "find face objects by a photo")):
        q = sub.add_parser(name, help=helptext)
        if name == "plate":
            q.add_argument("text", help="plate text (spaces and punctuation ignored, case-insensitive)")
            q.add_argument("--max-edits", type=int, default=0, help="allow this many edits (default 0: exact)")
        else:
            q.add_argument("photo", help="photo of the person (the largest face in it is used)")
            q.add_argument("--top", type=int, default=5, help="hits to show (default 5)")
            q.add_argument("--max-distance", type=float, help="only hits within this descriptor distance")
            q.add_argument("--probe", type=int, help="face cells to read where the index has cells (default: 1/32 "
                           "of them, at least 8)")
            q.add_argument("--exact", action="store_true", help="compare with every face, not the nearest cells")
        q.add_argument("--index", required=True, metavar="FILE|URL", help="the index file or database URL")
        q.add_argument("--json", action="store_true", help="print JSON instead of a table")
        q.add_argument("--crops", metavar="DIR", help="write the hits' best crops into DIR (private: 0700, files "
                       "0600); without it a database index shows none")
    c = sub.add_parser("cells", help="cluster the face descriptors into cells (face queries read the nearest)")
    c.add_argument("--index", required=True, metavar="FILE|URL", help="the index file or database URL")
    c.add_argument("--cells", type=int, help="how many cells (default: about the square root of the faces)")
    r = sub.add_parser("restore", help="restore a hit's frames from ops and its clip")
    r.add_argument("hit", type=int, help="the hit number (first column of a query's table, 'hit' in its JSON)")
    r.add_argument("--index", required=True, metavar="FILE|URL", help="the index file or database URL")
    r.add_argument("--key", action="append", required=True, metavar="PRIV",
                   help="functional platform private key; repeatable")
    r.add_argument("--device-key", "--signer", dest="signer", action="append", required=True, metavar="PUB",
                   help="trusted device public key; repeatable")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--ops-store", metavar="DIR", help="the ops store with the de-identified images")
    src.add_argument("--deid-out", metavar="DIR", help="an 'edged deid --sealed' --out folder (its sidecars name the "
                     "de-identified photos and videos)")
    r.add_argument("--out", required=True, metavar="DIR", help="output folder for the restored frames and the clip")
    r.add_argument("--fps", type=float, default=10.0, help="clip frame rate")
    return p


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_hits(hits: list, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps([h.as_json() for h in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        print(f"{PROG}: no {what} found")
        return
    print(f"{'hit':>6}  {'category':8}  {'plate':12}  {'score':>6}  {'device':12}  {'video':26}  {'track':>5}  "
          f"{'first (UTC)':19}  {'last (UTC)':19}  {'frames':>6}  best crop")
    for h in hits:
        print(f"{h.hit:>6}  {h.category:8}  {h.plate or '-':12}  {h.score:>6.3f}  {h.device[:12]:12}  "
              f"{h.video[:26]:26}  {h.track:>5}  {_when(h.first_t)}  {_when(h.last_t)}  {len(h.sightings):>6}  "
              f"{h.best_crop or '-'}")
        for s in h.sightings:
            print(f"{'':8}frame {s.frame:>6}  image {s.image_id}  box {s.box[0]},{s.box[1]} {s.box[2]}x{s.box[3]}")


def _index(args: argparse.Namespace) -> int:
    from edged_platform.search.indexer import Indexer
    from edged_platform.search.sources import Tally, from_folder, from_store
    from edged_platform.stores import StoreUnavailable, missing_folder

    if (args.store or args.records) and (not args.key or not args.signer):
        print(f"{PROG} index: --key and --device-key are needed to open records", file=sys.stderr)
        return 2
    missing = [d for d in args.store if missing_folder(d)] + [d for d in args.records if not Path(d).is_dir()]
    if missing:
        print(f"{PROG} index: folder not found: {missing[0]}", file=sys.stderr)
        return 2
    ring = {sealing_key_id(k): k for k in (load_platform_private_key(p) for p in args.key)}
    signers = trusted_keys(args.signer)
    db = dbmod.connect(args.index)
    try:
        if args.older_than is not None:
            n = dbmod.prune(db, time.time() - args.older_than)
            print(f"{PROG} index: dropped {n} object(s) last seen more than {args.older_than / 86400:g} day(s) ago")
        seen = {r[0] for r in db.execute("SELECT source FROM seen")}
        tally = Tally()
        indexer = Indexer(db, faces=not args.no_faces)
        for d in args.store:
            try:
                indexer.add(from_store(d, ring, signers, seen.__contains__, tally))
            except StoreUnavailable as err:
                print(f"{PROG} index: {err}", file=sys.stderr)
                return 2
        for d in args.records:
            indexer.add(from_folder(Path(d), ring, signers, seen.__contains__, tally))
        if not args.no_faces:
            indexer.backfill_faces()
        a = indexer.added
        total = db.execute("SELECT COUNT(*) FROM objects").fetchone()[0]
    finally:
        db.close()
    print(f"{PROG} index: {a.records} new record(s): {a.objects_new} new object(s), {a.objects_grown} grown, "
          f"{a.sightings} sighting(s), {a.plates_read} plate(s) read, {a.faces_described} face(s) described; "
          f"{tally.seen} already indexed, {tally.other_key} for other keys, {len(tally.rejected)} rejected; "
          f"{total} object(s) in {db.where}")
    if a.face_note:
        print(f"{PROG} index: no face descriptors: {a.face_note}", file=sys.stderr)
    for where, why in tally.rejected:
        print(f"{PROG} index: rejected {where}: {why}", file=sys.stderr)
    return 0


def _query(args: argparse.Namespace) -> int:
    from edged_platform.search import query

    db = dbmod.connect(args.index, create=False)
    try:
        if args.crops:
            db.crops_out = _private_folder(Path(args.crops))
        if args.cmd == "plate":
            if not fold(args.text):
                print(f"{PROG} plate: {args.text!r} has no letter or digit to search for", file=sys.stderr)
                return 2
            if args.max_edits < 0:
                print(f"{PROG} plate: --max-edits must be 0 or more, got {args.max_edits}", file=sys.stderr)
                return 2
            hits = query.plate_hits(db, args.text, args.max_edits)
            _print_hits(hits, args.json, f"plate {args.text!r}")
            return 0
        from edged_platform.search import faces

        why = faces.available()
        if why is not None:
            print(f"{PROG} face: {why}", file=sys.stderr)
            return 2
        photo = cv2.imread(args.photo, cv2.IMREAD_COLOR)
        if photo is None:
            print(f"{PROG} face: {args.photo}: not an image OpenCV can read", file=sys.stderr)
            return 2
        for name in ("top", "probe"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                print(f"{PROG} face: --{name} must be 1 or more, got {getattr(args, name)}", file=sys.stderr)
                return 2
        descriptor, box = faces.photo_descriptor(photo)
        if box is None:
            print(f"{PROG} face: no face found in {args.photo}; the whole photo is taken as the face", file=sys.stderr)
        hits = query.face_hits(db, descriptor, args.top, args.max_distance, args.probe, args.exact)
        _print_hits(hits, args.json, "face")
        return 0
    finally:
        db.close()


def _private_folder(path: Path) -> Path:
    """``path`` as a private folder (made 0700 if missing); refuse a link or one others can read."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_symlink() or stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise dbmod.IndexError_(f"--crops {path}: must be a private (0700) folder, not a link")
    return path


def _cells(args: argparse.Namespace) -> int:
    from edged_platform.search.cells import rebuild

    if args.cells is not None and args.cells < 1:
        print(f"{PROG} cells: --cells must be 1 or more, got {args.cells}", file=sys.stderr)
        return 2
    db = dbmod.connect(args.index, create=False)
    try:
        t0 = time.perf_counter()
        cells, faces = rebuild(db, args.cells)
    finally:
        db.close()
    print(f"{PROG} cells: {faces} face(s) in {cells} cell(s) ({time.perf_counter() - t0:.1f} s) in {db.where}")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from edged_platform.restore import RestoreError
    from edged_platform.search.restore_hit import restore_hit

    db = dbmod.connect(args.index, create=False)
    try:
        result = restore_hit(db, args.hit, args.key, args.signer, args.ops_store, Path(args.out), args.fps,
                             Path(args.deid_out) if args.deid_out else None)
    except RestoreError as err:
        print(f"{PROG} restore: {err}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"{PROG} restore: hit {args.hit}: {len(result.frames)} frame(s) restored into {args.out}"
          f"{', clip ' + result.clip if result.clip else ''}; {len(result.refused)} not restored")
    absent = [r for r in result.refused if "has no verified de-identified image" in r["reason"]
              or r["reason"].startswith("no sidecar under")]
    if absent:
        print(f"{PROG} restore: {len(absent)} frame(s) have no de-identified image there (ops gets only the selected "
              f"images): frames {', '.join(str(r['frame']) for r in absent)}; see {args.out}/hit.json", file=sys.stderr)
    for r in result.refused:
        if r not in absent:
            print(f"{PROG} restore: frame {r['frame']} (image {r['image_id']}): {r['reason']}", file=sys.stderr)
    return 0 if result.frames else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "index":
            return _index(args)
        if args.cmd == "restore":
            return _restore(args)
        if args.cmd == "cells":
            return _cells(args)
        return _query(args)
    except (dbmod.IndexError_, KeyFileError, ModelMissing) as err:
        print(f"{PROG} {args.cmd}: {err}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as err:
        print(f"{PROG} {args.cmd}: index {args.index}: {err}", file=sys.stderr)
        return 2
    except psycopg.Error as err:
        print(f"{PROG} {args.cmd}: index {shown(args.index)}: {one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
