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
