"""Side by side on the same files: ``edged deid`` against ``deface`` (PyPI ``deface`` 1.5.0), the usual baseline.

    nice -n 10 .venv/bin/python -m tools.bench.vs_deface [--frames 150] [--input PATH ...] [--repeat 1] [--no-doc]

Both tools run as their command-line programs, in one run of this script, back to back on the same
machine (the order alternates between inputs and repeats):

- **deface** with its defaults (``--thresh 0.2``, ``--scale`` unset so the network sees every frame
  at its own size rounded up to 32 px, ``--mask-scale 1.3``, ellipse blur, ``libx264`` through
  imageio-ffmpeg, backend ``auto``), run by its own entry point ``deface.deface.main`` in its own
  virtual environment (``~/.cache/edged/deface-venv``, created here with :data:`DEFACE_PINS`; never
  in the project's). ``onnx`` is pinned beside ``onnxruntime`` because deface's ``auto`` backend
  picks ONNX Runtime only when both import (with ``onnxruntime`` alone it silently uses OpenCV DNN);
  it hands ONNX Runtime every available execution provider, and the note names the one it lists first.
  A small wrapper around ``main`` records the model load and per-file times and the face count.
- **edged** as ``edged deid INPUT --out DIR`` with the default models; its per-file ``seconds`` come
  from ``deid-summary.json``.

Figures per tool: wall time of the whole command (interpreter start, imports and model load
included) and frames per second over it; *steady* frames per second over the per-file time alone
(reading, detecting, de-identifying and writing; for deface also its ``count_frames`` pre-pass);
start-up = wall - per-file time. Output against input, every frame decoded with PyAV (photos with
OpenCV) and compared in grey: *changed* = share of pixels differing by more than :data:`TOLERANCE`
grey levels (both tools re-encode lossily, 4:2:0, so smaller differences are mostly codec noise; a
face blurred into a flat patch may change by less and is then not counted), and mean SSIM
(``skimage.metrics.structural_similarity``, grey, 7x7 window). *Codec floor*: the same two figures
for the input merely re-encoded the way each tool writes (deface: imageio-ffmpeg ``libx264`` at the
input's fps; edged: OpenCV ``VideoWriter`` ``mp4v``), the part of *changed* that is not
de-identification. ``--frames N`` first writes the input's first N frames to a lossless FFV1 file,
which both tools then read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SECTION = "vs-deface"
DEFACE_PINS = ("deface==1.5.0", "onnx==1.23.2", "onnxruntime==1.32.0")
"""What the deface venv gets (``pip install``); its other dependencies are recorded from ``pip freeze``."""
DEFACE_VENV = Path.home() / ".cache" / "edged" / "deface-venv"
TOLERANCE = 8
"""Grey levels a decoded output pixel may differ from the input before it counts as changed."""
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""Photo types both tools read (deface picks files by MIME type, edged by suffix)."""
LOG_ENV = "EDGED_VS_DEFACE_LOG"

DEFACE_WRAPPER = r"""
import json, os, sys, time
log = {"files": [], "frames": 0, "regions": 0, "load_s": None, "backend": None, "version": None}
try:
    import deface
    import deface.deface as d
    log["version"] = deface.__version__
    class TimedCenterFace(d.CenterFace):
        def __init__(self, *a, **k):
            t = time.perf_counter()
            super().__init__(*a, **k)
            log["load_s"] = time.perf_counter() - t
            log["backend"] = self.backend
    def timed(fn):
        def inner(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                log["files"].append(time.perf_counter() - t)
        return inner
    anonymize = d.anonymize_frame
    def counted(dets, frame, *a, **k):
        log["frames"] += 1
        log["regions"] += len(dets)
        return anonymize(dets, frame, *a, **k)
    d.CenterFace, d.anonymize_frame = TimedCenterFace, counted
    d.video_detect, d.image_detect = timed(d.video_detect), timed(d.image_detect)
    sys.argv = ["deface", *sys.argv[1:]]
    d.main()
finally:
    with open(os.environ["EDGED_VS_DEFACE_LOG"], "w") as f:
        json.dump(log, f)
"""
"""Runs deface's own ``main`` (what the ``deface`` command runs) with timers around model load and each file."""

