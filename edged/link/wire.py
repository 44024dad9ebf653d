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

Reading is strict (:func:`decode`, :func:`decode_at`): an envelope is definite-length CBOR of
integers, byte and text strings, arrays, maps, floats, ``true``, ``false`` and ``null``, nested at
most :data:`MAX_NESTING` deep, with no key twice and nothing after the map. Tags, ``undefined`` and
other simple values are refused as malformed before any signature work, so the canonical encoding
the signature check makes is always of plain values it can encode (what the device signs is
already of that form, so it verifies as before).
"""

from __future__ import annotations

import math
import mmap
import re
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import cbor2
from nacl.exceptions import BadSignatureError as _NaclBadSignature
from nacl.signing import SigningKey, VerifyKey

from edged.core.ids import MonotonicUlid
from edged.core.keys import load_verify_key, signing_key_id
from edged.link.destinations import OPS

SCHEMA_VERSION = 1


class WireName(StrEnum):
    """A name as the wire carries it; shown (``repr``) as that name, so messages read as before."""

    def __repr__(self) -> str:
        return repr(self.value)


class Kind(WireName):
    """The kinds edged sends today (wire key ``kind``, as its value)."""

    PACKAGE = "package"
    SENSITIVE = "sensitive"
    EVENT = "event"
    TELEMETRY = "telemetry"


class Priority(WireName):
    """Priority classes (wire key ``prio``, as its value), as the outbox orders and evicts them."""

    IMMEDIATE = "immediate"
    CACHED = "cached"
    NORMAL = "normal"
    SENSITIVE = "sensitive"


KINDS: tuple[str, ...] = tuple(k.value for k in Kind)
"""The kinds' names; :func:`encode` accepts any other lowercase name as well."""
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
"""The priority classes' names (see :mod:`edged.link.outbox`)."""

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
    kind: Kind | str
    """A :class:`Kind` when it is one of edged's; another lowercase name as decoded."""
    dest: str
    prio: Priority
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


def as_kind(value: Any) -> Any:
    """``value`` as a :class:`Kind` when it names one; anything else as it is (:func:`validate` judges it)."""
    return Kind._value2member_map_.get(value, value) if isinstance(value, str) else value


def as_priority(value: Any) -> Any:
    """``value`` as a :class:`Priority` when it names one; anything else as it is (:func:`validate` refuses it)."""
    return Priority._value2member_map_.get(value, value) if isinstance(value, str) else value


def is_id(value: object) -> bool:
    """Whether ``value`` is a valid video or image id (safe as a file name: no slash, no leading dot)."""
    return isinstance(value, str) and bool(_ID.match(value))


def new_id(timestamp: float | None = None) -> str:
    """A fresh message id (ULID, sorts in creation order within this process)."""
    return _ids.new(time.time() if timestamp is None else timestamp)


