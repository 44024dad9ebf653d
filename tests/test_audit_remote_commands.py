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

from edged.core.keys import generate_device_key, load_operator_signing_key, signing_key_id
from edged.remote.auth import AUTH_FAILURES, AuthError, TrustedKey, sign_claims, verify_request
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from tests.remote_rig import running_daemon, write_config

DEVICE = "rsu-test"


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _raw_signed(key: SigningKey, payload: bytes) -> dict[str, Any]:
    """A signed request over exactly ``payload`` (``sign_claims`` could not write 10**400 or NaN as JSON)."""
    b64 = base64.b64encode
    return {"cmd": "set", "signed": {"payload": b64(payload).decode(), "key": signing_key_id(key),
                                     "sig": b64(key.sign(payload).signature).decode()}}


def _claims_text(expires: str, **more: str) -> bytes:
    """JSON claims of a set with ``expires`` (and any other field) written as raw JSON text."""
    fields = {"cmd": '"set"', "device": f'"{DEVICE}"', "version": "1", "mode": '"merge"',
              "config": '{"camera": {"segment_s": 9.0}}', "expires": expires, **more}
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}").encode()


ABSURD_EXPIRES = ["1" + "0" * 400, "-" + "1" + "0" * 400, "1" + "0" * 20, "-5", "NaN", "Infinity", "-Infinity",
                  "1e400", "true", "false", '"1796200000"', "null", "[]", "{}", "1e-320", "0"]
"""Signed ``expires`` values that are not a usable time: each is an ``expired`` refusal."""


@pytest.mark.parametrize("expires", ABSURD_EXPIRES)
def test_absurd_signed_expires_is_a_refusal(expires: str) -> None:
    key = SigningKey.generate()
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
        (_claims_text(soon, config='{"camera": {"segment_s": NaN}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"camera": {"segment_s": -Infinity}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"track": {"confirm_hits": true}}'), {"invalid_config"}),
        (_claims_text(soon, config='{"camera": {"segment_s": 9.0}}', version="1" + "0" * 5000), {"bad_signature"}),
        (_claims_text(soon, config="[" * 50_000 + "]" * 50_000), {"bad_signature"}),
        (_claims_text(soon, config='{"camera": ' * 20_000 + "1" + "}" * 20_000), {"bad_signature", "invalid_config"}),
        (_claims_text(soon, config='{"camera": ' * 990 + "1" + "}" * 990), {"bad_signature", "invalid_config"}),
        (_claims_text(soon, config='{"camera": {"segment_s": ' + "[" * 990 + "]" * 990 + "}}"), {"bad_signature", "invalid_config"}),
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
            assert daemon.config.camera.segment_s == 9.0

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


@pytest.mark.slow
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


@pytest.mark.slow
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
            assert made[0].control.version == 0 and daemon.config.remote.mqtt.password == MQTT_PASSWORD

    run(scenario(), 90)


@pytest.mark.slow
def test_console_lines_with_a_right_and_a_wrong_guess_get_the_same_reply(tmp_path: Path) -> None:
    """Anyone with a cable, on a real pty: a start of the broker password typed where the console
    used to quote it back gets the reply a wrong guess gets (and none quotes what was typed)."""
    from edged.remote.serial_console import SerialConsoleService
    from tests.test_serial_console import Terminal

    _, section = _operator(tmp_path)
    term = Terminal()
    # no pause after a refused line: this is about what a reply says (the back-off has its own tests)
    console = f'[remote.serial]\nenabled = true\nport = "{term.path}"\nreopen_s = 0.2\nauth_backoff_s = 0.0\n'
    path = write_config(tmp_path, section + SECRETS + console)
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


# --------------------------------------------------------- tracker and detector keys: stronger only
FACE = 0  # CLASS_NAMES.index("face")
FPS = 10.0


def _face(x: float, y: float, size: float, score: float) -> tuple[list[float], float]:
    return [x, y, x + size, y + size], score


