"""The asyncio daemon on the fake camera: accounting, SIGTERM, exposure timeline, live config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edged.cli import main
from edged.config import Config, from_dict, to_dict
from edged.core.types import ExposureMode
from edged.runtime.camera import make_camera
from edged.runtime.daemon import ApplyError, Daemon
from edged.runtime.seams import CountersView, DaemonView, StopView
from edged.runtime.summary import FrameCounts
from edged.stages.pipeline import FrameWork, Stage

ROOT = Path(__file__).resolve().parent.parent


def config(**sections: Any) -> Config:
    base: dict[str, Any] = {
        "camera": {"backend": "fake", "width": 320, "height": 192, "fps": 10.0, "fake": {"realtime": False}},
        "exposure": {"settle_s": 0.5, "remeter_period_s": 2.0},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return from_dict(base)


class Recorder:
    """Sink keeping what each finished frame carried."""

    def __init__(self) -> None:
        self.works: list[FrameWork] = []

    def consume(self, work: FrameWork) -> None:
        self.works.append(work)

    def close(self) -> dict[str, Any]:
        return {"recorded": len(self.works)}


class SlowStage:
    """A stage that takes ``seconds`` per frame, so detection falls behind capture."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, work: FrameWork) -> None:
        time.sleep(self.seconds)


class Builder:
    def __init__(self, stages: list[Stage] | None = None) -> None:
        self._stages = stages or []

    def camera(self, config: Config):  # noqa: ANN201
        return make_camera(config.camera)

    def stages(self, config: Config, changed: set[str] | None) -> list[Stage]:
        return list(self._stages)

    def restore_stages(self, stages: list[Stage]) -> None:
        self._stages = list(stages)


def test_frames_carry_metadata_and_are_all_accounted(tmp_path: Path) -> None:
    rec = Recorder()
    cfg = config(device={"position": {"lat": 1.5, "lon": 2.5, "alt": 3.0}}, camera={"segment_s": 1.0})
    daemon = Daemon(cfg, Builder(), [rec], summary_path=tmp_path / "summary.json")
    summary = asyncio.run(daemon.run(max_frames=25))
    assert summary.frames == FrameCounts(captured=25, processed=25, dropped=0, auto_exposure=summary.frames.auto_exposure,
                                         retimed=0, accounted=True)
    metas = [w.frame.meta for w in rec.works]
    ids = [m.image_id for m in metas]
    assert len(set(ids)) == 25 and ids == sorted(ids), "image ids unique and time-ordered"
    assert [m.frame_index for m in metas] == list(range(25))
    assert all(m.position.lat == 1.5 and m.position.alt == 3.0 for m in metas)
    assert all(m.width == 320 and m.height == 192 for m in metas)
    # 1 s segments at 10 fps: frames 0-9, 10-19, 20-24 -> three video ids, in order
    videos = [m.video_id for m in metas]
    assert len(set(videos)) == 3 and videos[0] == videos[9] != videos[10] == videos[19] != videos[20]
    assert all(w.frame.ground_truth is not None for w in rec.works)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["frames"]["captured"] == 25 and on_disk["recorded"] == 25


def test_exposure_timeline_auto_manual_auto_on_fake_camera() -> None:
    rec = Recorder()
    daemon = Daemon(config(), Builder(), [rec])
    asyncio.run(daemon.run(max_frames=60))  # 6 s at 10 fps: settle 0.5 s, re-meter every 2 s
    modes = "".join("A" if w.frame.meta.exposure.mode is ExposureMode.AUTO else "M" for w in rec.works)
    # metering at start, locked, metering again after the period, locked again ...
    runs = [m for i, m in enumerate(modes) if i == 0 or modes[i - 1] != m]
    assert runs[:4] == ["A", "M", "A", "M"], modes
    records = list(daemon.exposure.records)
    assert len(records) >= 2
    for w in rec.works:
        e = w.frame.meta.exposure
        if e.mode is ExposureMode.MANUAL:
            assert e.shutter_us == 2000.0
    first_manual = next(i for i, c in enumerate(modes) if c == "M")
    r = records[0]
    assert rec.works[first_manual].frame.meta.exposure.gain == pytest.approx(r.locked_gain)
    assert r.locked_gain == pytest.approx(r.auto_shutter_us * r.auto_gain / 2000.0)
    # meter and lock keeps the brightness AE found (the point of the rule)
    last_auto = rec.works[first_manual - 1].frame.pixels.mean()
    locked = rec.works[first_manual].frame.pixels.mean()
    assert abs(locked - last_auto) / last_auto < 0.1


