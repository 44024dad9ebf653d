"""Side by side on the same files: ``edged deid`` and the whole daemon (``edged run``) against ``deface``
(PyPI ``deface`` 1.5.0), the usual baseline.

    nice -n 10 .venv/bin/python -m tools.bench.vs_deface [--frames 150] [--size 1280x720] [--input PATH ...]
        [--repeat 1] [--no-doc]

All three run as their command-line programs, in one run of this script, back to back on the same
machine (the order rotates between inputs and repeats):

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
- **edged run (daemon)**, videos only: ``edged run --config C --frames N`` (N = the clip's frames) with C
  from :func:`daemon_config`: file camera unpaced (``realtime = false``, the file's own size), the
  default real-world models (no ``[detect]``), sealing for face and plate with keys made by
  ``edged keygen`` in a temporary folder, the SQLite outbox in a temporary data folder, uplink and
  remote control off, no local frames (``output.save_every = 0``). Its end-to-end fps and run time come
  from its own ``output.dir/run-*/summary.json`` (``fps`` = processed / ``wall_s``; the models load
  before ``wall_s`` starts). It writes no video, so it has no changed/SSIM figures.

Figures per tool: wall time of the whole command (interpreter start, imports and model load
included) and frames per second over it; *steady* frames per second over the per-file time alone
(reading, detecting, de-identifying and writing; for deface also its ``count_frames`` pre-pass);
start-up = wall - per-file time. Output against input, every frame decoded with PyAV (photos with
OpenCV) and compared in grey: *changed* = share of pixels differing by more than :data:`TOLERANCE`
grey levels (both tools re-encode lossily, 4:2:0, so smaller differences are mostly codec noise; a
face blurred into a flat patch may change by less and is then not counted), and mean SSIM
(``skimage.metrics.structural_similarity``, grey, 7x7 window). *Codec floor*: the same two figures
for the input merely re-encoded the way each tool writes (deface: imageio-ffmpeg ``libx264`` at the
input's fps; edged: its own H.264 writer, ``edged.runtime.deid_video``), the part of *changed* that is not
de-identification. ``--frames N`` first writes the input's first N frames to a lossless FFV1 file
(``--codec h264``: H.264 at CRF 18, as a recorded clip is; FFV1 at 1280x720 costs about 50 ms of
CPU a frame to decode, H.264 a tenth of that), which all three then read; ``--size WxH`` resizes
the frames of that file (OpenCV, bicubic when enlarging, area when shrinking), so an upscaled clip
has more pixels but no more detail. Any video file works as ``--input``
(``~/.cache/edged/realset/bigbuckbunny.mp4``, ...).
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
DAEMON = "edged run (daemon)"
"""The daemon row's tool name."""
TOOLS = ("deface", "edged", DAEMON)
LABELS = {"edged": "edged deid"}
"""How a tool is named in the section (the key ``edged`` is ``edged deid``)."""
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


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``; both sides 64..8192 px (what ``camera.width``/``height`` allow)."""
    w, sep, h = text.strip().lower().partition("x")
    try:
        size = int(w), int(h)
    except ValueError:
        size = None
    if not sep or size is None or not all(64 <= v <= 8192 for v in size):
        raise ValueError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x720 (64..8192 px each)")
    return size


def resize(pixels: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """A frame at ``size`` (width, height): bicubic when enlarging, area when shrinking; as is without a size."""
    h, w = pixels.shape[:2]
    if size is None or (w, h) == size:
        return pixels
    enlarge = size[0] * size[1] > w * h
    return cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC if enlarge else cv2.INTER_AREA)


CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "ffv1": ("ffv1", "bgr0", {}),
    "h264": ("libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
}
"""How a prepared copy is written (encoder, pixel format, options): lossless FFV1 RGB, or H.264 as a
camera or a download delivers video (CRF 18, 4:2:0; about a tenth of FFV1's decoding cost)."""


def cut(source: Path, frames: int | None, target: Path, size: tuple[int, int] | None = None,
        codec: str = "ffv1") -> int:
    """Write the first ``frames`` frames (all without a count) of ``source`` to ``target`` (:data:`CODECS`:
    FFV1, lossless RGB, or H.264), resized to ``size`` (width, height) when given; returns frames written."""
    import av

    written = 0
    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream_in = src.streams.video[0]
        rate = stream_in.average_rate or stream_in.guessed_rate or 25
        encoder, pix_fmt, options = CODECS[codec]
        stream = dst.add_stream(encoder, rate=rate)
        stream.width, stream.height = size or (stream_in.width, stream_in.height)
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        for frame in src.decode(video=0):
            if frames is not None and written >= frames:
                break
            pixels = resize(frame.to_ndarray(format="bgr24"), size)
            out = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            out = out.reformat(format=pix_fmt) if pix_fmt == "bgr0" else out  # RGB kept exact; x264 converts
            for packet in stream.encode(out):
                dst.mux(packet)
            written += 1
        for packet in stream.encode():
            dst.mux(packet)
    return written


def video_size(path: Path) -> tuple[int, int]:
    """A video's frame size (width, height) as PyAV reports it."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.width, stream.height


def video_fps(path: Path) -> float:
    """The video's frame rate as OpenCV reports it (what ``edged deid`` writes with)."""
    cap = cv2.VideoCapture(str(path))
    try:
        value = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return value if np.isfinite(value) and 0 < value < 1000 else 10.0


def edged_floor(source: Path, target: Path) -> None:
    """Re-encode a video as ``edged deid`` writes one (its own H.264 writer), pixels untouched."""
    from edged.runtime.deid_video import H264Writer, VideoSource

    src = VideoSource(source, video_fps(source))
    writer = H264Writer(target, src, keep_audio=False, keep_metadata=False)
    try:
        for pixels, pts in src.frames():
            writer.write(pixels, pts)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        src.close()


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
    regions: int | None
    outputs: list[Path]
    note: str = ""
    own_fps: float | None = None
    """The tool's own steady fps figure (the daemon's summary.json), used instead of frames / ``work_s``."""

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
    formats = {f.get("video_codec") for f in files if f.get("video_codec")}
    exact = np.mean([f["changed_share_mean"] for f in files]) if files else 0.0
    note = f"own summary: {exact:.2%} changed before encoding" + (f", {', '.join(sorted(formats))}" if formats else "")
    return Run("edged", sum(f["frames"] for f in files), wall, sum(f["seconds"] for f in files),
               sum(f["regions"] for f in files), outputs, note)


def toml_str(value: str | Path) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value))


