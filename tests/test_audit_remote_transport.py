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
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from edged.remote.mqtt import MqttService
from edged.remote.store import RECORD_NAME
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ the version after damage
DATA = "data"


async def send_sets(path: Path, payloads: list[bytes]) -> tuple[list[dict[str, Any]], Any, float]:
    """Start the daemon from ``path`` (a restart: the store is read afresh), send each payload as an
    MQTT ``config/set``; return the replies, the start-up state and the segment length afterwards."""
    async with running_daemon(path) as (daemon, startup):
        control = RemoteControl.from_startup(startup)
        control.attach(daemon)
        replies = [await control.handle_payload(p, "mqtt", MQTT_ACCESS, implied_cmd="set") for p in payloads]
        return replies, startup, daemon.config.camera.segment_s


def damage(path: Path, how: str) -> None:
    if how == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "delete":
        path.unlink()
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncate", "garbage", "empty", "delete"])
def test_captured_command_cannot_replay_after_the_record_is_damaged(tmp_path: Path, how: str) -> None:
    ops = Operator(tmp_path)
    path = write_config(tmp_path, ops.section())
    one, two = (json.dumps(ops.sign({"camera": {"segment_s": s}}, v)).encode() for v, s in ((1, 12.0), (2, 7.0)))
    replies, _, segment = run(send_sets(path, [one, two]))
    assert [r["ok"] for r in replies] == [True, True] and segment == 7.0

    damage(tmp_path / DATA / RECORD_NAME, how)
    three = json.dumps(ops.sign({"camera": {"segment_s": 9.0}}, 3)).encode()
    replies, startup, segment = run(send_sets(path, [one, two, three]))
    assert startup.version == 2, startup.note
    assert [r.get("code") for r in replies[:2]] == ["stale_version", "stale_version"], replies
    assert segment == 9.0 and replies[2]["ok"] and replies[2]["version"] == 3
    # the next start knows version 3 again from the rewritten record
    replies, startup, _ = run(send_sets(path, [three]))
    assert startup.version == 3 and replies[0]["code"] == "stale_version"


def test_both_version_records_unreadable_refuses_remote_changes_until_set_locally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ops = Operator(tmp_path)
    path = write_config(tmp_path, ops.section())
    one, two = (json.dumps(ops.sign({"camera": {"segment_s": s}}, v)).encode() for v, s in ((1, 12.0), (2, 7.0)))
    assert all(r["ok"] for r in run(send_sets(path, [one, two]))[0])
    data = tmp_path / DATA
    damage(data / RECORD_NAME, "garbage")
    marks = [p for p in data.iterdir() if p.is_file() and p.name != RECORD_NAME and "version" in p.name]
    assert len(marks) == 1, sorted(p.name for p in data.iterdir())
    damage(marks[0], "truncate")

    three = json.dumps(ops.sign({"camera": {"segment_s": 9.0}}, 3)).encode()
    with caplog.at_level(logging.WARNING, logger="edged.remote"):
        replies, startup, segment = run(send_sets(path, [one, three]))
    assert segment == 60.0, "nothing applied: the file's config runs"
    for reply in replies:
        assert not reply["ok"] and "refused until an operator" in reply["error"], reply
        assert str(tmp_path) not in reply["error"]
    said = [r.getMessage() for r in caplog.records if "refused until an operator" in r.getMessage()]
    assert said and str(marks[0]) in said[0], said
    assert (data / RECORD_NAME).read_bytes() == bytes(range(256)) * 4, "the damaged record is left for the operator"

    # the operator writes the highest version sent to the unit (the fleet manager knows it) and restarts
    marks[0].write_text('{"schema": 1, "version": 2}\n')
    replies, startup, segment = run(send_sets(path, [two, three]))
    assert startup.version == 2 and replies[0]["code"] == "stale_version" and replies[1]["ok"] and segment == 9.0