DEFACE_FLOOR = r"""
import sys, imageio
reader = imageio.get_reader(sys.argv[1])
writer = imageio.get_writer(sys.argv[2], format="FFMPEG", mode="I", codec="libx264", fps=reader.get_meta_data()["fps"])
for frame in reader.iter_data():
    writer.append_data(frame)
reader.close()
writer.close()
"""
"""Re-encodes a video the way deface writes its output, without touching a pixel (the codec floor)."""


# ------------------------------------------------------------------------------------ measuring
def to_grey(frame: np.ndarray, order: str = "rgb") -> np.ndarray:
    """A decoded frame (grey, RGB or BGR) as one grey uint8 plane."""
    if frame.ndim == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY if order == "rgb" else cv2.COLOR_BGR2GRAY)


def changed_share(original: np.ndarray, output: np.ndarray, tolerance: int = TOLERANCE) -> float:
    """Share of pixels whose grey value differs by more than ``tolerance`` levels."""
    if original.shape != output.shape:
        raise ValueError(f"frame sizes differ: {original.shape} vs {output.shape}")
    diff = np.abs(original.astype(np.int16) - output.astype(np.int16))
    return float((diff > tolerance).mean())


def ssim(original: np.ndarray, output: np.ndarray) -> float:
    """Mean structural similarity of two grey uint8 frames (7x7 window, smaller on tiny frames)."""
    from skimage.metrics import structural_similarity

    if original.shape != output.shape:
        raise ValueError(f"frame sizes differ: {original.shape} vs {output.shape}")
    side = min(original.shape[:2])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        return float(np.array_equal(original, output))
    return float(structural_similarity(original, output, data_range=255, win_size=win))


def fps(frames: int, seconds: float | None) -> float | None:
    """Frames per second, or ``None`` when the time is missing or not positive."""
    if seconds is None or seconds <= 0:
        return None
    return frames / seconds


def ratio(edged: float | None, deface: float | None) -> float | None:
    """``edged / deface``, or ``None`` when either is missing or deface's is zero."""
    if edged is None or deface is None or deface == 0:
        return None
    return edged / deface


@dataclass
class Similarity:
    """Per-frame changed share and SSIM of an output against its input."""

    changed: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    missing: int = 0
    """Input frames the output lacks (or output frames beyond the input's)."""

    def add(self, original: np.ndarray, output: np.ndarray) -> None:
        """Compare one grey frame pair."""
        self.changed.append(changed_share(original, output))
        self.ssim.append(ssim(original, output))

    @property
    def changed_mean(self) -> float | None:
        """Mean changed share over the frames compared."""
        return float(np.mean(self.changed)) if self.changed else None

    @property
    def changed_max(self) -> float | None:
        """Largest changed share of one frame."""
        return float(np.max(self.changed)) if self.changed else None

    @property
    def ssim_mean(self) -> float | None:
        """Mean SSIM over the frames compared."""
        return float(np.mean(self.ssim)) if self.ssim else None


def compare(originals: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> Similarity:
    """Compare two grey frame sequences in order, counting the frames one of them lacks."""
    sim = Similarity()
    a, b = iter(originals), iter(outputs)
    while True:
        x, y = next(a, None), next(b, None)
        if x is None and y is None:
            return sim
        if x is None or y is None:
            sim.missing += 1
            continue
        sim.add(x, y)


# ------------------------------------------------------------------------------------ decoding
def video_grey(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a video, decoded by PyAV, as grey."""
    import av

    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield to_grey(frame.to_ndarray(format="rgb24"))


def photo_grey(path: Path) -> np.ndarray:
    """A photo decoded by OpenCV, as grey."""
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"cannot decode {path}")
    return to_grey(pixels, "bgr")


def cut(source: Path, frames: int, target: Path) -> int:
    """Write the first ``frames`` frames of ``source`` to ``target`` (FFV1, lossless RGB); returns frames written."""
    import av

    written = 0
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream_in = src.streams.video[0]
        rate = stream_in.average_rate or stream_in.guessed_rate or 25
        stream = dst.add_stream("ffv1", rate=rate)
        stream.width, stream.height, stream.pix_fmt = stream_in.width, stream_in.height, "bgr0"
        for frame in src.decode(video=0):
            if written >= frames:
                break
            out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24").reformat(format="bgr0")
            for packet in stream.encode(out):
                dst.mux(packet)
            written += 1
        for packet in stream.encode():
            dst.mux(packet)
    return written


def video_fps(path: Path) -> float:
    """The video's frame rate as OpenCV reports it (what ``edged deid`` writes with)."""
    cap = cv2.VideoCapture(str(path))
    try:
        value = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return value if np.isfinite(value) and 0 < value < 1000 else 10.0


def edged_floor(source: Path, target: Path) -> None:
    """Re-encode a video as ``edged deid`` writes one (OpenCV ``VideoWriter``, ``mp4v``), pixels untouched."""
    cap = cv2.VideoCapture(str(source))
    writer: cv2.VideoWriter | None = None
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), video_fps(source), (w, h))
            writer.write(frame)
    finally:
        cap.release()
        if writer is not None:
            writer.release()