def daemon_config(video: Path, fps_hint: float, keys: Path, data_dir: Path, out_dir: Path) -> str:
    """The ``edged run`` config of the daemon row, as TOML text.

    File camera unpaced at the file's own size (``camera.width``/``height`` unset), ``camera.fps`` the
    clip's rate, the default real-world models (no ``[detect]``), sealing for face and plate
    (``keys/device.key`` signs, ``keys/func-face.pub`` and ``keys/func-plate.pub`` receive), the
    SQLite outbox under ``data_dir``, uplink and remote control off, no local frames.
    """
    camera_fps = min(120.0, max(0.1, round(fps_hint, 3)))
    return f"""# edged run for tools.bench.vs_deface: the whole daemon on one clip, as fast as it goes.
[device]
id = "rsu-bench"
data_dir = {toml_str(data_dir)}

[camera]
backend = "file"
fps = {camera_fps}

[camera.file]
path = {toml_str(video)}
realtime = false
loop = false

[output]
dir = {toml_str(out_dir)}
save_every = 0

[outbox]
path = "outbox.sqlite"

[uplink]
enabled = false

[remote.mqtt]
enabled = false

[remote.serial]
enabled = false

[privacy]
categories = ["face", "plate"]
signing_key = {toml_str(keys / "device.key")}
recipients = {{ face = {toml_str(keys / "func-face.pub")}, plate = {toml_str(keys / "func-plate.pub")} }}
"""


def make_keys(keys: Path) -> None:
    """The device signing key and the face and plate platforms' keys, by ``edged keygen``."""
    for kind, name in (("device", "device"), ("platform", "func-face"), ("platform", "func-plate")):
        subprocess.run([*edged_command(), "keygen", kind, "--out", str(keys / name)], check=True,
                       capture_output=True, cwd=ROOT)