def bare_frames(track: dict[str, Any], script: list[tuple[list[float], float] | None], truth: list[list[float]],
                privacy: dict[str, Any] | None = None) -> list[int]:
    """Frames in which the real tracker and privacy stage leave part of the true face box bare.

    ``script`` is the detector's output per frame (a face box and score, or ``None``: missed);
    ``truth`` is where the face really is. The frame is noise, so every hidden pixel changes.
    """
    import msgspec
    import numpy as np

    from edged.config import Config, PrivacyConfig, TrackConfig
    from edged.core.types import Detections, Exposure, ExposureMode, Frame, FrameMeta, Position
    from edged.stages.pipeline import FrameWork
    from edged.stages.privacy.stage import PrivacyStage
    from edged.stages.track.ids import MemoryIds
    from edged.stages.track.stage import TrackStage

    config = Config(track=msgspec.convert({**msgspec.to_builtins(TrackConfig()), **track}, TrackConfig))
    config = msgspec.structs.replace(config, camera=msgspec.structs.replace(config.camera, fps=FPS))
    settings = {"method": "fill", "stabilize": False, "categories": [], "recipients": {}, **(privacy or {})}
    tracking = TrackStage.from_config(config, MemoryIds())
    hiding = PrivacyStage(msgspec.convert({**msgspec.to_builtins(PrivacyConfig()), **settings}, PrivacyConfig), None)
    rng = np.random.default_rng(5)
    bare = []
    for i, (seen, box) in enumerate(zip(script, truth, strict=True)):
        pixels = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
        meta = FrameMeta(f"img-{i}", i, "vid", 1000.0 + i / FPS, Exposure(ExposureMode.AUTO, 1000.0, 1.0), Position(), 640, 360)
        dets = Detections()
        if seen is not None:
            dets = Detections(np.array([seen[0]], np.float32), np.array([seen[1]], np.float32),
                              np.array([FACE], np.int16), np.zeros(1, np.float32))
        work = FrameWork(Frame(meta, pixels), detections=dets)
        tracking(work)
        hiding(work)
        assert work.deidentified is not None
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        same = np.all(work.deidentified[y1:y2, x1:x2] == pixels[y1:y2, x1:x2], axis=2)
        if same.mean() > 0.02:
            bare.append(i)
    return bare


def briefly_missed() -> tuple[list[Any], list[list[float]]]:
    """A face seen well for 1 s, missed by the detector for 0.4 s, then seen again."""
    truth = [[200 + 2 * i, 100, 240 + 2 * i, 140] for i in range(22)]
    script = [(box, 0.9) if not 10 <= i < 14 else None for i, box in enumerate(truth)]
    return script, truth


def faint_after_first() -> tuple[list[Any], list[list[float]]]:
    """A face found once at 0.7, then only at 0.3 (below privacy.confident_score) for 2 s."""
    truth = [[300, 150, 340, 190]] * 20
    return [(truth[i], 0.7 if i == 0 else 0.3) for i in range(20)], truth


def fast_then_faint() -> tuple[list[Any], list[list[float]]]:
    """A face tracked while standing, then walking off at half its width per frame, found at 0.55
    for 0.5 s and then only at 0.3."""
    xs = [100.0] * 3 + [100.0 + 20 * i for i in range(1, 18)]
    truth = [[x, 150, x + 40, 190] for x in xs]
    scores = [0.9, 0.9, 0.9] + [0.55] * 5 + [0.3] * 12
    return list(zip(truth, scores, strict=True)), truth


NO_UNCONFIDENT = {"unconfident_max_share": 0.0}
"""A local choice that makes tracking decide every faint face: untracked low-score boxes are never hidden."""


