"""MQTT command service against a real mosquitto and a real daemon (file camera)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.remote.commands import RemoteControl
from edged.remote.mqtt import MqttService
from tests.mosquitto import Mosquitto, make_tls_files
from tests.remote_rig import broken_model_section, running_daemon, write_config

BASE = "edged/rsu-test"


class Watcher:
    """A test client that records every message under ``edged/rsu-test/#``."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[aiomqtt.Message] = []

    async def collect(self) -> None:
        async for message in self.client.messages:
            self.messages.append(message)

    def on(self, suffix: str) -> list[aiomqtt.Message]:
        return self.on_topic(f"{BASE}/{suffix}")

    def on_topic(self, topic: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.value == topic]

    async def wait(self, test: Callable[[], Any], timeout: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            result = test()
            if result:
                return result
            await asyncio.sleep(0.02)
        topics = sorted({m.topic.value for m in self.messages})
        counts = {topic: len(self.on_topic(topic)) for topic in topics}
        raise AssertionError(f"timed out; saw {counts}; last: {[(m.topic.value, m.payload[:100]) for m in self.messages[-5:]]}")

    async def request(self, topic: str, body: Any, correlation: bytes, response: str = f"{BASE}/config/reply/test") -> dict[str, Any]:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response
        props.CorrelationData = correlation
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        await self.client.publish(f"{BASE}/{topic}", payload, qos=1, properties=props)

        def reply() -> Any:
            for m in self.messages:
                if m.topic.value == response and getattr(m.properties, "CorrelationData", None) == correlation:
                    return json.loads(m.payload)
            return None

        return await self.wait(reply)

    def state(self) -> dict[str, Any]:
        return json.loads(self.on("config/state")[-1].payload)


@contextlib.asynccontextmanager
async def watcher(port: int, **kw: Any) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, identifier="test-watcher", **kw) as client:
        await client.subscribe(f"{BASE}/#", qos=1)
        w = Watcher(client)
        task = asyncio.create_task(w.collect())
        try:
            yield w
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mqtt_config(tmp_path: Path, port: int, extra: str = "") -> Path:
    return write_config(
        tmp_path,
        f"""
[remote]
stats_period_s = 0.3
apply_timeout_s = 5.0
[remote.mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
password = "broker-pass-xyz"
username = "edged"
reconnect_min_s = 0.1
reconnect_max_s = 0.5
{extra}
""",
    )


def services(store: list[MqttService]) -> Callable[[Any], list[Any]]:
    def make(startup: Any) -> list[Any]:
        service = MqttService(RemoteControl.from_startup(startup))
        store.append(service)
        return [service]

    return make


