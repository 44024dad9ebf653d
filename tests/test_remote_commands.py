"""The transport-independent command handler against a real daemon (file camera), and the
persisted applied config with its start-up precedence."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from edged.remote.commands import MQTT_ACCESS, SERIAL_ACCESS, Access, RemoteControl, deep_merge
from edged.remote.redact import REDACTED, redact
from edged.remote.store import RECORD_NAME, load_startup_config
from tests.remote_rig import broken_model_section, running_daemon, write_config

SECRETS = """
[remote.mqtt]
password = "hunter2-mqtt"
[uplink.ops]
password = "s3cret-uplink"
"""


def control_for(startup: Any) -> tuple[RemoteControl, list[dict[str, Any]]]:
    control = RemoteControl.from_startup(startup)
    events: list[dict[str, Any]] = []
    control.add_listener(events.append)
    return control, events


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_get_set_status_stats_on_a_running_daemon(tmp_path: Path) -> None:
    path = write_config(tmp_path, SECRETS)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, events = control_for(startup)
            control.attach(daemon)
            got = await control.handle({"cmd": "get", "id": "g1"}, "test", MQTT_ACCESS)
            assert got["ok"] and got["id"] == "g1" and got["version"] == 0
            assert got["config"]["camera"]["fps"] == 25.0
            assert got["config"]["remote"]["mqtt"]["password"] == REDACTED
            assert "hunter2" not in json.dumps(got) and "s3cret" not in json.dumps(got)

            reply = await control.handle(
                {"cmd": "set", "id": 7, "version": 3, "config": {"camera": {"segment_s": 12.5}}}, "test", MQTT_ACCESS
            )
            assert reply == {"ok": True, "cmd": "set", "id": 7, "version": 3, "changed": ["camera"]}
            assert daemon.config.camera.segment_s == 12.5
            assert daemon.config.camera.width == 160  # merged, not replaced
            assert daemon.config.remote.mqtt.password == "hunter2-mqtt"
            assert control.state()["version"] == 3
            processed = daemon.stats.processed
            await asyncio.sleep(0.3)
            assert daemon.stats.processed > processed, "pipeline keeps running on the new config"
            assert events[-1]["event"] == "config_applied" and events[-1]["version"] == 3

            record = tmp_path / "data" / RECORD_NAME
            body = json.loads(record.read_text())
            assert body["version"] == 3 and body["config"]["camera"]["segment_s"] == 12.5
            assert stat.S_IMODE(record.stat().st_mode) == 0o600
            assert not [p for p in record.parent.iterdir() if p.name.endswith(".tmp")]

            status = await control.handle({"cmd": "status"}, "test", MQTT_ACCESS)
            assert status["ok"] and status["state"] == "running" and status["version"] == 3
            assert status["frames"]["processed"] > 0 and status["heartbeat_age_s"] < 1.0
            stats = await control.handle({"cmd": "stats"}, "test", MQTT_ACCESS)
            assert stats["ok"] and stats["queues"]["frames"]["capacity"] == 2
            assert stats["queues"]["detected"]["capacity"] == 1  # one frame between detection and the rest
            assert stats["processed"] == daemon.stats.processed

    run(scenario())


def test_invalid_config_names_the_key_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = write_config(tmp_path)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, events = control_for(startup)
            control.attach(daemon)
            before = daemon.config
            cases = [
                ({"camera": {"fps": 0}}, "config error at camera.fps: expected float >= 0.1"),
                ({"camera": {"fps": "fast"}}, "config error at camera.fps: expected float, got str"),
                ({"camera": {"fpss": 3}}, "config error at camera: contains an unknown key"),
                ({"device": {"id": "other"}}, "config error at device.id: cannot be changed remotely"),
                ({"camera": {"fps": 12.5}}, "config error at camera.fps: cannot be changed remotely"),
                ({"device": {"data_dir": "/tmp/x"}}, "config error at device.data_dir: cannot be changed remotely"),
            ]
            for i, (patch, message) in enumerate(cases):
                reply = await control.handle({"cmd": "set", "version": 10 + i, "config": patch}, "test", MQTT_ACCESS)
                assert not reply["ok"] and reply["code"] == ("forbidden" if "remotely" in message else "invalid_config")
                assert reply["error"].startswith(message), reply
                assert daemon.config is before
                assert events[-1]["event"] == "config_rejected" and events[-1]["reason"].startswith(message)
            assert control.version == 0
            assert not (tmp_path / "data" / RECORD_NAME).exists()

    run(scenario())


def test_version_must_increase(tmp_path: Path) -> None:
    path = write_config(tmp_path)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, _ = control_for(startup)
            control.attach(daemon)
            ok = await control.handle({"cmd": "set", "version": 5, "config": {"camera": {"segment_s": 20}}}, "t", MQTT_ACCESS)
            assert ok["ok"]
            for version in (5, 4):
                reply = await control.handle({"cmd": "set", "version": version, "config": {"camera": {"segment_s": 10}}}, "t", MQTT_ACCESS)
                assert reply["code"] == "stale_version"
                assert reply["error"] == f"version {version} is not larger than the applied version 5"
            assert daemon.config.camera.segment_s == 20
            missing = await control.handle({"cmd": "set", "config": {"camera": {"segment_s": 10}}}, "t", MQTT_ACCESS)
            assert missing["code"] == "bad_request" and "version" in missing["error"]
            # the console may leave the version out: it means "next"
            console = await control.handle(
                {"cmd": "set", "config": {"pipeline": {"stats_period_s": 30}}}, "t", Access(require_version=False)
            )
            assert console["ok"] and console["version"] == 6

    run(scenario())


def test_stage_that_fails_to_build_rolls_back_with_an_event(tmp_path: Path) -> None:
    path = write_config(tmp_path, broken_model_section(tmp_path))

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, events = control_for(startup)
            control.attach(daemon)
            await control.handle({"cmd": "set", "version": 1, "config": {"camera": {"segment_s": 20}}}, "t", MQTT_ACCESS)
            good = daemon.config
            reply = await control.handle({"cmd": "set", "version": 2, "config": {"detect": {"enabled": True}}}, "t", MQTT_ACCESS)
            assert not reply["ok"] and reply["code"] == "apply_failed"
            assert "stages failed to build" in reply["error"] and "rolled back to version 1" in reply["error"]
            assert daemon.config == good and control.version == 1
            event = events[-1]
            assert event["event"] == "config_rolled_back" and event["version"] == 2 and event["restored_version"] == 1
            assert "broken.tflite" in event["reason"]
            record = json.loads((tmp_path / "data" / RECORD_NAME).read_text())
            assert record["version"] == 1 and record["config"]["detect"]["enabled"] is False
            processed = daemon.stats.processed
            await asyncio.sleep(0.3)
            assert daemon.stats.processed > processed, "old pipeline runs on"
            status = await control.handle({"cmd": "status"}, "t", MQTT_ACCESS)
            assert status["last_error"].startswith("version 2: stages failed to build")

    run(scenario())


def test_redacted_secret_sent_back_keeps_its_value_and_secrets_stay_local(tmp_path: Path) -> None:
    path = write_config(tmp_path, SECRETS)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, _ = control_for(startup)
            control.attach(daemon)
            whole = (await control.handle({"cmd": "get"}, "t", MQTT_ACCESS))["config"]
            whole["camera"]["segment_s"] = 15.0
            reply = await control.handle({"cmd": "set", "version": 1, "mode": "replace", "config": whole}, "t", MQTT_ACCESS)
            assert reply["ok"], reply
            assert daemon.config.remote.mqtt.password == "hunter2-mqtt"
            assert daemon.config.uplink.ops.password == "s3cret-uplink"
            assert daemon.config.camera.segment_s == 15.0

            # unsigned mode: the console sets without a version (the next one is used)
            console = await control.handle({"cmd": "set", "config": {"camera": {"segment_s": 9}}}, "serial", SERIAL_ACCESS)
            assert console["ok"] and console["version"] == 2
            # credentials are local-only, and replies never echo secrets, even when the request carried them
            for password in ("new-pass-123", 12345):
                bad = await control.handle(
                    {"cmd": "set", "config": {"remote": {"mqtt": {"password": password}}}}, "serial", SERIAL_ACCESS
                )
                text = json.dumps(bad)
                assert not bad["ok"] and "new-pass-123" not in text and "hunter2" not in text, bad
            assert daemon.config.remote.mqtt.password == "hunter2-mqtt"

    run(scenario())


def test_startup_precedence_persisted_then_local_edit(tmp_path: Path) -> None:
    path = write_config(tmp_path)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            assert startup.source == "file" and startup.version == 0
            control, _ = control_for(startup)
            control.attach(daemon)
            assert (await control.handle({"cmd": "set", "version": 4, "config": {"camera": {"segment_s": 7}}}, "t", MQTT_ACCESS))["ok"]

    run(scenario())
    again = load_startup_config(path)
    assert again.source == "persisted" and again.version == 4 and again.config.camera.segment_s == 7

    path.write_text(path.read_text().replace("fps = 25.0", "fps = 30.0"))
    edited = load_startup_config(path)
    assert edited.source == "file" and edited.config.camera.fps == 30.0
    assert edited.version == 4, "next remote set must still exceed 4"
    assert "local edit wins" in edited.note

    (tmp_path / "data" / RECORD_NAME).write_text("{not json")
    corrupt = load_startup_config(path)
    assert corrupt.source == "file" and "unreadable" in corrupt.note


def test_request_shape_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, _ = control_for(startup)
            control.attach(daemon)
            cases: list[tuple[Any, str, str]] = [
                (b"", "bad_request", "empty request"),
                (b"\xff\xfe", "bad_request", "request is not valid UTF-8"),
                (b"{", "bad_request", "request is not valid JSON"),
                (b"[1,2]", "bad_request", "request must be a JSON object, got list"),
                (b'{"cmd": "reboot"}', "unknown_command", "unknown command; use get, set, status or stats"),
                (b'{"id": 1}', "bad_request", "request error at cmd: missing"),
                (b'{"cmd": "set", "version": "7", "config": {}}', "bad_request", "request error at version: expected an integer"),
                (b'{"cmd": "set", "version": 0, "config": {}}', "bad_request", "request error at version: expected an integer from 1"),
                (b'{"cmd": "get", "colour": 1}', "bad_request", "request error: unknown field"),
                (b'{"cmd": "set", "version": 1}', "bad_request", "set needs a config object"),
                (b'{"cmd": "set", "version": 1, "config": {"camera": 5}}', "invalid_config", "config error at camera: expected object"),
                (b'{"cmd": "get", "path": "camera.nope"}', "bad_request", "no config key there: camera has no key by that name"),
            ]
            for payload, code, message in cases:
                reply = await control.handle_payload(payload, "t", MQTT_ACCESS)
                assert not reply["ok"] and reply["code"] == code, (payload, reply)
                assert reply["error"].startswith(message), (payload, reply)
            got = await control.handle_payload(b'{"cmd": "get", "path": "camera.fps", "id": "x"}', "t", MQTT_ACCESS)
            assert got["ok"] and got["config"] == 25.0 and got["id"] == "x"
            assert daemon.config.camera.fps == 25.0

    run(scenario())


def test_deep_merge_and_redact_are_plain_functions() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert redact({"x": {"password": "p", "api_token": "t", "key_file": "/k"}, "secret": ""}) == {
        "x": {"password": REDACTED, "api_token": REDACTED, "key_file": "/k"},
        "secret": "",
    }


def test_persist_failure_rejects_before_applying(tmp_path: Path) -> None:
    path = write_config(tmp_path)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, events = control_for(startup)
            control.attach(daemon)
            data = tmp_path / "data"
            shutil.rmtree(data)  # the daemon made it (track ids); put a file in its place
            data.write_text("a file where the data folder should be")  # unwritable even for root
            reply = await control.handle({"cmd": "set", "version": 1, "config": {"camera": {"segment_s": 5}}}, "t", MQTT_ACCESS)
            assert reply["code"] == "persist_failed" and "cannot write" in reply["error"], reply
            assert daemon.config.camera.segment_s == 60.0 and control.version == 0
            assert events[-1]["event"] == "config_rejected"

    run(scenario())


@pytest.mark.slow
def test_pipeline_runs_at_the_new_fps(tmp_path: Path) -> None:
    """"The pipeline uses it": after fps 25 -> 5 in the local file, reloaded, the frame rate follows
    (the frame rate is local: a remote set cannot change it)."""
    path = write_config(tmp_path)

    async def rate(daemon: Any, seconds: float) -> float:
        before, t0 = daemon.stats.processed, time.monotonic()
        await asyncio.sleep(seconds)
        return (daemon.stats.processed - before) / (time.monotonic() - t0)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control, _ = control_for(startup)
            control.attach(daemon)
            fast = await rate(daemon, 1.0)
            path.write_text(path.read_text().replace("fps = 25.0", "fps = 5.0"))
            assert (await control.reload_file(path))["changed"] == ["camera"]
            slow = await rate(daemon, 1.2)
            assert fast > 15 and slow < 8, (fast, slow)

    run(scenario())