@dataclass
class DaemonSummary:
    """What ``edged run`` reports in its ``summary.json``."""

    fps: float
    """End-to-end: processed frames / ``wall_s``."""
    wall_s: float
    """From camera start to the sinks closed (models load before)."""
    captured: int
    processed: int
    dropped: int
    stop_reason: str
    stage_p50_ms: dict[str, float]
    outbox_stored: int | None
    first_frame_s: float | None = None
    """Camera start to the first frame done (its whole scan); absent from older summaries."""
    steady_fps: float | None = None
    """Frames after the first / the time after it."""

    @classmethod
    def from_dict(cls, data: dict) -> DaemonSummary:
        """Read the fields this script uses from a parsed ``summary.json``."""
        frames = data["frames"]
        stages = data.get("stage_ms") or {}
        outbox = data.get("outbox") or {}
        return cls(float(data["fps"]), float(data["wall_s"]), int(frames["captured"]), int(frames["processed"]),
                   int(frames["dropped"]), str(data.get("stop_reason", "")),
                   {k: float(v["p50"]) for k, v in stages.items() if isinstance(v, dict) and "p50" in v},
                   outbox.get("stored"), data.get("first_frame_s"), data.get("steady_fps"))

    @property
    def note(self) -> str:
        """One line for the notes: frame accounting, the slowest stages, the outbox."""
        stages = sorted(self.stage_p50_ms.items(), key=lambda kv: -kv[1])[:4]
        line = (f"summary.json: {self.fps:.2f} fps over wall_s {self.wall_s:.1f} s, captured {self.captured}, "
                f"processed {self.processed}, dropped {self.dropped}")
        if self.first_frame_s is not None and self.steady_fps is not None:
            line += f", first frame done at {self.first_frame_s:.2f} s, {self.steady_fps:.2f} fps after it"
        if stages:
            line += ", p50 " + ", ".join(f"{k} {v:.1f} ms" for k, v in stages)
        if self.outbox_stored is not None:
            line += f", outbox stored {self.outbox_stored} messages"
        return line


def find_summary(out_dir: Path) -> Path:
    """The one ``run-*/summary.json`` that ``edged run`` wrote under ``output.dir``."""
    found = sorted(out_dir.glob("run-*/summary.json"))
    if len(found) != 1:
        raise RuntimeError(f"{out_dir}: expected one run-*/summary.json, found {len(found)}")
    return found[0]


def run_daemon(video: Path, frames: int, work: Path) -> Run:
    """``edged run --config C --frames N`` on the clip (C: :func:`daemon_config`); keys, data, output in ``work``."""
    keys, data_dir, out_dir = work / "keys", work / "data", work / "out"
    make_keys(keys)
    config = work / "daemon.toml"
    config.write_text(daemon_config(video, video_fps(video), keys, data_dir, out_dir))
    t0 = time.perf_counter()
    proc = subprocess.run([*edged_command(), "run", "--config", str(config), "--frames", str(frames)],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"edged run failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-3:]}")
    summary = DaemonSummary.from_dict(json.loads(find_summary(out_dir).read_text()))
    return Run(DAEMON, summary.processed, wall, summary.wall_s, None, [], summary.note, own_fps=summary.fps)


# ------------------------------------------------------------------------------------ inputs
@dataclass
class Case:
    """One benchmark input as the tools see it."""

    name: str
    kind: str
    """``video`` or ``photos``."""
    path: Path
    """The video file, or a folder holding only the photos."""
    frames: int
    photos: list[Path] = field(default_factory=list)
    note: str = ""
    """How the file was prepared (resized), for the section."""


def size_label(size: tuple[int, int]) -> str:
    """``(1280, 720)`` -> ``"1280x720"``."""
    return f"{size[0]}x{size[1]}"


def resize_note(source: tuple[int, int], size: tuple[int, int]) -> str:
    """What ``--size`` did to a clip's pixels, in words."""
    if source == size:
        return f"{size_label(size)}, the source's own size (not resized)"
    grown = size[0] * size[1] > source[0] * source[1]
    how = ("upscaled (OpenCV bicubic: more pixels, no more detail)" if grown else "downscaled (OpenCV area)")
    return f"{size_label(size)} {how} from {size_label(source)}"


def count_frames(path: Path) -> int:
    """Frames PyAV decodes from a video."""
    return sum(1 for _ in video_grey(path))


def prepare(path: Path, frames: int | None, tmp: Path, size: tuple[int, int] | None = None,
            codec: str = "ffv1") -> Case:
    """The file the tools get: the video (or its first ``frames`` frames and/or its frames resized to ``size``,
    written with ``codec``), or the photos copied flat (``size`` does not apply to photos)."""
    if path.is_file() and path.suffix.lower() not in PHOTO_SUFFIXES:
        if frames or size:
            suffix = (f"_first{frames}" if frames else "") + (f"_{size_label(size)}" if size else "")
            target = tmp / f"{path.stem}{suffix}.mkv"
            written = cut(path, frames, target, size, codec)
            note = resize_note(video_size(path), size) if size else ""
            note = ", ".join(filter(None, [note, "H.264 CRF 18" if codec == "h264" else ""]))
            what = ", ".join(filter(None, [f"first {written} frames" if frames else f"{written} frames", note]))
            return Case(f"{path.name} ({what})", "video", target, written, note=note)
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
    note = "--size does not apply to photos: their own sizes" if size else ""
    return Case(path.name + ("/" if path.is_dir() else ""), "photos", folder, len(copies), copies, note)


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
    regions: int | None
    sim: Similarity
    floor: Similarity | None
    note: str = ""
    own_fps: float | None = None
    """The tool's own steady fps (the daemon's summary.json ``fps``); else frames / ``work_s``."""

    @property
    def fps_total(self) -> float | None:
        """Frames per second including start-up."""
        return fps(self.frames, self.wall_s)

    @property
    def fps_steady(self) -> float | None:
        """Frames per second over the per-file work alone (the daemon's: its own end-to-end figure)."""
        return self.own_fps if self.own_fps is not None else fps(self.frames, self.work_s)

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