@pytest.mark.slow
def test_sigterm_mid_run_finishes_in_flight_frames(tmp_path: Path) -> None:
    rec = Recorder()
    cfg = config(camera={"fake": {"realtime": True}, "fps": 20.0})
    daemon = Daemon(cfg, Builder([SlowStage(0.12)]), [rec], summary_path=tmp_path / "s.json")

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        loop.call_later(1.5, os.kill, os.getpid(), signal.SIGTERM)
        return await daemon.run(duration=30)

    summary = asyncio.run(main())
    f = summary.frames
    assert summary.stop_reason == "SIGTERM"
    assert f.dropped > 0, "the slow stage must have made the daemon drop frames"
    assert f.captured == f.processed + f.dropped and f.accounted
    assert len(rec.works) == f.processed
    assert summary.wall_s < 5


def cli_config(tmp_path: Path, output: str = "") -> Path:
    """A small fake-camera config for ``edged run`` with freshly made keys."""
    cfg = tmp_path / "c.toml"
    keys = tmp_path / "keys"
    for kind, prefix in (("device", "device"), ("platform", "face"), ("platform", "plate")):
        assert main(["keygen", kind, "--out", str(keys / prefix)]) == 0
    cfg.write_text(
        f'[camera]\nbackend = "fake"\nwidth = 320\nheight = 192\n[output]\ndir = "{tmp_path / "out"}"\n{output}'
        f'[privacy]\nsigning_key = "{keys / "device.key"}"\n'
        f'recipients = {{ face = "{keys / "face.pub"}", plate = "{keys / "plate.pub"}" }}\n'
    )
    return cfg