def make(
    kind: Kind | str,
    dest: str,
    prio: Priority | str,
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
        kind=as_kind(kind),
        dest=dest,
        prio=as_priority(prio),
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
        raise WireError(f"envelope field v: unsupported schema version {_short(env.version)} (this build knows "
                        f"{SCHEMA_VERSION})")
    if not isinstance(env.id, str) or not _ULID.match(env.id):
        raise WireError(f"envelope field id: expected a 26-character ULID, got {_short(env.id)}")
    if not isinstance(env.kind, str) or not _NAME.match(env.kind):
        raise WireError(f"envelope field kind: expected a lowercase name like {KINDS[0]!r}, got {_short(env.kind)}")
    if not isinstance(env.dest, str) or not _NAME.match(env.dest):
        raise WireError("envelope field dest: expected a destination name like 'ops' or 'func.face', got "
                        f"{_short(env.dest)}")
    if env.prio not in PRIORITIES:
        raise WireError(f"envelope field prio: expected one of {', '.join(PRIORITIES)}, got {_short(env.prio)}")
    if not isinstance(env.video_id, str) or (env.video_id and not _ID.match(env.video_id)):
        raise WireError(f"envelope field video: expected an id of [A-Za-z0-9_.:-] or '', got {_short(env.video_id)}")
    if env.image_id is not None and (not isinstance(env.image_id, str) or not _ID.match(env.image_id)):
        raise WireError("envelope field image: expected an id of [A-Za-z0-9_.:-] or absent, got "
                        f"{_short(env.image_id)}")
    if isinstance(env.created, bool) or not isinstance(env.created, (int, float)) or not math.isfinite(env.created):
        raise WireError(f"envelope field t: expected a finite time in seconds, got {_short(env.created)}")
    if not isinstance(env.device, str):
        raise WireError(f"envelope field device: expected a string, got {type(env.device).__name__}")
    if not isinstance(env.body, (bytes, bytearray, memoryview)):
        raise WireError(f"envelope field body: expected bytes, got {type(env.body).__name__}")
    if env.dest == OPS and (env.kind == Kind.SENSITIVE or env.prio == Priority.SENSITIVE):
        raise WireError("envelope field dest: sensitive records never go to 'ops'")
    _validate_signature_fields(env)


def _validate_signature_fields(env: Envelope) -> None:
    """Raise :class:`WireError` when ``sk`` and ``sig`` are not both absent or both well formed."""
    if (env.signer is None) != (env.signature is None):
        missing = "sig" if env.signature is None else "sk"
        raise WireError(f"envelope field {missing}: missing (a signed envelope needs both sk and sig)")
    if env.signer is not None and (not isinstance(env.signer, str) or not _KEY_ID.match(env.signer)):
        raise WireError(f"envelope field sk: expected a 16-hex-digit key id, got {_short(env.signer)}")
    if env.signature is not None and (
        not isinstance(env.signature, (bytes, bytearray)) or len(env.signature) != SIGNATURE_BYTES
    ):
        raise WireError(f"envelope field sig: expected {SIGNATURE_BYTES} bytes, got {_describe(env.signature)}")


def _short(value: object, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: received values are echoed in error lines."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


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
        raise UnsignedError(f"{_who(m)}: not signed (no sk/sig); only envelopes signed by a trusted device key are "
                            "accepted")
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
    except (_NaclBadSignature, ValueError, TypeError, cbor2.CBORError):
        raise BadSignatureError(
            f"{_who(m)}: signature does not verify with device key {signer}: a field or the body was altered "
            "after signing, or the signature belongs to another envelope"
        ) from None


def verify(env: Envelope, trusted: Mapping[str, VerifyKey]) -> Envelope:
    """Check an envelope object's signature against ``trusted``; returns it (raises EnvelopeAuthError)."""
    _verify_map(_map(env), trusted)
    return env


MAX_NESTING = 16
"""Deepest nesting of arrays and maps an envelope may have (the device sends none in its fields)."""

_SIMPLE = {20: False, 21: True, 22: None}
_FLOATS = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}


def _head(buf: memoryview, pos: int) -> tuple[int, int, int]:
    """Major type, argument and the position after the head of the item at ``pos``."""
    if pos >= len(buf):
        raise WireError("envelope: not valid CBOR (truncated)")
    first = buf[pos]
    major, info = first >> 5, first & 0x1F
    if info < 24:
        return major, info, pos + 1
    if info == 31:
        raise WireError("envelope: CBOR items of indefinite length are not allowed")
    if info > 27:
        raise WireError(f"envelope: not valid CBOR (reserved additional information {info})")
    size = 1 << (info - 24)
    if pos + 1 + size > len(buf):
        raise WireError("envelope: not valid CBOR (truncated)")
    return major, int.from_bytes(buf[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def _item(buf: memoryview, pos: int, depth: int = 0) -> tuple[Any, int]:
    """The strictly decoded item at ``pos`` and the position after it.

    Only integers, byte and text strings, arrays, maps, floats, ``true``, ``false`` and ``null`` of
    definite length are read; tags, ``undefined``, other simple values, duplicate map keys and deeper
    nesting than :data:`MAX_NESTING` raise :class:`WireError`. The result holds plain values only.
    """
    if pos < len(buf) and buf[pos] >> 5 == 7:
        return _simple(buf, pos)
    major, arg, pos = _head(buf, pos)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        end = pos + arg
        if end > len(buf):
            raise WireError("envelope: not valid CBOR (truncated)")
        if major == 2:
            return bytes(buf[pos:end]), end
        try:
            return str(buf[pos:end], "utf-8"), end
        except UnicodeDecodeError:
            raise WireError("envelope: a text string is not valid UTF-8") from None
    if major in (4, 5):
        if depth >= MAX_NESTING:
            raise WireError(f"envelope: nested deeper than {MAX_NESTING} levels")
        if arg > len(buf) - pos:  # every element takes at least one byte
            raise WireError("envelope: not valid CBOR (truncated)")
        return _array(buf, pos, arg, depth) if major == 4 else _mapping(buf, pos, arg, depth)
    raise WireError(f"envelope: CBOR tags are not allowed (tag {arg})")


def _simple(buf: memoryview, pos: int) -> tuple[Any, int]:
    """``false``, ``true``, ``null`` or a float at ``pos`` (major type 7); any other simple value is refused."""
    info = buf[pos] & 0x1F
    if info in _SIMPLE:
        return _SIMPLE[info], pos + 1
    if info == 31:
        raise WireError("envelope: not valid CBOR (a break code outside an item of indefinite length)")
    if info not in _FLOATS:
        raise WireError(f"envelope: CBOR simple value {info} is not allowed (only false, true, null and floats)")
    size, fmt = _FLOATS[info]
    end = pos + 1 + size
    if end > len(buf):
        raise WireError("envelope: not valid CBOR (truncated)")
    return struct.unpack(fmt, buf[pos + 1 : end])[0], end


def _array(buf: memoryview, pos: int, count: int, depth: int) -> tuple[list[Any], int]:
    out = []
    for _ in range(count):
        value, pos = _item(buf, pos, depth + 1)
        out.append(value)
    return out, pos


def _mapping(buf: memoryview, pos: int, count: int, depth: int) -> tuple[dict[Any, Any], int]:
    out: dict[Any, Any] = {}
    for _ in range(count):
        key, pos = _item(buf, pos, depth + 1)
        if not isinstance(key, (str, int, bytes)) or isinstance(key, bool):
            raise WireError(f"envelope: a map key is a {type(key).__name__}")
        if key in out:
            raise WireError(f"envelope: map key {_short(key)} appears twice")
        out[key], pos = _item(buf, pos, depth + 1)
    return out, pos


_REQUIRED: dict[str, type | tuple[type, ...]] = {"v": int, "id": str, "kind": str, "dest": str, "prio": str,
                                                 "video": str, "t": (int, float), "body": bytes}


def decode(data: bytes | bytearray | memoryview, trusted: Mapping[str, VerifyKey] | None = None) -> Envelope:
    """Parse and validate CBOR bytes into an :class:`Envelope`; :class:`WireError` says what is wrong.

    The bytes are read strictly (see :func:`_item`: no tags, no indefinite lengths, no duplicate keys,
    nothing after the map), so every value the signature check re-encodes is a plain one. With
    ``trusted`` (key id -> device verify key, see :func:`trusted_keys`) the envelope must also
    carry a valid signature by one of them, else an :class:`EnvelopeAuthError` subclass says which
    check failed. An empty mapping trusts no key (everything is refused).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"envelope: expected bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    if len(view) == 0:
        raise WireError("envelope: empty payload")
    m, end = _item(view, 0)
    if end != len(view):
        raise WireError(f"envelope: {len(view) - end} bytes after the envelope's CBOR map")
    return _checked(m, trusted)


def decode_at(
    buf: bytes | bytearray | memoryview | mmap.mmap, offset: int, trusted: Mapping[str, VerifyKey] | None = None
) -> tuple[Envelope, int]:
    """The envelope whose CBOR starts at ``offset`` of ``buf`` and the offset where it ends (for reading
    a CBOR sequence of envelopes); checked as :func:`decode` checks one payload."""
    m, end = _item(memoryview(buf).cast("B"), offset)
    return _checked(m, trusted), end


def _checked(m: Any, trusted: Mapping[str, VerifyKey] | None) -> Envelope:
    """The envelope of a strictly decoded map, its format validated and, with ``trusted``, its signature."""
    if not isinstance(m, dict):
        raise WireError(f"envelope: expected a CBOR map, got {type(m).__name__}")
    if "v" in m and m["v"] != SCHEMA_VERSION:
        raise WireError(f"envelope field v: unsupported schema version {_short(m['v'])} (this build knows "
                        f"{SCHEMA_VERSION})")
    for key, typ in _REQUIRED.items():
        if key not in m:
            raise WireError(f"envelope field {key}: missing")
        if not isinstance(m[key], typ) or isinstance(m[key], bool):
            raise WireError(f"envelope field {key}: wrong type {type(m[key]).__name__}")
    if not all(isinstance(k, str) for k in m):
        raise WireError("envelope: every key must be a text string")
    env = Envelope(
        id=m["id"],
        kind=as_kind(m["kind"]),
        dest=m["dest"],
        prio=as_priority(m["prio"]),
        video_id=m["video"],
        body=m["body"],
        created=float(m["t"]),
        image_id=m.get("image"),
        device=m.get("device", ""),
        version=m["v"],
        signer=m.get("sk"),
        signature=m.get("sig"),
        extra=tuple((k, v) for k, v in m.items() if k not in _CORE_KEYS),
    )
    validate(env)
    if trusted is not None:  # after the format checks: an auth error is always about a well-formed envelope
        _verify_map(m, trusted)
    return env
