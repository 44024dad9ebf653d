"""The asyncio daemon: capture → frame queue → pipeline → result queue → sinks.

Tasks are wired by bounded queues. The frame queue drops its *oldest* frame when detection falls
behind (counted); the result queue applies back-pressure instead, so nothing after detection is
dropped. Blocking work runs in executors: camera calls on one thread (cameras are not
thread-safe), the stage chain on another (frames must reach the tracker in order), sinks on a third.
On stop (signal, frame or time limit) capture ends first, then every frame already captured is
processed and sunk, so ``captured == processed + dropped`` at exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edged.config import Config
from edged.core.ids import MonotonicUlid
from edged.core.lograte import BoundedLog
from edged.core.types import CapturedImage, ExposureMode, Frame, FrameMeta, Position
from edged.hal.base import Camera, EndOfStream, Pacing
from edged.runtime.exposure import ExposureCommand, ExposureController
from edged.runtime.seams import ApplyError, LinkReporter, Service
from edged.runtime.stats import RunStats, device_stats, plain
from edged.runtime.summary import ExposureSummary, FrameCounts, MeterCycle, RunSummary, add_sink_parts, write_summary
from edged.stages.health.checks import HealthEvent
from edged.stages.pipeline import FrameWork, Pipeline, Stage

log = logging.getLogger("edged")
health_log = logging.getLogger("edged.health")

HEALTH_LOG_PERIOD_S = 60.0
"""A camera health condition that comes and goes logs at most one line per kind this often (the
latest state is logged once the period has passed)."""

RETIME_STEP_S = 1e-6
"""How far after the previous frame a frame with a non-increasing camera timestamp is placed."""


class Sink(Protocol):
    """Consumes finished frames (I/O allowed: runs on the sink thread)."""

    def consume(self, work: FrameWork) -> None: ...

    def close(self) -> Mapping[str, Any]:
        """Flush and return this sink's parts of the run summary (part name -> figures)."""
        ...