@pytest.mark.slow
def test_cli_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cfg = cli_config(tmp_path, "save_every = 5\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged.cli", "run", "--config", str(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    summary_glob = tmp_path / "out"
    while time.monotonic() < deadline and not list(summary_glob.glob("run-*/frames/*.jpg")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped (SIGTERM)" in out
    summary = json.loads(next(summary_glob.glob("run-*/summary.json")).read_text())
    assert summary["frames"]["accounted"] and summary["frames"]["captured"] > 0


def test_apply_config_restarts_camera_and_rolls_back_a_bad_one(tmp_path: Path) -> None:
    rec = Recorder()
    cfg = config(camera={"fake": {"realtime": True}})
    daemon = Daemon(cfg, Builder(), [rec])

    async def main() -> tuple[set[str], str, int, int]:
        run = asyncio.create_task(daemon.run(duration=30))
        while daemon.stats.processed < 3:
            await asyncio.sleep(0.05)
        first = daemon.camera
        good = to_dict(daemon.config)
        good["camera"]["fake"]["seed"] = 99
        changed = await daemon.apply_config(from_dict(good))
        assert daemon.camera is not first and daemon.config.camera.plugins["fake"].seed == 99
        second = daemon.camera
        bad = to_dict(daemon.config)
        bad["camera"]["backend"] = "file"
        bad["camera"]["file"]["path"] = str(tmp_path / "no-such-video.mp4")
        with pytest.raises(ApplyError) as err:
            await daemon.apply_config(from_dict(bad))
        assert daemon.camera is second and daemon.config.camera.backend == "fake"
        before = daemon.stats.processed
        while daemon.stats.processed < before + 3:  # frames still flow on the old camera
            await asyncio.sleep(0.05)
        daemon.request_stop("test done")
        await run
        return changed, str(err.value), before, daemon.stats.processed

    changed, message, before, after = asyncio.run(main())
    assert changed == {"camera"}
    assert "camera failed to start" in message and "no-such-video.mp4" in message
    assert after >= before + 3
    seeds = {int(np.asarray(w.frame.pixels).sum()) for w in rec.works}
    assert len(seeds) > 1


def test_frame_timestamps_increase_across_a_camera_restart() -> None:
    """An unpaced fake camera's clock runs ahead of the wall clock; the restarted camera's starts at
    the wall clock again, behind the last frame: the daemon keeps frame time increasing."""
    rec = Recorder()
    daemon = Daemon(config(), Builder(), [rec])

    async def main() -> dict[str, Any]:
        run = asyncio.create_task(daemon.run(max_frames=300))  # room for the restart on a loaded machine
        while daemon.stats.processed < 30:
            await asyncio.sleep(0.01)
        new = to_dict(daemon.config)
        new["camera"]["fake"]["seed"] = 5
        assert await daemon.apply_config(from_dict(new)) == {"camera"}
        return await run

    summary = asyncio.run(main())
    stamps = [w.frame.meta.timestamp for w in rec.works]
    assert summary.frames.retimed > 0, "the restarted camera's clock should have stood behind"
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "frame time ran backwards"


def test_rollback_leaves_the_running_stages_to_be_reused(tmp_path: Path) -> None:
    from edged.runtime.app import AppBuilder

    cfg = config(
        detect={"enabled": False}, privacy={"categories": []}, device={"data_dir": str(tmp_path)},
        camera={"fake": {"realtime": True}},
    )
    builder = AppBuilder()
    daemon = Daemon(cfg, builder, [])

    async def main() -> tuple[object, object]:
        run = asyncio.create_task(daemon.run(duration=30))
        while daemon.stats.processed < 2:
            await asyncio.sleep(0.05)
        running = next(s for s in daemon.pipeline.stages if s.name == "track")
        bad = to_dict(daemon.config)
        bad["track"]["high_score"] = 0.55  # rebuilds the tracker ...
        bad["camera"]["backend"] = "file"  # ... but the camera fails, so all is rolled back
        bad["camera"]["file"]["path"] = str(tmp_path / "missing.mp4")
        with pytest.raises(ApplyError):
            await daemon.apply_config(from_dict(bad))
        later = next(s for s in builder.stages(daemon.config, {"select"}) if s.name == "track")
        daemon.request_stop("test done")
        await run
        return running, later

    running, later = asyncio.run(main())
    assert later is running, "after the rollback the builder must reuse the tracker that kept running"


def test_cli_run_stopped_while_starting_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM while models load (before the daemon's own handlers exist) used to kill it with -15."""
    cfg = cli_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged.cli", "run", "--config", str(cfg)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()  # the start-up note: handlers are in place, the models not yet loaded
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # never leave a daemon running after a failed test
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, first + err
    assert "stopped by SIGTERM while starting" in err or "stopped (SIGTERM)" in out, first + err
    assert "Traceback" not in err


def test_a_config_arriving_while_the_daemon_stops_is_refused_cleanly() -> None:
    daemon = Daemon(config(), Builder(), [Recorder()])

    async def main() -> None:
        await daemon.run(max_frames=5)
        new = to_dict(daemon.config)
        new["camera"]["fake"]["seed"] = 5
        with pytest.raises(ApplyError, match="stopping"):
            await daemon.apply_config(from_dict(new))

    asyncio.run(main())


def test_the_daemon_has_every_member_that_services_and_the_remote_control_read() -> None:
    daemon = Daemon(config(), Builder(), [])
    for view in (DaemonView, StopView, CountersView):
        target = {DaemonView: daemon, StopView: daemon.stop, CountersView: daemon.stats}[view]
        names = [n for n in vars(view) if not n.startswith("_")]
        assert names and all(hasattr(target, n) for n in names), (view.__name__, [n for n in names if not hasattr(target, n)])


class Claimer:
    """Sink whose summary parts take a name of the summary's own and one an earlier sink took."""

    def consume(self, work: FrameWork) -> None:
        pass

    def close(self) -> dict[str, Any]:
        return {"frames": "overwritten?", "recorded": -1, "claimed": True}


def test_sink_parts_never_overwrite_the_summary_or_each_other(tmp_path: Path) -> None:
    daemon = Daemon(config(), Builder(), [Recorder(), Claimer()], summary_path=tmp_path / "summary.json")
    summary = asyncio.run(daemon.run(max_frames=3))
    assert summary.frames.captured == 3 and summary.sinks == {"recorded": 3, "claimed": True}
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert list(on_disk) == ["stop_reason", "wall_s", "frames", "fps", "first_frame_s", "steady_fps", "stage_ms",
                             "exposure", "sink_failures", "device", "recorded", "claimed"]
    assert list(on_disk["frames"]) == ["captured", "processed", "dropped", "auto_exposure", "retimed", "accounted"]
    assert on_disk["frames"]["captured"] == 3 and on_disk["recorded"] == 3


class Timed:
    """A stage named ``name`` that takes ``seconds`` and records when it ran on which frame."""

    def __init__(self, name: str, seconds: float, log: list[tuple[str, int, float, float]]) -> None:
        self.name, self.seconds, self.log = name, seconds, log

    def __call__(self, work: FrameWork) -> None:
        t0 = time.perf_counter()
        time.sleep(self.seconds)
        self.log.append((self.name, work.frame.meta.frame_index, t0, time.perf_counter()))


class SlowFirst:
    """A detect stage that takes ``first`` seconds on a stream's first frame and ``rest`` on the others."""

    name = "detect"

    def __init__(self, first: float, rest: float) -> None:
        self.first, self.rest = first, rest

    def __call__(self, work: FrameWork) -> None:
        time.sleep(self.first if work.frame.meta.frame_index == 0 else self.rest)


def test_summary_tells_the_first_frame_from_the_steady_rate(tmp_path: Path) -> None:
    """A slow first frame (a stream's whole scan) is reported apart: steady fps counts the frames after it."""
    daemon = Daemon(config(), Builder([SlowFirst(0.4, 0.01)]), [Recorder()], summary_path=tmp_path / "summary.json")
    summary = asyncio.run(daemon.run(max_frames=11))
    assert summary.frames.processed == 11
    assert summary.first_frame_s is not None and 0.4 <= summary.first_frame_s < summary.wall_s
    assert summary.steady_fps == pytest.approx(10 / (summary.wall_s - summary.first_frame_s), rel=0.02)  # both rounded
    assert summary.steady_fps > 2 * summary.fps, "the first frame's 0.4 s weighs on fps only"
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["first_frame_s"] == summary.first_frame_s and on_disk["steady_fps"] == summary.steady_fps


def test_the_next_frame_is_detected_while_the_last_one_finishes(tmp_path: Path) -> None:
    """Detection and the stages after it overlap across frames; frames still finish in order, all of them."""
    log: list[tuple[str, int, float, float]] = []
    rec = Recorder()
    stages: list[Stage] = [Timed("detect", 0.03, log), Timed("track", 0.03, log)]
    daemon = Daemon(config(), Builder(stages), [rec], summary_path=tmp_path / "summary.json")
    summary = asyncio.run(daemon.run(max_frames=12))
    assert summary.frames.processed == 12 and summary.frames.accounted
    assert [w.frame.meta.frame_index for w in rec.works] == list(range(12))
    assert all(set(w.timings_ms) == {"detect", "track"} for w in rec.works)
    ran = {(name, i): (start, end) for name, i, start, end in log}
    overlapped = [i for i in range(11) if ran["detect", i + 1][0] < ran["track", i][1]]
    assert len(overlapped) >= 8
    assert all(ran["track", i][0] >= ran["detect", i][1] for i in range(12))