TRACKER_DIRECTIONS = [
    (briefly_missed, {"lost_buffer_s": 0.1}, {"lost_buffer_s": 10.0}, None),
    (faint_after_first, {"confirm_hits": 5}, {"confirm_hits": 1}, NO_UNCONFIDENT),
    (faint_after_first, {"sensitive_birth_score": 0.8}, {"sensitive_birth_score": 0.5}, NO_UNCONFIDENT),
    (faint_after_first, {"low_score": 0.35}, {"low_score": 0.05}, NO_UNCONFIDENT),
    (fast_then_faint, {"sensitive_high_score": 0.6, "sensitive_birth_score": 0.6}, {"sensitive_high_score": 0.3},
     NO_UNCONFIDENT),
    (fast_then_faint, {"min_iou_first": 0.7}, {"min_iou_first": 0.1}, NO_UNCONFIDENT),
    (fast_then_faint, {"min_iou_second": 0.99}, {"min_iou_second": 0.3}, NO_UNCONFIDENT),
]
"""(scene, a weaker change, a stronger change, local privacy settings) per tracker key (a higher
``sensitive_high_score`` needs an equal ``sensitive_birth_score``: the defaults are equal)."""


@pytest.mark.parametrize(("scene", "weaker", "stronger", "privacy"), TRACKER_DIRECTIONS,
                         ids=[next(iter(w)) for _, w, _, _ in TRACKER_DIRECTIONS])
def test_the_weaker_direction_of_a_tracker_key_leaves_a_face_bare(
    scene: Any, weaker: dict[str, Any], stronger: dict[str, Any], privacy: dict[str, Any] | None
) -> None:
    """Why these keys are privacy keys, and which way is stronger: at the defaults the real tracker
    and privacy stage hide the face in every frame, and still do after the change the remote policy
    allows; after the change it refuses, they leave the face bare in some frames."""
    script, truth = scene()
    assert bare_frames({}, script, truth, privacy) == []
    assert bare_frames(stronger, script, truth, privacy) == [], stronger
    assert bare_frames(weaker, script, truth, privacy), weaker


def _changed(config: Any, key: str, value: Any) -> Any:
    """``config`` with the leaf ``key`` (dotted) set to ``value``."""
    from edged.config import from_dict, to_dict

    tree = to_dict(config)
    node = tree
    *sections, leaf = key.split(".")
    for part in sections:
        node = node[part]
    node[leaf] = value
    return from_dict(tree)


def _allowed(old: Any, new: Any, role: str) -> tuple[bool, str]:
    from edged.remote.policy import PolicyError, check_change

    try:
        check_change(old, new, role)  # type: ignore[arg-type]
    except PolicyError as err:
        return False, str(err)
    return True, ""


TRACKER_KEYS = [
    ("track.lost_buffer_s", 0.1, 10.0),
    ("track.confirm_hits", 5, 1),
    ("track.sensitive_birth_score", 0.8, None),
    ("track.sensitive_high_score", None, 0.3),
    ("track.low_score", 0.3, 0.05),
    ("track.min_iou_first", 0.7, 0.1),
    ("track.min_iou_second", 0.9, 0.3),
    ("track.min_iou_candidate", 0.9, 0.1),
    ("track.candidate_buffer", 0.1, 1.0),
    ("track.leaving_growth", 0.0, 1.0),
    ("track.predicted_output_s", 0.1, 1.0),
]
"""(key, a weaker value, a stronger value) from the defaults; ``None`` where no value of the key alone
is a valid config in that direction (the sensitive high and birth scores are equal by default)."""


@pytest.mark.parametrize(("key", "weaker", "stronger"), TRACKER_KEYS, ids=[k for k, _, _ in TRACKER_KEYS])
@pytest.mark.parametrize("role", ["operator", "admin"])
def test_tracker_keys_only_get_stronger_remotely(key: str, weaker: Any, stronger: Any, role: str) -> None:
    from edged.config import Config

    base = Config()
    if weaker is not None:
        ok, why = _allowed(base, _changed(base, key, weaker), role)
        assert not ok and f"config error at {key}: would weaken de-identification" in why, (key, why)
    if stronger is not None:
        assert _allowed(base, _changed(base, key, stronger), role) == (True, ""), key


