"""The simulated end-to-end evaluation: the whole daemon on the fake scene against real receivers.

::

    python -m edged_sim                          # 300 s of scene, broker down from 120 s for 60 s
    python -m edged_sim --seconds 30 --outage 10:8 --width 640 --height 360
    python -m edged_sim --detector truth         # oracle detections: judge the chain after detection

Steps: generate keys (device + one functional platform per sensitive category) in the run folder,
start a real mosquitto on a free loopback port, start one receiver per platform (ops and
``func.<category>``, in-process, each storing one file per video segment), build the daemon with
:func:`edged.runtime.app.build_daemon` (fake camera, uplink on, every other setting from ``--config``),
run it for ``--seconds`` of scene time at ``camera.fps`` (``--fast``: as fast as the pipeline), in
lockstep with the pipeline so no frame is dropped, stop the broker during ``--outage``, then reopen
the outbox and drain what is left (the cached queue at ``--drain-cached-period``), wait for the
receivers, and check the outcome against ground truth (:mod:`edged_sim.checks`). Writes
``result.json`` and the report (``SIM_REPORT.md`` + PNG plots, :mod:`edged_sim.report`) in the run
folder. Exit status 0 when every applicable check passes, 1 when one fails, 2 when it cannot run.

Raw frames never touch the disk: the checks use ground truth and SHA-256 digests of the raw crops
held in memory (:class:`edged_sim.truth.TruthSink`); local frame output is off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np

from edged.config import Config, from_dict, load, to_dict
from edged.core.keys import generate_device_key, generate_platform_key, load_platform_private_key, load_verify_key
from edged.core.progname import prog_name
from edged.link.destinations import OPS, destination
from edged.link.outbox import Outbox
from edged.link.uplink import Uplink
from edged.runtime.app import BUILD_ERRORS, build_app
from edged.runtime.camera import make_camera
from edged.stages.detect.detector import Detector, model_path
from edged.stages.detect.runtime import ModelError
from edged_platform.store import SegmentStore
from edged_sim import checks
from edged_sim.broker import Broker, BrokerError, mosquitto_path
from edged_sim.checks import Check
from edged_sim.config import fake_scene_models
from edged_sim.drain import drain_outbox
from edged_sim.evaluate import DetectionRecall, TrackingScore
from edged_sim.lockstep import CreditSink, LockstepCamera
from edged_sim.platforms import PlatformError, PlatformProcess
from edged_sim.sampler import Outage, Sampler
from edged_sim.truth import FACE, TruthDetectStage, TruthSink

log = logging.getLogger("edged_sim")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config" / "default.toml"


@dataclass
class SimOptions:
    """What to simulate. Defaults: the long run of ``docs/SIMULATION.md``."""

    seconds: float = 300.0
    """Scene time to run (frames = seconds x camera.fps)."""
    width: int = 1280
    height: int = 720
    seed: int = 7
    outage: Outage | None = field(default_factory=lambda: Outage(120.0, 60.0))
    """Broker down for this stretch of scene time (``None``: no outage)."""
    realtime: bool = True
    """Pace capture at camera.fps on the wall clock (the run then takes ``seconds``), so the uplink's
    wall-clock behaviour (backoff, the cached queue's rate, the outage) matches scene time. Off: the
    scene runs as fast as the pipeline (tests), still without dropping a frame."""
    detector: Literal["models", "truth"] = "models"
    """``models``: the configured TFLite models; ``truth``: oracle detections from ground truth."""
    config: Path | None = DEFAULT_CONFIG
    """Base config file; camera, keys, uplink and storage settings are overridden for the simulation."""
    base: Config | None = None
    """Base config given as an object (used instead of ``config``)."""
    present_models_only: bool = False
    """Run with the configured models whose files exist (the missing ones are listed in the report;
    crops from classes only a missing model detected are dropped) instead of refusing to start."""
    out: Path | None = None
    """Run folder (default ``out/sim-<time>``)."""
    reconnect_max_s: float | None = None
    """Override ``uplink.reconnect_max_s`` (shorter backoff for short runs)."""
    drain_cached_period_s: float = 0.05
    """After the scene ends, the outbox is reopened and drained with this cached period (instead of
    ``select.cached_period_s``) so the check does not wait minutes for the cached queue."""
    max_wall_s: float | None = None
    """Stop the scene early when the run has taken this long on the wall clock (a check then fails):
    bounds a test's time when the pipeline is far slower than expected."""
    drain_timeout_s: float = 300.0
    arrival_timeout_s: float = 30.0
    """How long to wait for the receivers to hold every message after the outbox is empty."""
    report: bool = True
    thresholds: checks.CheckSettings = field(default_factory=checks.CheckSettings)


@dataclass
class SimResult:
    folder: Path
    checks: list[checks.Check]
    data: dict[str, Any]
    """What ``result.json`` holds (and the report is drawn from)."""
    truth: TruthSink | None = None
    """The in-memory ground truth and raw-crop digests (for re-running checks in tests)."""
    stores: dict[str, SegmentStore] = field(default_factory=dict)
    keys: dict[str, Path] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.status != checks.FAIL for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


# ------------------------------------------------------------------------------------------ set-up
def run_folder(out: Path | None) -> Path:
    """A fresh, empty run folder (the stores, outbox and keys of an earlier run would mix in)."""
    if out is None:
        out = ROOT / "out" / time.strftime("sim-%Y%m%d-%H%M%S")
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"run folder {out} is not empty: give a new --out (an earlier run's stores would mix in)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def make_keys(folder: Path, categories: list[str]) -> dict[str, Path]:
    """Device signing key and one platform pair per category (the simulation plays every side)."""
    paths = {"device": generate_device_key(folder / "device", force=True).private}
    for c in categories:
        paths[c] = generate_platform_key(folder / f"func-{c}", force=True).private
    return paths


def fake_scene_config() -> Config:
    """The default config on the fake camera, with the models made for its renderer (``fake_scene_models``)."""
    config = from_dict({"camera": {"backend": "fake"}})
    return msgspec.structs.replace(config, detect=msgspec.structs.replace(config.detect, models=fake_scene_models()))


def base_config(opts: SimOptions) -> Config:
    if opts.base is not None:
        return opts.base
    return load(opts.config) if opts.config else fake_scene_config()


def missing_models(config: Config) -> list[str]:
    """Files of configured models that do not exist."""
    return [m.file for m in config.detect.models if not model_path(m.file).is_file()]


def sim_config(opts: SimOptions, folder: Path, port: int, keys: dict[str, Path]) -> Config:
    """The base config with the simulation's camera, storage, keys and uplink."""
    base = base_config(opts)
    d = to_dict(base)
    if opts.present_models_only:
        d["detect"]["models"] = present_models(d["detect"]["models"])
        d["detect"]["tiling"]["models"] = [n for n in d["detect"]["tiling"]["models"]
                                           if n in {m["name"] for m in d["detect"]["models"]}]
    cats = list(base.privacy.categories)
    d["device"]["data_dir"] = str(folder / "data")
    cam = d["camera"]
    cam.update(backend="fake", width=opts.width, height=opts.height)
    cam.setdefault("fake", {}).update(realtime=opts.realtime, seed=opts.seed)
    d["output"].update(dir=str(folder / "local"), save_every=0)
    d["privacy"]["signing_key"] = str(keys["device"])
    d["privacy"]["recipients"] = {c: str(keys[c].with_suffix(".pub")) for c in cats}
    broker = {"host": "127.0.0.1", "port": port}
    d["uplink"].update(enabled=True, ops=broker, functional={c: dict(broker) for c in cats})
    if opts.reconnect_max_s is not None:
        d["uplink"]["reconnect_max_s"] = opts.reconnect_max_s
        d["uplink"]["reconnect_min_s"] = min(d["uplink"]["reconnect_min_s"], opts.reconnect_max_s)
    d["remote"]["mqtt"]["enabled"] = False
    d["remote"]["serial"]["enabled"] = False
    if opts.detector == "truth":
        d["detect"]["enabled"] = False
    return from_dict(d)


def detectable_classes(config: Config, detector: str) -> set[str]:
    """Classes the run can detect: every class with oracle detections, else the models' labels."""
    if detector == "truth":
        from edged.core.classes import CLASS_NAMES

        return set(CLASS_NAMES)
    return {label for m in config.detect.models for label in m.labels if label}


def present_models(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model entries (as plain dicts) whose files exist; crop sources only a dropped model
    detected are removed from the rest (a model left without any runs on the whole frame)."""
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for m in models:
        if model_path(m["file"]).is_file():
            m = dict(m)
            if "crops_from" in m:
                m["crops_from"] = [c for c in m["crops_from"] if c in seen]
                if not m["crops_from"]:
                    m["full_frame"] = True  # no crop source left: the whole frame is all it can see
            kept.append(m)
            seen.update(label for label in m["labels"] if label)
    return kept


def face_detector(config: Config) -> Any:
    """The default face detector: the configured models (those whose files exist, so a face model
    still gets its person crops) run as in the pipeline; image -> (face boxes, scores); ``None``
    without a face model."""
    d = to_dict(config)["detect"]
    d["enabled"] = True
    d["models"] = present_models(d["models"])
    if not any("face" in m["labels"] for m in d["models"]):
        return None
    d["tiling"]["models"] = [n for n in d["tiling"]["models"] if n in {m["name"] for m in d["models"]}]
    try:
        det = Detector.from_config(msgspec.convert(d, type(config.detect)))
    except ModelError as err:
        if config.detect.enabled:
            raise
        log.warning("sim: no face detector for the de-identification check: %s", err)
        return None  # oracle run: the check is then n/a, the rest of the chain is still judged

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = det.detect(image)
        faces = found.class_ids == FACE
        return found.boxes[faces].astype(np.float64), found.scores[faces].astype(np.float64)

    return detect


# ---------------------------------------------------------------------------------------- the run
async def drain(config: Config, dests: list[str], sampler: Sampler, scene_s: float, processed: int,
                cached_period_s: float, timeout_s: float) -> dict[str, Any]:
    """Send what the daemon left (as a restarted one would), sampling as it goes; returns the drain's figures."""

    async def sample(outbox: Outbox, uplinks: list[Uplink]) -> None:
        sampler.outbox, sampler.uplinks = outbox, uplinks
        await sampler.sample(scene_s, processed, "drain")

    d = await drain_outbox(config, dests, cached_period_s, timeout_s, tick_s=sampler.period_s, on_tick=sample)
    return {"left_at_scene_end": d.left_at_start, "drain_s": d.seconds, "outbox": d.stats}


async def simulate(opts: SimOptions, folder: Path) -> SimResult:
    keys_dir = folder / "keys"
    base = base_config(opts)
    key_paths = make_keys(keys_dir, list(base.privacy.categories))
    broker = Broker(folder / "broker")
    config = sim_config(opts, folder, broker.port, key_paths)
    fps = config.camera.fps
    frames = max(1, round(opts.seconds * fps))
    dests = [OPS, *(destination(c) for c in config.uplink.functional)]
    face_detect = face_detector(config)

    camera = LockstepCamera(make_camera(config.camera), credits=config.pipeline.frame_queue)
    truth = TruthSink(raw_face_detect=face_detect if opts.detector == "truth" else None)
    started, started_epoch = time.monotonic(), time.time()
    sampler = Sampler(None, dests, [], broker, fps, opts.outage, started, max_wall_s=opts.max_wall_s)
    oracle = [TruthDetectStage(seed=opts.seed)] if opts.detector == "truth" else []
    app = build_app(config, folder / "local", camera=camera, services=[sampler], first_stages=oracle,
                    sinks=[DetectionRecall(), TrackingScore(list(config.select.classes)), truth, CreditSink(camera)])
    daemon = app.daemon
    sampler.outbox, sampler.uplinks = app.outbox, app.uplinks

    broker.start()
    platforms = PlatformProcess(folder / "platform", dests, config.device.id, broker.port,
                                key_paths["device"].with_suffix(".pub"))
    try:
        await platforms.start()
        log.info("sim: %d frames (%g s of scene) at %dx%d, detector %s, outage %s", frames, opts.seconds,
                 opts.width, opts.height, opts.detector, opts.outage)
        run_t0 = time.monotonic()
        summary = await daemon.run(max_frames=frames)
        run_wall = time.monotonic() - run_t0
        run_links = {u.dest: {"reconnects": u.reconnects, "sessions": u.sessions, "published": u.published}
                     for u in sampler.uplinks}
        await sampler.restore_broker()
        scene_end = truth.last_scene_s
        drained = await drain(config, dests, sampler, scene_end, daemon.stats.processed,
                              opts.drain_cached_period_s, opts.drain_timeout_s)
        expected = {d: {s.id for s in truth.sent if s.dest == d} for d in dests}
        complete = await platforms.wait_for(expected, opts.arrival_timeout_s)
    finally:
        await platforms.close()
        broker.stop()

    st = opts.thresholds
    classes = [c for c in config.select.classes if c in detectable_classes(config, opts.detector)]
    na = None if classes else "no configured model detects a selection class (" + ", ".join(config.select.classes) + ")"
    stores = platforms.stores()
    arrivals = platforms.arrivals
    delivery, objects = checks.check_delivery(truth, stores[OPS], classes, fps, st, arrivals, started_epoch, na)
    private = {c: load_platform_private_key(key_paths[c]) for c in config.uplink.functional}
    verify = [load_verify_key(key_paths["device"].with_suffix(".pub"))]
    func_stores = {d.split(".", 1)[1]: stores[d] for d in dests if d != OPS}
    receivers = platforms.stats
    duplicates = {d: r.get("duplicates", 0) for d, r in receivers.items()}
    results = [
        checks.Check(
            "whole scene ran", checks.FAIL if sampler.timed_out else checks.PASS,
            (f"stopped by the {opts.max_wall_s:g} s wall-clock limit after {summary.frames.captured} of {frames} "
             f"frames ({summary.fps} fps)") if sampler.timed_out else f"{summary.frames.captured} of {frames} frames",
            {"frames": frames, "captured": summary.frames.captured, "fps": summary.fps},
        ),
        checks.Check(
            "frames accounted",
            checks.PASS if summary.frames.accounted and summary.frames.dropped == 0 else checks.FAIL,
            f"captured {summary.frames.captured}, processed {summary.frames.processed}, "
            f"dropped {summary.frames.dropped}",
            msgspec.to_builtins(summary.frames),
        ),
        delivery,
        checks.check_deidentification(
            truth, stores[OPS], face_detect, st,
            "" if not any("face" in m.labels for m in config.detect.models)
            else "the configured face model is missing or could not be loaded for the check (see the log)"),
        checks.check_restore(truth, func_stores, stores[OPS], private, verify),
        checks.check_zero_loss(truth.sent, stores, drained["outbox"], duplicates),
    ]
    data = {
        "settings": {
            "seconds": opts.seconds, "frames": frames, "fps": fps, "width": opts.width, "height": opts.height,
            "seed": opts.seed, "detector": opts.detector, "realtime": opts.realtime,
            "outage": (None if opts.outage is None
                       else {"start_s": opts.outage.start_s, "length_s": opts.outage.length_s}),
            "config": str(opts.config) if opts.config else None,
            "models": [{"name": m.name, "file": m.file, "labels": m.labels} for m in config.detect.models],
            "models_missing": missing_models(base) if opts.present_models_only else [],
            "selection_classes_checked": classes,
            "cached_period_s": config.select.cached_period_s,
            "broker_port": broker.port,
        },
        "checks": [c.to_dict() for c in results],
        "run": {
            "wall_s": round(run_wall, 2), "fps": summary.fps, "stage_ms": summary.stage_ms,
            "detection_vs_ground_truth": summary.sinks.get("detection_vs_ground_truth"),
            "outbox_at_scene_end": summary.sinks.get("outbox"),
            "drain": {k: v for k, v in drained.items() if k != "outbox"},
            "outbox_after_drain": drained["outbox"], "receivers_complete": complete,
            "receivers": {d: {k: v for k, v in r.items() if k != "order"} for d, r in receivers.items()},
            "immediate_order": checks.immediate_order(truth.sent, receivers.get(OPS, {}).get("order", [])),
            "sent_by_kind": _count(truth.sent),
            "uplinks": run_links,
        },
        "series": sampler.series.to_dict(),
        "timings_ms": {
            "capture": [round(v, 3) for v in camera.render_ms],
            **{k: [round(v, 4) for v in vs] for k, vs in truth.timings.items()},
            "pipeline total": [round(sum(vals), 3) for vals in zip(*truth.timings.values(), strict=False)]
            if truth.timings and len({len(v) for v in truth.timings.values()}) == 1 else [],
            "sink": [round(v, 3) for v in daemon.stats.stage_ms.get("sink", [])],
        },
        "objects": [
            {"id": o.object_id, "class": o.class_name, "in_view_s": round(len(o.frames) / fps, 2),
             "intervals": [[round(a, 2), round(b, 2)] for a, b in o.intervals(1.5 / fps)],
             "partly": [[round(a, 2), round(b, 2)] for a, b in o.intervals(1.5 / fps, partly=True)],
             "deliveries": o.deliveries}
            for o in objects
        ],
        "scene_end_s": round(truth.last_scene_s, 3),
    }
    return SimResult(folder, results, data, truth, stores, key_paths)


def _count(sent: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in sent:
        key = f"{s.dest}/{s.kind}/{s.prio}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def run_sim(opts: SimOptions) -> SimResult:
    """Run one simulation (blocking); writes ``result.json`` and, with ``opts.report``, the report."""
    if mosquitto_path() is None:
        raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
    folder = run_folder(opts.out)
    result = asyncio.run(simulate(opts, folder))
    (folder / "result.json").write_text(json.dumps(result.data, indent=1, default=str) + "\n")
    if opts.report:
        from edged_sim.report import write_report

        write_report(result.data, folder)
    return result


# --------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    d = SimOptions()
    p.add_argument("--seconds", type=float, default=d.seconds, help="scene time to run (default %(default)s)")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--seed", type=int, default=d.seed, help="fake scene seed")
    p.add_argument("--outage", default="120:60",
                   help="broker down START:LENGTH scene seconds, or 'none' (default %(default)s)")
    p.add_argument("--fast", action="store_true",
                   help="run the scene as fast as the pipeline instead of at camera.fps (uplink timing then "
                        "is not that of a live camera)")
    p.add_argument("--detector", choices=("models", "truth"), default="models",
                   help="configured TFLite models (default) or oracle detections from ground truth")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="base config (default %(default)s)")
    p.add_argument("--out", type=Path, help="run folder (default out/sim-<time>)")
    p.add_argument("--reconnect-max", type=float, help="override uplink.reconnect_max_s")
    p.add_argument("--present-models-only", action="store_true",
                   help="run with the configured models whose files exist instead of refusing to start")
    p.add_argument("--no-report", action="store_true", help="write result.json only")
    p.add_argument("--max-wall", type=float, help="stop the scene after this many wall-clock seconds (a check fails)")


def options_from_args(args: argparse.Namespace) -> SimOptions:
    outage = None if args.outage.lower() in ("none", "off", "") else Outage.parse(args.outage)
    return SimOptions(seconds=args.seconds, width=args.width, height=args.height, seed=args.seed, outage=outage,
                      realtime=not args.fast, detector=args.detector, config=args.config, out=args.out,
                      reconnect_max_s=args.reconnect_max, report=not args.no_report,
                      present_models_only=args.present_models_only, max_wall_s=args.max_wall)


_REFUSED: tuple[type[Exception], ...] = (ValueError, BrokerError, PlatformError, *BUILD_ERRORS)
"""What ends a simulated run with one line and exit status 2."""


def sim_main(args: argparse.Namespace) -> int:
    """Handler of ``edged sim`` / ``python -m edged_sim``: prints the checks; exit 0 pass, 1 fail, 2 error."""
    try:
        opts = options_from_args(args)
        result = run_sim(opts)
    except _REFUSED as err:
        print(f"sim: {err}", file=sys.stderr)
        return 2
    for c in result.checks:
        print(f"[{c.status.upper():4s}] {c.name}: {c.summary}")
    report = result.folder / "SIM_REPORT.md"
    shown = report if report.exists() else result.folder / "result.json"
    print(f"sim: {'PASS' if result.passed else 'FAIL'}; report {shown}")
    return 0 if result.passed else 1


def add_sim_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sim`` to a CLI's subparsers (handler in ``handler``), for ``edged sim``."""
    p = subparsers.add_parser("sim", help="simulated end-to-end run on the fake scene, checked against ground truth",
                              description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(handler=sim_main)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog_name("edged_sim"), description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        for noisy in ("edged", "edged.link.uplink", "edged_platform.receiver", "edged.link.outbox"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("mqtt").setLevel(logging.CRITICAL)  # aiomqtt's own socket errors during the outage
    return sim_main(args)
