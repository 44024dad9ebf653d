"""MQTT uplink: one connection per destination, draining the outbox with QoS 1.

An :class:`Uplink` owns one destination (``ops`` or ``func.<category>``) and its own MQTT
connection; sensitive records therefore never share the ops connection (and the wire layer refuses
to address them to ``ops`` at all). It takes messages from the :class:`~edged.link.outbox.Outbox` in send
order, publishes them with QoS 1, and acks them to the outbox only when the broker's PUBACK has
arrived. Up to ``max_in_flight`` messages await their PUBACK at once.

* Immediate items jump the queue (the outbox's send order); ``cached`` items are released at most
  one per ``cached_period_s`` and at most ``cached_in_flight`` at a time, oldest first.
* A dropped connection (or a PUBACK not seen within ``ack_timeout_s``) ends the session: messages
  in flight go back to the outbox and are sent again after reconnecting (receivers de-duplicate by
  message id). Reconnects back off exponentially with jitter.
* While the broker is away nothing blocks the caller: messages simply wait in the outbox.
* Link awareness: the rate is measured over busy time (while messages were in flight), so an idle
  link does not look slow; :meth:`Uplink.status` reports the backlog and its estimated drain time,
  and :meth:`Uplink.suggested_quality` maps the rate to a JPEG quality within configured bounds.

The daemon runs one :class:`Uplink` per destination (``edged.runtime.app.UplinkService``); the outbox sink
calls :meth:`Uplink.wake` after each commit. :meth:`Uplink.status` is the destination's part of the
remote ``stats`` document (``links``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from edged.config import UplinkBrokerConfig, resolve_path
from edged.link.destinations import OPS, category_of
from edged.link.mqtt import Backoff, BrokerConfigError, client_id, tls_context
from edged.link.outbox import Outbox, Pending

log = logging.getLogger(__name__)

UplinkConfigError = BrokerConfigError
"""The broker settings of a destination cannot be used (e.g. a TLS file is missing)."""


MIN_RATE_SPAN_S = 0.01
"""Busy time shorter than this counts as this much: a burst acknowledged at once has a finite rate."""


class RateMeter:
    """Bytes and messages per second of *busy* time (while something was in flight), over a window.

    Idle time is not counted, so a link that is simply not asked to carry much does not look slow.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._busy_total = 0.0
        self._busy_since: float | None = None
        self._samples: deque[tuple[float, int]] = deque()  # (busy clock, bytes) per acked message

    def busy(self, is_busy: bool, now: float) -> None:
        if is_busy and self._busy_since is None:
            self._busy_since = now
        elif not is_busy and self._busy_since is not None:
            self._busy_total += now - self._busy_since
            self._busy_since = None

    def clock(self, now: float) -> float:
        return self._busy_total + (now - self._busy_since if self._busy_since is not None else 0.0)

    def add(self, nbytes: int, now: float) -> None:
        self._samples.append((self.clock(now), nbytes))
        self._trim(now)

    def _trim(self, now: float) -> None:
        start = self.clock(now) - self.window_s
        while self._samples and self._samples[0][0] < start:
            self._samples.popleft()

    def rates(self, now: float) -> tuple[float | None, float | None]:
        """(bytes/s, messages/s), or ``None`` before anything was acknowledged."""
        self._trim(now)
        if not self._samples:
            return None, None
        span = max(MIN_RATE_SPAN_S, min(self.window_s, self.clock(now)))
        return sum(b for _, b in self._samples) / span, len(self._samples) / span