# ----------------------------------------------------------------- temp files and planted links
KILLED_APPLY = """
import os, signal, sys
from pathlib import Path
from edged.config import load
from edged.remote.store import ConfigStore, file_sha256, record_for
os.umask(0)
config = load(sys.argv[1])
store = ConfigStore(config.device.data_dir)
temp = store.prepare(record_for(config, 5, "mqtt", file_sha256(Path(sys.argv[1]))))
print(temp, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_apply_leaves_no_secret_behind(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A process killed between writing the temporary record and committing it (with a umask of 0)
    leaves a file with the whole config, secrets included: it is private, and the next start
    removes it."""
    import subprocess
    import sys

    from edged.remote.store import load_startup_config

    path = write_config(tmp_path, '[remote.mqtt]\npassword = "mqtt-pass-temp"\n')
    killed = subprocess.run([sys.executable, "-c", KILLED_APPLY, str(path)], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    temp = Path(killed.stdout.strip())
    assert temp.exists() and b"mqtt-pass-temp" in temp.read_bytes()
    assert temp.stat().st_mode & 0o777 == 0o600
    with caplog.at_level(logging.INFO, logger="edged.remote"):
        startup = load_startup_config(path)
    assert not temp.exists(), "the stale temporary file is removed at start"
    assert not [p.name for p in temp.parent.iterdir() if p.name.endswith(".tmp")]
    assert any("temporary file" in r.getMessage() for r in caplog.records)
    assert startup.version == 0 and startup.store.locked is None


def test_record_and_mark_are_private_and_planted_links_are_not_followed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from edged.remote.store import file_sha256, load_startup_config, record_for

    ops = Operator(tmp_path)
    path = write_config(tmp_path, ops.section())
    data = tmp_path / DATA
    # an applied change made with a umask of 0: the record and the version mark are still 0600
    saved = subprocess.run(
        [sys.executable, "-c",
         "import os, sys\nfrom pathlib import Path\nfrom edged.config import load\n"
         "from edged.remote.store import ConfigStore, file_sha256, record_for\n"
         "os.umask(0)\nc = load(sys.argv[1])\nConfigStore(c.device.data_dir).save(record_for(c, 3, 'mqtt', file_sha256(Path(sys.argv[1]))))\n",
         str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert saved.returncode == 0, saved.stderr
    files = sorted(p.name for p in data.iterdir())
    assert RECORD_NAME in files, files
    for name in files:
        assert (data / name).stat().st_mode & 0o777 == 0o600, name

    # a planted link in place of the record, to a record the attacker wrote (version 0, fps 1): not read
    config = load_startup_config(path).config
    planted = tmp_path / "planted.json"
    fake = record_for(config, 0, "mqtt", file_sha256(path))
    planted.write_bytes(fake.to_json().replace(b'"fps": 25.0', b'"fps": 1.0'))
    victim = planted.read_bytes()
    (data / RECORD_NAME).unlink()
    (data / RECORD_NAME).symlink_to(planted)
    startup = load_startup_config(path)
    assert startup.source == "file" and startup.config.camera.fps == 25.0 and startup.version == 3
    assert "symbolic link" in startup.note

    # the next apply replaces the link itself; the file it pointed at is untouched
    four = json.dumps(ops.sign({"camera": {"segment_s": 6.0}}, 4)).encode()
    replies, _, segment = run(send_sets(path, [four]))
    assert replies[0]["ok"] and segment == 6.0
    assert planted.read_bytes() == victim and not (data / RECORD_NAME).is_symlink()

    # a link in place of the version mark is not followed either (the record still says 4)
    mark = next(p for p in data.iterdir() if p.name != RECORD_NAME)
    high = tmp_path / "high.json"
    high.write_text('{"schema": 1, "version": 900}\n')
    mark.unlink()
    mark.symlink_to(high)
    assert load_startup_config(path).version == 4
    assert not mark.is_symlink() and high.read_text() == '{"schema": 1, "version": 900}\n'

    # a FIFO in place of the record does not hang the start (a separate process, so a hang fails)
    (data / RECORD_NAME).unlink()
    os.mkfifo(data / RECORD_NAME)
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom edged.remote.store import load_startup_config\ns = load_startup_config(sys.argv[1])\nprint(s.version, s.note)",
         str(path)],
        capture_output=True, text=True, timeout=30,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("4 ") and "not a regular file" in probe.stdout


# ------------------------------------------------------------------ a burst on the serial console
def burst_lines(count: int, forged: bytes) -> list[bytes]:
    """Refused lines of every kind: unsigned sets and gets, unknown words, junk bytes, unsigned and
    forged JSON requests, over-long lines."""
    import random

    rng = random.Random(5)
    kinds = [b"set camera.fps=5", b"get remote.mqtt.password", b"get", b"frobnicate", b'{"cmd": "get"}', b"set privacy.margin=0"]
    lines = []
    for i in range(count):
        if i % 500 == 0:
            lines.append(forged)
        elif i % 20_000 == 7:
            lines.append(b"x" * 5000)
        elif i % 3 == 0:
            lines.append(bytes(b for b in rng.randbytes(rng.randrange(1, 40)) if b not in b"\r\n") or b"?")
        else:
            lines.append(kinds[i % len(kinds)] + b" %d" % i if i % 2 else kinds[i % len(kinds)])
    return lines


@pytest.mark.slow
def test_console_burst_is_bounded_and_a_signed_command_still_gets_through(tmp_path: Path) -> None:
    """200,000 refused lines at pty speed against the default back-off (1 s doubling to 60 s): the
    lines waiting stay bounded, the excess is counted, the console answers a handful of them, and a
    genuine signed command typed right after the burst is applied within a few seconds."""
    import os

    from nacl.signing import SigningKey

    from edged.remote.serial_console import QUEUE_LINES, SerialConsoleService
    from tests.test_serial_console import Terminal

    ops = Operator(tmp_path)
    term = Terminal()
    path = write_config(
        tmp_path, ops.section() + f'[remote.serial]\nenabled = true\nport = "{term.path}"\nmax_line_bytes = 4096\nreopen_s = 0.2\n'
    )
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    stranger = SigningKey.generate()
    forged = json.dumps(sign_claims(stranger, {"cmd": "set", "device": DEVICE, "expires": time.time() + 600, "version": 1,
                                               "config": {"camera": {"segment_s": 3.0}}, "mode": "merge"})).encode()
    lines = burst_lines(200_000, forged)
    data = b"\n".join(lines) + b"\n"
    received = bytearray()

    async def drain() -> None:
        while True:
            try:
                received.extend(os.read(term.master, 1 << 16))
            except BlockingIOError:
                await asyncio.sleep(0.005)

    async def write(blob: bytes) -> None:
        view = memoryview(blob)
        while view:
            try:
                view = view[os.write(term.master, view[: 1 << 14]) :]
            except BlockingIOError:
                await asyncio.sleep(0.001)

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            service = made[0]
            await asyncio.wait_for(service.opened.wait(), 10)
            reader = asyncio.create_task(drain())
            try:
                await write(data)
                during = bytes(received).count(b"\n")
                t0 = time.monotonic()
                await write(json.dumps(ops.sign({"camera": {"segment_s": 6.0}}, 1)).encode() + b"\r")
                while b'"version":1,"changed"' not in received:
                    assert time.monotonic() - t0 < 5.0, f"no reply to the signed command; last: {bytes(received[-300:])!r}"
                    await asyncio.sleep(0.01)
                assert daemon.config.camera.segment_s == 6.0
            finally:
                reader.cancel()
            assert service.queue_peak <= QUEUE_LINES
            handled = service.lines_served + service.lines_discarded + service.lines_dropped
            sent = sum(1 for line in lines if line.strip()) + 1  # blank lines are not requests
            assert handled == sent, (service.lines_served, service.lines_discarded, service.lines_dropped, sent)
            assert service.lines_served < 100, "lines during a pause are discarded, not served one by one"
            assert service.lines_discarded > 0 and service.lines_dropped > 0
            assert during < 200, f"{during} replies to a burst: the console must not answer each line while pausing"

    try:
        run(scenario(), 120)
    finally:
        term.close()


@pytest.mark.slow
def test_console_refused_unsigned_lines_pause_like_failed_signatures(tmp_path: Path) -> None:
    """In signed mode an unknown word or a malformed line pauses the console as a failed signature
    does; a line refused during the pause is discarded with one notice per pause, status waits for
    the end of the pause, and a validly signed request is served at once."""
    from edged.remote.serial_console import SerialConsoleService
    from tests.test_serial_console import Terminal

    ops = Operator(tmp_path)
    term = Terminal()
    path = write_config(
        tmp_path,
        ops.section() + f'[remote.serial]\nenabled = true\nport = "{term.path}"\nauth_backoff_s = 0.5\nauth_backoff_max_s = 1.5\nreopen_s = 0.2\n',
    )
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    async def timed(line: bytes) -> tuple[dict[str, Any], float]:
        t0 = time.monotonic()
        reply = await term.ask(line)
        return reply, time.monotonic() - t0

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].opened.wait(), 10)
            for line, least in ((b"frobnicate", 0.45), (b"get camera fps", 0.95)):  # 0.5 s, then doubled
                refused, _ = await timed(line)
                assert refused["code"] in ("unknown_command", "bad_request"), refused
                status, pause = await timed(b"status")
                assert status["ok"] and pause >= least, (line, pause)
            # during a pause (1.5 s): refused lines are discarded (one notice), a signed request goes through
            await term.ask(b"\xff\xfe")
            counted = dict(made[0].control.refused)
            await term.send(b"set camera.segment_s=5\rget\r")
            notice = await term.reply()
            assert notice["code"] == "backoff" and "discarded" in notice["error"]
            signed, quick = await timed(json.dumps(ops.sign({"camera": {"segment_s": 6.0}}, 1)).encode())
            assert signed["ok"] and quick < 0.9 and daemon.config.camera.segment_s == 6.0
            status, _ = await timed(b"status")
            assert status["ok"] and made[0].lines_discarded == 2
            assert dict(made[0].control.refused) == counted, "discarded lines are not served"

    try:
        run(scenario())
    finally:
        term.close()


