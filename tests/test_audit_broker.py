"""The shipped mosquitto set-up (config/mosquitto) against a real broker, a real daemon and its uplinks.

The broker runs ``config/mosquitto/edged.conf`` as shipped (only its ``/etc/mosquitto/`` paths and
the listener port are moved into the test folder), with an ACL and a password file made by
``config/mosquitto/edged-broker-users``. The unit ``rsu-0001`` connects with its three users (remote
control, ops uplink, face uplink); another unit's user tries to take over its client ids and to write
its topics; the fleet manager sends requests and reads the replies from the unit's reply namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.link import wire
from edged.link.uplink import Uplink
from edged.remote.commands import RemoteControl
from edged.remote.mqtt import MqttService
from edged.remote.store import load_startup_config
from edged.runtime.app import UplinkService, build_daemon
from tests.mosquitto import Mosquitto, TlsFiles, have_mosquitto, make_tls_files
from tests.remote_rig import write_config

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed")

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
SCRIPT = SHIPPED / "edged-broker-users"
UNIT = "rsu-0001"
BASE = f"edged/{UNIT}"
FORGED = b"forged"


def users_tool(*args: str, stdin: str | None = None) -> str:
    """Run the shipped ``edged-broker-users``; its stdout."""
    done = subprocess.run([str(SCRIPT), *args], input=stdin, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def example_acl_commands() -> list[list[str]]:
    """The commands the shipped example ACL names in its header."""
    header = (SHIPPED / "edged.acl").read_text().split("\n\n", 1)[0]
    return [line.split()[2:] for line in header.splitlines() if line.startswith("#   edged-broker-users ")]


def test_the_example_acl_is_what_the_script_makes_and_names_are_checked() -> None:
    text = (SHIPPED / "edged.acl").read_text()
    commands = example_acl_commands()
    assert len(commands) == 6
    assert text.split("\n\n", 1)[1] == "".join(users_tool(*c) for c in commands)
    for bad in ("a b", "a/#", "x\nuser evil", "+", ""):
        done = subprocess.run([str(SCRIPT), "acl", "unit", bad], capture_output=True, text=True, check=False)
        assert done.returncode == 2 and "bad device id" in done.stderr and done.stdout == ""
    done = subprocess.run([str(SCRIPT), "acl", "receiver", "r", "edged/#"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "bad destination" in done.stderr
    assert users_tool("users", UNIT, "face", "plate").split() == [
        f"remote@{UNIT}", f"ops@{UNIT}", f"func.face@{UNIT}", f"func.plate@{UNIT}"]


class ShippedBroker:
    """mosquitto on ``edged.conf`` as shipped, with users and ACL made by ``edged-broker-users``."""

    def __init__(self, tmp: Path) -> None:
        etc = tmp / "etc"
        self.tls: TlsFiles = make_tls_files(etc / "certs")  # server.crt and server.key where edged.conf names them
        acl = "".join([
            users_tool("acl", "unit", UNIT, "face"),
            users_tool("acl", "unit", "rsu-0002"),
            users_tool("acl", "fleet-manager", "fleet-manager"),
            users_tool("acl", "monitoring", "monitoring"),
            users_tool("acl", "receiver", "ops-receiver", "ops"),
            users_tool("acl", "receiver", "face-receiver", "func.face"),
        ])
        (etc / "edged.acl").write_text(acl)
        names = [*users_tool("users", UNIT, "face").split(), *users_tool("users", "rsu-0002").split(),
                 "fleet-manager", "monitoring", "ops-receiver"]
        self.passwords = {name: f"pw-{name}-x7" for name in names}
        for name, password in self.passwords.items():
            assert users_tool("passwd", str(etc / "edged.passwd"), name, stdin=password + "\n") == ""
        # no password given: the tool makes one and prints it
        self.passwords["face-receiver"] = users_tool("passwd", str(etc / "edged.passwd"), "face-receiver", stdin="").strip()
        assert len(self.passwords["face-receiver"]) >= 24
        assert (etc / "edged.passwd").stat().st_mode & 0o077 == 0

        self.broker = Mosquitto(tmp / "broker")
        shipped = (SHIPPED / "edged.conf").read_text()
        assert shipped.count("listener 8883\n") == 1 and "use_username_as_clientid true\n" in shipped
        conf = shipped.replace("/etc/mosquitto/", f"{etc}/").replace(
            "listener 8883\n", f"listener {self.broker.port} 127.0.0.1\n")
        prelude = [line for line in self.broker.conf.read_text().splitlines()
                   if line.split()[0] in ("user", "persistence", "persistence_location", "log_dest", "log_type")]
        self.broker.conf.write_text("\n".join(prelude) + "\n" + conf)
        self.context = ssl.create_default_context(cafile=str(self.tls.ca))

    def client(self, user: str, identifier: str | None = None, password: str | None = None, **kw: Any) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", self.broker.port, username=user,
                              password=self.passwords.get(user, "") if password is None else password,
                              identifier=identifier or user, tls_context=self.context,
                              protocol=aiomqtt.ProtocolVersion.V5, timeout=5.0, **kw)


class Collector:
    """A client's received messages."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[aiomqtt.Message] = []

    def on(self, topic: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.value == topic]

    async def wait(self, test: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        end = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < end:
            if result := test():
                return result
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; saw {[(m.topic.value, m.payload[:60]) for m in self.messages]}")


@contextlib.asynccontextmanager
async def collecting(client: aiomqtt.Client, *filters: str) -> AsyncIterator[Collector]:
    async with client:
        for f in filters:
            await client.subscribe(f, qos=1)
        c = Collector(client)

        async def collect() -> None:
            async for message in client.messages:
                c.messages.append(message)

        task = asyncio.create_task(collect())
        try:
            yield c
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def unit_config(tmp: Path, shipped: ShippedBroker) -> Path:
    def broker(user: str) -> str:
        return (f'host = "127.0.0.1"\nport = {shipped.broker.port}\ntls = true\nca_file = "{shipped.tls.ca}"\n'
                f'username = "{user}"\npassword = "{shipped.passwords[user]}"\n')

    return write_config(tmp, f"""
[remote]
stats_period_s = 0.3
[remote.mqtt]
enabled = true
reconnect_min_s = 0.1
reconnect_max_s = 0.5
{broker(f"remote@{UNIT}")}
[uplink]
enabled = true
reconnect_min_s = 0.1
reconnect_max_s = 0.5
[uplink.ops]
{broker(f"ops@{UNIT}")}
[uplink.functional.face]
{broker(f"func.face@{UNIT}")}
""", device=UNIT)


async def request(fm: Collector, topic: str, body: dict[str, Any], correlation: bytes, response: str) -> dict[str, Any]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response
    props.CorrelationData = correlation
    await fm.client.publish(f"{BASE}/{topic}", json.dumps(body).encode(), qos=1, properties=props)

    def reply() -> Any:
        for m in fm.on(response):
            if getattr(m.properties, "CorrelationData", None) == correlation:
                return json.loads(m.payload)
        return None

    return await fm.wait(reply, f"the reply on {response}")


async def forge(client: aiomqtt.Client, publishes: list[tuple[str, bool]]) -> None:
    """Publish FORGED on each (topic, retain)."""
    for topic, retain in publishes:
        with contextlib.suppress(aiomqtt.MqttError):  # mosquitto answers a denied QoS 1 publish "not authorized"
            await client.publish(topic, FORGED, qos=1, retain=retain, timeout=5.0)


async def attempt(shipped: ShippedBroker, user: str, identifier: str, publishes: list[tuple[str, bool]],
                  password: str | None = None) -> str:
    """Connect as ``user`` under ``identifier``, publish FORGED on each (topic, retain), stay a moment;
    how it went."""
    try:
        async with shipped.client(user, identifier, password) as client:
            await forge(client, publishes)
            await asyncio.sleep(0.3)
        return "connected"
    except aiomqtt.MqttError as err:
        return f"refused: {err}"


@pytest.mark.slow
def test_shipped_broker_binds_ids_to_users_and_lets_the_fleet_manager_talk_to_the_unit(tmp_path: Path) -> None:
    shipped = ShippedBroker(tmp_path)
    shipped.broker.start()
    try:
        asyncio.run(asyncio.wait_for(scenario(tmp_path, shipped), 90))
        log = shipped.broker.log_text()
        assert "already connected, closing old connection" not in log, log[-2000:]
    finally:
        shipped.broker.stop()


async def scenario(tmp_path: Path, shipped: ShippedBroker) -> None:
    startup = load_startup_config(unit_config(tmp_path, shipped))
    remote = MqttService(RemoteControl.from_startup(startup))
    daemon = build_daemon(startup.config, tmp_path / "out", services=[remote])
    uplinks: dict[str, Uplink] = {s.uplink.dest: s.uplink for s in daemon.services if isinstance(s, UplinkService)}
    assert set(uplinks) == {"ops", "func.face"}
    run = asyncio.create_task(daemon.run())
    try:
        async with (
            collecting(shipped.client("fleet-manager"), "edged/#") as fm,
            collecting(shipped.client("ops-receiver"), "edged/#") as ops_rx,
            collecting(shipped.client("face-receiver"), "edged/#") as face_rx,
            collecting(shipped.client("remote@rsu-0002"), "edged/#") as other,
        ):
            await asyncio.wait_for(remote.connected.wait(), 15)
            await fm.wait(lambda: all(u.connected for u in uplinks.values()), "both uplinks connected")
            await fm.wait(lambda: fm.on(f"{BASE}/status") and fm.on(f"{BASE}/config/state"), "status and state")
            assert fm.on(f"{BASE}/status")[-1].payload == b"online"

            # the fleet manager asks; the unit replies into its reply namespace, which the fleet manager reads
            reply = await request(fm, "config/get", {"id": "q1"}, b"c-1", f"{BASE}/config/reply/fm-1")
            assert reply["ok"] and reply["id"] == "q1" and reply["version"] == 0
            reply = await request(fm, "config/set", {"id": "s1", "version": 1, "config": {"camera": {"segment_s": 12}}},
                                  b"c-2", f"{BASE}/config/reply/fm-1")
            assert reply["ok"] and reply["version"] == 1
            await fm.wait(lambda: json.loads(fm.on(f"{BASE}/config/state")[-1].payload)["version"] == 1, "state v1")

            # the uplinks publish where their users may, each platform reads only its destination
            outbox = uplinks["ops"].outbox
            outbox.enqueue(wire.make("package", "ops", "normal", b"ops-body", video_id="V1", image_id=None))
            outbox.enqueue(wire.make("sensitive", "func.face", "sensitive", b"face-body", video_id="V1", image_id=None))
            for u in uplinks.values():
                u.wake()
            await ops_rx.wait(lambda: ops_rx.on(f"{BASE}/ops/package"), "the ops upload")
            await face_rx.wait(lambda: face_rx.on(f"{BASE}/func.face/sensitive"), "the face upload")

            # another unit's user and the platform tools try the unit's client ids and write its topics
            own = [f"{BASE}/{t}" for t in ("status", "config/state", "events", "stats", "config/reply/x", "config/reply")]
            everything = [(t, True) for t in own] + [(f"{BASE}/config/set", True), (f"{BASE}/ops/package", False),
                                                     (f"{BASE}/func.face/sensitive", False)]
            ids = [f"remote@{UNIT}", f"ops@{UNIT}", f"func.face@{UNIT}", f"edged-{UNIT}-remote", f"edged-{UNIT}-ops",
                   f"edged-{UNIT}-func.face", *(u.client_id for u in uplinks.values())]
            for identifier in ids:
                assert await attempt(shipped, "ops@rsu-0002", identifier, everything) == "connected"
            assert await attempt(shipped, "monitoring", "mon-x", everything) == "connected"
            for c in (fm, ops_rx, face_rx, other):  # the fleet manager, the platforms, another unit's remote user
                await forge(c.client, everything)
            refused = await attempt(shipped, f"remote@{UNIT}", f"remote@{UNIT}", [], password="guess")
            assert refused.startswith("refused") and "authori" in refused.lower()

            # the unit never lost a connection and still serves
            assert remote.connected.is_set()
            assert all(u.sessions == 1 and u.connected for u in uplinks.values()), [u.status() for u in uplinks.values()]
            assert [m.payload for m in fm.on(f"{BASE}/status")] == [b"online"]
            reply = await request(fm, "config/get", {"id": "q2"}, b"c-3", f"{BASE}/config/reply/fm-2")
            assert reply["ok"] and reply["version"] == 1
            await asyncio.sleep(0.3)
            for c in (fm, ops_rx, face_rx, other):
                assert not [m.topic.value for m in c.messages if m.payload == FORGED], "a forged message got through"
            # no one else reads what is not theirs
            assert {m.topic.value for m in other.messages} == set(), "another unit read this unit's topics"
            assert {m.topic.value for m in ops_rx.messages} == {f"{BASE}/ops/package"}
            assert {m.topic.value for m in face_rx.messages} == {f"{BASE}/func.face/sensitive"}
            assert not [m for m in fm.messages if "/ops/" in m.topic.value or "/func." in m.topic.value]
            assert not fm.on(f"{BASE}/config/reply/x")

        # retained state is still the unit's own; monitoring reads status and stats only
        async with (collecting(shipped.client("monitoring"), "edged/#") as mon,
                    collecting(shipped.client("fleet-manager", "fm-late"), f"{BASE}/config/state") as late):
            await mon.wait(lambda: mon.on(f"{BASE}/status") and mon.on(f"{BASE}/stats"), "status and stats")
            assert mon.on(f"{BASE}/status")[0].payload == b"online" and mon.on(f"{BASE}/status")[0].retain
            assert {m.topic.value for m in mon.messages} <= {f"{BASE}/status", f"{BASE}/stats"}
            await late.wait(lambda: late.on(f"{BASE}/config/state"), "the retained state")
            assert json.loads(late.on(f"{BASE}/config/state")[0].payload)["version"] == 1
            assert b"<redacted>" in late.on(f"{BASE}/config/state")[0].payload
    finally:
        daemon.request_stop("test over")
        await asyncio.wait_for(run, 30)
    async with collecting(shipped.client("monitoring", "mon-after"), f"{BASE}/status") as after:
        await after.wait(lambda: after.on(f"{BASE}/status"), "status after the stop")
        assert after.on(f"{BASE}/status")[0].payload == b"offline"


def test_default_client_ids_carry_a_private_token_kept_across_restarts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edged.config import UplinkBrokerConfig
    from edged.link import mqtt
    from edged.link.outbox import Outbox

    data = tmp_path / "data"
    with Outbox(tmp_path / "o.db") as outbox:
        up = Uplink("ops", UplinkBrokerConfig(), outbox, device_id=UNIT, data_dir=data)
        assert up.client_id.startswith(f"edged-{UNIT}-ops-") and up.client_id != f"edged-{UNIT}-ops"
        token = up.client_id.removeprefix(f"edged-{UNIT}-ops-")
        assert len(token) >= 16
        kept = data / mqtt.CLIENT_TOKEN_FILE
        assert kept.read_text().strip() == token and kept.stat().st_mode & 0o777 == 0o600
        mqtt._tokens.clear()  # a restart: the same token from the file
        assert mqtt.default_client_id(UNIT, "remote", data) == f"edged-{UNIT}-remote-{token}"
        assert mqtt.default_client_id(UNIT, "remote", tmp_path / "other") != f"edged-{UNIT}-remote-{token}"
        configured = UplinkBrokerConfig(client_id="mine")
        assert Uplink("ops", configured, outbox, device_id=UNIT, data_dir=data).client_id == "mine"

        # a data dir the operator made a link: the token is kept in the folder it names
        real = tmp_path / "real-data"
        real.mkdir()
        (tmp_path / "linked-data").symlink_to(real)
        linked = mqtt.default_client_id(UNIT, "ops", tmp_path / "linked-data")
        assert (real / mqtt.CLIENT_TOKEN_FILE).read_text().strip() == linked.rsplit("-", 1)[1]

        # a link planted where the token is kept: not followed, the run goes on with a token of its own
        target = tmp_path / "target"
        target.write_text("keep me\n")
        planted = tmp_path / "planted"
        planted.mkdir()
        (planted / mqtt.CLIENT_TOKEN_FILE).symlink_to(target)
        other = mqtt.default_client_id(UNIT, "ops", planted)
        assert target.read_text() == "keep me\n" and len(other.rsplit("-", 1)[1]) >= 16
        assert f"{planted / mqtt.CLIENT_TOKEN_FILE} is a symbolic link" in caplog.text


def test_connections_sharing_one_user_on_one_broker_are_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edged.config import load
    from edged.runtime.preflight import shared_broker_users

    def config(ops_user: str) -> Any:
        return load(write_config(tmp_path, f"""
[remote.mqtt]
enabled = true
username = "rsu"
[uplink]
enabled = true
[uplink.ops]
username = "{ops_user}"
[uplink.functional.face]
host = "func.example.net"
username = "rsu"
""", device=UNIT))

    assert shared_broker_users(config(f"ops@{UNIT}")) == []
    (line,) = shared_broker_users(config("rsu"))
    assert line.startswith("remote.mqtt and uplink.ops connect to localhost:1883 as the same user 'rsu'")
    build_daemon(config("rsu"), tmp_path / "out").sinks[0].close()
    assert "as the same user 'rsu'" in caplog.text
