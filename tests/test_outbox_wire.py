"""The message envelope: round trip, validation, clear errors on malformed input."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.link import wire
from edged.link.wire import WireError


def test_round_trip_keeps_every_field_and_binary_body() -> None:
    env = wire.make("package", "ops", "immediate", bytes(range(256)), video_id="V01", image_id="I01",
                    created=1700000000.25, device="rsu-1")
    back = wire.decode(wire.encode(env))
    assert back == env
    raw = cbor2.loads(wire.encode(env))
    assert raw["v"] == wire.SCHEMA_VERSION and isinstance(raw["body"], bytes)


def test_ids_are_unique_and_time_ordered() -> None:
    ids = [wire.make("event", "ops", "normal", b"").id for _ in range(1000)]
    assert len(set(ids)) == 1000 and ids == sorted(ids)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"prio": "urgent"}, "prio"),
        ({"dest": "Ops!"}, "dest"),
        ({"kind": ""}, "kind"),
        ({"video_id": "../etc"}, "video"),
        ({"image_id": "a/b"}, "image"),
        ({"msg_id": "not-a-ulid"}, "id"),
        ({"body": "text"}, "body"),
        ({"created": float("nan")}, "t"),
    ],
)
def test_invalid_fields_are_named(kwargs: dict, field: str) -> None:
    args = {"kind": "package", "dest": "ops", "prio": "normal", "body": b"x"} | kwargs
    with pytest.raises(WireError, match=f"field {field}"):
        wire.make(**args)


def test_sensitive_never_addressed_to_ops() -> None:
    with pytest.raises(WireError, match="never go to 'ops'"):
        wire.make("sensitive", "ops", "sensitive", b"x")
    assert wire.make("sensitive", "func.face", "sensitive", b"x").dest == "func.face"


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty payload"),
        (b"\xff\xff\x00", "not valid CBOR"),
        (cbor2.dumps([1, 2]), "expected a CBOR map"),
        (cbor2.dumps({"v": 99}), "unsupported schema version 99"),
        (cbor2.dumps({"v": 1, "id": "x"}), "field kind: missing"),
    ],
)
def test_malformed_payloads_give_clear_errors(payload: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        wire.decode(payload)


def test_wrong_type_is_named() -> None:
    good = cbor2.loads(wire.encode(wire.make("event", "ops", "normal", b"x")))
    good["body"] = "not bytes"
    with pytest.raises(WireError, match="field body: wrong type str"):
        wire.decode(cbor2.dumps(good))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_another_exception(data: bytes) -> None:
    try:
        wire.decode(data)
    except WireError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(wire.PRIORITIES), st.integers(0, 400))
def test_truncated_envelopes_are_rejected(body: bytes, prio: str, cut: int) -> None:
    dest = "func.face" if prio == "sensitive" else "ops"
    data = wire.encode(wire.make("event", dest, prio, body))
    cut = min(cut, len(data) - 1)
    with pytest.raises(WireError):
        wire.decode(data[:cut])
