"""``edged deid``: de-identify photos, folders of photos and video files with the daemon's own stages.

::

    edged deid photo.jpg street.avi shots/ --out clean/ [--config FILE] [--sealed DIR]

Each input runs through the stages ``edged run`` builds (:class:`edged.runtime.app.AppBuilder`): the
detector with the configured models (without ``--config`` the default real-world models,
:func:`edged.config.default_models`), the tracker (fresh per file, ids in memory only) and the
privacy stage's de-identifier. Photos are single frames on their own; a video's frames run in
order, so tracking and the track-stable de-identification work as in the daemon.

Outputs under ``--out``: ``NAME`` per photo (same name and format; no metadata such as EXIF or
GPS is copied), ``STEM.mp4`` per video (OpenCV ``VideoWriter``, ``mp4v``; where that codec cannot
be opened, ``STEM_frames/000000.jpg`` ... instead, and the summary says so) and ``deid-summary.json``
(per file: frames, regions de-identified, share of the frame changed). A folder is walked
recursively (hidden entries and the output folders skipped, other suffixes listed as skipped) and
its files keep their paths relative to it under ``--out``.

Originals: none are kept. The privacy stage seals original crops only for the categories in
``privacy.categories``; without ``--sealed`` the run clears that list, so the stage needs no keys
at all and every sensitive class is still de-identified. With ``--sealed DIR`` the config's keys
(``privacy.signing_key``, ``privacy.recipients``) are loaded as the daemon loads them and each
sealed record is written to ``DIR`` (open with ``edged_platform.restore --record``).

Errors: a bad input is one line on stderr naming the file, the other inputs are still done, and
the exit code is 1; a setup problem (config, models, keys, ``--out``) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import msgspec
import numpy as np

from edged.config import Config, ConfigError, load
from edged.core.ids import MonotonicUlid
from edged.core.keys import PrivacyKeys
from edged.core.types import Exposure, Frame, FrameMeta, Position
from edged.hal.base import CameraError, EndOfStream
from edged.hal.file import IMAGE_SUFFIXES, NOMINAL_AUTO, FileCamera
from edged.link.destinations import category_of
from edged.stages.detect.detector import Detector
from edged.stages.detect.stage import DetectStage
from edged.stages.pipeline import FrameWork, Pipeline, Stage
from edged.stages.privacy.stage import SENSITIVE_KIND, PrivacyStage
from edged.stages.track.ids import MemoryIds
from edged.stages.track.stage import TrackStage

VIDEO_SUFFIXES = frozenset({
    ".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".mts",
    ".3gp", ".ogv", ".mjpeg", ".mjpg", ".y4m",
})
"""Suffixes read as video (by :class:`edged.hal.file.FileCamera`, i.e. OpenCV); photos: ``edged.hal.file.IMAGE_SUFFIXES``."""
SUMMARY_NAME = "deid-summary.json"
VIDEO_FOURCC = "mp4v"
DEFAULT_JPEG_QUALITY = 95


class InputError(Exception):
    """One input file cannot be de-identified; the message is one line naming the file."""


class SetupError(Exception):
    """The run cannot start (config, models, keys, output folder); one line."""


@dataclass
class FileResult:
    """What the run made of one input file (one entry of the JSON summary)."""

    input: str
    kind: str
    output: str | None = None
    frames: int = 0
    regions: int = 0
    """Regions de-identified, summed over the frames."""
    changed_share_mean: float = 0.0
    """Share of the frame's pixels de-identification changed, mean over frames."""
    changed_share_max: float = 0.0
    sealed_records: int = 0
    video_format: str | None = None
    """Videos: ``mp4`` (``mp4v`` codec) or ``jpeg-frames`` (the codec was unavailable)."""
    seconds: float = 0.0
    error: str | None = None
    _changed: list[float] = field(default_factory=list, repr=False)

    def add_frame(self, original: np.ndarray, deidentified: np.ndarray, regions: int) -> None:
        """Count one processed frame."""
        self.frames += 1
        self.regions += regions
        self._changed.append(float(np.any(original != deidentified, axis=2).mean()))
        self.changed_share_mean = round(float(np.mean(self._changed)), 6)
        self.changed_share_max = round(float(np.max(self._changed)), 6)

    def to_dict(self) -> dict:
        """The summary entry (private fields and unset optional ones left out)."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_") and v is not None}


def deid_config(config: Config, sealing: bool) -> Config:
    """The config the run's stages are built from: no sealed categories unless sealing."""
    if sealing or not config.privacy.categories:
        return config
    return msgspec.structs.replace(config, privacy=msgspec.structs.replace(config.privacy, categories=[]))