@pytest.mark.slow
def test_set_get_state_status_events_stats(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = mqtt_config(tmp_path, mosquitto.port, broken_model_section(tmp_path))
    made: list[MqttService] = []

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w:
            async with running_daemon(path, services(made)) as (daemon, _):
                await asyncio.wait_for(made[0].connected.wait(), 10)
                await w.wait(lambda: w.on("status") and w.on("config/state"))
                assert w.on("status")[-1].payload == b"online"
                assert w.state()["version"] == 0
                assert "broker-pass-xyz" not in w.on("config/state")[-1].payload.decode()

                # set -> reply correlates, state shows the new version, the pipeline uses it
                reply = await w.request("config/set", {"id": "r1", "version": 1, "config": {"camera": {"segment_s": 12}}}, b"c-1")
                assert reply == {"ok": True, "cmd": "set", "id": "r1", "version": 1, "changed": ["camera"]}
                await w.wait(lambda: w.state()["version"] == 1)
                assert w.state()["config"]["camera"]["segment_s"] == 12.0
                assert daemon.config.camera.segment_s == 12.0
                before = daemon.stats.processed
                await asyncio.sleep(0.3)
                assert daemon.stats.processed > before
                applied = await w.wait(lambda: [json.loads(m.payload) for m in w.on("events") if b"config_applied" in m.payload])
                assert applied[-1]["version"] == 1 and applied[-1]["source"] == "mqtt"

                # invalid config -> error naming the key; old config still active
                bad = await w.request("config/set", {"version": 2, "config": {"camera": {"fps": -1}}}, b"c-2")
                assert not bad["ok"] and bad["code"] == "invalid_config"
                assert bad["error"].startswith("config error at camera.fps: expected float >= 0.1")
                assert daemon.config.camera.segment_s == 12.0
                rejected = await w.wait(lambda: [m for m in w.on("events") if b"config_rejected" in m.payload])
                assert b"camera.fps" in rejected[-1].payload

                # version not increasing -> error
                stale = await w.request("config/set", {"version": 1, "config": {"camera": {"segment_s": 8}}}, b"c-3")
                assert stale["code"] == "stale_version" and "not larger than the applied version 1" in stale["error"]

                # a model that cannot load -> rollback and an event saying why
                failed = await w.request("config/set", {"version": 3, "config": {"detect": {"enabled": True}}}, b"c-4")
                assert failed["code"] == "apply_failed" and "stages failed to build" in failed["error"]
                rolled = await w.wait(lambda: [json.loads(m.payload) for m in w.on("events") if b"config_rolled_back" in m.payload])
                assert rolled[-1]["version"] == 3 and rolled[-1]["restored_version"] == 1
                assert "broken.tflite" in rolled[-1]["reason"]
                assert daemon.config.camera.segment_s == 12.0 and not daemon.config.detect.enabled and w.state()["version"] == 1
                before = daemon.stats.processed
                await asyncio.sleep(0.3)
                assert daemon.stats.processed > before, "the old pipeline runs on"

                # a local-only key -> refused by the policy, nothing applied
                gone = str(tmp_path / "unplugged")
                local = await w.request("config/set", {"version": 4, "config": {"camera": {"file": {"path": gone}}}}, b"c-4b")
                assert local["code"] == "forbidden" and "camera.file.path: cannot be changed remotely" in local["error"]
                rate = await w.request("config/set", {"version": 4, "config": {"camera": {"fps": 5}}}, b"c-4c")
                assert rate["code"] == "forbidden" and "camera.fps: cannot be changed remotely" in rate["error"]
                assert daemon.config.camera.fps == 25.0

                # get (no response topic: the default reply topic, correlated by id)
                await w.client.publish(f"{BASE}/config/get", json.dumps({"id": "g-9", "path": "camera"}), qos=1)
                got = await w.wait(lambda: [json.loads(m.payload) for m in w.on("config/reply") if b"g-9" in m.payload])
                assert got[-1]["ok"] and got[-1]["config"]["segment_s"] == 12.0 and got[-1]["version"] == 1

                # junk on the set topic -> an error reply, nothing else happens
                junk = await w.request("config/set", b"\x00\xff not json", b"c-5")
                assert junk["code"] == "bad_request"

                # periodic stats
                stats = await w.wait(lambda: w.on("stats"))
                body = json.loads(stats[-1].payload)
                assert body["processed"] > 0 and "fps" in body and body["queues"]["frames"]["capacity"] == 2
                assert daemon.stats.processed > 0

            # clean stop -> retained "offline"
            await w.wait(lambda: w.on("status") and w.on("status")[-1].payload == b"offline")
        async with watcher(mosquitto.port) as late:
            await late.wait(lambda: late.on("status"))
            assert late.on("status")[-1].payload == b"offline" and late.on("status")[-1].retain
            assert late.state()["version"] == 1  # retained reported config

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_reply_never_goes_to_the_devices_own_topics(tmp_path: Path, mosquitto: Mosquitto) -> None:
    path = mqtt_config(tmp_path, mosquitto.port)
    made: list[MqttService] = []

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w:
            async with running_daemon(path, services(made)):
                await asyncio.wait_for(made[0].connected.wait(), 10)
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = f"{BASE}/config/set"  # would loop
                props.CorrelationData = b"loop"
                await w.client.publish(f"{BASE}/config/set", b"{}", qos=1, properties=props)
                reply = await w.wait(lambda: w.on("config/reply"))
                assert getattr(reply[-1].properties, "CorrelationData", None) == b"loop"
                await asyncio.sleep(0.3)
                assert len(w.on("config/set")) == 1, "the reply was not published back onto config/set"

    asyncio.run(asyncio.wait_for(scenario(), 60))


class LinkCutter:
    """A TCP relay between the service and the broker whose connections can be cut (no DISCONNECT
    reaches the broker, as when a cellular link drops)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.transports: list[asyncio.WriteTransport] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.transports += [writer.transport, up_writer.transport]  # type: ignore[list-item]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def cut(self) -> None:
        for transport in self.transports:
            transport.abort()
        self.transports.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()


def test_last_will_says_offline_when_the_link_drops(tmp_path: Path, mosquitto: Mosquitto) -> None:
    made: list[MqttService] = []

    async def scenario() -> None:
        link = LinkCutter(mosquitto.port)
        await link.start()
        path = mqtt_config(tmp_path, link.port)
        try:
            async with watcher(mosquitto.port) as w:
                async with running_daemon(path, services(made)):
                    service = made[0]
                    await asyncio.wait_for(service.connected.wait(), 10)
                    await w.wait(lambda: w.on("status") and w.on("status")[-1].payload == b"online")
                    link.cut()
                    await w.wait(lambda: any(m.payload == b"offline" for m in w.on("status")))
                    # the service reconnects by itself and says so
                    await w.wait(lambda: w.on("status")[-1].payload == b"online")
                    await asyncio.wait_for(service.connected.wait(), 10)
                    reply = await w.request("config/get", b"", b"after-cut")
                    assert reply["ok"] and reply["version"] == 0
        finally:
            await link.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_credentials_required_and_mutual_tls(tmp_path: Path) -> None:
    """A broker with a password file and TLS client certificates: the service connects with the
    configured credentials and certificate; the password never shows in the reported state."""
    tls = make_tls_files(tmp_path / "tls")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "edged", "broker-pass-xyz"], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "watcher", "watch-pass"], check=True, capture_output=True)
    passwd.chmod(0o600)
    broker = Mosquitto(tmp_path / "broker", tls=tls, password_file=passwd)
    broker.start()
    try:
        path = mqtt_config(
            tmp_path,
            broker.port,
            f'tls = true\nca_file = "{tls.ca}"\ncert_file = "{tls.client_cert}"\nkey_file = "{tls.client_key}"\n',
        )
        made: list[MqttService] = []
        import ssl

        context = ssl.create_default_context(cafile=str(tls.ca))
        context.load_cert_chain(str(tls.client_cert), str(tls.client_key))

        async def scenario() -> None:
            async with watcher(broker.port, username="watcher", password="watch-pass", tls_context=context) as w:
                async with running_daemon(path, services(made)) as (daemon, _):
                    await asyncio.wait_for(made[0].connected.wait(), 10)
                    reply = await w.request("config/set", {"version": 1, "config": {"camera": {"segment_s": 11}}}, b"t1")
                    assert reply["ok"] and daemon.config.camera.segment_s == 11.0
                    await w.wait(lambda: w.on("config/state") and w.state()["version"] == 1)
                    raw = w.on("config/state")[-1].payload.decode()
                    assert "broker-pass-xyz" not in raw and '"password":"<redacted>"' in raw

                    # credentials are local-only: a remote password change is refused, the link stays up
                    bad = await w.request(
                        "config/set", {"version": 2, "config": {"remote": {"mqtt": {"password": "wrong-pass"}}}}, b"t2"
                    )
                    assert bad["code"] == "forbidden" and "remote.mqtt.password: cannot be changed remotely" in bad["error"]
                    assert "wrong-pass" not in json.dumps(bad)
                    ok = await w.request("config/get", {"id": "after"}, b"t3")
                    assert ok["ok"] and ok["version"] == 1 and made[0].connected.is_set()

        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        broker.stop()


def test_malformed_flood_over_the_broker(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """300 random payloads and one oversized one through the real broker: one error reply each,
    in any order, matched by correlation data; the pipeline keeps running on its config."""
    import random

    path = mqtt_config(tmp_path, mosquitto.port)
    made: list[MqttService] = []
    rng = random.Random(7)
    payloads = [rng.randbytes(rng.randrange(1, 300)) for _ in range(300)]
    payloads.append(b'{"version": 9, "config": {"x": "' + b"a" * 300_000 + b'"}}')

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w:
            async with running_daemon(path, services(made)) as (daemon, _):
                await asyncio.wait_for(made[0].connected.wait(), 10)
                config = daemon.config
                async def send(i: int, payload: bytes) -> None:
                    props = Properties(PacketTypes.PUBLISH)
                    props.ResponseTopic = f"{BASE}/config/reply/flood"
                    props.CorrelationData = str(i).encode()
                    await w.client.publish(f"{BASE}/config/set", payload, qos=1, properties=props)

                await asyncio.gather(*(send(i, p) for i, p in enumerate(payloads)))
                replies = await w.wait(lambda: len(w.on("config/reply/flood")) >= len(payloads) and w.on("config/reply/flood"), 30)
                by_id = {int(m.properties.CorrelationData): json.loads(m.payload) for m in replies}
                assert sorted(by_id) == list(range(len(payloads)))
                assert all(not r["ok"] and r["code"] == "bad_request" for r in by_id.values())
                assert "max_payload_bytes" in by_id[len(payloads) - 1]["error"]
                before = daemon.stats.processed
                await asyncio.sleep(0.3)
                assert daemon.stats.processed > before and daemon.config is config

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.slow
def test_mqtt_switched_off_and_on_by_a_config_change(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """remote.mqtt.enabled changed (e.g. from the serial console): the service says "offline" and
    disconnects, then connects again when switched back on."""
    from edged.remote.commands import Access

    path = mqtt_config(tmp_path, mosquitto.port)
    made: list[MqttService] = []
    console = Access(require_version=False)

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w:
            async with running_daemon(path, services(made)):
                service = made[0]
                await asyncio.wait_for(service.connected.wait(), 10)
                off = await service.control.handle({"cmd": "set", "config": {"remote": {"mqtt": {"enabled": False}}}}, "test", console)
                assert off["ok"]
                await w.wait(lambda: w.on("status")[-1].payload == b"offline")
                assert not service.connected.is_set()
                on = await service.control.handle({"cmd": "set", "config": {"remote": {"mqtt": {"enabled": True}}}}, "test", console)
                assert on["ok"]
                await w.wait(lambda: w.on("status")[-1].payload == b"online")
                await w.wait(lambda: w.state()["version"] == 2)

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.slow
def test_a_client_with_the_old_predictable_id_does_not_knock_the_remote_control_off(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The remote control's default client id carries the unit's private token, so a client that
    connects as ``edged-<id>-remote`` on a broker that does not bind ids to users is not taken for it."""
    made: list[MqttService] = []

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w:
            async with running_daemon(mqtt_config(tmp_path, mosquitto.port), services(made)):
                await asyncio.wait_for(made[0].connected.wait(), 10)
                await w.wait(lambda: w.on("status") and w.on("status")[-1].payload == b"online")
                async with aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5,
                                          identifier=f"edged-{BASE.split('/')[1]}-remote"):
                    await asyncio.sleep(1.0)
                assert all(m.payload == b"online" for m in w.on("status")), "the unit was knocked off"
                reply = await w.request("config/get", b"", b"after-intruder")
                assert reply["ok"]

    asyncio.run(asyncio.wait_for(scenario(), 60))