# ------------------------------------------------------------------------------------ the tools
def venv_python(venv: Path) -> Path:
    """The venv's interpreter."""
    return venv / "bin" / "python"


def pip_freeze(venv: Path) -> dict[str, str]:
    """Package name (lower case) -> version installed in ``venv``."""
    out = subprocess.run([str(venv_python(venv)), "-m", "pip", "freeze"], capture_output=True, text=True, check=True)
    pins = {}
    for line in out.stdout.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def pins_met(installed: dict[str, str], pins: Iterable[str] = DEFACE_PINS) -> bool:
    """Whether every ``name==version`` pin is what ``installed`` holds."""
    for pin in pins:
        name, _, version = pin.partition("==")
        if installed.get(name.lower()) != version:
            return False
    return True


def ensure_deface(venv: Path = DEFACE_VENV) -> dict[str, str]:
    """The deface venv (created and filled with :data:`DEFACE_PINS` when missing or off-pin); its ``pip freeze``."""
    if venv_python(venv).exists():
        installed = pip_freeze(venv)
        if pins_met(installed):
            return installed
    else:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing {' '.join(DEFACE_PINS)} into {venv}", file=sys.stderr)
    subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q", *DEFACE_PINS], check=True)
    installed = pip_freeze(venv)
    if not pins_met(installed):
        raise RuntimeError(f"{venv}: pip did not install {DEFACE_PINS}")
    return installed


@dataclass
class Run:
    """One tool's run on one input."""

    tool: str
    frames: int
    wall_s: float
    work_s: float | None
    """Per-file time (reading, processing, writing), start-up excluded."""
    regions: int
    outputs: list[Path]
    note: str = ""

    @property
    def startup_s(self) -> float | None:
        """Wall time outside the per-file work (interpreter, imports, model load)."""
        return None if self.work_s is None else self.wall_s - self.work_s