def test_line_queue_drops_the_oldest_lines_beyond_its_bounds() -> None:
    from edged.remote.serial_console import LineQueue

    async def scenario() -> None:
        queue = LineQueue(max_lines=3, max_bytes=10)
        for i in range(5):
            queue.put(b"%d" % i, float(i))
        assert [queue.pop() for _ in range(4)] == [(2.0, b"2"), (3.0, b"3"), (4.0, b"4"), None]
        assert queue.dropped == 2 and queue.peak == 3
        queue.put(b"aaaaaa", 0.0)
        queue.put(b"bbbbbb", 1.0)  # 12 bytes would exceed 10: the older goes
        queue.put(None, 2.0)  # an over-long line's marker
        assert queue.dropped == 3 and queue.pop() == (1.0, b"bbbbbb") and queue.pop() == (2.0, None)

    run(scenario())


def test_a_unit_from_before_the_mark_gets_one_at_its_first_start(tmp_path: Path) -> None:
    """A record written before the version mark existed: the first start writes the mark from it,
    so a later damaged record still keeps the version."""
    from edged.remote.store import ConfigStore, file_sha256, load_startup_config, record_for

    path = write_config(tmp_path)
    config = load_startup_config(path).config
    store = ConfigStore(tmp_path / DATA)
    store.save(record_for(config, 7, "mqtt", file_sha256(path)))
    store.mark_path.unlink()  # as an older release left it
    assert load_startup_config(path).version == 7
    assert json.loads(store.mark_path.read_text()) == {"schema": 1, "version": 7}
    damage(store.path, "garbage")
    again = load_startup_config(path)
    assert again.version == 7 and again.store.locked is None and again.source == "file"