class OfflineChain:
    """The daemon's detect, track and privacy stages, built once, with fresh state per file."""

    def __init__(self, config: Config, keys: PrivacyKeys | None = None) -> None:
        if not config.detect.enabled:
            raise SetupError("detect.enabled is false in the config: nothing would be found to de-identify")
        self.config = config
        self.keys = keys
        self.detect = DetectStage(Detector.from_config(config.detect))
        self.ulids = MonotonicUlid()

    def pipeline(self, fps: float) -> Pipeline:
        """Detect (shared, its scan state reset) then a new tracker and privacy stage, as ``AppBuilder.stages`` builds them."""
        self.detect.detector.reset()
        config = msgspec.structs.replace(self.config, camera=msgspec.structs.replace(self.config.camera, fps=fps))
        stages: list[Stage] = [
            self.detect,
            TrackStage.from_config(config, ids=MemoryIds()),
            PrivacyStage(config.privacy, self.keys, config.device.id),
        ]
        return Pipeline(stages)

    def frame(
        self, pixels: np.ndarray, index: int, video_id: str, timestamp: float, exposure: Exposure = NOMINAL_AUTO
    ) -> Frame:
        """A frame as the daemon's capture loop makes one."""
        h, w = pixels.shape[:2]
        meta = FrameMeta(self.ulids.new(timestamp), index, video_id, timestamp, exposure, Position(), w, h)
        return Frame(meta, pixels)


# ------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Job:
    """One input file and where its output goes (relative to ``--out``)."""

    path: Path
    kind: str
    relative: Path


def suffixes(names: frozenset[str]) -> str:
    """A suffix set for a message, sorted."""
    return ", ".join(sorted(names))