def per_frame(count: int | None, frames: int) -> float | None:
    """``count / frames``, or ``None`` without a count or frames."""
    return None if count is None or not frames else count / frames


def table(rows: list[Row]) -> str:
    """The per-tool table of one input."""
    lines = ["| tool | frames | wall s | fps incl. start-up | start-up s | steady fps | regions/frame | "
             "changed mean (max) | codec floor | changed - floor | SSIM | floor SSIM |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {LABELS.get(r.tool, r.tool)} | {r.frames} | {r.wall_s:.1f} | {num(r.fps_total)} | {num(r.startup_s)} | "
            f"{num(r.fps_steady)} | {num(per_frame(r.regions, r.frames), '.2f')} | "
            f"{pct(r.sim.changed_mean)} ({pct(r.sim.changed_max)}) | "
            f"{pct(r.floor.changed_mean if r.floor else None)} | "
            f"{pct(r.net_changed)} | "
            f"{num(r.sim.ssim_mean, '.4f')} | {num(r.floor.ssim_mean if r.floor else None, '.4f')} |")
    return "\n".join(lines)


def ratios(edged: Row, deface: Row, daemon: Row | None = None) -> str:
    """One line of edged deid/deface ratios, and edged run (daemon)/deface ones when there is a daemon row."""
    changed = ratio(edged.sim.changed_mean, deface.sim.changed_mean)
    line = (f"edged deid/deface: fps incl. start-up {num(ratio(edged.fps_total, deface.fps_total), '.2f', 'x')}, "
            f"steady fps {num(ratio(edged.fps_steady, deface.fps_steady), '.2f', 'x')}, "
            f"changed share {num(changed, '.2f', 'x')}")
    if edged.floor is not None and deface.floor is not None:
        line += f" ({num(ratio(edged.net_changed, deface.net_changed), '.2f', 'x')} less the codec floors)"
    if daemon is not None:
        line += (f"; edged run (daemon)/deface: end-to-end fps (summary.json) / deface steady fps "
                 f"{num(ratio(daemon.fps_steady, deface.fps_steady), '.2f', 'x')}, fps incl. start-up "
                 f"{num(ratio(daemon.fps_total, deface.fps_total), '.2f', 'x')}")
    return line


