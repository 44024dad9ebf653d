"""Signed remote commands: an operator's Ed25519 signature over what the command does.

A signed request is a JSON object whose only other keys are ``cmd`` and a correlation ``id``::

    {"cmd": "set", "id": "r-17",
     "signed": {"payload": "<base64 of the JSON claims>", "key": "<key id>", "sig": "<base64>"}}

The claims (the signed bytes) say everything the command does and for whom::

    {"cmd": "set", "device": "rsu-0001", "version": 8, "expires": 1796200000.0,
     "config": {"camera": {"fps": 5}}, "mode": "merge"}
    {"cmd": "get", "device": "rsu-0001", "expires": 1796200000.0, "path": "camera"}

The device accepts them only from a key in ``remote.auth.operator_keys`` / ``admin_keys``, for its
own ``device.id``, before ``expires`` (and not more than ``max_validity_s`` ahead), and for a set
with a version above the applied one by at most ``max_version_step``: a replayed, redirected or
stale command is refused. ``edged sign-config`` makes such a request from a TOML or JSON fragment.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from edged.core.keys import KeyFileError, load_operator_signing_key, load_operator_verify_key, signing_key_id

CLAIM_FIELDS = ("cmd", "device", "expires", "version", "config", "mode", "path")
"""Fields signed claims may hold; one of them beside the signature is named in the refusal."""

AUTH_FAILURES = ("unsigned", "bad_signature", "unknown_key", "wrong_device", "expired")
"""Reply codes of a request whose signature or claims fail (the console backs off after each)."""


class AuthError(Exception):
    """A request that fails authentication; ``code`` is one of :data:`AUTH_FAILURES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TrustedKey:
    key: VerifyKey
    role: str
    """``operator`` or ``admin``."""
    path: str


@dataclass(frozen=True)
class Verified:
    """Claims of a request whose signature checked out, and who signed it."""

    claims: dict[str, Any]
    key_id: str
    role: str


def load_trusted_keys(operator_keys: list[str], admin_keys: list[str]) -> dict[str, TrustedKey]:
    """Key id -> trusted key; :class:`KeyFileError` names a file that does not load."""
    from edged.config import resolve_path

    trusted: dict[str, TrustedKey] = {}
    for role, paths in (("operator", operator_keys), ("admin", admin_keys)):
        for path in paths:
            key = load_operator_verify_key(resolve_path(path))
            trusted[signing_key_id(key)] = TrustedKey(key, role, path)  # admin overrides operator
    return trusted


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or len(text) > 1 << 22:
        raise AuthError("bad_signature", f"signed.{what} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError("bad_signature", f"signed.{what} is not valid base64") from None


def sign_claims(key: SigningKey, claims: dict[str, Any], request_id: str | int | None = None) -> dict[str, Any]:
    """A signed request carrying ``claims`` (which must name ``cmd``)."""
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    signed = {"payload": _b64(payload), "key": signing_key_id(key), "sig": _b64(key.sign(payload).signature)}
    request: dict[str, Any] = {"cmd": claims["cmd"], "signed": signed}
    if request_id is not None:
        request["id"] = request_id
    return request


MAX_EXPIRES = 2.0**53
"""Largest ``expires`` read as a time (about 285 million years ahead): anything larger is no time at all."""


def _expires(value: Any) -> float:
    """The signed ``expires`` as a float, or :class:`AuthError` (``expired``) for anything that is not
    a finite number of seconds since the epoch in +-:data:`MAX_EXPIRES` (bools, NaN, 10**400, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -MAX_EXPIRES <= value <= MAX_EXPIRES:
        raise AuthError("expired", "signed claims need expires: a finite number of seconds since the epoch")
    return float(value)


def verify_request(
    request: dict[str, Any], trusted: dict[str, TrustedKey], device_id: str, max_validity_s: float,
    now: float | None = None
) -> Verified:
    """Check the signature and the claims of ``request``; raise :class:`AuthError` saying what fails."""
    signed = request.get("signed")
    if not isinstance(signed, dict):
        raise AuthError("unsigned", "request is not signed (make one with: edged sign-config)")
    extra = sorted(set(request) - {"cmd", "id", "signed"}, key=str)
    if extra:
        named = f" {extra[0]!r}" if extra[0] in CLAIM_FIELDS else ""
        raise AuthError("bad_signature", f"a signed request carries everything in its claims; unsigned key{named} is "
                                         "not allowed beside them (only cmd and id)")
    if set(signed) - {"payload", "key", "sig"}:
        raise AuthError("bad_signature", "signed has an unknown field (it holds payload, key and sig only)")
    key_id = signed.get("key")
    if not isinstance(key_id, str):
        raise AuthError("bad_signature", "signed.key must be the signing key's id")
    trusted_key = trusted.get(key_id)
    if trusted_key is None:
        raise AuthError("unknown_key", "the signing key is not a trusted operator key of this device")
    payload = _unb64(signed.get("payload"), "payload")
    signature = _unb64(signed.get("sig"), "sig")
    try:
        trusted_key.key.verify(payload, signature)
    except (BadSignatureError, ValueError, TypeError):
        raise AuthError("bad_signature", f"signature does not verify with key {key_id}") from None
    try:
        claims = json.loads(payload)
    except (ValueError, RecursionError):
        raise AuthError("bad_signature", "signed payload is not a JSON object") from None
    if not isinstance(claims, dict):
        raise AuthError("bad_signature", "signed payload is not a JSON object")
    _check_claims(claims, request.get("cmd"), device_id, max_validity_s, time.time() if now is None else now)
    return Verified(claims, key_id, trusted_key.role)


def _check_claims(claims: dict[str, Any], cmd: Any, device_id: str, max_validity_s: float, now: float) -> None:
    """Raise :class:`AuthError` unless the verified claims name ``cmd``, this device and a time still valid."""
    if cmd != claims.get("cmd"):
        raise AuthError("bad_signature", "the request's cmd differs from the signed cmd")
    if claims.get("device") != device_id:
        raise AuthError("wrong_device", f"command is signed for another device; this is {device_id!r}")
    expires = _expires(claims.get("expires"))
    if expires <= now:
        raise AuthError("expired", f"command expired {now - expires:.0f} s ago (device clock {now:.0f})")
    if expires - now > max_validity_s:
        raise AuthError("expired", f"command expires {expires - now:.0f} s ahead, more than remote.auth.max_validity_s "
                                   f"({max_validity_s:g})")


# ------------------------------------------------------------------------------------------- CLI
def _fragment(path: str) -> dict[str, Any]:
    """A config fragment from a TOML or JSON file (``-``: JSON on stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read fragment {path}: {getattr(err, 'strerror', None) or err}") from None
    try:
        data = json.loads(text) if path == "-" or path.endswith(".json") else tomllib.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"fragment {path} is not valid {'JSON' if path == '-' or path.endswith('.json') else 'TOML'}: "
                         f"{err}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"fragment {path} must be a non-empty table of config keys")
    return data


def add_sign_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sign-config`` to a CLI's subparsers."""
    p = subparsers.add_parser(
        "sign-config",
        help="sign a remote config command with an operator key",
        description=(
            "Prints one JSON line: publish it to edged/<device>/config/set (or config/get), or paste it on the "
            "serial console. The device checks the key, the device id, the version and the expiry."
        ),
    )
    p.add_argument("fragment", nargs="?", help="TOML or JSON file with the keys to change (- for JSON on stdin)")
    p.add_argument("--key", required=True, help="operator private key (edged keygen operator --out PREFIX)")
    p.add_argument("--device", required=True, help="device id the command is for")
    p.add_argument("--version", type=int, help="config version to apply (larger than the device's applied one)")
    p.add_argument("--mode", choices=("merge", "replace"), default="merge")
    p.add_argument("--get", nargs="?", const="", metavar="PATH", help="sign a get (optionally of one key path) instead")
    p.add_argument("--expires-in", type=float, default=600.0, help="seconds the command stays valid (default 600)")
    p.add_argument("--id", help="request id echoed in the reply")
    p.set_defaults(handler=sign_config_main)
    return p


def sign_config_main(args: argparse.Namespace) -> int:
    """Handler of ``sign-config``: prints the signed request; 1 with one line on error."""
    try:
        key = load_operator_signing_key(args.key)
        claims: dict[str, Any] = {"device": args.device, "expires": round(time.time() + args.expires_in, 3)}
        if args.get is not None:
            claims["cmd"] = "get"
            if args.get:
                claims["path"] = args.get
        else:
            if args.fragment is None or args.version is None:
                raise ValueError("a set needs a fragment file and --version")
            claims.update(cmd="set", version=args.version, mode=args.mode, config=_fragment(args.fragment))
    except (KeyFileError, ValueError) as err:
        print(f"edged sign-config: {err}", file=sys.stderr)
        return 1
    print(json.dumps(sign_claims(key, claims, args.id), separators=(",", ":")))
    return 0
