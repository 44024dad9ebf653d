"""The envelope every outgoing message travels in: a CBOR map with a schema version.

One envelope is one MQTT payload and one outbox row. Its fields:

==========  =====  ==============================================================================
key         type   meaning
==========  =====  ==============================================================================
``v``       int    schema version (:data:`SCHEMA_VERSION`); a receiver refuses versions it does
                   not know
``id``      str    message id, a ULID: stable across retries, the receiver's de-duplication key
``kind``    str    what the body is: ``package`` (upload package), ``sensitive`` (sealed record),
                   ``event``, ``telemetry`` (see :data:`KINDS`; other lowercase names are allowed)
``dest``    str    destination name: ``ops`` or a functional platform, e.g. ``func.face``
``prio``    str    priority class: ``immediate``, ``cached``, ``normal`` or ``sensitive``
``video``   str    video/segment id the message belongs to (platforms keep one file per video);
                   ``""`` for messages outside any segment (telemetry)
``image``   str    image id, or absent
``t``       float  creation time, seconds since the epoch
``device``  str    sending device id (may be ``""``)
``body``    bytes  the payload, opaque to the transport (binary stays binary)
``sk``      str    signer: key id of the device's Ed25519 key (16 hex digits,
                   :func:`edged.core.keys.signing_key_id`), the same key that signs sealed records
``sig``     bytes  detached Ed25519 signature (64 bytes) over :data:`SIGNATURE_DOMAIN` followed
                   by the canonical CBOR of every *other* key of the map (``sk`` included)
==========  =====  ==============================================================================

Unknown extra keys are kept by :func:`decode` and written back by :func:`encode` (forward
compatibility within a version); the signature covers them like every other key.

Signing. The device signs each envelope once, where the outbox stores it (:func:`encode` with the
device's signing key; :class:`edged.link.outbox.Outbox` keeps the signed bytes, so a retry after a
restart sends identical bytes). The signed message is ``SIGNATURE_DOMAIN`` + ``cbor2.dumps(m,
canonical=True)`` where ``m`` is the envelope map without ``sig`` (RFC 7049 canonical form: keys
sorted shortest first, then bytewise; floats in their shortest exact form), so any CBOR encoder
that re-creates the same map verifies. A receiver calls ``decode(data, trusted)`` with the trusted
device verify keys (key id -> :class:`nacl.signing.VerifyKey`, :func:`trusted_keys`) and gets an
:class:`EnvelopeAuthError` naming what failed: :class:`UnsignedError`, :class:`UnknownSignerError`
or :class:`BadSignatureError`. ``decode(data)`` without keys checks the format only (local tools).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError as _NaclBadSignature
from nacl.signing import SigningKey, VerifyKey

from edged.core.ids import MonotonicUlid
from edged.core.keys import load_verify_key, signing_key_id
from edged.link.destinations import OPS

SCHEMA_VERSION = 1
KINDS = ("package", "sensitive", "event", "telemetry")
"""The kinds edged sends today; :func:`encode` accepts any other lowercase name as well."""
PRIORITIES = ("immediate", "cached", "normal", "sensitive")
"""Priority classes, as the outbox orders and evicts them (see :mod:`edged.link.outbox`)."""

SIGNATURE_DOMAIN = b"edged envelope v1\x00"
"""Prefix of every signed envelope message: an envelope signature never verifies as a sealed-record
signature (``edged sealed record v1``) or anything else the device key signs."""
SIGNATURE_BYTES = 64
_CORE_KEYS = frozenset({"v", "id", "kind", "dest", "prio", "video", "t", "device", "body", "image", "sk", "sig"})
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
"""Video and image ids: safe as file names (no leading dot, no slash)."""

_ids = MonotonicUlid()


class WireError(ValueError):
    """An envelope could not be built or decoded; the message names the field that is wrong."""


class EnvelopeAuthError(WireError):
    """An envelope failed the signature check; :attr:`reason` is a short tag for counting."""

    reason = "unverified"


class UnsignedError(EnvelopeAuthError):
    """The envelope carries no signature (no ``sk``/``sig`` keys)."""

    reason = "unsigned"


class UnknownSignerError(EnvelopeAuthError):
    """The envelope is signed by a key id that is not among the trusted device keys."""

    reason = "unknown key"


class BadSignatureError(EnvelopeAuthError):
    """The signature does not verify: a field or the body was altered, or the signature is damaged."""

    reason = "bad signature"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One outgoing message (see the module docstring for the wire keys)."""

    id: str
    kind: str
    dest: str
    prio: str
    video_id: str
    body: bytes
    created: float
    image_id: str | None = None
    device: str = ""
    version: int = SCHEMA_VERSION
    signer: str | None = None
    """Key id of the device key that signed it (wire key ``sk``), ``None`` when unsigned."""
    signature: bytes | None = None
    """Detached Ed25519 signature (wire key ``sig``), ``None`` when unsigned."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Unknown keys of a decoded map, kept (and covered by the signature) in their order."""

    @property
    def signed(self) -> bool:
        """Whether the envelope carries a signer key id and a signature."""
        return self.signer is not None and self.signature is not None

    def to_bytes(self) -> bytes:
        """The envelope's CBOR bytes (signed if it carries a signature)."""
        return _dump(self)