def section(cases: list[tuple[str, list[Row]]], command: str, revision: str, machine: str, load: tuple[float, float],
            versions: dict[str, str], repeat: int) -> str:
    """The Markdown section for docs/BENCHMARKS.md."""
    deface = ", ".join(f"{k} {versions[k]}" for k in ("deface", "onnx", "onnxruntime", "opencv-python",
                                                       "imageio-ffmpeg", "numpy") if k in versions)
    parts = [
        "## De-identification: edged deid and edged run (daemon) vs deface (same files, same run)\n",
        f"Command: `{command}` (rev {revision})  ",
        f"Machine: {machine}; load average {load[0]:.2f} at the start, {load[1]:.2f} at the end  ",
        "All rows come from this one invocation on this one machine: deface, edged deid and edged run (daemon) "
        "as command-line programs, back to back on the same prepared files, order rotating between inputs and "
        f"repeats{f', median of {repeat} runs' if repeat > 1 else ''}.  ",
        f"deface venv: {deface}. deface defaults: `--thresh 0.2`, `--scale` unset (network input = frame size "
        "rounded up to 32 px), `--mask-scale 1.3`, ellipse blur, `libx264` (imageio-ffmpeg), backend `auto`. "
        "edged deid: `edged deid INPUT --out DIR`, default models, H.264 video (PyAV, libx264). "
        "edged run (daemon), videos only: `edged run --config C --frames N` (N = the clip's frames), C: "
        "`camera.backend = \"file\"` on the same file, `realtime = false` (unpaced), the file's own size, no "
        "`[detect]` (default real-world models), sealing for face and plate (keys from `edged keygen`), the SQLite "
        "outbox on, uplink and remote off, `output.save_every = 0`; its *steady fps* is the end-to-end `fps` of its "
        "own `summary.json` (processed / `wall_s`, camera start to sinks closed; the models load before), its "
        "*start-up* = wall - `wall_s`. It writes no video, so it has no changed/SSIM figures.  ",
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
            parts.append(ratios(by_tool["edged"], by_tool["deface"], by_tool.get(DAEMON)) + "\n")
        notes = "; ".join(f"{LABELS.get(r.tool, r.tool)}: {r.note}" for r in rows if r.note)
        missing = [f"{LABELS.get(r.tool, r.tool)} output lacks {r.sim.missing} frames" for r in rows if r.sim.missing]
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


def tool_order(tools: tuple[str, ...], start: int) -> list[str]:
    """``tools`` rotated to begin at index ``start`` (mod their count): who goes first changes every run."""
    k = start % len(tools)
    return list(tools[k:] + tools[:k])


def bench(case: Case, venv: Path, tmp: Path, repeat: int, first: int, daemon: bool = True) -> list[Row]:
    """The tools on one input, ``repeat`` times each, the order rotated by ``first`` + the repeat's number;
    the daemon on videos only (and only with ``daemon``)."""
    tools = tuple(t for t in TOOLS if t != DAEMON or (daemon and case.kind == "video"))
    runs: dict[str, list[Run]] = {t: [] for t in tools}
    for i in range(repeat):
        for tool in tool_order(tools, first + i):
            out = tmp / f"{'daemon' if tool == DAEMON else tool}-{i}"
            out.mkdir()
            if tool == DAEMON:
                runs[tool].append(run_daemon(case.path, case.frames, out))
            elif tool == "deface":
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
    for tool in ("edged", DAEMON, "deface"):
        if tool not in runs:
            continue
        run = median_run(runs[tool])
        sim = Similarity() if tool == DAEMON else similarity(case, run.outputs, tool)
        rows.append(Row(case.name, tool, run.frames, run.wall_s, run.work_s, run.regions, sim, floors.get(tool),
                        run.note, run.own_fps))
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
                    help="extra input: any video file PyAV/OpenCV decode (.avi, .mp4, .mkv, ...), a photo or a "
                         "folder of photos (repeatable)")
    ap.add_argument("--only-inputs", action="store_true", help="skip the default videos (vtest.avi, Megamind.avi)")
    ap.add_argument("--frames", type=int, metavar="N", help="use only the first N frames of each video")
    ap.add_argument("--size", metavar="WxH", help="resize every video's frames to WxH in the lossless copy all "
                    "tools read (e.g. 1280x720; default: the video's own size)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tool per input; the median wall time is kept")
    ap.add_argument("--codec", choices=CODECS, default="ffv1",
                    help="how the --frames/--size copy is written: lossless FFV1 (default) or H.264, as a "
                         "recorded clip is (decoding FFV1 at 1280x720 costs about 50 ms of CPU a frame)")
    ap.add_argument("--venv", type=Path, default=DEFACE_VENV,
                    help=f"deface's virtual environment (default {DEFACE_VENV})")
    ap.add_argument("--no-doc", action="store_true", help="only print the section")
    ap.add_argument("--section", default=SECTION, help="section of the document to write (default %(default)s)")
    ap.add_argument("--doc", type=Path, help="document to write the section into (default docs/BENCHMARKS.md)")
    args = ap.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        ap.error("--frames must be at least 1")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    size = None
    if args.size:
        try:
            size = parse_size(args.size)
        except ValueError as err:
            ap.error(str(err))
    args.input = [p.expanduser() for p in args.input]
    for p in args.input:
        if not p.exists():
            ap.error(f"--input {p}: no such file or folder")
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
            case = prepare(path, args.frames, work, size, args.codec)
            print(f"{case.name}: {case.frames} frames", file=sys.stderr)
            results.append((case.name, bench(case, args.venv, work, args.repeat, i)))
    load_end = os.getloadavg()[0]
    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness > 0 else "") + ".venv/bin/python -m tools.bench.vs_deface"
    command += f" --frames {args.frames}" if args.frames else ""
    command += f" --size {size_label(size)}" if size else ""
    command += "".join(f" --input {p}" for p in args.input) + (" --only-inputs" if args.only_inputs else "")
    command += f" --repeat {args.repeat}" if args.repeat != 1 else ""
    command += f" --codec {args.codec}" if args.codec != "ffv1" else ""
    command += f" --section {args.section}" if args.section != SECTION else ""
    body = section(results, command, revision(git_revision()), machine_line(), (load_start, load_end), versions,
                   args.repeat)
    print(body)
    if not args.no_doc:
        write_section(args.section, body, args.doc or DOC)
    return 0


if __name__ == "__main__":
    sys.exit(main())
