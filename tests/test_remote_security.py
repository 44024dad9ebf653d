"""The attacks on remote configuration, each against a real daemon in the default signed mode:
over a real mosquitto (an anonymous client on the same broker) and a real pty (anyone with a
cable). Each must fail with a clear reply and leave the running config unchanged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edged.config import Config
from edged.core.keys import generate_device_key, load_operator_signing_key
from edged.remote.auth import sign_claims
from edged.remote.commands import RemoteControl
from edged.remote.mqtt import MqttService
from edged.remote.policy import POLICY, check_change, leaf_keys, rule_for
from edged.remote.serial_console import SerialConsoleService
from tests.mosquitto import Mosquitto
from tests.remote_rig import running_daemon, write_config
from tests.test_remote_mqtt import watcher
from tests.test_serial_console import Terminal

DEVICE = "rsu-test"


class Operators:
    """An operator key and an admin key, trusted by the device, and one stranger."""

    def __init__(self, tmp: Path) -> None:
        generate_device_key(tmp / "keys" / "operator")
        generate_device_key(tmp / "keys" / "admin")
        self.folder = tmp / "keys"
        self.operator = load_operator_signing_key(self.folder / "operator.key")
        self.admin = load_operator_signing_key(self.folder / "admin.key")
        self.stranger = SigningKey.generate()

    def section(self) -> str:
        return (
            f'[remote.auth]\noperator_keys = ["{self.folder / "operator.pub"}"]\n'
            f'admin_keys = ["{self.folder / "admin.pub"}"]\nmax_version_step = 100\n'
        )

    @staticmethod
    def sign(key: SigningKey, config: dict[str, Any] | None, version: int | None = None, *, cmd: str = "set",
             device: str = DEVICE, expires_in: float = 60.0, **more: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"cmd": cmd, "device": device, "expires": time.time() + expires_in, **more}
        if cmd == "set":
            claims.update(config=config, version=version, mode="merge")
        return sign_claims(key, claims)


def signed_config(tmp: Path, ops: Operators, extra: str = "") -> Path:
    return write_config(tmp, ops.section() + extra)


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ------------------------------------------------------------------------------------ over MQTT
def mqtt_section(port: int) -> str:
    return (
        f'[remote.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nusername = "edged"\n'
        'password = "broker-pass-xyz"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
    )


@pytest.mark.slow
def test_attacks_over_the_broker_fail_and_change_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ops = Operators(tmp_path)
    elsewhere = Mosquitto(tmp_path / "other-broker")
    elsewhere.start()
    path = signed_config(tmp_path, ops, mqtt_section(mosquitto.port))
    made: list[MqttService] = []

    def services(startup: Any) -> list[Any]:
        made.append(MqttService(RemoteControl.from_startup(startup)))
        return made

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w, running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].connected.wait(), 10)
            start = daemon.config
            n = iter(range(1000))

            async def ask(body: Any) -> dict[str, Any]:
                return await w.request("config/set", body, f"c-{next(n)}".encode())

            # 1. anonymous: one unsigned message that would weaken privacy
            weaken = {"privacy": {"method": "pixelate", "cells": 64, "margin": 0.0}}
            reply = await ask({"version": 1, "config": weaken})
            assert reply["code"] == "unsigned" and "edged sign-config" in reply["error"]
            # ... and the same, signed by a trusted operator, and by an admin: privacy only gets stronger
            for key in (ops.operator, ops.admin):
                reply = await ask(ops.sign(key, weaken, 1))
                assert reply["code"] == "forbidden" and "would weaken de-identification" in reply["error"], reply
            # 2. the device's password pointed at another broker: local-only, even for an admin
            for patch in ({"remote": {"mqtt": {"port": elsewhere.port}}}, {"remote": {"mqtt": {"host": "10.9.9.9"}}},
                          {"uplink": {"ops": {"host": "10.9.9.9"}}}):
                reply = await ask(ops.sign(ops.admin, patch, 1))
                assert reply["code"] == "forbidden" and "cannot be changed remotely" in reply["error"], reply
            # 3. a version far ahead would lock out every later command
            reply = await ask(ops.sign(ops.admin, {"camera": {"segment_s": 9.0}}, 2**53))
            assert reply["code"] == "version_step" and "max_version_step (100)" in reply["error"]
            # 4. a timeout that would roll back every later set: out of range, and admin-only anyway
            reply = await ask(ops.sign(ops.admin, {"remote": {"apply_timeout_s": 1e-6}}, 1))
            assert reply["code"] == "invalid_config" and "remote.apply_timeout_s" in reply["error"]
            reply = await ask(ops.sign(ops.operator, {"remote": {"apply_timeout_s": 30.0}}, 1))
            assert reply["code"] == "forbidden" and "needs an admin key" in reply["error"]
            # 5. a frame larger than the sensor: what the camera delivers is local, even for an admin
            reply = await ask(ops.sign(ops.admin, {"camera": {"width": 8192, "height": 8192}}, 1))
            assert reply["code"] == "forbidden" and "camera.width: cannot be changed remotely" in reply["error"]
            # 6. another device's command, an expired one, an untrusted key, a tampered payload
            reply = await ask(ops.sign(ops.operator, {"camera": {"segment_s": 9.0}}, 1, device="rsu-other"))
            assert reply["code"] == "wrong_device"
            reply = await ask(ops.sign(ops.operator, {"camera": {"segment_s": 9.0}}, 1, expires_in=-5))
            assert reply["code"] == "expired"
            reply = await ask(ops.sign(ops.stranger, {"camera": {"segment_s": 9.0}}, 1))
            assert reply["code"] == "unknown_key"
            good = ops.sign(ops.operator, {"camera": {"segment_s": 9.0}}, 1)
            forged = json.loads(json.dumps(good))
            forged["signed"]["payload"] = ops.sign(ops.operator, {"privacy": {"margin": 0.0}}, 1)["signed"]["payload"]
            reply = await ask(forged)
            assert reply["code"] == "bad_signature"
            beside = {**good, "config": weaken}
            reply = await ask(beside)
            assert reply["code"] == "bad_signature" and "unsigned key 'config'" in reply["error"]

            assert daemon.config == start, "no attack changed the running config"
            assert made[0].connected.is_set()

            # the legitimate command goes through; its replay is refused
            assert (await ask(good))["ok"] and daemon.config.camera.segment_s == 9.0
            replay = await ask(good)
            assert replay["code"] == "stale_version"
            # stronger privacy is fine for an operator; a privileged timer for an admin
            stronger = await ask(ops.sign(ops.operator, {"privacy": {"margin": 0.6, "cells": 1, "method": "fill"}}, 2))
            assert stronger["ok"], stronger
            assert (await ask(ops.sign(ops.admin, {"remote": {"apply_timeout_s": 30.0}}, 3)))["ok"]

            refused = made[0].control.status()["refused"]
            assert refused["unsigned"] == 1 and refused["forbidden"] == 7 and refused["version_step"] == 1
            assert refused["wrong_device"] == refused["expired"] == refused["unknown_key"] == 1
            assert refused["bad_signature"] == 2 and refused["stale_version"] == 1
            events = [json.loads(m.payload) for m in w.on("events")]
            assert any(e["event"] == "command_refused" and e["code"] == "unknown_key" for e in events)
        assert "edged" not in elsewhere.log_text(), "the device's credentials never reached the other broker"

    try:
        run(scenario(), 90)
    finally:
        elsewhere.stop()


@pytest.mark.slow
def test_sign_config_cli_makes_a_command_the_device_applies(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ops = Operators(tmp_path)
    path = signed_config(tmp_path, ops, mqtt_section(mosquitto.port))
    fragment = tmp_path / "change.toml"
    fragment.write_text("[camera]\nsegment_s = 7.5\n[privacy]\nmargin = 0.5\n")
    made: list[MqttService] = []

    def sign(*args: str) -> subprocess.CompletedProcess[str]:
        edged = Path(sys.executable).with_name("edged")
        return subprocess.run([str(edged), "sign-config", *args], capture_output=True, text=True)

    cli = sign(str(fragment), "--key", str(ops.folder / "operator.key"), "--device", DEVICE, "--version", "4", "--id", "cli")
    assert cli.returncode == 0, cli.stderr
    bad = sign(str(tmp_path / "missing.toml"), "--key", str(ops.folder / "operator.key"), "--device", DEVICE, "--version", "5")
    assert bad.returncode == 1 and bad.stderr.startswith("edged sign-config: cannot read fragment") and "Traceback" not in bad.stderr
    public = sign(str(fragment), "--key", str(ops.folder / "operator.pub"), "--device", DEVICE, "--version", "5")
    assert public.returncode == 1 and "expected an ed25519-secret key" in public.stderr

    def services(startup: Any) -> list[Any]:
        made.append(MqttService(RemoteControl.from_startup(startup)))
        return made

    async def scenario() -> None:
        async with watcher(mosquitto.port) as w, running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].connected.wait(), 10)
            reply = await w.request("config/set", cli.stdout.strip().encode(), b"cli-1")
            assert reply == {"ok": True, "cmd": "set", "id": "cli", "version": 4, "changed": ["camera", "privacy"]}
            assert daemon.config.camera.segment_s == 7.5 and daemon.config.privacy.margin == 0.5

    run(scenario())


# ---------------------------------------------------------------------------------- on the console
@pytest.mark.slow
def test_console_reads_and_writes_need_a_signature_and_failures_back_off(tmp_path: Path) -> None:
    ops = Operators(tmp_path)
    term = Terminal()
    path = signed_config(
        tmp_path, ops,
        f'[remote.serial]\nenabled = true\nport = "{term.path}"\nauth_backoff_s = 0.2\nauth_backoff_max_s = 0.5\nreopen_s = 0.2\n'
        '[remote.mqtt]\npassword = "mqtt-pass-77"\nhost = "broker.internal"\n',
    )
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    async def timed(line: str | bytes) -> tuple[dict[str, Any], float]:
        t0 = time.monotonic()
        reply = await term.ask(line)
        return reply, time.monotonic() - t0

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].opened.wait(), 10)
            start = daemon.config
            # reads that reveal configuration need a signature; status is health only
            got = await term.ask("get")
            assert got["code"] == "unsigned" and "config" not in got
            status, _ = await timed("status")  # served after the back-off pause
            assert status["ok"] and status["state"] == "running" and status["version"] == 0
            assert "last_error" not in status and "source" not in status and "camera" not in status
            assert "broker.internal" not in json.dumps(status)
            # an unsigned set, guessed signatures: refused, and each failure in a row pauses longer
            pauses = []
            for line in ("set camera.segment_s=5", json.dumps(ops.sign(ops.stranger, {"camera": {"segment_s": 5}}, 1)),
                         json.dumps(ops.sign(ops.operator, {"camera": {"segment_s": 5}}, 1, device="rsu-other"))):
                reply, _ = await timed(line)
                assert reply["code"] in ("unsigned", "unknown_key", "wrong_device"), reply
                _, pause = await timed("stats")
                pauses.append(pause)
            assert pauses[0] >= 0.18 and pauses[1] >= 0.38 and pauses[2] >= 0.48, pauses  # 0.2, 0.4, capped 0.5
            assert daemon.config == start
            # a signed get and a signed set work, and reset the back-off
            signed_get = await term.ask(json.dumps(ops.sign(ops.operator, None, cmd="get", path="remote.mqtt")))
            assert signed_get["ok"] and signed_get["config"]["host"] == "broker.internal"
            assert signed_get["config"]["password"] == "<redacted>"
            done = await term.ask(json.dumps(ops.sign(ops.operator, {"camera": {"segment_s": 5.0}}, 1)))
            assert done["ok"] and daemon.config.camera.segment_s == 5.0
            _, pause = await timed("status")
            assert pause < 0.15
            assert made[0].control.refused["unsigned"] == 2

    try:
        run(scenario())
    finally:
        term.close()


# ------------------------------------------------------------------------------------ the policy
def test_every_config_key_has_a_declared_rule_and_every_rule_is_used() -> None:
    keys = list(leaf_keys())
    assert len(keys) > 150
    missing = [k for k in keys if rule_for(k) is None]
    assert not missing, f"config keys without a remote policy: {missing}"
    import fnmatch

    unused = [pattern for pattern, _ in POLICY if not any(fnmatch.fnmatchcase(k, pattern) for k in keys)]
    assert not unused, f"policy patterns that match no config key: {unused}"


def test_every_numeric_config_key_is_bounded_on_both_sides() -> None:
    import msgspec.inspect as mi

    def numeric(t: Any) -> list[Any]:
        if isinstance(t, (mi.IntType, mi.FloatType)):
            return [t]
        if isinstance(t, mi.UnionType):
            return [x for u in t.types for x in numeric(u)]
        if isinstance(t, (mi.TupleType, mi.ListType, mi.DictType)):
            inner = getattr(t, "item_types", None) or [getattr(t, "item_type", None), getattr(t, "value_type", None)]
            return [x for u in inner if u is not None for x in numeric(u)]
        return []

    def walk(cls: type, prefix: str) -> list[str]:
        unbounded = []
        for field in mi.type_info(cls).fields:
            if isinstance(field.type, mi.StructType):
                unbounded += walk(field.type.cls, f"{prefix}{field.name}.")
                continue
            items = [field.type.item_type] if isinstance(field.type, mi.ListType) else []
            for item in items:
                if isinstance(item, mi.StructType):
                    unbounded += walk(item.cls, f"{prefix}{field.name}[].")
            for t in numeric(field.type):
                low = t.ge if t.ge is not None else t.gt
                high = t.le if t.le is not None else t.lt
                if low is None or high is None:
                    unbounded.append(prefix + field.name)
        return unbounded

    assert walk(Config, "") == [], "every number a file or a remote set gives must have a range"


def test_privacy_only_gets_stronger_for_every_role() -> None:
    base = Config()
    for role in ("operator", "admin"):
        for section, values in {"margin": (0.2, 0.5), "cells": (3, 1), "min_score": (0.2, 0.05),
                                "confident_score": (0.6, 0.4), "unconfident_max_share": (0.02, 0.1),
                                "min_cell_px": (2, 8), "shape": ("ellipse", "box"),
                                "fit_from_px": (32, 128), "edge_fill": ([], ["plate", "face"])}.items():
            weaker, stronger = values
            for value, allowed in ((weaker, False), (stronger, True)):
                new = Config(privacy=type(base.privacy)(**{**_fields(base.privacy), section: value}))
                try:
                    check_change(base, new, role)  # type: ignore[arg-type]
                    ok = True
                except ValueError:
                    ok = False
                assert ok is allowed, (role, section, value)


def _fields(section: Any) -> dict[str, Any]:
    return {name: getattr(section, name) for name in section.__struct_fields__}