@dataclass
class LinkStatus:
    """What :meth:`Uplink.status` reports (also the destination's part of the stats message)."""

    dest: str
    connected: bool
    rate_bps: float | None
    """Measured bytes/s while busy (``None`` until measured)."""
    rate_msgs: float | None
    backlog_messages: int
    backlog_bytes: int
    eta_s: float | None
    """Estimated time to drain the backlog at the measured rate (0 when empty, ``None`` unknown)."""
    in_flight: int
    published: int
    acked: int
    reconnects: int
    sessions: int
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Uplink:
    """Drains one destination of the outbox over its own MQTT connection (see module docstring)."""

    def __init__(
        self,
        dest: str,
        broker: UplinkBrokerConfig,
        outbox: Outbox,
        *,
        device_id: str = "edged",
        data_dir: Path | None = None,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        reconnect_jitter: float = 0.5,
        ack_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        cached_period_s: float = 2.0,
        cached_in_flight: int = 1,
        rate_window_s: float = 30.0,
        quality_bounds: tuple[int, int] = (50, 90),
        quality_full_rate_bps: float = 2_000_000.0,
        poll_s: float = 1.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        self.dest = dest
        self.broker = broker
        self.outbox = outbox
        self.device_id = device_id
        self.prefix = broker.topic_prefix.rstrip("/") or f"edged/{device_id}/{dest}"
        self.client_id = client_id(broker, device_id, dest, data_dir)
        """The configured id, else one with a random token kept in ``data_dir`` (:func:`edged.link.mqtt.client_id`)."""
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_jitter = reconnect_jitter
        self.ack_timeout_s = ack_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.cached_period_s = cached_period_s
        self.cached_in_flight = cached_in_flight
        self.quality_bounds = quality_bounds
        self.quality_full_rate_bps = quality_full_rate_bps
        self.poll_s = poll_s
        self.stop_grace_s = stop_grace_s
        self.meter = RateMeter(rate_window_s)
        self._quality = quality_bounds[1]
        """The JPEG quality the measured rate suggests: a plain int the event loop replaces after each
        PUBACK, so the stage thread reads a value and never iterates the meter's samples."""
        self._tls = tls_context(broker, f"uplink {dest}")  # a bad TLS file fails here, at start
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._ack_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, Pending] = {}
        self._acked: list[Pending] = []
        self._ack_jobs: set[asyncio.Future[int]] = set()
        """Acks being recorded in a thread; :meth:`run` waits for them, so none reaches a closed outbox."""
        self._last_cached = -float("inf")
        self.connected = False
        self.published = 0
        self.acked = 0
        self.reconnects = 0
        self.sessions = 0
        self.last_error: str | None = None

    # ------------------------------------------------------------------ public
    @classmethod
    def from_config(cls, cfg: Any, dest: str, outbox: Outbox) -> Uplink:
        """An uplink for ``dest`` from the root :class:`edged.config.Config`.

        Uses ``cfg.uplink`` (broker, reconnect, rate, quality) and ``cfg.select`` (cached period,
        cached in flight, ack timeout).
        """
        up = cfg.uplink
        if dest == OPS:
            broker = up.ops
        elif (category := category_of(dest)) in up.functional:
            broker = up.functional[category]
        else:
            raise UplinkConfigError(f"no uplink configured for destination {dest!r}")
        return cls(
            dest,
            broker,
            outbox,
            device_id=cfg.device.id,
            data_dir=resolve_path(cfg.device.data_dir),
            reconnect_min_s=up.reconnect_min_s,
            reconnect_max_s=up.reconnect_max_s,
            reconnect_jitter=up.reconnect_jitter,
            ack_timeout_s=cfg.select.ack_timeout_s,
            connect_timeout_s=up.connect_timeout_s,
            cached_period_s=cfg.select.cached_period_s,
            cached_in_flight=cfg.select.cached_in_flight,
            rate_window_s=up.rate_window_s,
            quality_bounds=(up.quality_min, up.quality_max),
            quality_full_rate_bps=up.quality_full_rate_bps,
        )

    def topic(self, kind: str) -> str:
        """MQTT topic of a message of ``kind``: ``<prefix>/<kind>``."""
        return f"{self.prefix}/{kind}"

    def wake(self) -> None:
        """Tell the uplink new messages are stored (safe from any thread)."""
        loop = self._loop
        if loop is None:
            self._wake.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def status(self) -> LinkStatus:
        """Connection state, measured rate, backlog and its estimated drain time (queries the outbox)."""
        now = time.monotonic()
        rate_bps, rate_msgs = self.meter.rates(now)
        n, nbytes = self.outbox.pending(self.dest)
        if n == 0:
            eta: float | None = 0.0
        elif rate_bps:
            eta = nbytes / rate_bps
        else:
            eta = None
        return LinkStatus(
            dest=self.dest, connected=self.connected, rate_bps=rate_bps, rate_msgs=rate_msgs,
            backlog_messages=n, backlog_bytes=nbytes, eta_s=eta, in_flight=len(self._in_flight),
            published=self.published, acked=self.acked, reconnects=self.reconnects,
            sessions=self.sessions, last_error=self.last_error,
        )

    def suggested_quality(self) -> int:
        """JPEG quality for new images from the measured rate (``quality_max`` until measured); safe
        from any thread (it reads the value the event loop last computed)."""
        return self._quality

    def _measure_quality(self, now: float) -> None:
        """On the event loop: recompute the suggested quality from the rate meter."""
        rate, _ = self.meter.rates(now)
        self._quality = quality_for_rate(rate, self.quality_bounds, self.quality_full_rate_bps)

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, drain, reconnect with backoff, until ``stop`` is set. Never raises for link errors.

        On ``stop`` a connected session stops taking new messages, waits up to ``stop_grace_s`` for
        the PUBACKs of those in flight, records them and disconnects; a connection attempt still
        in progress is abandoned.
        """
        self._loop = asyncio.get_running_loop()
        try:
            await self._run(stop)
        finally:
            await asyncio.shield(self.wait_acks())

    async def _run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(self.reconnect_min_s, self.reconnect_max_s, self.reconnect_jitter)
        while not stop.is_set():
            attempt = asyncio.ensure_future(self._attempt(stop))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({attempt, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            if not attempt.done() and not self.connected:
                attempt.cancel()  # stop while still connecting
            try:
                connected = await attempt
            except asyncio.CancelledError:
                if not stop.is_set():
                    raise
                await self._end_session()
                break
            if stop.is_set():
                break
            if connected:
                self.reconnects += 1
                backoff.reset()
            wait = backoff.next_s()
            log.info("uplink %s: reconnecting in %.1f s", self.dest, wait)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _attempt(self, stop: asyncio.Event) -> bool:
        """One connection: connect and drain until the link drops or ``stop``; True if it connected."""
        connected = False
        try:
            async with self._client() as client:
                connected = True
                self.connected = True
                self.sessions += 1
                log.info("uplink %s: connected to %s:%d", self.dest, self.broker.host, self.broker.port)
                await self._session(client, stop)
        except* (aiomqtt.MqttError, OSError, sqlite3.Error) as group:
            self.last_error = "; ".join(f"{type(e).__name__}: {e}" for e in group.exceptions)
            log.warning("uplink %s: %s", self.dest, self.last_error)
        finally:
            self.connected = False
            await self._end_session()
        return connected

    # ------------------------------------------------------------------ session
    def _client(self) -> aiomqtt.Client:
        b = self.broker
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=b.username or None,
            password=b.password or None,
            identifier=self.client_id,
            clean_session=True,  # redelivery is the outbox's job, not the broker's
            keepalive=b.keepalive_s,
            max_inflight_messages=b.max_in_flight,
            tls_context=self._tls,
            timeout=self.connect_timeout_s,  # CONNACK wait; publishes pass ack_timeout_s
            logger=logging.getLogger(f"{__name__}.mqtt"),
        )
        client.pending_calls_threshold = b.max_in_flight + 1  # a full window is normal, not a warning
        return client

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(self._watch(client))
            flusher = tg.create_task(self._flush_loop())
            await self._feed(client, stop, tg)
            # stopping: give in-flight messages a moment to be acknowledged
            deadline = time.monotonic() + self.stop_grace_s
            while self._in_flight and time.monotonic() < deadline:
                self._slot_freed.clear()
                await self._wait_any(self._slot_freed, timeout=deadline - time.monotonic())
            watcher.cancel()
            flusher.cancel()
            for task in list(self._tasks):
                task.cancel()

    async def _feed(self, client: aiomqtt.Client, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        limit = self.broker.max_in_flight
        while not stop.is_set():
            self._wake.clear()
            self._slot_freed.clear()
            room = limit - len(self._in_flight)
            now = time.monotonic()
            cached_now = sum(1 for p in self._in_flight.values() if p.prio == "cached")
            cached_due = now - self._last_cached >= self.cached_period_s
            cached_ok = 1 if cached_now < self.cached_in_flight and cached_due else 0
            batch: list[Pending] = []
            if room > 0:
                batch = await self._next_batch(room, cached_ok)
            for p in batch:
                if self.dest == OPS and (p.prio == "sensitive" or p.kind == "sensitive"):
                    # cannot happen through edged.link.wire; refuse loudly rather than leak (it stays
                    # leased, so it is not offered again until a restart)
                    log.error("uplink ops: refusing to send sensitive message %s", p.id)
                    continue
                if p.prio == "cached":
                    self._last_cached = now
                self._in_flight[p.id] = p
                self.meter.busy(True, now)
                task = tg.create_task(self._publish(client, p))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if room > 0 and len(batch) == room and len(self._in_flight) < limit:
                continue  # there may be more, and there is room
            timeout = self.poll_s
            if not cached_due:
                timeout = min(timeout, max(0.01, self._last_cached + self.cached_period_s - now))
            await self._wait_any(self._wake, self._slot_freed, stop, timeout=timeout)

    async def _next_batch(self, room: int, cached_ok: int) -> list[Pending]:
        """``outbox.next_batch`` in a thread; if the session is cancelled meanwhile, the messages the
        thread still leases are handed back when it finishes (else they would stay leased)."""
        fut = asyncio.ensure_future(asyncio.to_thread(self.outbox.next_batch, self.dest, room, cached_limit=cached_ok))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            def give_back(f: asyncio.Future[list[Pending]]) -> None:
                if not f.cancelled() and f.exception() is None:
                    self.outbox.release([p.id for p in f.result()])
            fut.add_done_callback(give_back)
            raise

    async def _publish(self, client: aiomqtt.Client, p: Pending) -> None:
        await client.publish(self.topic(p.kind), p.payload, qos=1, timeout=self.ack_timeout_s)
        # PUBACK received: the broker has it
        self.published += 1
        self._in_flight.pop(p.id, None)
        self._acked.append(p)
        now = time.monotonic()
        self.meter.add(len(p.payload), now)
        if not self._in_flight:
            self.meter.busy(False, now)
        self._measure_quality(now)
        self._slot_freed.set()
        self._ack_ready.set()

    async def _flush_loop(self) -> None:
        while True:
            self._ack_ready.clear()
            if self._acked:
                await self._flush_acks()
            else:
                await self._ack_ready.wait()

    async def _flush_acks(self) -> None:
        batch, self._acked = self._acked, []
        if batch:
            # shielded: a cancelled session still records what the broker acknowledged
            job = asyncio.ensure_future(asyncio.to_thread(self.outbox.ack, [p.id for p in batch]))
            self._ack_jobs.add(job)
            job.add_done_callback(self._ack_recorded)
            await asyncio.shield(job)

    def _ack_recorded(self, job: asyncio.Future[int]) -> None:
        self._ack_jobs.discard(job)
        if not job.cancelled() and job.exception() is None:
            self.acked += job.result()

    async def wait_acks(self) -> None:
        """Wait until every ack handed to the outbox is recorded (before the outbox may close)."""
        while self._ack_jobs:
            await asyncio.gather(*list(self._ack_jobs), return_exceptions=True)

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raises MqttError when the connection drops (aiomqtt's message iterator does that)."""
        async for _message in client.messages:
            pass

    async def _end_session(self) -> None:
        """After a session: record PUBACKed messages, hand the rest back to the outbox."""
        await self._flush_acks()
        if self._in_flight:
            self.outbox.release(list(self._in_flight))
            self._in_flight.clear()
        self.meter.busy(False, time.monotonic())

    @staticmethod
    async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()


def quality_for_rate(rate_bps: float | None, bounds: tuple[int, int], full_rate_bps: float) -> int:
    """JPEG quality for a measured link rate: linear from ``bounds[0]`` at 0 to ``bounds[1]`` at
    ``full_rate_bps`` and above; ``bounds[1]`` while the rate is unknown."""
    lo, hi = bounds
    if rate_bps is None:
        return hi
    frac = max(0.0, min(1.0, rate_bps / full_rate_bps))
    return int(round(lo + (hi - lo) * frac))
