"""Fuzz the remote command handler with malformed or unauthorised MQTT payloads and serial lines.

The daemon runs the default signed mode with one trusted operator and one admin key. Every input
is refused by construction: random bytes, random JSON, near-miss requests with one thing wrong,
console lines with bad syntax, unsigned sets, and signed commands with exactly one fault (another
device, expired or too far ahead, a version jump, an untrusted key, a tampered payload or
signature, an unsigned key beside the claims, a local-only key, a weaker privacy setting, an admin
key signed by an operator, an out-of-range or wrongly typed value). Each must get exactly one error
reply (``ok: false`` with a ``code`` and an ``error`` sentence) that never contains a secret, while
a real daemon (file camera) keeps processing frames on its unchanged config.

    python -m tools.bench.fuzz_remote --examples 10000      # per kind: MQTT payloads, serial lines, signed commands

The test suite runs the same checks with fewer examples (tests/test_remote_fuzz.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from edged.config import Config, to_dict
from edged.core.keys import generate_device_key, load_operator_signing_key
from edged.remote.auth import sign_claims
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from edged.remote.serial_console import serve_line
from edged.remote.store import load_startup_config

MQTT_SECRET = "fuzz-mqtt-password-1"
UPLINK_SECRET = "fuzz-uplink-secret-2"
CODES = {"bad_request", "unknown_command", "invalid_config", "stale_version", "version_step", "forbidden",
         "unsigned", "bad_signature", "unknown_key", "wrong_device", "expired"}
DEVICE = "rsu-fuzz"
COMMANDS = {"get", "set", "status", "stats", "help"}


# ------------------------------------------------------------------------------------------ the rig
class FuzzRig:
    """A real daemon on a looping image folder, with a command handler attached."""

    def __init__(self, folder: Path) -> None:
        import cv2
        import numpy as np

        from edged.runtime.app import AppBuilder
        from edged.runtime.daemon import Daemon

        keys = folder / "keys"
        generate_device_key(keys / "operator")
        generate_device_key(keys / "admin")
        self.operator = load_operator_signing_key(keys / "operator.key")
        self.admin = load_operator_signing_key(keys / "admin.key")
        images = folder / "images"
        images.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(3)
        for i in range(3):
            cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
        path = folder / "fuzz.toml"
        path.write_text(
            f"""