def new_id(timestamp: float | None = None) -> str:
    """A fresh message id (ULID, sorts in creation order within this process)."""
    return _ids.new(time.time() if timestamp is None else timestamp)


def make(
    kind: str,
    dest: str,
    prio: str,
    body: bytes,
    *,
    video_id: str = "",
    image_id: str | None = None,
    created: float | None = None,
    device: str = "",
    msg_id: str | None = None,
) -> Envelope:
    """Build and validate an envelope; ``msg_id`` and ``created`` default to now."""
    created = time.time() if created is None else created
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not math.isfinite(created):
        raise WireError(f"envelope field t: expected a finite time in seconds, got {created!r}")
    env = Envelope(
        id=msg_id if msg_id is not None else new_id(float(created)),
        kind=kind,
        dest=dest,
        prio=prio,
        video_id=video_id,
        body=body,
        created=float(created),
        image_id=image_id,
        device=device,
    )
    validate(env)
    return env


def validate(env: Envelope) -> None:
    """Raise :class:`WireError` naming the first field that is wrong."""
    if env.version != SCHEMA_VERSION:
        raise WireError(f"envelope field v: unsupported schema version {env.version!r} (this build knows {SCHEMA_VERSION})")
    if not isinstance(env.id, str) or not _ULID.match(env.id):
        raise WireError(f"envelope field id: expected a 26-character ULID, got {env.id!r}")
    if not isinstance(env.kind, str) or not _NAME.match(env.kind):
        raise WireError(f"envelope field kind: expected a lowercase name like {KINDS[0]!r}, got {env.kind!r}")
    if not isinstance(env.dest, str) or not _NAME.match(env.dest):
        raise WireError(f"envelope field dest: expected a destination name like 'ops' or 'func.face', got {env.dest!r}")
    if env.prio not in PRIORITIES:
        raise WireError(f"envelope field prio: expected one of {', '.join(PRIORITIES)}, got {env.prio!r}")
    if not isinstance(env.video_id, str) or (env.video_id and not _ID.match(env.video_id)):
        raise WireError(f"envelope field video: expected an id of [A-Za-z0-9_.:-] or '', got {env.video_id!r}")
    if env.image_id is not None and (not isinstance(env.image_id, str) or not _ID.match(env.image_id)):
        raise WireError(f"envelope field image: expected an id of [A-Za-z0-9_.:-] or absent, got {env.image_id!r}")
    if isinstance(env.created, bool) or not isinstance(env.created, (int, float)) or not math.isfinite(env.created):
        raise WireError(f"envelope field t: expected a finite time in seconds, got {env.created!r}")
    if not isinstance(env.device, str):
        raise WireError(f"envelope field device: expected a string, got {type(env.device).__name__}")
    if not isinstance(env.body, (bytes, bytearray, memoryview)):
        raise WireError(f"envelope field body: expected bytes, got {type(env.body).__name__}")
    if env.dest == OPS and (env.kind == "sensitive" or env.prio == "sensitive"):
        raise WireError("envelope field dest: sensitive records never go to 'ops'")
    if (env.signer is None) != (env.signature is None):
        missing = "sig" if env.signature is None else "sk"
        raise WireError(f"envelope field {missing}: missing (a signed envelope needs both sk and sig)")
    if env.signer is not None and (not isinstance(env.signer, str) or not _KEY_ID.match(env.signer)):
        raise WireError(f"envelope field sk: expected a 16-hex-digit key id, got {env.signer!r}")
    if env.signature is not None and (
        not isinstance(env.signature, (bytes, bytearray)) or len(env.signature) != SIGNATURE_BYTES
    ):
        raise WireError(f"envelope field sig: expected {SIGNATURE_BYTES} bytes, got {_describe(env.signature)}")