def test_kalman_noise_is_local_and_bookkeeping_keys_stay_with_operators() -> None:
    """Kalman noise moves predicted boxes and matches either way (no direction hides more): file only.
    History length, the id block and the scores that start and follow people's and vehicles' tracks
    (faces and plates have their own) change no hidden region: operators keep them."""
    from edged.config import Config

    base = Config()
    for key, value in (("track.std_position", 0.1), ("track.std_velocity", 0.001), ("track.std_init_velocity", 1.0)):
        for role in ("operator", "admin"):
            ok, why = _allowed(base, _changed(base, key, value), role)
            assert not ok and "cannot be changed remotely" in why, (key, why)
    for key, value in (("track.history_len", 16), ("track.id_block", 64), ("track.birth_score", 0.9),
                       ("track.high_score", 0.6)):
        assert _allowed(base, _changed(base, key, value), "operator") == (True, ""), key


def test_tiling_only_gets_stronger_and_stays_admin() -> None:
    """Tiles find faces too small for the whole-frame pass: they may be switched on, made smaller or
    overlap more, and cover more models, never the reverse; and only with an admin key (each tile
    costs an invoke)."""
    from edged.config import Config

    base = Config()
    on = _changed(base, "detect.tiling.enabled", True)
    cases = [
        (base, "detect.tiling.enabled", True, True),
        (on, "detect.tiling.enabled", False, False),
        (on, "detect.tiling.tile", [480, 480], True),
        (on, "detect.tiling.tile", [1280, 640], False),
        (on, "detect.tiling.tile", [480, 800], False),
        (on, "detect.tiling.overlap", 0.3, True),
        (on, "detect.tiling.overlap", 0.1, False),
        (on, "detect.tiling.models", ["face_frame"], False),
        (_changed(on, "detect.tiling.models", ["face_frame"]), "detect.tiling.models", ["face_frame", "objects"], True),
        (_changed(on, "detect.tiling.models", ["face_frame"]), "detect.tiling.models", [], True),
        (_changed(on, "detect.tiling.models", ["face_frame", "objects"]), "detect.tiling.models", ["objects"], False),
    ]
    for old, key, value, stronger in cases:
        ok, why = _allowed(old, _changed(old, key, value), "admin")
        assert ok is stronger and (stronger or "would weaken de-identification" in why), (key, value, why)
        ok, why = _allowed(old, _changed(old, key, value), "operator")
        assert not ok and "needs an admin key" in why, (key, value, why)


def test_stabiliser_geometry_is_remote_only_while_regions_are_boxes() -> None:
    """With ``privacy.shape = "ellipse"`` (set in the file) the stabiliser's geometry stays local: the
    ellipse now follows each frame's grown box, so it no longer changes which pixels are hidden, and
    the rule stays as defence in depth."""
    from edged.config import Config

    box = Config()
    ellipse = _changed(box, "privacy.shape", "ellipse")
    for key, value in (("privacy.grid_px", 32), ("privacy.shrink_per_frame", 0.5), ("privacy.stabilize", False)):
        assert _allowed(box, _changed(box, key, value), "admin") == (True, ""), key
        ok, why = _allowed(ellipse, _changed(ellipse, key, value), "admin")
        assert not ok and "privacy.shape is box" in why, (key, why)
        both = _changed(_changed(ellipse, "privacy.shape", "box"), key, value)
        assert _allowed(ellipse, both, "admin") == (True, ""), key
    for key, value in (("privacy.fill_update", 0.5), ("privacy.redraw_levels", 10.0)):
        assert _allowed(ellipse, _changed(ellipse, key, value), "admin") == (True, ""), key