def kind_of(path: Path) -> str | None:
    """``photo``, ``video`` or ``None`` (unsupported) by suffix."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "photo"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None


def output_name(relative: Path, kind: str) -> Path:
    """The output path of an input, relative to ``--out``: photos keep their name, videos become ``.mp4``."""
    return relative if kind == "photo" else relative.with_suffix(".mp4")


def walk(folder: Path, skip: list[Path]) -> Iterator[Path]:
    """Files under ``folder``, recursively, sorted; hidden entries and the ``skip`` folders left out."""
    skip_resolved = {p.resolve() for p in skip}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in skip_resolved)
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def plan(inputs: list[Path], skip: list[Path]) -> tuple[list[Job], list[str], list[str]]:
    """Jobs for every input, one-line errors for bad ones, and files skipped in folders (unsupported type)."""
    jobs: list[Job] = []
    errors: list[str] = []
    skipped: list[str] = []
    for path in inputs:
        if path.is_dir():
            for file in walk(path, skip):
                kind = kind_of(file)
                if kind is None:
                    skipped.append(str(file))
                else:
                    jobs.append(Job(file, kind, file.relative_to(path)))
        elif path.is_file():
            kind = kind_of(path)
            if kind is None:
                errors.append(f"{path}: unsupported file type {path.suffix or '(no suffix)'!r} "
                              f"(photos: {suffixes(IMAGE_SUFFIXES)}; videos: {suffixes(VIDEO_SUFFIXES)})")
            else:
                jobs.append(Job(path, kind, Path(path.name)))
        elif path.exists():
            errors.append(f"{path}: not a regular file or folder")
        else:
            errors.append(f"{path}: no such file or folder")
    return jobs, errors, skipped


def writable_dir(path: Path, what: str) -> None:
    """Create ``path`` and check a file can be written in it, else raise :class:`SetupError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edged-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise SetupError(f"{what} {path}: cannot write there ({err.strerror or err})") from None


# ------------------------------------------------------------------------------------ runs
class Run:
    """One ``edged deid`` invocation: the chain, the output folders and the results so far."""

    def __init__(self, chain: OfflineChain, out: Path, sealed: Path | None, quality: int) -> None:
        self.chain = chain
        self.out = out
        self.sealed = sealed
        self.quality = quality
        self.results: list[FileResult] = []

    def sealed_file(self, relative: Path, index: int, category: str) -> Path:
        """Where one frame's sealed record of ``category`` goes."""
        assert self.sealed is not None
        return self.sealed / relative.parent / f"{relative.name}.f{index:06d}.{category}.sealed"

    def keep_sealed(self, work: FrameWork, relative: Path, result: FileResult) -> None:
        """Write the frame's sealed records (only with ``--sealed``)."""
        if self.sealed is None:
            return
        for env in work.outgoing:
            if env.kind == SENSITIVE_KIND:
                path = self.sealed_file(relative, work.frame.meta.frame_index, category_of(env.dest) or env.dest)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(env.body)
                result.sealed_records += 1

    def photo(self, job: Job, result: FileResult) -> None:
        """De-identify one photo into ``--out``."""
        pixels = cv2.imread(str(job.path), cv2.IMREAD_COLOR)  # applies EXIF orientation, drops alpha
        if pixels is None:
            raise InputError(f"{job.path}: cannot read it as an image (corrupt or not an image)")
        now = time.time()
        work = self.chain.pipeline(self.chain.config.camera.fps).process(
            self.chain.frame(pixels, 0, self.chain.ulids.new(now), now))
        out = self._deidentified(work)
        target = self.out / output_name(job.relative, "photo")
        target.parent.mkdir(parents=True, exist_ok=True)
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality] if target.suffix.lower() in (".jpg", ".jpeg") else []
        grey = target.suffix.lower() == ".pgm"  # a grey-only format: write the de-identified frame in grey
        ok = cv2.imwrite(str(target), cv2.cvtColor(out, cv2.COLOR_BGR2GRAY) if grey else out, params)
        if not ok:
            raise InputError(f"{job.path}: cannot write {target} in that format")
        result.add_frame(pixels, out, work.sensitive_regions)
        self.keep_sealed(work, job.relative, result)
        result.output = str(target)

    def video(self, job: Job, result: FileResult) -> None:
        """De-identify one video into ``--out`` (``.mp4``, or JPEG frames without the codec)."""
        probe = cv2.VideoCapture(str(job.path))
        fps = probe.get(cv2.CAP_PROP_FPS) if probe.isOpened() else 0.0
        probe.release()
        fps = fps if np.isfinite(fps) and 0 < fps < 1000 else self.chain.config.camera.fps
        camera = FileCamera(job.path, None, None, fps)
        try:
            camera.start()
        except CameraError as err:
            why = str(err).removeprefix("file camera: ")
            raise InputError(f"{job.path}: cannot read it as a video ({why})") from None
        pipeline = self.chain.pipeline(fps)
        writer: cv2.VideoWriter | None = None
        frames_dir: Path | None = None
        target = self.out / output_name(job.relative, "video")
        video_id = ""
        try:
            while True:
                try:
                    captured = camera.capture()
                except EndOfStream:
                    break
                except CameraError as err:
                    raise InputError(f"{job.path}: {str(err).removeprefix('file camera: ')}") from None
                index = result.frames
                video_id = video_id or self.chain.ulids.new(captured.timestamp)
                work = pipeline.process(
                    self.chain.frame(captured.pixels, index, video_id, captured.timestamp, captured.exposure))
                out = self._deidentified(work)
                if index == 0:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    h, w = out.shape[:2]
                    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, (w, h))
                    if writer.isOpened():
                        result.video_format, result.output = "mp4", str(target)
                    else:
                        writer.release()
                        writer = None
                        frames_dir = target.with_name(f"{target.stem}_frames")
                        frames_dir.mkdir(parents=True, exist_ok=True)
                        result.video_format, result.output = "jpeg-frames", str(frames_dir)
                if writer is not None:
                    writer.write(out)
                else:
                    assert frames_dir is not None
                    path = frames_dir / f"{index:06d}.jpg"
                    if not cv2.imwrite(str(path), out, [cv2.IMWRITE_JPEG_QUALITY, self.quality]):
                        raise InputError(f"{job.path}: cannot write {path}")
                result.add_frame(captured.pixels, out, work.sensitive_regions)
                self.keep_sealed(work, job.relative, result)
        finally:
            camera.stop()
            if writer is not None:
                writer.release()
        if result.frames == 0:
            raise InputError(f"{job.path}: holds no readable video frame")

    @staticmethod
    def _deidentified(work: FrameWork) -> np.ndarray:
        """The privacy stage's output image (never the unchecked frame)."""
        if work.deidentified is None:  # the privacy stage always sets it; never write an unchecked frame
            raise RuntimeError("privacy stage left no de-identified image")
        return work.deidentified

    def one(self, job: Job, written: dict[Path, Path]) -> FileResult:
        """Process one job; a failure becomes the result's one-line ``error``."""
        result = FileResult(str(job.path), job.kind)
        t0 = time.perf_counter()
        try:
            target = (self.out / output_name(job.relative, job.kind)).resolve()
            if target == job.path.resolve():
                raise InputError(f"{job.path}: its output would overwrite it (choose another --out)")
            if target in written:
                raise InputError(f"{job.path}: its output {target} was already written for {written[target]} "
                                 "in this run (rename one)")
            written[target] = job.path
            (self.photo if job.kind == "photo" else self.video)(job, result)
        except InputError as err:
            result.error = str(err)
        except (OSError, cv2.error, ValueError) as err:
            lines = str(err).strip().splitlines() or [""]
            result.error = f"{job.path}: {type(err).__name__}: {lines[-1]}"
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the batch or print a traceback
            result.error = f"{job.path}: unexpected {type(err).__name__}: {err}"
        result.seconds = round(time.perf_counter() - t0, 3)
        return result


def summary(results: list[FileResult], skipped: list[str], errors: list[str], config: str, sealed: Path | None) -> dict:
    """The JSON summary written to ``--out``."""
    return {
        "config": config,
        "sealed": str(sealed) if sealed else None,
        "originals_kept": bool(sealed),
        "files": [r.to_dict() for r in results],
        "errors": errors + [r.error for r in results if r.error],
        "skipped": skipped,
    }


def build_chain(args: argparse.Namespace) -> tuple[OfflineChain, str]:
    """Config, keys and models for the run, or :class:`SetupError` with one line."""
    from edged.core.keys import KeyFileError, check_keys
    from edged.stages.detect.runtime import ModelError

    if args.config is not None:
        try:
            config = load(args.config)
        except ConfigError as err:
            raise SetupError(str(err)) from None
        source = str(args.config)
    else:
        config, source = Config(), "defaults (edged.config.default_models)"
    keys = None
    if args.sealed is not None:
        if not config.privacy.categories:
            raise SetupError("--sealed: the config lists no privacy.categories, so there is nothing to seal")
        try:
            keys = check_keys(config)
        except KeyFileError as err:
            raise SetupError(f"--sealed: {err}") from None
    try:
        return OfflineChain(deid_config(config, keys is not None), keys), source
    except ModelError as err:
        raise SetupError(f"detect.models: {err}") from None


def deid_main(args: argparse.Namespace) -> int:
    """The ``edged deid`` handler: 0 all done, 1 some inputs failed, 2 the run could not start."""
    out: Path = args.out
    quality = args.quality
    try:
        if not 1 <= quality <= 100:
            raise SetupError(f"--quality {quality}: must be 1-100")
        if out.exists() and not out.is_dir():
            raise SetupError(f"--out {out}: exists and is not a folder")
        for path in args.inputs:
            if path.is_dir() and path.resolve() == out.resolve():
                raise SetupError(f"--out {out} is the input folder {path}: its originals would be overwritten")
        writable_dir(out, "--out")
        if args.sealed is not None:
            writable_dir(args.sealed, "--sealed")
        chain, source = build_chain(args)
    except SetupError as err:
        print(f"edged deid: {err}", file=sys.stderr)
        return 2
    skip = [out] + ([args.sealed] if args.sealed is not None else [])
    jobs, errors, skipped = plan(list(args.inputs), skip)
    for line in errors:
        print(f"edged deid: {line}", file=sys.stderr)
    run = Run(chain, out, args.sealed, quality)
    written: dict[Path, Path] = {}
    for job in jobs:
        result = run.one(job, written)
        run.results.append(result)
        if result.error:
            print(f"edged deid: {result.error}", file=sys.stderr)
        else:
            print(f"{job.path} -> {result.output}: {result.frames} frame{'s' * (result.frames != 1)}, "
                  f"{result.regions} region{'s' * (result.regions != 1)} de-identified, "
                  f"{result.changed_share_mean:.1%} of the frame changed ({result.seconds:.2f} s)")
    if skipped:
        print(f"edged deid: skipped {len(skipped)} file{'s' * (len(skipped) != 1)} of other types in folders "
              f"(listed in {out / SUMMARY_NAME})", file=sys.stderr)
    doc = summary(run.results, skipped, errors, source, args.sealed)
    try:
        (out / SUMMARY_NAME).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as err:
        print(f"edged deid: cannot write {out / SUMMARY_NAME}: {err.strerror or err}", file=sys.stderr)
        return 2
    failed = len(doc["errors"])
    done = sum(1 for r in run.results if not r.error)
    print(f"edged deid: {done} file{'s' * (done != 1)} de-identified, {failed} failed; summary: {out / SUMMARY_NAME}")
    if not jobs and not errors:
        print("edged deid: no photos or videos found in the inputs", file=sys.stderr)
        return 1
    return 1 if failed else 0


def add_deid_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``deid`` to a CLI's subparsers (handler in the ``handler`` default, returns an exit code)."""
    p = subparsers.add_parser(
        "deid",
        help="de-identify photos, folders of photos and video files (offline, the daemon's stages)",
        description=(
            "De-identify photos, folders (walked recursively; hidden entries skipped) and video files with "
            "the daemon's own detect, track and privacy stages. Writes NAME per photo (same format, no "
            "EXIF/GPS metadata), STEM.mp4 per video (mp4v; STEM_frames/*.jpg where that codec is unavailable) "
            f"and {SUMMARY_NAME} under --out; a folder's files keep their relative paths. No originals are "
            "kept: nothing is sealed and no keys are needed unless --sealed is given. Without --config the "
            "default real-world models are used. Exit code 1 when some input failed (each named on one "
            "line, the rest still done), 2 when the run cannot start."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help=f"photo ({suffixes(IMAGE_SUFFIXES)}), video ({suffixes(VIDEO_SUFFIXES)}) or folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML config for detect/track/privacy (default: built-in defaults, real-world models)")
    p.add_argument("--sealed", type=Path, metavar="DIR",
                   help="also keep the original crops, sealed to the config's privacy.recipients and signed "
                        "with privacy.signing_key, one file per frame and category (default: no originals kept)")
    p.add_argument("--quality", type=int, default=DEFAULT_JPEG_QUALITY, metavar="Q",
                   help=f"JPEG quality of written JPEG photos and frames (default {DEFAULT_JPEG_QUALITY})")
    p.set_defaults(handler=deid_main)
    return p