def _describe(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return type(value).__name__


def _map(env: Envelope, with_signature: bool = True) -> dict[str, Any]:
    """The envelope as its wire map (``sig`` left out unless ``with_signature``)."""
    m: dict[str, Any] = {
        "v": env.version,
        "id": env.id,
        "kind": env.kind,
        "dest": env.dest,
        "prio": env.prio,
        "video": env.video_id,
        "t": float(env.created),
        "device": env.device,
        "body": bytes(env.body),
    }
    if env.image_id is not None:
        m["image"] = env.image_id
    for key, value in env.extra:
        m.setdefault(key, value)
    if env.signer is not None:
        m["sk"] = env.signer
    if with_signature and env.signature is not None:
        m["sig"] = bytes(env.signature)
    return m


def _dump(env: Envelope) -> bytes:
    return cbor2.dumps(_map(env), canonical=True)


def signed_message(m: Mapping[str, Any]) -> bytes:
    """What the signature covers: :data:`SIGNATURE_DOMAIN` + canonical CBOR of ``m`` without ``sig``."""
    return SIGNATURE_DOMAIN + cbor2.dumps({k: v for k, v in m.items() if k != "sig"}, canonical=True)


def sign(env: Envelope, key: SigningKey) -> Envelope:
    """A copy of ``env`` signed with the device key ``key`` (replaces any earlier signature)."""
    validate(env)
    unsigned = replace(env, signer=signing_key_id(key), signature=None)
    signature = key.sign(signed_message(_map(unsigned, with_signature=False))).signature
    return replace(unsigned, signature=bytes(signature))


def encode(env: Envelope, signing_key: SigningKey | None = None) -> bytes:
    """Validate and serialise an envelope to CBOR bytes, signed with ``signing_key`` when given.

    Without a key an envelope that already carries a signature (a decoded one) keeps it.
    """
    validate(env)
    if signing_key is not None:
        env = sign(env, signing_key)
    return _dump(env)


def trusted_keys(keys: Iterable[VerifyKey | str | Path]) -> dict[str, VerifyKey]:
    """Key id -> verify key for :func:`decode`, from verify keys or device ``.pub`` files."""
    out: dict[str, VerifyKey] = {}
    for k in keys:
        vk = k if isinstance(k, VerifyKey) else load_verify_key(k)
        out[signing_key_id(vk)] = vk
    return out


def _who(m: Mapping[str, Any]) -> str:
    msg_id = m.get("id") if isinstance(m.get("id"), str) else "?"
    kind = m.get("kind") if isinstance(m.get("kind"), str) else "?"
    device = m.get("device") if isinstance(m.get("device"), str) and m.get("device") else None
    return f"envelope {msg_id} ({kind}{f' from device {device!r}' if device else ''})"


def _verify_map(m: Mapping[str, Any], trusted: Mapping[str, VerifyKey]) -> None:
    """Check the signature of a decoded envelope map against ``trusted`` (raises EnvelopeAuthError)."""
    signer, signature = m.get("sk"), m.get("sig")
    if signer is None and signature is None:
        raise UnsignedError(f"{_who(m)}: not signed (no sk/sig); only envelopes signed by a trusted device key are accepted")
    if not isinstance(signer, str) or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise BadSignatureError(
            f"{_who(m)}: malformed signature fields (sk {_describe(signer)}, sig {_describe(signature)}; "
            f"expected a key id and {SIGNATURE_BYTES} bytes)"
        )
    verify = trusted.get(signer)
    if verify is None:
        known = ", ".join(sorted(trusted)) or "none"
        raise UnknownSignerError(f"{_who(m)}: signed by unknown device key id {signer} (trusted: {known})")
    try:
        verify.verify(signed_message(m), signature)
    except _NaclBadSignature:
        raise BadSignatureError(
            f"{_who(m)}: signature does not verify with device key {signer}: a field or the body was altered "
            "after signing, or the signature belongs to another envelope"
        ) from None


def verify(env: Envelope, trusted: Mapping[str, VerifyKey]) -> Envelope:
    """Check an envelope object's signature against ``trusted``; returns it (raises EnvelopeAuthError)."""
    _verify_map(_map(env), trusted)
    return env


_REQUIRED = {"v": int, "id": str, "kind": str, "dest": str, "prio": str, "video": str, "t": (int, float), "body": bytes}


def decode(data: bytes | bytearray | memoryview, trusted: Mapping[str, VerifyKey] | None = None) -> Envelope:
    """Parse and validate CBOR bytes into an :class:`Envelope`; :class:`WireError` says what is wrong.

    With ``trusted`` (key id -> device verify key, see :func:`trusted_keys`) the envelope must also
    carry a valid signature by one of them, else an :class:`EnvelopeAuthError` subclass says which
    check failed. An empty mapping trusts no key (everything is refused).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"envelope: expected bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise WireError("envelope: empty payload")
    try:
        m = cbor2.loads(bytes(data))
    except Exception as err:  # cbor2 raises several types for truncated or garbage input
        raise WireError(f"envelope: not valid CBOR ({err})") from None
    if not isinstance(m, dict):
        raise WireError(f"envelope: expected a CBOR map, got {type(m).__name__}")
    if "v" in m and m["v"] != SCHEMA_VERSION:
        raise WireError(f"envelope field v: unsupported schema version {m['v']!r} (this build knows {SCHEMA_VERSION})")
    for key, typ in _REQUIRED.items():
        if key not in m:
            raise WireError(f"envelope field {key}: missing")
        if not isinstance(m[key], typ) or isinstance(m[key], bool):
            raise WireError(f"envelope field {key}: wrong type {type(m[key]).__name__}")
    if not all(isinstance(k, str) for k in m):
        raise WireError("envelope: every key must be a text string")
    signer, signature = m.get("sk"), m.get("sig")
    env = Envelope(
        id=m["id"],
        kind=m["kind"],
        dest=m["dest"],
        prio=m["prio"],
        video_id=m["video"],
        body=m["body"],
        created=float(m["t"]),
        image_id=m.get("image"),
        device=m.get("device", ""),
        version=m["v"],
        signer=signer,
        signature=signature,
        extra=tuple((k, v) for k, v in m.items() if k not in _CORE_KEYS),
    )
    validate(env)
    if trusted is not None:  # after the format checks: an auth error is always about a well-formed envelope
        _verify_map(m, trusted)
    return env
