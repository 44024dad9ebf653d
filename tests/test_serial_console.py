"""Serial console over a real pseudo-terminal pair: the service opens the pty's slave path with
pyserial, the test types into the master side like a terminal program would."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edged.remote.auth import sign_claims
from edged.remote.commands import CommandError, RemoteControl
from edged.remote.serial_console import LineSplitter, SerialConsoleService, parse_line
from tests.remote_rig import running_daemon, write_config


class Terminal:
    """The master side of a pty: write request lines, read reply lines."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        os.write(self.master, data)

    async def reply(self, timeout: float = 10.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            if time.monotonic() > end:
                raise AssertionError(f"no reply line; have {self.buffer!r}")
            try:
                self.buffer += os.read(self.master, 65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
        line, self.buffer = self.buffer.split(b"\n", 1)
        assert line.endswith(b"\r"), "replies end with CRLF"
        body = json.loads(line)
        assert isinstance(body, dict)
        return body

    async def ask(self, line: str | bytes, ending: bytes = b"\r") -> dict[str, Any]:
        await self.send((line.encode() if isinstance(line, str) else line) + ending)
        return await self.reply()

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def console_config(tmp_path: Path, pty_path: str) -> Path:
    return write_config(
        tmp_path,
        f"""
[remote.serial]
enabled = true
port = "{pty_path}"
auth_backoff_s = 0.3
max_line_bytes = 4096
reopen_s = 0.2
[remote.mqtt]
password = "mqtt-pass-77"
""",
    )


@pytest.mark.slow
def test_console_get_set_status_bad_line_bad_signature(tmp_path: Path) -> None:
    """In the unsigned local-test mode (the rig's); tests/test_remote_security.py runs it signed."""
    term = Terminal()
    path = console_config(tmp_path, term.path)
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].opened.wait(), 10)

            got = await term.ask("get")
            assert got["ok"] and got["cmd"] == "get" and got["version"] == 0
            assert got["config"]["camera"]["fps"] == 25.0
            assert got["config"]["remote"]["mqtt"]["password"] == "<redacted>"
            fps = await term.ask("get camera.fps", ending=b"\r\n")
            assert fps["ok"] and fps["config"] == 25.0

            status = await term.ask("status", ending=b"\n")
            assert status["ok"] and status["state"] == "running" and status["frames"]["processed"] > 0

            done = await term.ask("set camera.segment_s=5")
            assert done == {"ok": True, "cmd": "set", "version": 1, "changed": ["camera"]}
            assert daemon.config.camera.segment_s == 5.0
            assert (await term.ask("get camera.segment_s"))["config"] == 5.0
            local = await term.ask("set camera.fps=5")
            assert local["code"] == "forbidden" and "camera.fps: cannot be changed remotely" in local["error"]
            assert daemon.config.camera.fps == 25.0

            json_form = await term.ask('set {"pipeline": {"stats_period_s": 20}} version=7 id=abc')
            assert json_form["ok"] and json_form["version"] == 7 and json_form["id"] == "abc"
            assert daemon.config.pipeline.stats_period_s == 20.0
            machine = await term.ask('{"cmd": "status", "id": 42}')
            assert machine["ok"] and machine["id"] == 42 and machine["version"] == 7

            # bad lines: each gets one error reply that says what is wrong
            unknown = await term.ask("frobnicate now")
            assert unknown["code"] == "unknown_command" and "frobnicate" not in unknown["error"]
            no_value = await term.ask("set camera.fps")
            assert no_value["code"] == "bad_request" and "expected key=value" in no_value["error"]
            invalid = await term.ask("set camera.fps=0")
            assert invalid["code"] == "invalid_config" and invalid["error"].startswith("config error at camera.fps")
            binary = await term.ask(b"get \xff\xfe")
            assert binary["code"] == "bad_request" and "UTF-8" in binary["error"]
            long = await term.ask("get " + "x" * 5000)
            assert long["code"] == "bad_request" and "max_line_bytes" in long["error"]
            assert (await term.ask("help"))["ok"]

            # a request signed by an untrusted key: refused, nothing changes, and the console pauses
            # before the next line, twice as long after a second failure in a row
            claims = {"cmd": "set", "device": "rsu-test", "version": 8, "expires": time.time() + 60, "config": {"camera": {"segment_s": 9}}}
            forged = json.dumps(sign_claims(SigningKey.generate(), claims))
            wrong = await term.ask(forged)
            assert wrong["code"] == "unknown_key" and "not a trusted operator key" in wrong["error"]
            t0 = time.monotonic()
            after = await term.ask("status")
            first_pause = time.monotonic() - t0
            assert after["ok"] and first_pause >= 0.25
            await term.ask(forged)
            t0 = time.monotonic()
            await term.ask("status")
            assert time.monotonic() - t0 >= 0.55
            assert daemon.config.camera.segment_s == 5.0 and after["version"] == 7 and after["refused"] == {"forbidden": 1, "unknown_key": 1}

            # a reply never echoes a secret
            leak = await term.ask('set remote.mqtt.password="new-pass-88"')
            assert not leak["ok"]
            typed = await term.ask("MQTT-PASS-77")  # a password typed at the wrong prompt
            assert typed["code"] == "unknown_command"
            as_path = await term.ask("get xyz-console-9")
            assert as_path["code"] == "bad_request"
            assert leak["code"] == "forbidden"
            for reply in (got, leak, wrong, after, typed, as_path):
                text = json.dumps(reply).lower()  # the console lower-cases command words
                assert "mqtt-pass-77" not in text and "new-pass-88" not in text

            # several lines in one write are served in order, one reply each
            await term.send(b"status\rget camera.width\r\rnope\r")
            replies = [await term.reply() for _ in range(3)]
            assert [r.get("cmd") for r in replies] == ["status", "get", None]
            assert replies[1]["config"] == 160 and replies[2]["code"] == "unknown_command"
            assert made[0].lines_served >= 20

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        term.close()


