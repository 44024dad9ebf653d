"""Remote commands under attack: replies that never depend on a secret, privacy-relevant tracker and
detector keys that only get stronger remotely, and absurd numbers in a signed envelope."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from edged.core.keys import generate_device_key, load_operator_signing_key
from edged.remote.auth import AUTH_FAILURES, AuthError, TrustedKey, sign_claims, verify_request
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from tests.remote_rig import running_daemon, write_config

DEVICE = "rsu-test"


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _raw_signed(key: SigningKey, payload: bytes) -> dict[str, Any]:
    """A signed request over exactly ``payload`` (``sign_claims`` could not write 10**400 or NaN as JSON)."""
    from edged.core.keys import signing_key_id

    b64 = base64.b64encode
    return {"cmd": "set", "signed": {"payload": b64(payload).decode(), "key": signing_key_id(key),
                                     "sig": b64(key.sign(payload).signature).decode()}}


def _claims_text(expires: str, **more: str) -> bytes:
    """JSON claims of a set with ``expires`` (and any other field) written as raw JSON text."""
    fields = {"cmd": '"set"', "device": f'"{DEVICE}"', "version": "1", "mode": '"merge"',
              "config": '{"camera": {"fps": 9.0}}', "expires": expires, **more}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


ABSURD_EXPIRES = ["1" + "0" * 400, "-" + "1" + "0" * 400, "1" + "0" * 20, "-5", "NaN", "Infinity", "-Infinity",
                  "1e400", "true", "false", '"1796200000"', "null", "[]", "{}", "1e-320", "0"]
"""Signed ``expires`` values that are not a usable time: each is an ``expired`` refusal."""


@pytest.mark.parametrize("expires", ABSURD_EXPIRES)
def test_absurd_signed_expires_is_a_refusal(expires: str) -> None:
    key = SigningKey.generate()
    from edged.core.keys import signing_key_id

    trusted = {signing_key_id(key.verify_key): TrustedKey(key.verify_key, "operator", "op.pub")}
    request = _raw_signed(key, _claims_text(expires))
    with pytest.raises(AuthError) as caught:
        verify_request(request, trusted, DEVICE, 600.0, now=1_700_000_000.0)
    assert caught.value.code == "expired", caught.value
    assert "expires" in str(caught.value) or "expired" in str(caught.value)


def _operator(tmp: Path) -> tuple[SigningKey, str]:
    generate_device_key(tmp / "keys" / "operator")
    section = (f'[remote.auth]\noperator_keys = ["{tmp / "keys" / "operator.pub"}"]\nmax_version_step = 100\n')
    return load_operator_signing_key(tmp / "keys" / "operator.key"), section


def test_absurd_numbers_in_a_signed_envelope_are_refused_not_internal(tmp_path: Path) -> None:
    """Through the command handler of a real daemon: every absurd field is one clear refusal or
    request error, never ``internal``, and the running config stays as it was."""
    key, section = _operator(tmp_path)
    path = write_config(tmp_path, section)
    soon = f"{time.time() + 60:.3f}"
    huge = "1" + "0" * 400
    cases: list[tuple[bytes, set[str]]] = [(_claims_text(e), {"expired"}) for e in ABSURD_EXPIRES]
    for version in (huge, "-" + huge, "-1", "0", "true", "NaN", "1e400", "1.5", '"7"', "9007199254740993"):
        cases.append((_claims_text(soon, version=version), {"bad_request"}))
    cases += [
        (_claims_text(soon, id=huge), {"bad_request"}),
        (_claims_text(soon, mode="NaN"), {"bad_request"}),
        (_claims_text(soon, path=huge), {"bad_request"}),
        (_claims_text(soon, device=huge), {"wrong_device"}),
        (_claims_text(soon, device="NaN"), {"wrong_device"}),
        (_claims_text(soon, config=f'{{"camera": {{"fps": {huge}}}}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"camera": {"fps": NaN}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"camera": {"fps": -Infinity}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"track": {"confirm_hits": true}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"camera": {"fps": 9.0}}', version="1" + "0" * 5000), {"bad_signature"}),
        (_claims_text(soon, config="[" * 50_000 + "]" * 50_000), {"bad_signature"}),
        (_claims_text(soon, config='{"camera": ' * 20_000 + "1" + "}" * 20_000), {"bad_signature", "invalid_config"}),
        (_claims_text(soon, config='{"camera": ' * 990 + "1" + "}" * 990), {"bad_signature", "invalid_config"}),
        (_claims_text(soon, config='{"camera": {"fps": ' + "[" * 990 + "]" * 990 + "}}"), {"bad_signature", "invalid_config"}),
    ]

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control = RemoteControl.from_startup(startup)
            control.attach(daemon)
            start = daemon.config
            for payload, codes in cases:
                reply = await control.handle(_raw_signed(key, payload), "t", MQTT_ACCESS)
                assert not reply["ok"] and reply["code"] in codes, (payload[:200], reply)
                assert reply["code"] != "internal" and len(reply["error"]) < 400, reply
            assert daemon.config == start and control.version == 0
            # the envelope around the claims: absurd key ids, signatures and payloads
            good = _raw_signed(key, _claims_text(soon))
            for signed in ({**good["signed"], "key": 10**400}, {**good["signed"], "key": ["x"]},
                           {**good["signed"], "sig": 5}, {**good["signed"], "payload": float("nan")},
                           {**good["signed"], "payload": "A" * 10}, {**good["signed"], "key": True}):
                reply = await control.handle({"cmd": "set", "signed": signed}, "t", MQTT_ACCESS)
                assert not reply["ok"] and reply["code"] in AUTH_FAILURES, reply
            # an unusable request id is left out of the reply, never an error of its own
            for i, rid in enumerate((10**400, float("nan"), True, -(10**30))):
                reply = await control.handle({**good, "id": rid}, "t", MQTT_ACCESS)
                assert "id" not in reply and reply["code" if i else "ok"] == ("stale_version" if i else True), reply
            assert daemon.config.camera.fps == 9.0

    run(scenario())


# ------------------------------------------------------------------ replies never depend on a secret
MQTT_PASSWORD = "hunter2-mqtt"
UPLINK_PASSWORD = "s3cret-uplink"
SECRETS = f'[remote.mqtt]\npassword = "{MQTT_PASSWORD}"\n[uplink.ops]\npassword = "{UPLINK_PASSWORD}"\n'


def guess_pairs() -> list[tuple[str, str]]:
    """(right, wrong) guesses of equal length: a start of each secret (also in another case, and the
    whole secret) against a guess that shares nothing with it."""
    pairs = []
    for secret in (MQTT_PASSWORD, UPLINK_PASSWORD):
        for right in (secret[:4], secret[:8], secret[:8].upper(), secret):
            pairs.append((right, "".join("qz"[i % 2] for i in range(len(right)))))
    return pairs


def unsigned_probes(g: str) -> list[tuple[str, Any]]:
    """Requests anyone on the broker may send, with the guess ``g`` where a reply used to echo it."""
    return [
        ("get path", {"cmd": "get", "path": f"camera.{g}'"}),
        ("get root path", {"cmd": "get", "path": f"{g}\""}),
        ("get below a secret", {"cmd": "get", "path": f"remote.mqtt.password.{g}'"}),
        ("get below a table", {"cmd": "get", "path": f"privacy.recipients.{g}'"}),
        ("unknown command", {"cmd": f"{g}'"}),
        ("unknown field", {"cmd": "get", f"{g}'": 1}),
        ("enum value", {"cmd": "get", "mode": f"{g}'"}),
        ("long id", {"cmd": "get", "id": g * 40}),
        ("unsigned set", {"cmd": "set", "version": 1, "config": {"camera": {f"{g}'": 1}}}),
        ("signed by a guessed key id", {"cmd": "set", "signed": {"payload": "e30=", "key": f"{g}'", "sig": "AA=="}}),
        ("unknown signed field", {"cmd": "set", "signed": {"payload": "e30=", "key": "k", "sig": "AA==", f"{g}'": 1}}),
        ("field beside the signature", {"cmd": "set", "signed": {"payload": "e30=", "key": "k", "sig": "AA=="}, f"{g}'": 1}),
    ]


def signed_probes(key: SigningKey, g: str) -> list[tuple[str, Any]]:
    """Requests signed by a trusted operator with the guess ``g`` in them."""
    soon = time.time() + 60

    def sset(config: Any, **more: Any) -> dict[str, Any]:
        return sign_claims(key, {"cmd": "set", "device": DEVICE, "expires": soon, "version": 1, "mode": "merge",
                                 "config": config, **more})

    forged_cmd = sset({"camera": {"fps": 9.0}})
    forged_cmd["cmd"] = f"{g}'"
    return [
        ("unknown config key", sset({"camera": {f"{g}'": 1}})),
        ("unknown section", sset({f"{g}'": {"a": 1}})),
        ("enum config value", sset({"privacy": {"method": f"{g}'"}})),
        ("category", sset({"privacy": {"categories": [f"{g}'"]}})),
        ("class", sset({"select": {"classes": ["person", f"{g}'"]}})),
        ("recipient", sset({"privacy": {"recipients": {"face": f"{g}'"}}})),
        ("secret as a value", sset({"remote": {"mqtt": {"password": g}}})),
        ("uplink secret as a value", sset({"uplink": {"ops": {"password": g}}})),
        ("secret in a section's place", sset({"remote": {"mqtt": g}})),
        ("config of the wrong type", sset({"camera": {"fps": f"{g}'"}})),
        ("signed get path", sign_claims(key, {"cmd": "get", "device": DEVICE, "expires": soon, "path": f"camera.{g}'"})),
        ("request cmd beside the signed one", forged_cmd),
        ("signed for a guessed device", sign_claims(key, {"cmd": "set", "device": f"{g}'", "expires": soon,
                                                          "version": 1, "config": {}})),
    ]


def _without_id(reply: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in reply.items() if k != "id"}, sort_keys=True)


def test_replies_to_a_right_and_a_wrong_guess_are_byte_identical(tmp_path: Path) -> None:
    """Through the command handler: wherever a request can carry text, a start of a secret (or the
    whole secret) and a wrong guess get the same reply and the same event, and neither is echoed."""
    key, section = _operator(tmp_path)
    path = write_config(tmp_path, section + SECRETS)

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control = RemoteControl.from_startup(startup)
            events: list[dict[str, Any]] = []
            control.add_listener(events.append)
            control.attach(daemon)
            start = daemon.config
            for right, wrong in guess_pairs():
                probes = zip(unsigned_probes(right) + signed_probes(key, right),
                             unsigned_probes(wrong) + signed_probes(key, wrong), strict=True)
                for (what, a), (_, b) in probes:
                    n = len(events)
                    got_a = await control.handle(a, "t", MQTT_ACCESS)
                    events_a = [{k: v for k, v in e.items() if k not in ("time", "count")} for e in events[n:]]
                    n = len(events)
                    got_b = await control.handle(b, "t", MQTT_ACCESS)
                    events_b = [{k: v for k, v in e.items() if k not in ("time", "count")} for e in events[n:]]
                    assert _without_id(got_a) == _without_id(got_b), (what, right, got_a, got_b)
                    assert events_a == events_b, (what, events_a, events_b)
                    assert not got_a["ok"], (what, got_a)
                    for text in (right, wrong):
                        assert text.lower() not in _without_id(got_a).lower(), (what, text, got_a)
            assert daemon.config == start and control.version == 0

    run(scenario(), 120)


def test_over_a_real_broker_a_right_guess_and_a_wrong_one_get_the_same_reply(tmp_path: Path, mosquitto: Any) -> None:
    """Anyone on the broker: unsigned ``config/get`` and ``config/set`` with a start of the broker
    and uplink passwords and with a wrong guess get byte-identical replies on ``config/reply``."""
    import aiomqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edged.remote.mqtt import MqttService

    key, section = _operator(tmp_path)
    mqtt = (f'[remote.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mosquitto.port}\nusername = "edged"\n'
            f'password = "{MQTT_PASSWORD}"\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n'
            f'[uplink.ops]\npassword = "{UPLINK_PASSWORD}"\n')
    path = write_config(tmp_path, section + mqtt)
    made: list[MqttService] = []
    base = f"edged/{DEVICE}"

    def services(startup: Any) -> list[Any]:
        made.append(MqttService(RemoteControl.from_startup(startup)))
        return made

    def probes(g: str) -> list[tuple[str, bytes]]:
        return [
            ("config/get", json.dumps({"path": f"uplink.ops.{g}'"}).encode()),
            ("config/get", json.dumps({"path": f"remote.mqtt.password.{g}'"}).encode()),
            ("config/get", json.dumps({"cmd": f"{g}'"}).encode()),
            ("config/get", json.dumps({f"{g}'": 1}).encode()),
            ("config/set", json.dumps({"cmd": "set", "signed": {"payload": "e30=", "key": f"{g}'", "sig": "AA=="}}).encode()),
            ("config/set", json.dumps(sign_claims(key, {"cmd": "set", "device": DEVICE, "expires": time.time() + 60,
                                                        "version": 1, "config": {"camera": {f"{g}'": 1}}})).encode()),
        ]

    async def scenario() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5,
                                  identifier="guesser") as client, running_daemon(path, services) as (daemon, _):
            await client.subscribe(f"{base}/config/reply", qos=1)
            await asyncio.wait_for(made[0].connected.wait(), 10)
            n = iter(range(10_000))

            async def ask(topic: str, payload: bytes) -> bytes:
                props = Properties(PacketTypes.PUBLISH)
                correlation = f"guess-{next(n)}".encode()
                props.CorrelationData = correlation
                await client.publish(f"{base}/{topic}", payload, qos=1, properties=props)
                async with asyncio.timeout(10):
                    async for message in client.messages:
                        if getattr(message.properties, "CorrelationData", None) == correlation:
                            assert isinstance(message.payload, bytes)
                            return message.payload
                raise AssertionError("no reply")

            for right, wrong in guess_pairs()[::2]:
                for (topic, a), (_, b) in zip(probes(right), probes(wrong), strict=True):
                    got_a, got_b = await ask(topic, a), await ask(topic, b)
                    assert got_a == got_b, (topic, right, got_a, got_b)
                    assert right.lower().encode() not in got_a.lower() and b'"ok":false' in got_a, got_a
            assert control_unchanged(daemon)

    def control_unchanged(daemon: Any) -> bool:
        return made[0].control.version == 0 and daemon.config.remote.mqtt.password == MQTT_PASSWORD

    run(scenario(), 90)


def test_console_lines_with_a_right_and_a_wrong_guess_get_the_same_reply(tmp_path: Path) -> None:
    """Anyone with a cable, on a real pty: a start of the broker password typed where the console
    used to quote it back gets the reply a wrong guess gets (and none quotes what was typed)."""
    from edged.remote.serial_console import SerialConsoleService
    from tests.test_serial_console import Terminal

    key, section = _operator(tmp_path)
    term = Terminal()
    path = write_config(tmp_path, section + SECRETS + f'[remote.serial]\nenabled = true\nport = "{term.path}"\nreopen_s = 0.2\n')
    made: list[SerialConsoleService] = []

    def services(startup: Any) -> list[Any]:
        made.append(SerialConsoleService(RemoteControl.from_startup(startup)))
        return made

    def lines(g: str) -> list[str]:
        return [f"{g}'", f"get {g}'", f"set {g}'", f"set camera.fps=1 version={g}"]

    async def scenario() -> None:
        async with running_daemon(path, services) as (daemon, _):
            await asyncio.wait_for(made[0].opened.wait(), 10)
            for right, wrong in guess_pairs():
                for a, b in zip(lines(right), lines(wrong), strict=True):
                    got_a, got_b = await term.ask(a), await term.ask(b)
                    assert got_a == got_b, (a, got_a, got_b)
                    assert right.lower() not in json.dumps(got_a).lower(), got_a

    try:
        run(scenario())
    finally:
        term.close()