def test_an_ellipse_fits_the_face_on_any_stabiliser_grid() -> None:
    """The ellipse is the one around the object's grown box in this frame, whatever the stabilised
    box (which may sit off the object by up to a grid step and be larger while it shrinks): the real
    de-identifiers on a walking face leave none of it bare, on a fine and on a coarse grid."""
    import numpy as np

    from edged.stages.privacy.deid import FrameDeidentifier, SensitiveRegions, grow_boxes, shape_mask
    from edged.stages.privacy.stabilize import StableDeidentifier

    def bare_share(deid: Any) -> float:
        rng = np.random.default_rng(3)
        bare = need = 0
        for t in range(60):
            s = 30 + 0.5 * t
            box = np.array([[100 + 4 * t, 150 + 8 * np.sin(t / 5), 100 + 4 * t + s, 150 + 8 * np.sin(t / 5) + s]], np.float32)
            regions = SensitiveRegions(box, np.array([FACE], np.int16), np.array([1]), np.array([0.9], np.float32),
                                       np.zeros(1, np.float32), np.ones(1, bool))
            pixels = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
            out = deid(pixels, regions).image
            g = grow_boxes(box, None, 0.3)[0]
            rect = (int(np.floor(g[0])), int(np.floor(g[1])), int(np.ceil(g[2])), int(np.ceil(g[3])))
            inside = shape_mask(rect, g, "ellipse")
            same = np.all(out[rect[1]:rect[3], rect[0]:rect[2]] == pixels[rect[1]:rect[3], rect[0]:rect[2]], axis=2)
            bare += int((inside & same).sum())
            need += int(inside.sum())
        return bare / need

    assert bare_share(FrameDeidentifier("fill", 0.3, 2, 4, "ellipse")) == 0.0
    assert bare_share(StableDeidentifier("fill", 0.3, 2, 4, 64, 0.005, 0.05, 4.0, "ellipse")) == 0.0
    assert bare_share(StableDeidentifier("fill", 0.3, 2, 4, 8, 0.005, 0.05, 4.0, "ellipse")) == 0.0
    assert bare_share(StableDeidentifier("fill", 0.3, 2, 4, 64, 0.005, 0.05, 4.0, "box")) == 0.0


def test_signed_operator_changes_to_the_tracker_weaker_refused_stronger_applied(tmp_path: Path) -> None:
    """Through the command handler of a real daemon, each signed by a trusted operator key."""
    key, section = _operator(tmp_path)
    path = write_config(tmp_path, section)
    soon = time.time() + 60

    def signed(track: dict[str, Any], version: int) -> dict[str, Any]:
        return sign_claims(key, {"cmd": "set", "device": DEVICE, "expires": soon, "version": version,
                                 "mode": "merge", "config": {"track": track}})

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control = RemoteControl.from_startup(startup)
            control.attach(daemon)
            start = daemon.config
            for track in ({"lost_buffer_s": 0.2}, {"confirm_hits": 4}, {"sensitive_birth_score": 0.9},
                          {"sensitive_high_score": 0.55, "sensitive_birth_score": 0.55}, {"low_score": 0.3},
                          {"min_iou_second": 0.8},
                          {"lost_buffer_s": 6.0, "confirm_hits": 3}, {"std_velocity": 0.1}):
                reply = await control.handle(signed(track, 1), "t", MQTT_ACCESS)
                assert reply["code"] == "forbidden", (track, reply)
                assert "would weaken de-identification" in reply["error"] or "cannot be changed remotely" in reply["error"]
                assert "config error at track." in reply["error"], reply
            assert daemon.config == start
            stronger = {"lost_buffer_s": 6.0, "confirm_hits": 1, "sensitive_high_score": 0.3, "low_score": 0.05,
                        "min_iou_first": 0.15, "history_len": 32}
            reply = await control.handle(signed(stronger, 1), "t", MQTT_ACCESS)
            assert reply["ok"] and reply["changed"] == ["track"], reply
            assert daemon.config.track.lost_buffer_s == 6.0 and daemon.config.track.confirm_hits == 1
            processed = daemon.stats.processed
            await asyncio.sleep(0.3)
            assert daemon.stats.processed > processed, "the pipeline runs on with the new tracker"

    run(scenario())