@pytest.mark.slow
def test_console_waits_for_a_missing_port_and_opens_it_when_it_appears(tmp_path: Path) -> None:
    term = Terminal()
    link = tmp_path / "ttyUSB-test"
    path = console_config(tmp_path, str(link))
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.sleep(0.3)
            assert not made[0].opened.is_set()
            link.symlink_to(term.path)  # the adapter is plugged in
            await asyncio.wait_for(made[0].opened.wait(), 10)
            assert (await term.ask("status"))["ok"]

    try:
        asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        term.close()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("set", "set needs at least one key=value"),
        ("set a.b=1 a.b=2", "a.b given twice"),
        ("set a=1 a.b=2", "a is given a value and also keys below it"),
        ("set a.b={nope", "value of a.b is not valid JSON"),
        ('set a.b="x"y', "expected a space after the value of a.b"),
        ("set {} camera.fps=1", "after set {...} only version, id, mode may follow"),
        ("set x.y=1 version=1.5", "version must be a whole number"),
        ("status now", "status takes no arguments"),
        ("get camera fps", "get takes one key path"),
    ],
)
def test_line_parse_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_line(line)
    assert str(err.value).startswith(message)


def test_line_values() -> None:
    req = parse_line('set camera.fps=5 output.dir="my out" detect.enabled=false a.b=[1,2] a.c=word version=123')
    assert req == {
        "cmd": "set",
        "version": 123,
        "config": {"camera": {"fps": 5}, "output": {"dir": "my out"}, "detect": {"enabled": False}, "a": {"b": [1, 2], "c": "word"}},
    }


def test_line_splitter_endings_and_overflow() -> None:
    s = LineSplitter(limit=8)
    assert s.feed(b"ab\r\ncd") == [b"ab"]
    assert s.feed(b"\n\n\rx") == [b"cd"]
    assert s.feed(b"123456789") == [None]
    assert s.feed(b"more\nok\n") == [b"ok"]


def test_console_survives_a_burst_of_random_lines(tmp_path: Path) -> None:
    """200 random byte lines in bursts: 200 error replies in order, then a normal status."""
    import random

    term = Terminal()
    path = console_config(tmp_path, term.path)
    made: list[SerialConsoleService] = []
    rng = random.Random(11)
    lines = []
    while len(lines) < 200:
        raw = bytes(b for b in rng.randbytes(rng.randrange(1, 120)) if b not in b"\r\n")
        if raw.strip() and not raw.lstrip().lower().startswith((b"get", b"status", b"stats", b"help")):
            lines.append(raw)

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].opened.wait(), 10)
            replies = []
            for i in range(0, len(lines), 20):  # bursts of 20 lines (< the 4 kB tty input buffer)
                batch = lines[i : i + 20]
                await term.send(b"\n".join(batch) + b"\n")
                replies += [await term.reply() for _ in batch]
            assert len(replies) == len(lines)
            assert all(not r["ok"] and r["code"] in ("bad_request", "unknown_command") for r in replies)
            status = await term.ask("status")
            assert status["ok"] and status["version"] == 0
            before = daemon.stats.processed
            await asyncio.sleep(0.2)
            assert daemon.stats.processed > before

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        term.close()