def run_deface(venv: Path, inputs: list[Path], out: Path) -> Run:
    """deface's CLI with its defaults on one video (``-o``) or on a folder (outputs next to its copies)."""
    log = out / "deface-log.json"
    env = dict(os.environ, **{LOG_ENV: str(log)})
    video = len(inputs) == 1 and inputs[0].is_file()
    target = out / f"{inputs[0].stem}_deface.mp4" if video else None
    cmd = [str(venv_python(venv)), "-c", DEFACE_WRAPPER, *map(str, inputs)] + (["-o", str(target)] if target else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"deface failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    data = json.loads(log.read_text())
    outputs = [target] if target else sorted(p for d in inputs for p in d.iterdir() if "_anonymized" in p.stem)
    provider = next((line.removeprefix("Running on ").rstrip(".") for line in proc.stdout.splitlines()
                     if line.startswith("Running on ")), None)
    note = f"backend {data['backend']}" + (f" ({provider} first)" if provider else "")
    note += f", model load {data['load_s']:.2f} s" if data["load_s"] is not None else ""
    return Run("deface", data["frames"], wall, sum(data["files"]) if data["files"] else None, data["regions"],
               outputs, note)


def edged_command() -> list[str]:
    """How to start the project's ``edged`` CLI with this interpreter."""
    script = Path(sys.executable).with_name("edged")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from edged.cli import main; sys.exit(main())"]


def run_edged(inputs: list[Path], out: Path) -> Run:
    """``edged deid`` (default models) on the inputs."""
    t0 = time.perf_counter()
    proc = subprocess.run([*edged_command(), "deid", *map(str, inputs), "--out", str(out)], capture_output=True,
                          text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"edged deid failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads((out / "deid-summary.json").read_text())
    files = summary["files"]
    outputs = [Path(f["output"]) for f in files]
    formats = {f.get("video_format") for f in files if f.get("video_format")}
    exact = np.mean([f["changed_share_mean"] for f in files]) if files else 0.0
    note = f"own summary: {exact:.2%} changed before encoding" + (f", {', '.join(sorted(formats))}" if formats else "")
    return Run("edged", sum(f["frames"] for f in files), wall, sum(f["seconds"] for f in files),
               sum(f["regions"] for f in files), outputs, note)


# ------------------------------------------------------------------------------------ inputs
@dataclass
class Case:
    """One benchmark input as both tools see it."""

    name: str
    kind: str
    """``video`` or ``photos``."""
    path: Path
    """The video file, or a folder holding only the photos."""
    frames: int
    photos: list[Path] = field(default_factory=list)


def count_frames(path: Path) -> int:
    """Frames PyAV decodes from a video."""
    return sum(1 for _ in video_grey(path))


def prepare(path: Path, frames: int | None, tmp: Path) -> Case:
    """The file both tools get: the video (or its first ``frames`` frames, lossless), or the photos copied flat."""
    if path.is_file() and path.suffix.lower() not in PHOTO_SUFFIXES:
        if frames:
            target = tmp / f"{path.stem}_first{frames}.mkv"
            written = cut(path, frames, target)
            return Case(f"{path.name} (first {written} frames)", "video", target, written)
        return Case(path.name, "video", path, count_frames(path))
    photos = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES
                                                    and not any(part.startswith(".") for part in p.parts))
    if not photos:
        raise ValueError(f"{path}: no photos ({', '.join(PHOTO_SUFFIXES)}) or video")
    folder = tmp / f"{path.stem}_photos"
    folder.mkdir()
    copies = []
    for photo in photos:
        name = "__".join(photo.relative_to(path).parts) if path.is_dir() else photo.name
        copies.append(folder / name)
        shutil.copyfile(photo, copies[-1])
    return Case(path.name + ("/" if path.is_dir() else ""), "photos", folder, len(copies), copies)


def similarity(case: Case, outputs: list[Path], tool: str) -> Similarity:
    """Outputs against the inputs they came from, frame by frame."""
    if case.kind == "video":
        return compare(video_grey(case.path), video_grey(outputs[0]))
    sim = Similarity()
    for photo in case.photos:
        stem = photo.stem + "_anonymized" if tool == "deface" else photo.stem
        found = [p for p in outputs if p.stem == stem]
        if not found:
            sim.missing += 1
            continue
        sim.add(photo_grey(photo), photo_grey(found[0]))
    return sim


def codec_floor(case: Case, venv: Path, tmp: Path) -> dict[str, Similarity]:
    """The input re-encoded as each tool writes, compared with the input (videos only)."""
    if case.kind != "video":
        return {}
    deface_out, edged_out = tmp / "floor_deface.mp4", tmp / "floor_edged.mp4"
    subprocess.run([str(venv_python(venv)), "-c", DEFACE_FLOOR, str(case.path), str(deface_out)], check=True,
                   capture_output=True)
    edged_floor(case.path, edged_out)
    return {"deface": compare(video_grey(case.path), video_grey(deface_out)),
            "edged": compare(video_grey(case.path), video_grey(edged_out))}


# ------------------------------------------------------------------------------------ report
@dataclass
class Row:
    """One tool on one input: timings (median over repeats) and output figures."""

    case: str
    tool: str
    frames: int
    wall_s: float
    work_s: float | None
    regions: int
    sim: Similarity
    floor: Similarity | None
    note: str = ""

    @property
    def fps_total(self) -> float | None:
        """Frames per second including start-up."""
        return fps(self.frames, self.wall_s)

    @property
    def fps_steady(self) -> float | None:
        """Frames per second over the per-file work alone."""
        return fps(self.frames, self.work_s)

    @property
    def startup_s(self) -> float | None:
        """Wall time outside the per-file work."""
        return None if self.work_s is None else self.wall_s - self.work_s

    @property
    def net_changed(self) -> float | None:
        """Mean changed share less the codec floor's (the changed share itself where there is no floor)."""
        if self.sim.changed_mean is None:
            return None
        floor = self.floor.changed_mean if self.floor is not None else None
        return self.sim.changed_mean if floor is None else max(0.0, self.sim.changed_mean - floor)


def pct(value: float | None, digits: int = 2) -> str:
    """A share as a percentage, or ``-``."""
    return "-" if value is None else f"{value * 100:.{digits}f} %"


def num(value: float | None, fmt: str = ".1f", suffix: str = "") -> str:
    """A number in ``fmt``, or ``-``."""
    return "-" if value is None else f"{value:{fmt}}{suffix}"


def table(rows: list[Row]) -> str:
    """The per-tool table of one input."""
    lines = ["| tool | frames | wall s | fps incl. start-up | start-up s | steady fps | regions/frame | "
             "changed mean (max) | codec floor | changed - floor | SSIM | floor SSIM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.tool} | {r.frames} | {r.wall_s:.1f} | {num(r.fps_total)} | {num(r.startup_s)} | "
            f"{num(r.fps_steady)} | {num(r.regions / r.frames if r.frames else None, '.2f')} | "
            f"{pct(r.sim.changed_mean)} ({pct(r.sim.changed_max)}) | "
            f"{pct(r.floor.changed_mean if r.floor else None)} | "
            f"{pct(r.net_changed)} | "
            f"{num(r.sim.ssim_mean, '.4f')} | {num(r.floor.ssim_mean if r.floor else None, '.4f')} |")
    return "\n".join(lines)


def ratios(edged: Row, deface: Row) -> str:
    """One line of edged/deface ratios."""
    changed = ratio(edged.sim.changed_mean, deface.sim.changed_mean)
    line = (f"edged/deface: fps incl. start-up {num(ratio(edged.fps_total, deface.fps_total), '.2f', 'x')}, "
            f"steady fps {num(ratio(edged.fps_steady, deface.fps_steady), '.2f', 'x')}, "
            f"changed share {num(changed, '.2f', 'x')}")
    if edged.floor is not None and deface.floor is not None:
        line += f" ({num(ratio(edged.net_changed, deface.net_changed), '.2f', 'x')} less the codec floors)"
    return line


def section(cases: list[tuple[str, list[Row]]], command: str, revision: str, machine: str, load: tuple[float, float],
            versions: dict[str, str], repeat: int) -> str:
    """The Markdown section for docs/BENCHMARKS.md."""
    deface = ", ".join(f"{k} {versions[k]}" for k in ("deface", "onnx", "onnxruntime", "opencv-python",
                                                       "imageio-ffmpeg", "numpy") if k in versions)
    parts = [
        "## De-identification: edged deid vs deface (same files, same run)\n",
        f"Command: `{command}` (rev {revision})  ",
        f"Machine: {machine}; load average {load[0]:.2f} at the start, {load[1]:.2f} at the end  ",
        f"deface venv: {deface}. deface defaults: `--thresh 0.2`, `--scale` unset (network input = frame size "
        "rounded up to 32 px), `--mask-scale 1.3`, ellipse blur, `libx264` (imageio-ffmpeg), backend `auto`. "
        "edged: `edged deid INPUT --out DIR`, default models, `mp4v` video.  ",
        "Both as command-line programs, back to back, order alternating"
        f"{f', median of {repeat} runs' if repeat > 1 else ''}. "
        "*Start-up* = wall - per-file time (interpreter, imports, model load); *steady fps* = frames / per-file time "
        "(decode, detect, de-identify, encode; deface's includes its frame-counting pre-pass). *Changed*: share of "
        f"pixels whose decoded grey value differs from the input by more than {TOLERANCE} levels; *codec floor*: the "
        "same for the input merely re-encoded as the tool writes (no de-identification); *changed - floor* "
        "estimates the de-identified share alone. SSIM: grey, mean over frames. "
        "*Regions/frame*: deface's face boxes, edged's de-identified regions (faces, people, plates).\n",
    ]
    for name, rows in cases:
        parts.append(f"**{name}**\n\n{table(rows)}\n")
        by_tool = {r.tool: r for r in rows}
        if "edged" in by_tool and "deface" in by_tool:
            parts.append(ratios(by_tool["edged"], by_tool["deface"]) + "\n")
        notes = "; ".join(f"{r.tool}: {r.note}" for r in rows if r.note)
        missing = [f"{r.tool} output lacks {r.sim.missing} frames" for r in rows if r.sim.missing]
        if notes or missing:
            parts.append("Notes: " + "; ".join(filter(None, [notes, *missing])) + "\n")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ main
def revision(head: str) -> str:
    """The git revision, flagged when the code ``edged deid`` runs (``edged/``, ``models/``) differs from it."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edged", "models"], capture_output=True,
                               text=True, check=True, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return head
    return f"{head} + uncommitted changes in edged/ or models/" if dirty else head


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time."""
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def bench(case: Case, venv: Path, tmp: Path, repeat: int, first: str) -> list[Row]:
    """Both tools on one input, ``repeat`` times each, alternating which goes first."""
    runs: dict[str, list[Run]] = {"deface": [], "edged": []}
    for i in range(repeat):
        order = ["deface", "edged"] if (first == "deface") == (i % 2 == 0) else ["edged", "deface"]
        for tool in order:
            out = tmp / f"{tool}-{i}"
            out.mkdir()
            if tool == "deface":
                src = [case.path]
                if case.kind == "photos":
                    copy = tmp / f"deface-in-{i}"
                    shutil.copytree(case.path, copy)
                    src = [copy]
                runs[tool].append(run_deface(venv, src, out))
            else:
                runs[tool].append(run_edged([case.path], out))
            print(f"  {tool}: {runs[tool][-1].frames} frames in {runs[tool][-1].wall_s:.1f} s", file=sys.stderr)
    floors = codec_floor(case, venv, tmp)
    rows = []
    for tool in ("edged", "deface"):
        run = median_run(runs[tool])
        sim = similarity(case, run.outputs, tool)
        rows.append(Row(case.name, tool, run.frames, run.wall_s, run.work_s, run.regions, sim, floors.get(tool),
                        run.note))
    return rows


def default_inputs() -> list[Path]:
    """vtest.avi (real street) and Megamind.avi (animated) from the real-data cache."""
    from tools.eval import real_data

    videos = real_data.videos()
    return [videos["vtest.avi"], videos["Megamind.avi"]]


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print (and by default write) the section."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, action="append", default=[], metavar="PATH",
                    help="extra video, photo or folder of photos (repeatable)")
    ap.add_argument("--only-inputs", action="store_true", help="skip the default videos (vtest.avi, Megamind.avi)")
    ap.add_argument("--frames", type=int, metavar="N", help="use only the first N frames of each video")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tool per input; the median wall time is kept")
    ap.add_argument("--venv", type=Path, default=DEFACE_VENV,
                    help=f"deface's virtual environment (default {DEFACE_VENV})")
    ap.add_argument("--no-doc", action="store_true", help="only print the section")
    ap.add_argument("--doc", type=Path, help="document to write the section into (default docs/BENCHMARKS.md)")
    args = ap.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        ap.error("--frames must be at least 1")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    from tools.bench.doc import DOC, git_revision, machine_line, write_section

    versions = ensure_deface(args.venv)
    inputs = ([] if args.only_inputs else default_inputs()) + args.input
    if not inputs:
        ap.error("no inputs")
    load_start = os.getloadavg()[0]
    results: list[tuple[str, list[Row]]] = []
    with tempfile.TemporaryDirectory(prefix="edged-vs-deface-") as tmp_name:
        tmp = Path(tmp_name)
        for i, path in enumerate(inputs):
            work = tmp / f"input{i}"
            work.mkdir()
            case = prepare(path, args.frames, work)
            print(f"{case.name}: {case.frames} frames", file=sys.stderr)
            results.append((case.name, bench(case, args.venv, work, args.repeat, "deface" if i % 2 == 0 else "edged")))
    load_end = os.getloadavg()[0]
    command = "nice -n 10 .venv/bin/python -m tools.bench.vs_deface"
    command += f" --frames {args.frames}" if args.frames else ""
    command += "".join(f" --input {p}" for p in args.input) + (" --only-inputs" if args.only_inputs else "")
    command += f" --repeat {args.repeat}" if args.repeat != 1 else ""
    body = section(results, command, revision(git_revision()), machine_line(), (load_start, load_end), versions,
                   args.repeat)
    print(body)
    if not args.no_doc:
        write_section(SECTION, body, args.doc or DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
