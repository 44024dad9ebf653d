"""The remote transports and the applied-config store under attack: reply topics on a real mosquitto,
damaged and planted files on disk, and a burst on a real pty."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.core.keys import generate_device_key, load_operator_signing_key
from edged.remote.auth import sign_claims
from edged.remote.commands import RemoteControl
from edged.remote.mqtt import MqttService
from tests.mosquitto import Mosquitto
from tests.remote_rig import running_daemon, write_config

DEVICE = "rsu-test"
BASE = f"edged/{DEVICE}"


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Operator:
    """One operator key the device trusts."""

    def __init__(self, tmp: Path) -> None:
        generate_device_key(tmp / "keys" / "operator")
        self.pub = tmp / "keys" / "operator.pub"
        self.key = load_operator_signing_key(tmp / "keys" / "operator.key")

    def section(self) -> str:
        return f'[remote.auth]\noperator_keys = ["{self.pub}"]\nmax_version_step = 100\n'

    def sign(self, config: dict[str, Any], version: int) -> dict[str, Any]:
        claims = {"cmd": "set", "device": DEVICE, "expires": time.time() + 600, "version": version,
                  "config": config, "mode": "merge"}
        return sign_claims(self.key, claims)


# ------------------------------------------------------------------------------ reply topics
class Listener:
    """A client subscribed to every topic on the broker."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[aiomqtt.Message] = []

    async def collect(self) -> None:
        async for message in self.client.messages:
            self.messages.append(message)

    def on(self, topic: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.value == topic]

    def correlated(self, correlation: bytes) -> list[aiomqtt.Message]:
        """Replies carrying ``correlation`` (the request itself is left out)."""
        return [m for m in self.messages if getattr(m.properties, "CorrelationData", None) == correlation
                and m.topic.value != f"{BASE}/config/get"]

    async def ask(self, response: str, correlation: bytes) -> aiomqtt.Message:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response
        props.CorrelationData = correlation
        await self.client.publish(f"{BASE}/config/get", json.dumps({"id": correlation.decode()}), qos=1, properties=props)
        for _ in range(500):
            replies = self.correlated(correlation)
            if replies:
                return replies[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"no reply for {correlation!r}; saw {sorted({m.topic.value for m in self.messages})}")


@contextlib.asynccontextmanager
async def listener(port: int) -> AsyncIterator[Listener]:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier="test-listener") as client:
        await client.subscribe("#", qos=1)
        w = Listener(client)
        task = asyncio.create_task(w.collect())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mqtt_section(port: int) -> str:
    return (
        f'[remote.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
        "reconnect_min_s = 0.1\nreconnect_max_s = 0.5\n"
    )


def test_replies_stay_inside_the_devices_reply_namespace(tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """A response topic outside ``<base>/config/reply[/...]`` (another device's config/set, this
    device's upload, event or state topics, a look-alike prefix) is not honoured: the reply goes to
    ``<base>/config/reply`` and a log line says so; topics inside the namespace are honoured."""
    path = write_config(tmp_path, mqtt_section(mosquitto.port))
    made: list[MqttService] = []

    def services(startup: Any) -> list[Any]:
        made.append(MqttService(RemoteControl.from_startup(startup)))
        return made

    outside = [
        "edged/rsu-other/config/set",
        f"{BASE}/ops/upload",
        f"{BASE}/functional/face",
        f"{BASE}/events",
        f"{BASE}/config/state",
        f"{BASE}/config/replyx",
        f"{BASE}/config/reply-other",
        "edged/rsu-other/config/reply",
        "ops/replies/fleet",
        f"x/{BASE}/config/reply",
    ]
    inside = [f"{BASE}/config/reply", f"{BASE}/config/reply/fleet-7", f"{BASE}/config/reply/a/b/c"]

    async def scenario() -> None:
        async with listener(mosquitto.port) as w:
            async with running_daemon(path, services):
                await asyncio.wait_for(made[0].connected.wait(), 10)
                caplog.clear()
                for i, topic in enumerate(outside):
                    reply = await w.ask(topic, f"out-{i}".encode())
                    assert reply.topic.value == f"{BASE}/config/reply", (topic, reply.topic.value)
                    assert json.loads(reply.payload)["ok"]
                for i, topic in enumerate(inside):
                    reply = await w.ask(topic, f"in-{i}".encode())
                    assert reply.topic.value == topic
                await asyncio.sleep(0.3)
                for topic in outside:
                    assert not [m for m in w.on(topic) if getattr(m.properties, "CorrelationData", b"").startswith(b"out-")], topic
                assert not w.on("edged/rsu-other/config/set")
                lines = [r.getMessage() for r in caplog.records if r.name == "edged.remote.mqtt" and "response topic" in r.getMessage()]
                assert len(lines) == 1, lines  # the first at once, the rest counted into one line a minute
                assert "edged/rsu-other/config/set" in lines[0] and f"replied on {BASE}/config/reply" in lines[0]
                assert made[0].replies_redirected == len(outside)

    with caplog.at_level(logging.INFO, logger="edged.remote.mqtt"):
        run(scenario())
