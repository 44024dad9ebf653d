"""De-identification on the real evaluation set, judged by references edged does not ship.

    nice -n 10 python -m tools.eval.deid_real [--config C] [--no-reference] [--stride N] [--only KINDS] [--no-doc]

Every item of :mod:`tools.eval.realset` runs through the daemon's own detect, track and privacy
stages (``edged.runtime.deid_files.OfflineChain``, the chain ``edged deid`` uses), frame by frame.

- **Labelled faces and plates** (pasted real faces, rescaled real plates) are judged per width band:
  *hidden* when :func:`tools.eval.reference.detail_kept` leaves at most ``HIDDEN_DETAIL`` of the
  original's fine detail in the box; *first frame*: for videos, each object on the first frame it
  appears in.
- **Reference detections**: the independent detectors (:class:`tools.eval.reference.FaceReference`,
  MTCNN; :class:`tools.eval.reference.PlateReference`, platedet) run on the original and on the
  output; a labelled box the reference finds in the original (IoU >= 0.3) is a *reference object*,
  *still found* when the reference finds it in the output too. A detector is not ground truth: an
  object it misses is in neither count.
- **Frame changed**: share of pixels the chain changed, mean and max over frames, for every item,
  and for the clips without people (the false-region budget).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edged.config import Config, load
from edged.core.geometry import iou_matrix
from edged.runtime.deid_files import OfflineChain, deid_config
from tools.bench.doc import git_revision, machine_line, write_section
from tools.eval import realset
from tools.eval.reference import HIT_IOU, FaceReference, PlateReference, detail_kept

SECTION = "deid-real"

HIDDEN_DETAIL = 0.25
"""A box keeping at most this share of its fine detail counts as hidden."""
CLIP_FRAMES = 150
"""Frames read of each unlabelled clip (street, no people)."""


@dataclass
class BandTally:
    """Counts for one (class, band)."""

    labelled: int = 0
    hidden: int = 0
    first_labelled: int = 0
    first_hidden: int = 0
    reference: int = 0
    still_found: int = 0
    detail: list[float] = field(default_factory=list)


@dataclass
class ItemResult:
    name: str
    kind: str
    frames: int = 0
    changed: list[float] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)


def frames_of(item: realset.Item, limit: int) -> list[np.ndarray]:
    """The item's frames (read from its video when it has no frames in memory)."""
    if item.frames is not None:
        return item.frames
    assert item.video is not None
    return realset.video_frames(item.video, limit)


def run_item(chain: OfflineChain, item: realset.Item, tallies: dict[tuple[str, str, str], BandTally],
             refs: dict[str, FaceReference | PlateReference] | None, stride: int) -> ItemResult:
    """De-identify one item and add its judgements to ``tallies``."""
    frames = frames_of(item, CLIP_FRAMES)
    res = ItemResult(item.name, item.kind, len(frames))
    pipeline = chain.pipeline(item.fps)
    video_id = chain.ulids.new(0.0)
    for i, pixels in enumerate(frames):
        t0 = time.perf_counter()
        work = pipeline.process(chain.frame(pixels, i, video_id, i / item.fps))
        res.ms.append((time.perf_counter() - t0) * 1000)
        out = work.deidentified if work.deidentified is not None else pixels
        res.changed.append(float((out != pixels).any(axis=2).mean()))
        boxes = [b for b in (item.gt[i] if item.gt else []) if not b.ignore]
        if not boxes:
            continue
        judged_frame = i % stride == 0 or any(b.first_frame == i for b in boxes)
        for cls in ("face", "plate"):
            mine = [b for b in boxes if b.cls == cls]
            if not mine:
                continue
            gt = np.asarray([b.box for b in mine], np.float32)
            found_before = found_after = np.zeros(len(mine), bool)
            if refs is not None and judged_frame:
                before, after = refs[cls].detect(pixels), refs[cls].detect(out)
                found_before = iou_matrix(gt, before).max(axis=1) >= HIT_IOU if len(before) else found_before
                found_after = iou_matrix(gt, after).max(axis=1) >= HIT_IOU if len(after) else found_after
            for k, b in enumerate(mine):
                t = tallies.setdefault((cls, b.band, item.kind), BandTally())
                kept = detail_kept(pixels, out, b.box)
                hidden = not kept > HIDDEN_DETAIL  # NaN (a flat box) counts as hidden
                t.labelled += 1
                t.hidden += hidden
                t.detail.append(kept)
                if b.first_frame == i:
                    t.first_labelled += 1
                    t.first_hidden += hidden
                if judged_frame and found_before[k]:
                    t.reference += 1
                    t.still_found += bool(found_after[k])
    return res


def pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "-"


def report(tallies: dict[tuple[str, str, str], BandTally], results: list[ItemResult], refs_named: str | None,
           config_name: str) -> str:
    """Markdown tables of the run."""
    lines = [f"Config: {config_name}. References: {refs_named or 'none (labelled boxes only)'}.", "",
             "| class | width band (px) | items | labelled box-frames | hidden | first frame hidden "
             "| reference finds in original | still found after | detail kept (median / max) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (cls, band, kind), t in sorted(tallies.items()):
        d = np.asarray(t.detail, np.float64)
        d = d[np.isfinite(d)]
        detail = f"{np.median(d):.2f} / {d.max():.2f}" if d.size else "-"
        lines.append(f"| {cls} | {band} | {kind} | {t.labelled} | {pct(t.hidden, t.labelled)} | "
                     f"{t.first_hidden} / {t.first_labelled} | {t.reference} | "
                     f"{t.still_found} ({pct(t.still_found, t.reference)}) | {detail} |")
    lines += ["", "| item | kind | frames | frame changed (mean / max) | chain ms a frame (median) |",
              "| --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.name} | {r.kind} | {r.frames} | {100 * np.mean(r.changed):.2f}% / "
                     f"{100 * np.max(r.changed):.2f}% | {np.median(r.ms):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, help="TOML config (default: the built-in defaults, real-world models)")
    ap.add_argument("--no-reference", action="store_true", help="judge labelled boxes only (fast)")
    ap.add_argument("--stride", type=int, default=3, help="run the references on every Nth video frame (and first frames)")
    ap.add_argument("--only", default="", help="comma-separated item kinds to run (default: all)")
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--no-doc", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    ap.add_argument("--section", default=SECTION, help="section of docs/BENCHMARKS.md to write (default %(default)s)")
    args = ap.parse_args(argv)
    config = load(args.config) if args.config else Config()
    chain = OfflineChain(deid_config(config, sealing=False))
    refs = None if args.no_reference else {"face": FaceReference(), "plate": PlateReference()}
    named = None if refs is None else f"faces: {refs['face'].NAME}; plates: {refs['plate'].NAME}"
    rs = realset.build(args.cache)
    kinds = set(filter(None, args.only.split(",")))
    tallies: dict[tuple[str, str, str], BandTally] = {}
    results = []
    for item in rs.items:
        if kinds and item.kind not in kinds:
            continue
        results.append(run_item(chain, item, tallies, refs, max(1, args.stride)))
        print(f"{item.name}: {results[-1].frames} frames, changed {100 * np.mean(results[-1].changed):.2f}%",
              file=sys.stderr)
    text = report(tallies, results, named, str(args.config or "defaults"))
    print(text)
    if not args.no_doc:
        command = "python -m tools.eval.deid_real " + " ".join(argv if argv is not None else sys.argv[1:])
        write_section(args.section, f"## De-identification on the real set (`{command.strip()}`)\n\n"
                      f"Machine: {machine_line()}; revision {git_revision()}. Items: `tools.eval.realset` "
                      f"(provenance and licences in its docstring). Hidden: at most {HIDDEN_DETAIL:g} of the "
                      f"labelled box's fine detail kept (`tools.eval.reference.detail_kept`). References are "
                      f"detectors, not ground truth: an object a reference misses is in neither of its "
                      f"columns.\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
