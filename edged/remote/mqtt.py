"""Remote commands over MQTT 5 on the device broker connection.

Topics (``<base>`` = ``edged/<device.id>``):

- ``<base>/config/set``   in:  ``{"version": 8, "config": {...}, "id": "..."}`` (partial or, with
  ``"mode": "replace"``, whole)
- ``<base>/config/get``   in:  empty or ``{"id": ..., "path": "camera"}``
- ``<base>/config/reply`` out: the reply to each request; a request may name an MQTT 5 response
  topic inside this namespace (``<base>/config/reply/<anything>``, e.g. one per fleet-manager
  instance), any other response topic is not honoured (the reply comes here and one line is
  logged); the request's correlation data and ``id`` are echoed either way
- ``<base>/config/state`` out, retained: ``{"version", "config" (secrets redacted), "applied_at", "source"}``
- ``<base>/status``       out, retained: ``online``; ``offline`` as the last will and on clean stop
- ``<base>/events``       out: config applied / rejected / rolled back, with the reason; and a JSON copy
  of the camera's health events (``"event": "health"``: cover, freeze, distortion starting or
  ending, defect counts) and of every track summary (``"event": "trail"``), as the outbox stores them
  in CBOR for the platform, for local tools (Home Assistant, Node-RED, ``mosquitto_sub``)
- ``<base>/stats``        out, every ``remote.stats_period_s``: fps, stage latency, queues, drops, links
  (per destination)

Connection settings come from ``remote.mqtt`` of the running config. Host, port, TLS files and
credentials are local-only (``edged/remote/policy.py``): a remote command cannot point the device's
password at another broker. When an admin command switches the link or its timers, the service
reconnects with the new settings.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import ssl
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.config import MqttRemoteConfig, resolve_path
from edged.core.lograte import BoundedLog
from edged.link.mqtt import Backoff, client_id, tls_context
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from edged.runtime.seams import DaemonView

log = logging.getLogger("edged.remote.mqtt")

EVENT_BACKLOG = 256
"""Events kept while the broker is unreachable (oldest dropped first)."""
DEVICE_EVENT_BACKLOG = 256
"""Health and track events kept while the broker is unreachable (oldest dropped first), apart from
the config events so that a busy road never pushes those out."""
IN_FLIGHT = 4
"""Requests served at once; one slow ``set`` (it waits for a frame) must not block ``get``."""


def topics(device_id: str) -> dict[str, str]:
    base = f"edged/{device_id}"
    names = ("config/set", "config/get", "config/reply", "config/state", "status", "events", "stats")
    return {name: f"{base}/{name}" for name in names}


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=str).encode()


def reply_topic_allowed(topic: Any, reply_topic: str) -> bool:
    """Whether a requested response topic lies in this device's reply namespace: ``reply_topic``
    itself or one of its subtopics, with no wildcard or NUL and within MQTT's topic length."""
    if not isinstance(topic, str) or "+" in topic or "#" in topic or "\0" in topic:
        return False
    if len(topic.encode("utf-8", "replace")) >= 65535:
        return False
    return topic == reply_topic or topic.startswith(reply_topic + "/")


