"""End-to-end benchmark: the whole daemon on the fake scene at 1280x720 with the default models.

    python -m tools.bench.e2e [--frames 600] [--warmup 30] [--config config/default.toml] [--no-write]

One run of :func:`edged.runtime.app.build_daemon` with the configured (default) models; de-identification,
sealing and persistence (the SQLite outbox, one fsynced commit per frame) included; the uplink off
(messages stay in the outbox). The fake camera is not paced and runs in lockstep with the pipeline
(:mod:`edged_sim.lockstep`): it renders the next frame while the pipeline works on the current one
and no frame is dropped, so capture does not limit the rate and no frame is rendered for nothing.

Prints, and writes as the ``e2e`` section of ``docs/BENCHMARKS.md`` (``--no-write`` to skip):

* end-to-end FPS (frames through the whole chain per wall second, after ``--warmup`` frames);
* whole per-frame CPU time (process CPU time / frames) and its ratio to the bare detector: the
  same frames are rendered again afterwards (same seed, the recorded exposure commands replayed),
  the same detector runs on them with nothing else in the process, and only its interpreter
  invokes are timed (the invoking thread's CPU, and wall summed over invokes, which may run side
  by side on the detect workers; the invoke counts of both passes are printed);
* per-stage p50/p95 latency, RSS;
* short versions of the other benchmarks, in the same run: int8 vs float invoke time of the default
  model pairs, the tracker against trackers' ByteTrack, the outbox's durable rates
  (``--no-companions`` skips them); the sections their full scripts wrote are referenced.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edged.config import Config, from_dict, load, to_dict
from edged.core.keys import generate_device_key, generate_platform_key
from edged.runtime.app import build_daemon
from edged.runtime.camera import make_camera
from edged.stages.detect.detector import Detector
from edged.stages.detect.stage import DetectStage
from edged.stages.pipeline import FrameWork
from edged_sim.lockstep import CreditSink, LockstepCamera
from edged_sim.run import missing_models, present_models
from tools.bench.doc import DOC, git_revision, machine_line, write_section

ROOT = Path(__file__).resolve().parents[2]
SECTION = "e2e"
TARGET_FPS = 25.0
"""T/AI 110.2: the de-identification path processes at least 25 frames per second."""
TARGET_RATIO = 1.15
"""Whole per-frame CPU time at most 1.15x the bare detector invokes (issue 8)."""
PIPELINE_STAGES = ("detect", "track", "select", "privacy", "health", "package")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads so far, grouped by what runs on them:
    the daemon's executors (``camera``, ``stages``, ``sinks``), the event loop (``MainThread``),
    ``asyncio.to_thread`` workers, and native threads (TFLite/XNNPACK and OpenCV pools)."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        cpu = (int(fields[11]) + int(fields[12])) / tick
        name = names.get(int(task.name), "native (TFLite/XNNPACK, OpenCV pools)")
        group = "event loop" if name == "MainThread" else re.sub(r"_\d+$", "", name.split("-")[0])
        out[group] = out.get(group, 0.0) + cpu
    return out


@dataclass
class MeterSink:
    """Per-frame timings, and process CPU / wall clock from frame ``warmup`` on (sink thread)."""

    warmup: int
    total: int = 0
    """Frames in the run: the per-thread CPU snapshot is taken at the last one."""
    on_start: Any = None
    """Called once when measuring starts (after the warm-up frames)."""
    frames: int = 0
    timings: dict[str, list[float]] = field(default_factory=dict)
    start: tuple[float, float] | None = None
    end: tuple[float, float] | None = None
    counted: int = 0
    threads_start: dict[str, float] = field(default_factory=dict)
    threads_end: dict[str, float] = field(default_factory=dict)

    def consume(self, work: FrameWork) -> None:
        self.frames += 1
        if self.frames <= self.warmup:
            if self.frames == self.warmup:
                self._begin()
            return
        if self.start is None:  # warmup 0
            self._begin()
        for name, ms in work.timings_ms.items():
            self.timings.setdefault(name, []).append(ms)
        self.timings.setdefault("pipeline total", []).append(sum(work.timings_ms.values()))
        self.counted += 1
        self.end = (time.process_time(), time.perf_counter())
        if self.frames == self.total:
            self.threads_end = thread_cpu()

    def _begin(self) -> None:
        if self.on_start is not None:
            self.on_start()
        self.threads_start = thread_cpu()
        self.start = (time.process_time(), time.perf_counter())

    def close(self) -> dict[str, Any]:
        return {}


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def bench_config(base: Config, folder: Path, width: int, height: int, present_only: bool = False) -> Config:
    """``base`` with the fake camera unpaced at ``width`` x ``height``, fresh keys and storage, no uplink
    (``present_only``: only the models whose files exist)."""
    generate_device_key(folder / "keys" / "device")
    d = to_dict(base)
    if present_only:
        d["detect"]["models"] = present_models(d["detect"]["models"])
    cats = list(base.privacy.categories)
    for c in cats:
        generate_platform_key(folder / "keys" / f"func-{c}")
    d["device"]["data_dir"] = str(folder / "data")
    d["camera"].update(backend="fake", width=width, height=height)
    d["camera"].setdefault("fake", {})["realtime"] = False  # a real camera's config names no [camera.fake]
    d["output"].update(dir=str(folder / "out"), save_every=0)
    d["privacy"]["signing_key"] = str(folder / "keys" / "device.key")
    d["privacy"]["recipients"] = {c: str(folder / "keys" / f"func-{c}.pub") for c in cats}
    d["uplink"]["enabled"] = False
    d["remote"]["mqtt"]["enabled"] = False
    d["remote"]["serial"]["enabled"] = False
    return from_dict(d)


class InvokeMeter:
    """Wraps every interpreter of each model (one a detect worker) so its ``invoke`` calls are counted
    (and, when ``timing``, timed: the invoking thread's CPU, as each interpreter runs single-threaded,
    and wall, summed over invokes that may run side by side) -- the rest of detection (resize,
    quantise, decode) is not."""

    def __init__(self, detector: Detector) -> None:
        self.timing = False
        self.lock = threading.Lock()
        self.counts = {m.cfg.name: 0 for m in detector.models}
        self.cpu = dict.fromkeys(self.counts, 0.0)
        self.wall = dict.fromkeys(self.counts, 0.0)
        for m in detector.models:
            for copy in m.copies:
                # the interpreter is TFLiteModel's private attribute; a benchmark may look inside
                copy._interp = _TimedInterpreter(copy._interp, self, m.cfg.name)

    def reset(self, timing: bool) -> None:
        self.timing = timing
        for d in (self.counts, self.cpu, self.wall):
            for k in d:
                d[k] = 0


class _TimedInterpreter:
    def __init__(self, interp: Any, meter: InvokeMeter, name: str) -> None:
        self._interp, self._meter, self._name = interp, meter, name

    def invoke(self) -> None:
        meter = self._meter
        if not meter.timing:
            self._interp.invoke()
            with meter.lock:
                meter.counts[self._name] += 1
            return
        c0, w0 = time.thread_time(), time.perf_counter()
        self._interp.invoke()
        cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
        with meter.lock:
            meter.counts[self._name] += 1
            meter.cpu[self._name] += cpu
            meter.wall[self._name] += wall

    def __getattr__(self, name: str) -> Any:
        return getattr(self._interp, name)


def bare_invokes(config: Config, detector: Detector, meter: InvokeMeter,
                 commands: list[tuple[int, str, tuple[float, ...]]], frames: int, warmup: int) -> dict[str, Any]:
    """Render the same frames again (recorded exposure commands replayed), run the same detector on
    them, nothing else in the process, and time only its interpreter invokes (process CPU and wall)."""
    camera = make_camera(config.camera)
    camera.start()
    pending = list(commands)
    try:
        for i in range(frames):
            while pending and pending[0][0] <= i:
                _, method, args = pending.pop(0)
                getattr(camera, method)(*args)
            pixels = camera.capture().pixels
            if i == warmup:
                meter.reset(timing=True)
            if i >= warmup:
                detector.detect(pixels)
    finally:
        camera.stop()
    n = max(frames - warmup, 1)
    return {
        "cpu_ms_per_frame": sum(meter.cpu.values()) / n * 1000,
        "wall_ms_per_frame": sum(meter.wall.values()) / n * 1000,
        "per_model": {k: {"cpu_ms_per_frame": meter.cpu[k] / n * 1000, "wall_ms_per_frame": meter.wall[k] / n * 1000,
                          "invokes_per_frame": meter.counts[k] / n} for k in meter.counts},
    }


def companion_figures(threads: int) -> list[str]:
    """Short versions of the other benchmarks, in this run: int8 vs float invokes (the default model
    pairs, 1 and ``threads`` threads), the tracker against trackers' ByteTrack on the same detections
    (30 s synthetic scene), and the outbox (durable small-message and 200 kB image rates). Each
    script's full version writes its own section of docs/BENCHMARKS.md."""
    from ai_edge_litert.interpreter import Interpreter

    from tools.bench import invoke as bench_invoke
    from tools.bench import outbox as bench_outbox
    from tools.bench import tracker as bench_tracker
    from tools.eval.tracking import Noise, make_scene

    lines = []
    for name, f, q in bench_invoke.PAIRS:
        if not (ROOT / f).exists() or not (ROOT / q).exists():
            continue
        for t in sorted({1, threads}):
            its = []
            for p in (f, q):
                it = Interpreter(model_path=str(ROOT / p), num_threads=t)
                it.allocate_tensors()
                its.append(it)
            fm, qm = bench_invoke.median_ms(its, 9, 20 if "face" in name else 3)
            lines.append(f"int8 vs float invoke, {name}, {t} thread(s): float {fm:.2f} ms, int8 {qm:.2f} ms, "
                         f"float/int8 {fm / qm:.2f}x (target >= 1.5x)")
    scene = make_scene("synthetic", 3, 30.0, noise=Noise())
    rows = bench_tracker.bench(scene, 1)
    (_, edged_fps, m), (_, ref_fps, r) = rows[1], rows[2]
    lines.append(f"tracker, 30 s synthetic scene: edged {edged_fps:,.0f} frames/s (MOTA {m['MOTA']:.3f}, IDF1 "
                 f"{m['IDF1']:.3f}); trackers ByteTrackTracker per class {ref_fps:,.0f} frames/s (MOTA "
                 f"{r['MOTA']:.3f}, IDF1 {r['IDF1']:.3f}); edged / reference {edged_fps / ref_fps:.2f}x")
    small, _ = bench_outbox.rate(bench_outbox.batched(200), 1.0, 1, synchronous="full")
    images, _ = bench_outbox.rate(bench_outbox.single(bench_outbox.IMAGE), 1.0, 1, synchronous="full")
    lines.append(f"outbox (synchronous=full): {small:,.0f} small msg/s enqueued+acked in batches of 100; "
                 f"{images:.0f} x 200 kB images/s one commit each ({images * bench_outbox.IMAGE / 1e6:.1f} MB/s)")
    return lines


