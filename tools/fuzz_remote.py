"""Fuzz the remote command handler with malformed MQTT payloads and serial console lines.

Every input is malformed by construction (random bytes, random JSON, near-miss requests with one
thing wrong, console lines with bad syntax, a wrong or missing secret, an unknown key or a wrongly
typed value). Each must get exactly one error reply (``ok: false`` with a ``code`` and an ``error``
sentence) that never contains a secret, while a real daemon (file camera) keeps processing frames
on its unchanged config.

    python -m tools.fuzz_remote --examples 10000      # per kind: MQTT payloads and serial lines

The test suite runs the same checks with fewer examples (tests/test_remote_fuzz.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.config import Config, to_dict
from edged.remote.commands import MQTT_ACCESS, RemoteControl
from edged.remote.serial_console import serve_line
from edged.remote.store import load_startup_config

MQTT_SECRET = "fuzz-mqtt-password-1"
CONSOLE_SECRET = "fuzz-console-secret-2"
CODES = {"bad_request", "unknown_command", "invalid_config", "stale_version", "forbidden", "bad_secret"}
COMMANDS = {"get", "set", "status", "stats", "help"}


# ------------------------------------------------------------------------------------------ the rig
class FuzzRig:
    """A real daemon on a looping image folder, with a command handler attached."""

    def __init__(self, folder: Path) -> None:
        import cv2
        import numpy as np

        from edged.app import AppBuilder
        from edged.daemon import Daemon

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
console_secret = "{CONSOLE_SECRET}"
wrong_secret_delay_s = 0.0
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
        assert MQTT_SECRET.lower() not in lower and CONSOLE_SECRET.lower() not in lower, f"{what!r}: secret echoed"
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
    valid_patch = st.sampled_from([{"camera": {"fps": 12.0}}, {"pipeline": {"stats_period_s": 9.0}}, {}])
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
    pairs = draw(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,14}", fullmatch=True), value_token), max_size=4))
    kind = draw(st.sampled_from(["none", "wrong", "right"]))
    body = " ".join(f"{k}={v}" for k, v in pairs)
    if kind == "right":
        # the right secret, so something else must be wrong: an unknown key or a wrongly typed value
        leaf, value = draw(st.sampled_from(LEAVES))
        if draw(st.booleans()):
            body += f" {'.'.join(leaf[:-1] + (draw(unknown_key),))}=1"
        else:
            bad = draw(_wrong_type(value))
            body += f" {'.'.join(leaf)}={json.dumps(bad, separators=(',', ':'))}"
        secret = CONSOLE_SECRET
    elif kind == "wrong":
        secret = draw(st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True).filter(lambda s: s != CONSOLE_SECRET))
    else:
        secret = None
    tail = f" secret={secret}" if secret else ""
    return f"{draw(st.sampled_from(['set', 'SET', 'set ']))} {body}{tail}"


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


# ----------------------------------------------------------------------------------------- runs
def fuzz(rig: FuzzRig, examples: int, seed: int | None = None) -> dict[str, int]:
    """Run ``examples`` MQTT payloads and ``examples`` serial lines; return the counts."""
    counts = {"mqtt": 0, "serial": 0}
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

    quiet = logging.getLogger("edged.remote")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # every rejection logs a warning; 20,000 of them say nothing new
    try:
        mqtt_case()
        serial_case()
    finally:
        quiet.setLevel(level)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="examples per kind (MQTT, serial)")
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
    total = counts["mqtt"] + counts["serial"]
    print(f"malformed MQTT payloads: {counts['mqtt']} (each got an error reply)")
    print(f"malformed serial lines:  {counts['serial']} (each got an error reply)")
    print(f"total: {total} error replies in {wall:.1f} s ({total / wall:.0f}/s); no crash; secrets never echoed")
    print(f"pipeline kept running: frames processed {before} -> {after} in the last 0.3 s; config unchanged")
    return 0 if after > before else 1


if __name__ == "__main__":
    sys.exit(main())