class MqttService:
    """The MQTT command service (a daemon :class:`~edged.runtime.seams.Service`)."""

    name = "remote-mqtt"

    def __init__(self, control: RemoteControl) -> None:
        self.control = control
        self.connected = asyncio.Event()
        """Set while connected and subscribed (tests wait on it)."""
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_BACKLOG)
        self._device_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue(DEVICE_EVENT_BACKLOG)
        self._daemon: DaemonView | None = None
        self.device_events_dropped = 0
        self._up = False
        self.replies_redirected = 0
        """Replies sent to ``config/reply`` because the requested response topic was outside it."""
        self._bounded_log = BoundedLog(log)
        """One line a minute at most for what a busy or hostile client can repeat."""

    # ----------------------------------------------------------------------------------- service
    async def run(self, daemon: DaemonView) -> None:
        self.control.attach(daemon)
        remove = self.control.add_listener(self._on_event)
        self._daemon = daemon
        listeners = daemon.event_listeners
        listeners.append(self._on_device_event)
        try:
            await self._loop(daemon)
        finally:
            remove()
            if self._on_device_event in listeners:
                listeners.remove(self._on_device_event)
            self.connected.clear()

    def _on_event(self, event: dict[str, Any]) -> None:
        if self._events.full():
            self._events.get_nowait()
            self._bounded_log.warning("event_backlog", "MQTT event backlog full; oldest event dropped")
        self._events.put_nowait(event)

    def _on_device_event(self, event: dict[str, Any]) -> None:
        """Queue a health or track event for the ``events`` topic (never blocks; oldest dropped when full)."""
        if self._daemon is None or not self._daemon.config.remote.mqtt.enabled:
            return
        if self._device_events.full():
            self._device_events.get_nowait()
            self.device_events_dropped += 1
            self._bounded_log.warning("device_event_backlog", "MQTT health/track event backlog full; oldest event "
                                                              "dropped")
        self._device_events.put_nowait(event)

    async def _loop(self, daemon: DaemonView) -> None:
        backoff: Backoff | None = None
        while not daemon.drained.is_set():
            wanted = (daemon.config.device.id, daemon.config.remote.mqtt)
            if not wanted[1].enabled:
                await self._wait_change(daemon, wanted)
                continue
            settings = wanted
            if backoff is None or (backoff.min_s, backoff.max_s) != (wanted[1].reconnect_min_s,
                                                                     wanted[1].reconnect_max_s):
                backoff = Backoff(wanted[1].reconnect_min_s, wanted[1].reconnect_max_s)
            self._up = False
            try:
                await self._session(daemon, settings, wanted)
                backoff.reset()
            except (aiomqtt.MqttError, OSError, ssl.SSLError, ValueError) as err:
                self.connected.clear()
                if self._up:  # it had connected: start again from the shortest delay
                    backoff.reset()
                delay = backoff.next_s()
                log.warning("MQTT %s:%d: %s; retrying in %.1f s", settings[1].host, settings[1].port, err, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(daemon.drained.wait(), delay)

    async def _wait_change(self, daemon: DaemonView, wanted: tuple[str, MqttRemoteConfig]) -> None:
        while not daemon.drained.is_set() and (daemon.config.device.id, daemon.config.remote.mqtt) == wanted:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), 1.0)

    async def _session(
        self, daemon: DaemonView, settings: tuple[str, MqttRemoteConfig], wanted: tuple[str, MqttRemoteConfig]
    ) -> None:
        device_id, cfg = settings
        t = topics(device_id)
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username or None,
            password=cfg.password or None,
            identifier=client_id(cfg, device_id, "remote", resolve_path(daemon.config.device.data_dir)),
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(t["status"], b"offline", qos=1, retain=True),
            keepalive=cfg.keepalive_s,
            tls_context=tls_context(cfg, "remote.mqtt"),
            timeout=10.0,
            # No bound on queued requests: aiomqtt would drop the excess silently, leaving senders
            # without a reply; only clients the broker authorises can publish to these topics.
        )
        async with client:
            await client.publish(t["status"], b"online", qos=1, retain=True)
            await client.publish(t["config/state"], _json(self.control.state()), qos=1, retain=True)
            await client.subscribe(t["config/set"], qos=1)
            await client.subscribe(t["config/get"], qos=1)
            self._up = True
            self.connected.set()
            log.info("MQTT connected to %s:%d as %s", cfg.host, cfg.port, device_id)
            tasks = [
                asyncio.create_task(self._receive(client, t), name="mqtt-receive"),
                asyncio.create_task(self._publish_events(client, t), name="mqtt-events"),
                asyncio.create_task(self._publish_device_events(client, t), name="mqtt-device-events"),
                asyncio.create_task(self._publish_stats(client, t, daemon), name="mqtt-stats"),
                asyncio.create_task(self._watch(daemon, wanted), name="mqtt-watch"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            self.connected.clear()
            await self._flush_events(client, t)
            with contextlib.suppress(aiomqtt.MqttError):
                while not self._device_events.empty():
                    await client.publish(t["events"], _json(self._device_events.get_nowait()), qos=1, timeout=2.0)
            # A clean DISCONNECT does not fire the will, so say it ourselves (a reconnect with new
            # settings says "online" again).
            with contextlib.suppress(aiomqtt.MqttError):
                await client.publish(t["status"], b"offline", qos=1, retain=True, timeout=2.0)
            log.info("MQTT: status offline, disconnecting")

    async def _watch(self, daemon: DaemonView, wanted: tuple[str, MqttRemoteConfig]) -> None:
        """Return when the daemon is drained or the configured connection settings change."""
        while not daemon.drained.is_set():
            if (daemon.config.device.id, daemon.config.remote.mqtt) != wanted:
                log.info("MQTT settings changed; reconnecting")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), 0.5)

    # ---------------------------------------------------------------------------------- requests
    async def _receive(self, client: aiomqtt.Client, t: dict[str, str]) -> None:
        limit = asyncio.Semaphore(IN_FLIGHT)
        pending: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            pending.discard(task)
            limit.release()
            if not task.cancelled() and task.exception() is not None:
                log.warning("MQTT request failed: %r", task.exception())

        try:
            async for message in client.messages:
                await limit.acquire()
                task = asyncio.create_task(self._serve(client, t, message))
                pending.add(task)
                task.add_done_callback(finished)
        finally:
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            for task in list(pending):
                task.cancel()

    async def _serve(self, client: aiomqtt.Client, t: dict[str, str], message: aiomqtt.Message) -> None:
        topic = message.topic.value
        implied = "set" if topic == t["config/set"] else "get" if topic == t["config/get"] else None
        if implied is None:
            return
        raw = message.payload
        payload = raw if isinstance(raw, (bytes, bytearray)) else str(raw or "").encode()
        limit = self._settings_limit()
        if len(payload) > limit:
            reply: dict[str, Any] = {
                "ok": False, "cmd": implied, "code": "bad_request",
                "error": f"request of {len(payload)} bytes exceeds remote.mqtt.max_payload_bytes ({limit})",
            }
        else:
            if message.retain and implied == "set" and self._already_applied(payload):
                log.debug("retained config/set at or below the applied version; ignored")
                return
            reply = await self.control.handle_payload(payload, "mqtt", MQTT_ACCESS, implied_cmd=implied)
        await self._reply(client, t, message, reply)

    def _settings_limit(self) -> int:
        target = self.control.target
        return target.config.remote.mqtt.max_payload_bytes if target is not None else 262_144

    def _already_applied(self, payload: bytes) -> bool:
        """A retained set at or below the applied version (its claims are read unverified: at worst a
        forged retained message is ignored instead of refused)."""
        try:
            request = json.loads(payload)
            signed = request.get("signed")
            if isinstance(signed, dict):
                request = json.loads(base64.b64decode(signed.get("payload", ""), validate=True))
            version = request.get("version")
        except (ValueError, AttributeError, TypeError, RecursionError, binascii.Error):
            return False
        return isinstance(version, int) and not isinstance(version, bool) and version <= self.control.version

    async def _reply(
        self, client: aiomqtt.Client, t: dict[str, str], message: aiomqtt.Message, reply: dict[str, Any]
    ) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "application/json"
        request_props = message.properties
        correlation = getattr(request_props, "CorrelationData", None) if request_props is not None else None
        if correlation is not None:
            props.CorrelationData = correlation
        requested = getattr(request_props, "ResponseTopic", None) if request_props is not None else None
        target = t["config/reply"]
        if requested is not None:
            if reply_topic_allowed(requested, t["config/reply"]):
                target = requested
            else:
                self.replies_redirected += 1
                self._bounded_log.warning(
                    "reply_topic",
                    f"MQTT: response topic {str(requested)[:200]!r} is outside {t['config/reply']} and its subtopics; "
                    f"replied on {t['config/reply']}",
                )
        try:
            await client.publish(target, _json(reply), qos=1, properties=props)
        except ValueError as err:  # paho refuses the topic
            log.warning("MQTT: reply to %r refused (%s); sent to %s", target[:200], err, t["config/reply"])
            await client.publish(t["config/reply"], _json(reply), qos=1, properties=props)

    # ---------------------------------------------------------------------------------- outgoing
    async def _publish_events(self, client: aiomqtt.Client, t: dict[str, str]) -> None:
        while True:
            event = await self._events.get()
            await self._publish_event(client, t, event)

    async def _publish_device_events(self, client: aiomqtt.Client, t: dict[str, str]) -> None:
        while True:
            event = await self._device_events.get()
            await client.publish(t["events"], _json(event), qos=1)

    async def _flush_events(self, client: aiomqtt.Client, t: dict[str, str]) -> None:
        while not self._events.empty():
            await self._publish_event(client, t, self._events.get_nowait())

    async def _publish_event(self, client: aiomqtt.Client, t: dict[str, str], event: dict[str, Any]) -> None:
        await client.publish(t["events"], _json(event), qos=1)
        if event.get("event") == "config_applied":
            await client.publish(t["config/state"], _json(self.control.state()), qos=1, retain=True)

    async def _publish_stats(self, client: aiomqtt.Client, t: dict[str, str], daemon: DaemonView) -> None:
        while True:
            await asyncio.sleep(daemon.config.remote.stats_period_s)
            await client.publish(t["stats"], _json(self.control.stats()), qos=0)