def budget_note(invoke_cpu_ms: float, stage_rows: list[tuple[str, float, float]], render_ms: float) -> str:
    """Why the whole/invoke ratio is what it is: the target's budget against the stages beside detection."""
    budget = (TARGET_RATIO - 1.0) * invoke_cpu_ms
    others = [(n, p50) for n, p50, _ in stage_rows if n in PIPELINE_STAGES and n != "detect"]
    over = [f"{n} {p50:.1f} ms" for n, p50 in others if p50 > budget]
    return (f"The ratio target leaves {budget:.1f} ms of CPU a frame for everything but the invokes "
            f"({TARGET_RATIO - 1.0:.0%} of {invoke_cpu_ms:.1f} ms). Rendering the fake frame alone takes "
            f"{render_ms:.1f} ms, and these stages each take more at p50: {', '.join(over) or 'none'}; "
            "detection's own resizing, quantising and decoding come on top. The ratio says how fast a CPU "
            "runs int8 networks next to everything else, so it has to be "
            "measured on the device's CPU; no Raspberry Pi was available here.")


def other_sections(doc: Path = DOC, own: str = SECTION) -> list[tuple[str, str]]:
    """(section name, its first heading) of every other section of the benchmarks document."""
    try:
        text = doc.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for m in re.finditer(r"<!-- BEGIN (\S+) -->\s*\n(.*?)<!-- END \1 -->", text, re.S):
        if m.group(1) == own:
            continue
        heading = next((line.lstrip("#").strip() for line in m.group(2).splitlines() if line.startswith("#")), m.group(1))
        out.append((m.group(1), heading))
    return out


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return "#" + slug.replace(" ", "-")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def run_daemon(config: Config, folder: Path, frames: int, warmup: int):  # noqa: ANN201
    camera = LockstepCamera(make_camera(config.camera), credits=config.pipeline.frame_queue)
    daemon = build_daemon(config, folder / "out", camera=camera)
    detect = next(s for s in daemon.pipeline.stages if isinstance(s, DetectStage))
    invokes = InvokeMeter(detect.detector)
    meter = MeterSink(warmup, frames, on_start=lambda: invokes.reset(timing=False))
    daemon.sinks += [meter, CreditSink(camera)]
    summary = await daemon.run(max_frames=frames)
    run_counts = {k: v / max(meter.counted, 1) for k, v in invokes.counts.items()}
    return daemon, camera, meter, summary, detect.detector, invokes, run_counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=600, help="frames to run (default %(default)s: 60 s of scene)")
    ap.add_argument("--warmup", type=int, default=30, help="frames left out of the figures (default %(default)s)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "default.toml", help="base config (its models)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    ap.add_argument("--section", default=SECTION,
                    help="section of docs/BENCHMARKS.md to write (default %(default)s: the fake scene's models)")
    ap.add_argument("--no-companions", action="store_true",
                    help="skip the short int8/float, tracker and outbox figures after the daemon run")
    ap.add_argument("--present-models-only", action="store_true",
                    help="run with the configured models whose files exist (implies --no-write)")
    args = ap.parse_args(argv)
    missing = missing_models(load(args.config))
    if missing and not args.present_models_only:
        print(f"bench_e2e: model files missing: {', '.join(missing)} (--present-models-only runs without them)", file=sys.stderr)
        return 2
    if missing:
        print(f"bench_e2e: running WITHOUT {', '.join(missing)}; figures not written", file=sys.stderr)
        args.no_write = True
    if args.frames <= args.warmup:
        ap.error("--frames must be larger than --warmup")
    base = load(args.config)
    if not base.detect.enabled or not base.detect.models:
        print(f"bench_e2e: {args.config} configures no detection model; the benchmark needs the default models", file=sys.stderr)
        return 2
    command = "python -m tools.bench.e2e " + " ".join(argv if argv is not None else sys.argv[1:])
    load_avg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        folder = Path(tmp)
        config = bench_config(base, folder, args.width, args.height, args.present_models_only)
        try:
            daemon, camera, meter, summary, detector, invokes, run_counts = asyncio.run(
                run_daemon(config, folder, args.frames, args.warmup))
        except Exception as err:  # a missing model file etc.: one clear line
            print(f"bench_e2e: cannot run: {err}", file=sys.stderr)
            return 2
        rss, peak = rss_mb()
        outbox = summary.sinks.get("outbox", {})
        bare = bare_invokes(config, detector, invokes, camera.commands, args.frames, args.warmup)
    companions = [] if args.no_companions else companion_figures(config.detect.threads)
    load_after = os.getloadavg()[0]

    n = meter.counted
    (c0, w0), (c1, w1) = meter.start, meter.end
    fps = n / (w1 - w0) if w1 > w0 else float("nan")
    cpu_frame = (c1 - c0) / n * 1000
    render = float(np.sum(camera.render_cpu_ms[args.warmup :])) / n
    ratio = cpu_frame / bare["cpu_ms_per_frame"]
    ratio_no_render = (cpu_frame - render) / bare["cpu_ms_per_frame"]
    models = ", ".join(f"{m.name} ({Path(m.file).name}, {m.input_size[0]}x{m.input_size[1]})" for m in config.detect.models)
    stage_rows = []
    for name in ("capture", *PIPELINE_STAGES, "pipeline total", "sink"):
        values = (camera.render_ms[args.warmup :] if name == "capture"
                  else list(daemon.stats.stage_ms.get("sink", [])) if name == "sink" else meter.timings.get(name, []))
        if values:
            stage_rows.append((name, pct(values, 50), pct(values, 95)))

    lines = [
        f"frames: {n} measured after {args.warmup} warm-up frames, {args.width}x{args.height}, "
        f"dropped {summary.frames.dropped}",
        f"models: {models}; tiling {'on' if config.detect.tiling.enabled else 'off'}; {config.detect.threads} threads",
        f"end-to-end FPS: {fps:.1f} (T/AI 110.2 target >= {TARGET_FPS:g}: {'met' if fps >= TARGET_FPS else 'NOT met'})",
        f"whole per-frame CPU: {cpu_frame:.1f} ms (of which fake-camera rendering {render:.1f} ms)",
        f"bare detector invokes on the same frames: {bare['cpu_ms_per_frame']:.1f} ms CPU, "
        f"{bare['wall_ms_per_frame']:.1f} ms wall summed over invokes per frame; invokes per frame "
        + ", ".join(f"{k} {v['invokes_per_frame']:.2f} (daemon run {run_counts[k]:.2f})" for k, v in bare["per_model"].items()),
        f"ratio whole CPU / bare invokes: {ratio:.2f} (target <= {TARGET_RATIO}); without rendering: {ratio_no_render:.2f}",
        f"RSS: {rss:.0f} MB at the end, peak {peak:.0f} MB",
        f"outbox: {outbox.get('stored', 0)} messages stored ({outbox.get('used_bytes', 0) / 1e6:.1f} MB)",
    ]
    by_thread = {k: (meter.threads_end.get(k, 0.0) - meter.threads_start.get(k, 0.0)) / n * 1000
                 for k in meter.threads_end}
    by_thread = {k: v for k, v in sorted(by_thread.items(), key=lambda kv: -kv[1]) if v > 0.05}
    lines.append("CPU per frame by thread: " + ", ".join(f"{k} {v:.1f} ms" for k, v in by_thread.items()))
    for line in lines:
        print(line)
    print(f"{'stage':16s} {'p50 ms':>8s} {'p95 ms':>8s}")
    for name, p50, p95 in stage_rows:
        print(f"{name:16s} {p50:8.2f} {p95:8.2f}")
    for line in companions:
        print(line)

    if args.no_write:
        return 0
    per_model = "; ".join(f"{k} {v['cpu_ms_per_frame']:.1f} ms CPU / {v['wall_ms_per_frame']:.1f} ms wall"
                          f" ({v['invokes_per_frame']:.2f} invokes per frame; {run_counts[k]:.2f} in the daemon run)"
                          for k, v in bare["per_model"].items())
    body = [
        "## End-to-end: the whole daemon at 1280x720 with the default models",
        "",
        f"Command: `{command.strip()}` (git {git_revision()})  ",
        f"Machine: {machine_line()}; load average {load_avg:.1f} before, {load_after:.1f} after (shared with other jobs)",
        "",
        "The daemon built by `edged.runtime.app.build_daemon` on the fake scene (seed "
        f"{config.camera.plugins['fake'].seed}): detect, track, select, privacy (de-identification and sealed records), "
        "health, package, and the SQLite outbox (`synchronous=full`, one commit per frame); uplink off. "
        "The fake camera runs unpaced in lockstep with the pipeline (no frame dropped, none rendered for nothing). "
        f"Models: {models}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| end-to-end FPS ({n} frames after {args.warmup} warm-up) | **{fps:.1f}** (T/AI 110.2: >= {TARGET_FPS:g}, {'met' if fps >= TARGET_FPS else 'not met'}) |",
        f"| whole per-frame CPU time (process CPU / frames) | {cpu_frame:.1f} ms |",
        f"| of which rendering the fake frame (the sensor's job on a device) | {render:.1f} ms |",
        f"| bare detector invokes, same frames, same run (CPU / summed wall per frame) | {bare['cpu_ms_per_frame']:.1f} ms / {bare['wall_ms_per_frame']:.1f} ms |",
        f"| per model | {per_model} |",
        f"| **ratio whole CPU / bare invokes** (target <= {TARGET_RATIO}) | **{ratio:.2f}** ({'met' if ratio <= TARGET_RATIO else 'not met'}) |",
        f"| same ratio without the fake-camera rendering | {ratio_no_render:.2f} |",
        "| CPU per frame by thread (where the rest goes) | "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in by_thread.items()) + " |",
        f"| RSS at the end / peak | {rss:.0f} MB / {peak:.0f} MB |",
        f"| messages stored in the outbox | {outbox.get('stored', 0)} ({outbox.get('used_bytes', 0) / 1e6:.1f} MB) |",
        "",
        "| stage | p50 ms | p95 ms |",
        "|---|---:|---:|",
        *[f"| {name} | {p50:.2f} | {p95:.2f} |" for name, p50, p95 in stage_rows],
        "",
        budget_note(bare["cpu_ms_per_frame"], stage_rows, render),
        "",
        "capture: rendering the fake frame (camera thread, overlaps the pipeline); pipeline total: detect to "
        "package on the stage thread; sink: outbox commit (sink thread, overlaps the next frame). CPU times "
        "count every thread of the process (TFLite's pool threads too), so the ratio compares like with like.",
    ]
    if companions:
        body += ["", "The other issues' figures, short versions measured in the same run (after the daemon run):", ""]
        body += [f"- {line}" for line in companions]
    others = other_sections(own=args.section)
    if others:
        body += ["", "Figures of the other benchmark scripts, each in its own section with its command:", ""]
        body += [f"- [{heading}]({anchor(heading)}) (`{name}`)" for name, heading in others]
    write_section(args.section, "\n".join(body))
    print(f"wrote section '{args.section}' of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