@dataclass
class SegmentClock:
    """Assigns each frame its video segment id: a new ULID every ``segment_s`` seconds."""

    segment_s: float
    ids: MonotonicUlid
    start: float | None = None
    index: int = -1
    video_id: str = ""

    def video_for(self, timestamp: float) -> str:
        if self.start is None:
            self.start = timestamp
        index = int((timestamp - self.start) // self.segment_s)
        if index != self.index:
            self.index, self.video_id = index, self.ids.new(timestamp)
        return self.video_id


@dataclass
class StopState:
    reason: str = ""
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def request(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()


def _log_service_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("service %s failed: %r", task.get_name(), task.exception())


class Builder(Protocol):
    """Makes the parts of a daemon that depend on the config (so they can be rebuilt on change)."""

    def camera(self, config: Config) -> Camera: ...

    def stages(self, config: Config, changed: set[str] | None) -> list[Stage]:
        """Stages for ``config``; ``changed`` names the sections that changed since the last call
        (``None``: build everything), so a builder can keep the stages whose sections did not."""
        ...

    def restore_stages(self, stages: list[Stage]) -> None:
        """After a rollback: these (the running) stages are current again, for later reuse."""
        ...


CAMERA_SECTIONS = frozenset({"camera", "exposure"})
"""Sections whose change restarts the camera; others at most rebuild stages."""


def changed_sections(old: Config, new: Config) -> set[str]:
    """Top-level sections whose values differ."""
    return {name for name in Config.__struct_fields__ if getattr(old, name) != getattr(new, name)}


class Daemon:
    """Owns the camera, the pipeline, the queues, the tasks and shutdown."""

    def __init__(
        self,
        config: Config,
        builder: Builder,
        sinks: list[Sink],
        summary_path: Path | None = None,
        camera: Camera | None = None,
        services: list[Service] | None = None,
    ) -> None:
        self.config = config
        self.services: list[Service] = list(services or [])
        self.builder = builder
        self.camera = camera if camera is not None else builder.camera(config)
        self.pipeline = Pipeline(builder.stages(config, None))
        self.sinks = sinks
        self.summary_path = summary_path
        self.sink_failures: dict[str, int] = {}
        self._sink_log = BoundedLog(log)
        self._health_log = BoundedLog(health_log, HEALTH_LOG_PERIOD_S)
        self.event_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called on the event loop with every health and track event once its frame is stored (the
        remote MQTT service sends a JSON copy); a listener must not block."""
        self.reload_requested = asyncio.Event()
        """Set by SIGHUP: a reload service reads the config file again (and clears it)."""
        self.stats = RunStats()
        self.ids = MonotonicUlid()
        self.segments = SegmentClock(config.camera.segment_s, self.ids)
        self.exposure = self._exposure_controller(config, self.camera)
        p = config.device.position
        self.position = Position(p.lat, p.lon, p.alt)
        self._camera_lock = asyncio.Lock()
        self._apply_lock = asyncio.Lock()
        self._last_timestamp: float | None = None
        self.applied = 0
        """Configs applied since start (for the pipeline-up check)."""
        self.frames: asyncio.Queue[Frame | None] = asyncio.Queue(config.pipeline.frame_queue)
        self.detected: asyncio.Queue[tuple[Pipeline, FrameWork] | None] = asyncio.Queue(1)
        """A frame past detection, waiting for the stages after it (with the chain it started in)."""
        self.finished_by: Pipeline | None = None
        """The chain that carried the last finished frame (a new config is up once its chain has)."""
        self.results: asyncio.Queue[FrameWork | None] = asyncio.Queue(config.pipeline.result_queue)
        self.stop = StopState()
        self.drained = asyncio.Event()
        """Set once every captured frame has been processed and sunk (services then finish)."""
        self.service_timeout_s = 10.0
        self.heartbeat = 0.0
        """Monotonic time of the last frame through the pipeline (watchdog source)."""
        self._camera_pool = ThreadPoolExecutor(1, thread_name_prefix="camera")
        self._stage_pool = ThreadPoolExecutor(1, thread_name_prefix="stages")
        self._finish_pool = ThreadPoolExecutor(1, thread_name_prefix="finish")
        self._sink_pool = ThreadPoolExecutor(1, thread_name_prefix="sinks")

    # ------------------------------------------------------------------------------------ public
    def link_status(self) -> dict[str, dict[str, Any]]:
        """Per destination: connection, measured rate, backlog and drain estimate (services that have links)."""
        out: dict[str, dict[str, Any]] = {}
        for service in self.services:
            if isinstance(service, LinkReporter):
                out.update(service.link_status())
        return out

    def request_stop(self, reason: str) -> None:
        """Ask the daemon to stop capturing and drain; safe from signal handlers and tasks."""
        self.stop.request(reason)

    def request_reload(self) -> None:
        """Ask for the config file to be read and applied again (SIGHUP); safe from signal handlers."""
        self.reload_requested.set()

    def device_stats(self) -> dict[str, Any]:
        """Software version, free disk under ``device.data_dir`` and CPU temperature (``None`` when
        the board has no thermal zone), for the ``stats`` document."""
        return device_stats(self.config.device.data_dir)

    async def run(self, max_frames: int | None = None, duration: float | None = None) -> RunSummary:
        """Run until stopped, ``max_frames`` captured, or ``duration`` seconds; return the summary."""
        loop = asyncio.get_running_loop()
        installed = self._install_signal_handlers(loop)
        wall0 = time.monotonic()
        try:
            await loop.run_in_executor(self._camera_pool, self.camera.start)
            tasks = [
                asyncio.create_task(self._capture(max_frames, duration), name="capture"),
                asyncio.create_task(self._process(), name="process"),
                asyncio.create_task(self._finish(), name="finish"),
                asyncio.create_task(self._sink(), name="sink"),
            ]
            stats_task = asyncio.create_task(self._stats(), name="stats")
            services = [asyncio.create_task(sv.run(self), name=sv.name) for sv in self.services]
            for t in services:
                t.add_done_callback(_log_service_failure)
            try:
                await asyncio.gather(*tasks)
            finally:
                self.drained.set()
                stats_task.cancel()
                for t in tasks:
                    t.cancel()
                if services:
                    _, late = await asyncio.wait(services, timeout=self.service_timeout_s)
                    for t in late:
                        log.warning("service %s did not finish in %.0f s; cancelled", t.get_name(),
                                    self.service_timeout_s)
                        t.cancel()
        finally:
            for sig, previous in installed.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous)  # asyncio would leave Python's default (a traceback on Ctrl-C)
            self._health_log.flush()
            await loop.run_in_executor(self._camera_pool, self.camera.stop)
            for pool in (self._camera_pool, self._stage_pool, self._finish_pool):
                pool.shutdown(wait=True)
        sink_parts = await loop.run_in_executor(self._sink_pool, self._close_sinks)
        self._sink_pool.shutdown(wait=True)
        summary = self._summary(time.monotonic() - wall0, sink_parts, wall0)
        if self.summary_path is not None:
            summary.summary_written = write_summary(self.summary_path, summary)
        return summary

    async def apply_config(self, new: Config, up_timeout_s: float = 10.0) -> set[str]:
        """Apply ``new`` while running: rebuild only what changed, roll back on failure.

        Stages are built first (no side effect); then, if camera settings changed, the camera is
        restarted with them; then the new stages are swapped in between two frames. Finally the
        pipeline must carry a frame within ``up_timeout_s``. Any failure restores the previous
        camera, stages and config and raises :class:`ApplyError` saying why.
        Returns the names of the sections that changed.
        """
        async with self._apply_lock:
            old = self.config
            changed = changed_sections(old, new)
            if not changed:
                return changed
            if self.stop.event.is_set():  # its camera and stage threads are going away
                raise ApplyError("the daemon is stopping; the config was not applied")
            loop = asyncio.get_running_loop()
            old_pipeline, old_camera = self.pipeline, self.camera
            try:
                stages = await loop.run_in_executor(self._stage_pool, self.builder.stages, new, changed)
            except Exception as err:
                raise ApplyError(f"stages failed to build: {err}") from err
            if changed & CAMERA_SECTIONS:
                try:
                    await self._swap_camera(new)
                except ApplyError:
                    self.builder.restore_stages(old_pipeline.stages)
                    raise
            self.pipeline = Pipeline(stages)
            self._use_config(new)
            deadline = time.monotonic() + up_timeout_s
            while self.finished_by is not self.pipeline and not self.stop.event.is_set():
                if time.monotonic() > deadline:
                    self.pipeline = old_pipeline
                    self.builder.restore_stages(old_pipeline.stages)
                    if self.camera is not old_camera:
                        await self._swap_camera(old, rollback=True)
                    self._use_config(old)
                    raise ApplyError(f"pipeline carried no frame within {up_timeout_s:g} s; rolled back")
                await asyncio.sleep(0.02)
            self.applied += 1
            return changed

    def _use_config(self, config: Config) -> None:
        self.config = config
        self.segments.segment_s = config.camera.segment_s
        p = config.device.position
        self.position = Position(p.lat, p.lon, p.alt)

    async def _swap_camera(self, config: Config, rollback: bool = False) -> None:
        """Stop the running camera and start one built from ``config``; on failure restart the old one."""
        loop = asyncio.get_running_loop()
        async with self._camera_lock:
            old = self.camera
            await loop.run_in_executor(self._camera_pool, old.stop)
            try:
                camera = self.builder.camera(config)
                await loop.run_in_executor(self._camera_pool, camera.start)
            except Exception as err:
                if rollback:
                    raise
                await loop.run_in_executor(self._camera_pool, old.start)
                raise ApplyError(f"camera failed to start with the new settings: {err}") from err
            self.camera = camera
            self.exposure = self._exposure_controller(config, camera)
            if self.exposure is not None:
                await self._apply(self.exposure.start())

    @staticmethod
    def _exposure_controller(config: Config, camera: Camera) -> ExposureController | None:
        if not config.exposure.enabled:
            return None
        return ExposureController(config.exposure, camera.gain_range, camera.shutter_range_us)

    # ------------------------------------------------------------------------------------- tasks
    async def _capture(self, max_frames: int | None, duration: float | None) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        next_tick = started
        try:
            if self.exposure is not None:
                await self._apply(self.exposure.start())
            index = 0
            while not self.stop.event.is_set():
                if self._limit_reached(index, max_frames, started, duration):
                    break
                if self.camera.pacing is Pacing.REALTIME:
                    period = 1.0 / self.config.camera.fps  # re-read: a new config may change it
                    delay = next_tick - time.monotonic()
                    if delay > 0:
                        try:
                            await asyncio.wait_for(self.stop.event.wait(), delay)
                            break
                        except TimeoutError:
                            pass
                    next_tick = max(next_tick + period, time.monotonic() - period)
                async with self._camera_lock:
                    t0 = time.perf_counter()
                    try:
                        captured = await loop.run_in_executor(self._camera_pool, self.camera.capture)
                    except EndOfStream:
                        self.request_stop("end of stream")
                        break
                    if self.exposure is not None:
                        command = self.exposure.step(captured.timestamp, captured.exposure)
                        if command is not None:
                            await self._apply(command)
                self.stats.record_stage_times({"capture": (time.perf_counter() - t0) * 1000.0})
                frame = self._frame(captured, index)
                index += 1
                self.stats.captured += 1
                self.stats.auto_frames += captured.exposure.mode is ExposureMode.AUTO
                if self.camera.pacing is Pacing.FREE:
                    await self.frames.put(frame)  # a replay at pipeline speed waits, never drops
                else:
                    self._offer(frame)
        except Exception:
            self.request_stop("capture failed")
            raise
        finally:
            await self.frames.put(None)

    def _limit_reached(self, index: int, max_frames: int | None, started: float, duration: float | None) -> bool:
        """Whether capture must end here (``index`` frames captured, started at monotonic ``started``); asks to stop."""
        if max_frames is not None and index >= max_frames:
            self.request_stop(f"captured {max_frames} frames")
            return True
        if duration is not None and time.monotonic() - started >= duration:
            self.request_stop(f"ran {duration:g} s")
            return True
        return False

    def _offer(self, frame: Frame) -> None:
        """Queue a frame for detection, dropping the oldest waiting frame when the queue is full."""
        if self.frames.full():
            self.frames.get_nowait()
            self.stats.dropped += 1
        self.frames.put_nowait(frame)

    async def _apply(self, command: ExposureCommand) -> None:
        loop = asyncio.get_running_loop()
        if command.mode is ExposureMode.AUTO:
            await loop.run_in_executor(self._camera_pool, self.camera.set_auto_exposure)
            log.info("exposure: metering (auto)")
        else:
            await loop.run_in_executor(
                self._camera_pool, self.camera.set_manual_exposure, command.shutter_us, command.gain
            )
            record = self.exposure.records[-1] if self.exposure and self.exposure.records else None
            clamp = " (clamped)" if record and record.clamped else ""
            log.info("exposure: locked shutter=%.0fus gain=%.2f%s", command.shutter_us, command.gain, clamp)

    async def _process(self) -> None:
        """Detect on each frame, then pass it on to :meth:`_finish` and go on to the next one."""
        loop = asyncio.get_running_loop()
        try:
            while (frame := await self.frames.get()) is not None:
                pipeline = self.pipeline  # a new config takes effect between frames
                work = await loop.run_in_executor(self._stage_pool, pipeline.start, frame)
                await self.detected.put((pipeline, work))
        except Exception:
            self.request_stop("pipeline failed")
            raise
        finally:
            await self.detected.put(None)

    async def _finish(self) -> None:
        """Run the stages after detection on each detected frame, in order, and queue it for the sinks."""
        loop = asyncio.get_running_loop()
        try:
            while (started := await self.detected.get()) is not None:
                pipeline, work = started
                work = await loop.run_in_executor(self._finish_pool, pipeline.finish, work)
                self.stats.processed += 1
                if self.stats.first_finished is None:
                    self.stats.first_finished = time.monotonic()
                self.finished_by = pipeline
                self.stats.record_stage_times(work.timings_ms)
                self.heartbeat = time.monotonic()
                await self.results.put(work)
        except Exception:
            self.request_stop("pipeline failed")
            raise
        finally:
            await self.results.put(None)

    async def _sink(self) -> None:
        loop = asyncio.get_running_loop()
        while (work := await self.results.get()) is not None:
            t0 = time.perf_counter()
            await loop.run_in_executor(self._sink_pool, self._consume, work)
            self.stats.record_stage_times({"sink": (time.perf_counter() - t0) * 1000.0})
            if work.events:
                self._tell_events(work)

    def _tell_events(self, work: FrameWork) -> None:
        """Log health changes (bounded) and hand each event to the listeners, never blocking."""
        meta = work.frame.meta
        for event in work.events:
            if isinstance(event, HealthEvent):
                self._log_health(event)
            if not self.event_listeners:
                continue
            body = event.body()
            doc = plain({"event": body.get("type", event.kind), "time": round(time.time(), 3),
                         "device": self.config.device.id, "image_id": meta.image_id, "video_id": meta.video_id,
                         **body})
            for listener in list(self.event_listeners):
                try:
                    listener(doc)
                except Exception as err:  # a listener must not stop the pipeline
                    self._sink_log.warning("event_listener", f"event listener failed: {type(err).__name__}: {err}")

    def _log_health(self, event: HealthEvent) -> None:
        kind, state = event.kind, event.state
        where = f"frame {event.frame_index}"
        if state == "start":
            text = f"camera health: {kind} started at {where}"
        elif state == "end":
            text = f"camera health: {kind} ended at {where} (since frame {event.detail.get('first_frame')})"
        else:
            text = f"camera health: {kind} now {event.detail.get('count', '?')} at {where}"
        self._health_log.report(f"{kind}:{state}", text, logging.INFO if state == "end" else logging.WARNING)

    def _consume(self, work: FrameWork) -> None:
        """Hand the frame to every sink; one sink's failure is counted and never stops the others."""
        for sink in self.sinks:
            try:
                sink.consume(work)
            except Exception as err:  # a sink bug or an unexpected I/O error: the pipeline goes on
                name = type(sink).__name__
                self.sink_failures[name] = self.sink_failures.get(name, 0) + 1
                self._sink_log.warning(name, f"sink {name} failed on frame {work.frame.meta.frame_index}: "
                                             f"{type(err).__name__}: {err}")

    def _close_sinks(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        for sink in self.sinks:
            try:
                add_sink_parts(parts, sink.close(), type(sink).__name__)
            except Exception as err:  # the summary is written whatever a sink's close does
                name = type(sink).__name__
                self.sink_failures[name] = self.sink_failures.get(name, 0) + 1
                log.error("sink %s failed to close: %s: %s", name, type(err).__name__, err)
        return parts

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.pipeline.stats_period_s)
            self._health_log.flush(due_only=True)
            device = self.device_stats()
            free = device["disk_free_bytes"]
            extra: dict[str, object] = {"disk_free_mb": round(free / 1e6) if free is not None else "?"}
            if device["cpu_temp_c"] is not None:
                extra["cpu_temp_c"] = device["cpu_temp_c"]
            log.info("stats %s", self.stats.line(self.queue_depths(), extra))

    # ----------------------------------------------------------------------------------- helpers
    def queue_depths(self) -> dict[str, tuple[int, int]]:
        return {
            "frames": (self.frames.qsize(), self.frames.maxsize),
            "detected": (self.detected.qsize(), self.detected.maxsize),
            "results": (self.results.qsize(), self.results.maxsize),
        }

    def _frame(self, captured: CapturedImage, index: int) -> Frame:
        """Stamp a capture as the next frame. Frame timestamps strictly increase, whatever the
        sensor's clock does: a restarted camera (a config change, a rollback) starts a clock of its
        own, which may stand just behind the last frame's; such a frame is moved just after it
        (counted in ``frames.retimed``), so time-driven stages (tracker, selection) never see time
        run backwards."""
        h, w = captured.pixels.shape[:2]
        timestamp = captured.timestamp
        if self._last_timestamp is not None and not timestamp > self._last_timestamp:
            if not self.stats.retimed:
                log.warning("camera timestamp %.6f is not after the previous frame's %.6f: frames are "
                            "moved just after it (counted in frames.retimed)", timestamp, self._last_timestamp)
            self.stats.retimed += 1
            timestamp = self._last_timestamp + RETIME_STEP_S
        self._last_timestamp = timestamp
        meta = FrameMeta(
            image_id=self.ids.new(timestamp),
            frame_index=index,
            video_id=self.segments.video_for(timestamp),
            timestamp=timestamp,
            exposure=captured.exposure,
            position=self.position,
            width=w,
            height=h,
        )
        return Frame(meta, captured.pixels, captured.ground_truth)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> dict[int, Any]:
        """SIGTERM and SIGINT stop, SIGHUP asks for a reload; returns the handlers they had before."""
        installed: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous = signal.getsignal(sig)
            try:
                if sig == signal.SIGHUP:
                    loop.add_signal_handler(sig, self.request_reload)
                else:
                    loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
                installed[sig] = previous if previous is not None else signal.SIG_DFL
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
        return installed

    def _summary(self, wall_s: float, sink_parts: dict[str, Any], wall0: float) -> RunSummary:
        s = self.stats
        first_s = None if s.first_finished is None else s.first_finished - wall0
        after_first = wall_s - first_s if first_s is not None else 0.0
        cycles = [] if self.exposure is None else [
            MeterCycle(time=r.time, auto_shutter_us=r.auto_shutter_us, auto_gain=round(r.auto_gain, 4),
                       locked_shutter_us=r.locked_shutter_us, locked_gain=round(r.locked_gain, 4), clamped=r.clamped)
            for r in self.exposure.records
        ]
        return RunSummary(
            stop_reason=self.stop.reason,
            wall_s=round(wall_s, 3),
            frames=FrameCounts(captured=s.captured, processed=s.processed, dropped=s.dropped,
                               auto_exposure=s.auto_frames, retimed=s.retimed,
                               accounted=s.captured == s.processed + s.dropped),
            fps=round(s.processed / wall_s, 2) if wall_s > 0 else 0.0,
            first_frame_s=None if first_s is None else round(first_s, 3),
            steady_fps=round((s.processed - 1) / after_first, 2) if s.processed > 1 and after_first > 0 else None,
            stage_ms=s.stage_summary(),
            exposure=ExposureSummary(meter_cycles=cycles, clamped=self.exposure.clamp_count if self.exposure else 0),
            sink_failures=dict(self.sink_failures),
            device=self.device_stats(),
            sinks=sink_parts,
        )