[device]
id = "rsu-fuzz"
data_dir = "{folder / 'data'}"
[camera]
backend = "file"
fps = 30.0
width = 128
height = 96
[camera.file]
path = "{images}"
loop = true
[exposure]
enabled = false
[detect]
enabled = false
[privacy]
categories = []
[pipeline]
stats_period_s = 3600.0
[remote.mqtt]
password = "{MQTT_SECRET}"
[remote.serial]
auth_backoff_s = 0.0
[remote.auth]
operator_keys = ["{keys / 'operator.pub'}"]
admin_keys = ["{keys / 'admin.pub'}"]
[uplink.ops]
password = "{UPLINK_SECRET}"
"""
        )
        self.loop = asyncio.new_event_loop()
        startup = load_startup_config(path)
        self.daemon = Daemon(startup.config, AppBuilder(), [])
        self.control = RemoteControl.from_startup(startup)
        self.control.attach(self.daemon)
        self.original = startup.config
        self.record = startup.store.path
        self.task = self.loop.create_task(self.daemon.run())
        self.loop.run_until_complete(self._first_frame())
        self.replies = 0

    async def _first_frame(self) -> None:
        for _ in range(500):
            if self.daemon.heartbeat:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("fuzz daemon carried no frame")

    def mqtt(self, payload: bytes, implied: str | None) -> dict[str, Any]:
        return self.loop.run_until_complete(self.control.handle_payload(payload, "mqtt", MQTT_ACCESS, implied))

    def serial(self, line: bytes) -> dict[str, Any]:
        return self.loop.run_until_complete(serve_line(self.control, line))

    def check_error(self, reply: dict[str, Any], what: object) -> None:
        text = json.dumps(reply)
        assert reply.get("ok") is False, f"{what!r} was accepted: {text[:300]}"
        assert reply.get("code") in CODES, f"{what!r}: unexpected code in {text[:300]}"
        assert isinstance(reply.get("error"), str) and reply["error"], f"{what!r}: no error text"
        lower = text.lower()  # in any case: the console lower-cases the command words it echoes
        assert MQTT_SECRET.lower() not in lower and UPLINK_SECRET.lower() not in lower, f"{what!r}: secret echoed"
        self.replies += 1

    def still_running(self) -> tuple[int, int]:
        """(frames before, frames after) 0.3 s of running; the config must be the original."""
        before = self.daemon.stats.processed
        self.loop.run_until_complete(asyncio.sleep(0.3))
        assert self.daemon.config == self.original, "a malformed request changed the config"
        assert self.control.version == 0 and not self.record.exists()
        return before, self.daemon.stats.processed

    def close(self) -> None:
        self.daemon.request_stop("fuzz done")
        self.loop.run_until_complete(self.task)
        self.loop.close()


# ----------------------------------------------------------------------------------- strategies
def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict) and tree:
        out = []
        for k, v in tree.items():
            out += _leaves(v, (*prefix, k))
        return out
    return [(prefix, tree)]


LEAVES = [(p, v) for p, v in _leaves(to_dict(Config())) if v is not None and p and p[0] != "device"]

json_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_value = st.recursive(
    json_scalar, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10
)
identifier = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
unknown_key = identifier.map(lambda s: "zz_" + s)


def _wrong_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.integers() | st.text(max_size=6) | st.lists(st.integers(), max_size=2)
    if isinstance(value, int):
        return st.text(max_size=6) | st.booleans() | st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
    if isinstance(value, float):
        return st.text(max_size=6) | st.booleans() | st.lists(st.floats(allow_nan=False), max_size=2)
    if isinstance(value, str):
        return st.integers() | st.booleans() | st.lists(st.text(max_size=3), max_size=2)
    return st.text(max_size=6) | st.booleans() | st.integers()  # lists, tuples, maps


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out: Any = value
    for part in reversed(path):
        out = {part: out}
    return out


wrongly_typed = st.sampled_from(LEAVES).flatmap(lambda leaf: _wrong_type(leaf[1]).map(lambda bad: _nest(leaf[0], bad)))
unknown_leaf = st.tuples(st.sampled_from(LEAVES), unknown_key, json_value).map(
    lambda t: _nest((*t[0][0][:-1], t[1]), t[2])
)
unknown_section = st.tuples(unknown_key, json_value).map(lambda t: {t[0]: t[1]})
bad_config = wrongly_typed | unknown_leaf | unknown_section | json_scalar | st.lists(json_scalar, max_size=3)
good_version = st.integers(min_value=1, max_value=2**53)
bad_version = (
    st.integers(max_value=0) | st.integers(min_value=2**53 + 1) | st.text(max_size=5) | st.floats() | st.booleans()
)


def _near_miss_set() -> st.SearchStrategy[dict[str, Any]]:
    """A set request with exactly one thing (or more) wrong."""
    valid_patch = st.sampled_from([{"camera": {"segment_s": 12.0}}, {"pipeline": {"stats_period_s": 9.0}}, {}])
    return st.one_of(
        st.fixed_dictionaries({"version": good_version, "config": bad_config}),
        st.fixed_dictionaries({"version": bad_version, "config": valid_patch}),
        st.fixed_dictionaries({"config": valid_patch}),  # MQTT needs a version
        st.fixed_dictionaries({"version": good_version}),  # no config
        st.fixed_dictionaries({"version": good_version, "config": valid_patch, "mode": st.text(max_size=8)}).filter(
            lambda d: d["mode"] not in ("merge", "replace")
        ),
        st.tuples(unknown_key, json_value).map(lambda t: {"version": 3, "config": {}, t[0]: t[1]}),
        st.fixed_dictionaries({"version": good_version, "config": valid_patch, "id": st.integers(min_value=2**53 + 1) | st.text(min_size=129, max_size=140)}),
        st.fixed_dictionaries(
            {"version": good_version, "config": st.sampled_from([{"device": {"id": "other"}}, {"device": {"data_dir": "/elsewhere"}}])}
        ),
    )


def _looks_valid_mqtt(value: Any, implied: str | None) -> bool:
    """Cheap oracle for random JSON: could this be a well-formed request? (then it is skipped)"""
    if not isinstance(value, dict):
        return False
    cmd = value.get("cmd", implied)
    return cmd in COMMANDS and (cmd != "set" or "config" in value)


random_json = json_value.map(lambda v: json.dumps(v).encode())
mqtt_set_payload = st.one_of(
    st.binary(max_size=200).map(lambda p: (p, True)),
    random_json.map(lambda p: (p, True)),
    st.text(max_size=60).map(lambda s: (s.encode(), True)),
    _near_miss_set().map(lambda d: (json.dumps(d).encode(), False)),
)
"""(payload, random?) for the ``config/set`` topic; random payloads that happen to be well formed
are served but not counted."""
mqtt_generic_payload = st.one_of(
    _near_miss_set().map(lambda d: json.dumps({"cmd": "set", **d}).encode()),
    st.tuples(st.text(max_size=10), json_value).map(lambda t: json.dumps({"cmd": t[0], "x": t[1]}).encode()),
    st.fixed_dictionaries({"cmd": st.sampled_from(["get", "status", "stats"]), "zz": json_value}).map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"cmd": st.just("get"), "path": unknown_key}).map(lambda d: json.dumps(d).encode()),
)
"""Requests with a ``cmd`` (no topic implies one), each malformed by construction."""

line_text = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=80)
value_token = st.one_of(
    st.from_regex(r"[A-Za-z0-9_./:-]{1,8}", fullmatch=True),
    json_value.map(lambda v: json.dumps(v, separators=(",", ":"))),
    st.text(alphabet='{["x:, ', max_size=6),
)


def _set_line(draw: st.DrawFn) -> str:
    """An unsigned console set (refused in signed mode), sometimes also malformed."""
    pairs = draw(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,14}", fullmatch=True), value_token), max_size=4))
    body = " ".join(f"{k}={v}" for k, v in pairs)
    if draw(st.booleans()):
        body += f" camera.segment_s={draw(st.floats(1, 3600))} version={draw(st.integers(1, 5))}"
    return f"{draw(st.sampled_from(['set', 'SET', 'set ']))} {body}"


set_line = st.composite(lambda draw: _set_line(draw))()


def _line_is_malformed(line: str) -> bool:
    word = line.strip().partition(" ")[0].lower()
    if not line.strip():
        return False  # blank lines are ignored by the console, not answered
    if word in ("status", "stats", "help") and not line.strip()[len(word):].strip():
        return False
    if word == "get":
        return False  # get lines come from their own strategy below
    return True


serial_line = st.one_of(
    line_text.filter(_line_is_malformed).map(str.encode),
    st.binary(max_size=120).filter(lambda b: b"\r" not in b and b"\n" not in b and b.strip()).filter(
        lambda b: _line_is_malformed(b.decode("utf-8", "replace"))
    ),
    set_line.map(str.encode),
    st.tuples(st.sampled_from(["get", "status", "stats", "help"]), line_text).map(
        lambda t: f"{t[0]} {t[1]}".encode()
    ).filter(lambda b: len(b.decode().split()) > 1 and not (b.startswith(b"get ") and _is_config_path(b[4:].decode().strip()))),
    unknown_key.map(lambda k: f"get camera.{k}".encode()),
    mqtt_generic_payload,
)


def _is_config_path(text: str) -> bool:
    node: Any = to_dict(Config())
    for part in text.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


# ------------------------------------------------------------------------------ signed commands
LOCAL_ONLY = [
    {"remote": {"mqtt": {"port": 18830}}}, {"remote": {"mqtt": {"host": "evil.example"}}},
    {"remote": {"mqtt": {"password": "<redacted>", "host": "evil.example"}}}, {"uplink": {"ops": {"host": "evil.example"}}},
    {"remote": {"auth": {"mode": "unsigned"}}}, {"remote": {"auth": {"max_version_step": 10**6}}},
    {"privacy": {"signing_key": "/tmp/k.key"}}, {"detect": {"models": []}}, {"device": {"id": "other"}},
    {"camera": {"file": {"path": "/etc"}}}, {"camera": {"sensor_size": [8192, 8192]}}, {"output": {"dir": "/"}},
    {"track": {"std_velocity": 0.5}}, {"camera": {"fps": 5.0}}, {"camera": {"width": 8192, "height": 8192}},
    {"exposure": {"fixed_shutter_us": 30000}}, {"camera": {"v4l2": {"gain_units_per_x": 4.0}}},
]
WEAKER = [
    {"privacy": {"margin": 0.0}}, {"privacy": {"cells": 64}}, {"privacy": {"method": "pixelate"}},
    {"privacy": {"min_score": 0.9}}, {"privacy": {"confident_score": 0.9}}, {"privacy": {"unconfident_max_share": 0.01}},
    {"privacy": {"min_cell_px": 1}}, {"privacy": {"categories": ["face"]}}, {"privacy": {"fit_from_px": 0}},
    {"track": {"lost_buffer_s": 0.1}}, {"track": {"confirm_hits": 10}}, {"track": {"sensitive_birth_score": 0.9}},
    {"track": {"low_score": 0.4}}, {"track": {"min_iou_second": 0.95}},
]
ADMIN_ONLY = [{"pipeline": {"stats_period_s": 9.0}}, {"remote": {"apply_timeout_s": 30.0}}, {"uplink": {"enabled": True}}]
OUT_OF_RANGE = [
    {"camera": {"segment_s": 0.0}}, {"camera": {"width": 4000}}, {"remote": {"apply_timeout_s": 1e-6}},
    {"camera": {"fps": 1e9}}, {"exposure": {"remeter_period_s": 0.0}}, {"detect": {"tiling": {"tile": [1, 1]}}},
]
FAULTS = ("device", "expired", "far", "expires_type", "step", "stale", "local", "weaker", "admin_only",
          "range", "typed", "stranger", "tamper_payload", "tamper_sig", "extra", "cmd_mismatch", "no_version")


def _bad_signed(draw: st.DrawFn, rig: FuzzRig) -> bytes:
    """A signed command with exactly one fault, as the JSON bytes a client would publish."""
    fault = draw(st.sampled_from(FAULTS))
    now = time.time()
    claims: dict[str, Any] = {"cmd": "set", "device": DEVICE, "version": draw(st.integers(1, 1000)),
                              "expires": now + draw(st.floats(30, 3000)), "config": {"camera": {"segment_s": 12.0}}, "mode": "merge"}
    key = draw(st.sampled_from([rig.operator, rig.admin]))
    if fault == "device":
        claims["device"] = draw(st.text(max_size=20).filter(lambda d: d != DEVICE))
    elif fault == "expired":
        claims["expires"] = now - draw(st.floats(0.001, 1e9))
    elif fault == "far":
        claims["expires"] = now + 3600 + draw(st.floats(10, 1e9))
    elif fault == "expires_type":
        claims["expires"] = draw(st.none() | st.text(max_size=5) | st.booleans() | st.lists(st.integers(), max_size=2))
    elif fault == "step":
        claims["version"] = draw(st.integers(1001, 2**60))
    elif fault == "stale":
        claims["version"] = draw(st.integers(-(2**60), 0))
    elif fault == "local":
        claims["config"] = draw(st.sampled_from(LOCAL_ONLY))
    elif fault == "weaker":
        claims["config"] = draw(st.sampled_from(WEAKER))
    elif fault == "admin_only":
        claims["config"], key = draw(st.sampled_from(ADMIN_ONLY)), rig.operator
    elif fault == "range":
        claims["config"] = draw(st.sampled_from(OUT_OF_RANGE))
    elif fault == "typed":
        claims["config"] = draw(bad_config)
    elif fault == "no_version":
        del claims["version"]
    request = sign_claims(SigningKey(draw(st.binary(min_size=32, max_size=32))) if fault == "stranger" else key, claims,
                          draw(st.none() | st.integers(0, 99) | st.text(max_size=8)))
    signed = request["signed"]
    if fault in ("tamper_payload", "tamper_sig"):
        field = "payload" if fault == "tamper_payload" else "sig"
        raw = bytearray(base64.b64decode(signed[field]))
        i = draw(st.integers(0, 2**16)) % len(raw)  # the payload's length depends on the clock
        raw[i] ^= 1 << draw(st.integers(0, 7))
        signed[field] = base64.b64encode(bytes(raw)).decode()
    elif fault == "extra":
        request[draw(st.sampled_from(["config", "version", "mode", "path"]))] = draw(json_value)
    elif fault == "cmd_mismatch":
        request["cmd"] = draw(st.sampled_from(["get", "status", "stats"]))
    return json.dumps(request).encode()


# ----------------------------------------------------------------------------------------- runs
def fuzz(rig: FuzzRig, examples: int, seed: int | None = None) -> dict[str, int]:
    """Run ``examples`` MQTT payloads and ``examples`` serial lines; return the counts."""
    counts = {"mqtt": 0, "serial": 0, "signed": 0}
    common = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        suppress_health_check=list(HealthCheck),
    )

    @common
    @given(st.one_of(mqtt_set_payload.map(lambda c: (c[0], "set", c[1])), mqtt_generic_payload.map(lambda p: (p, None, False))))
    def mqtt_case(case: tuple[bytes, str | None, bool]) -> None:
        payload, implied, random = case
        if random:
            try:
                decoded = json.loads(payload)
            except (ValueError, RecursionError):
                decoded = None
            if _looks_valid_mqtt(decoded, implied):
                rig.mqtt(payload, implied)  # well formed by chance: served, not counted
                return
        rig.check_error(rig.mqtt(payload, implied), payload)
        counts["mqtt"] += 1

    @common
    @given(serial_line)
    def serial_case(line: bytes) -> None:
        rig.check_error(rig.serial(line), line)
        counts["serial"] += 1

    @common
    @given(st.composite(lambda draw: _bad_signed(draw, rig))(), st.booleans())
    def signed_case(payload: bytes, over_mqtt: bool) -> None:
        rig.check_error(rig.mqtt(payload, "set") if over_mqtt else rig.serial(payload), payload)
        counts["signed"] += 1

    quiet = logging.getLogger("edged.remote")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # every rejection logs a warning; 20,000 of them say nothing new
    try:
        mqtt_case()
        serial_case()
        signed_case()
    finally:
        quiet.setLevel(level)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples per kind (MQTT, serial, signed)")
    parser.add_argument("--seed", type=int, default=None, help="any value: derandomised, repeatable run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rig = FuzzRig(Path(tmp))
        try:
            t0 = time.perf_counter()
            counts = fuzz(rig, args.examples, args.seed)
            wall = time.perf_counter() - t0
            before, after = rig.still_running()
        finally:
            rig.close()
    total = counts["mqtt"] + counts["serial"] + counts["signed"]
    print(f"malformed MQTT payloads: {counts['mqtt']} (each got an error reply)")
    print(f"malformed serial lines:  {counts['serial']} (each got an error reply)")
    print(f"faulty signed commands:  {counts['signed']} over MQTT and serial (each refused); refusals {dict(rig.control.refused)}")
    print(f"total: {total} error replies in {wall:.1f} s ({total / wall:.0f}/s); no crash; secrets never echoed")
    print(f"pipeline kept running: frames processed {before} -> {after} in the last 0.3 s; config unchanged")
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