# ------------------------------------------------------------- frame rate, size and exposure: local only
SENSING_CHANGES: list[dict[str, Any]] = [
    {"camera": {"fps": 5.0}},
    {"camera": {"fps": 30.0}},
    {"camera": {"width": 128, "height": 96}},
    {"camera": {"width": 320, "height": 240}},
    {"exposure": {"enabled": True}},
    {"exposure": {"fixed_shutter_us": 20000}},
    {"exposure": {"max_gain": 2.0}},
    {"exposure": {"settle_s": 5.0}},
    {"camera": {"v4l2": {"gain_units_per_x": 4.0}}},
    {"camera": {"file": {"realtime": False}}},
]
"""Changes of what the models see, each way: a lower rate outgrows the tracker's gates, a smaller
frame shrinks faces below detection, a larger one or a higher rate overloads the CPU, exposure and
gain blur or darken faces. No direction is safe in every scene."""


def _leaf(fragment: dict[str, Any]) -> str:
    """The first dotted leaf key of a config fragment."""
    key, value = next(iter(fragment.items()))
    return key + ("." + _leaf(value) if isinstance(value, dict) else "")


def test_signed_changes_of_frame_rate_size_and_exposure_are_refused_and_other_keys_still_apply(tmp_path: Path) -> None:
    """Through the command handler of a real daemon, signed by a trusted operator key and by an
    admin key: only the file on the device changes what the camera delivers; a key that changes no
    pixel (the video segment length, the JPEG quality of local frames) stays with operators."""
    key, section = _operator(tmp_path)
    generate_device_key(tmp_path / "keys" / "admin")
    admin = load_operator_signing_key(tmp_path / "keys" / "admin.key")
    section += f'admin_keys = ["{tmp_path / "keys" / "admin.pub"}"]\n'
    path = write_config(tmp_path, section)
    soon = time.time() + 60

    def signed(by: SigningKey, fragment: dict[str, Any], version: int) -> dict[str, Any]:
        return sign_claims(by, {"cmd": "set", "device": DEVICE, "expires": soon, "version": version,
                                "mode": "merge", "config": fragment})

    async def scenario() -> None:
        async with running_daemon(path) as (daemon, startup):
            control = RemoteControl.from_startup(startup)
            control.attach(daemon)
            start = daemon.config
            for fragment in SENSING_CHANGES:
                for by in (key, admin):
                    reply = await control.handle(signed(by, fragment, 1), "t", MQTT_ACCESS)
                    assert not reply["ok"] and reply["code"] == "forbidden", (fragment, reply)
                    assert f"config error at {_leaf(fragment)}: cannot be changed remotely" in reply["error"], reply
            assert daemon.config == start and control.version == 0
            labels_only = {"camera": {"segment_s": 30.0}, "output": {"jpeg_quality": 70}}
            reply = await control.handle(signed(key, labels_only, 1), "t", MQTT_ACCESS)
            assert reply["ok"] and reply["changed"] == ["camera", "output"], reply
            assert daemon.config.camera.segment_s == 30.0 and daemon.config.output.jpeg_quality == 70
            assert daemon.config.camera.fps == start.camera.fps and daemon.config.exposure == start.exposure

    run(scenario())


def test_every_camera_and_exposure_key_but_the_segment_length_is_local() -> None:
    """The whole ``[camera]`` and ``[exposure]`` trees, walked: a key added there later is local
    unless it is declared; only the segment length (a label on frames, no pixel) is remote."""
    from edged.remote.policy import leaf_keys, rule_for

    keys = [k for k in leaf_keys() if k.startswith(("camera.", "exposure."))]
    assert "camera.fps" in keys and "exposure.max_gain" in keys
    for key in keys:
        rule = rule_for(key)
        assert rule is not None, key
        assert rule.who == ("operator" if key == "camera.segment_s" else "local"), (key, rule)
