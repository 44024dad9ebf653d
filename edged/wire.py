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
==========  =====  ==============================================================================

Unknown extra keys are ignored by :func:`decode` (forward compatibility within a version).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

import cbor2

from edged.ids import MonotonicUlid

SCHEMA_VERSION = 1
KINDS = ("package", "sensitive", "event", "telemetry")
"""The kinds edged sends today; :func:`encode` accepts any other lowercase name as well."""
PRIORITIES = ("immediate", "cached", "normal", "sensitive")
"""Priority classes, as the outbox orders and evicts them (see :mod:`edged.outbox`)."""

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
"""Video and image ids: safe as file names (no leading dot, no slash)."""

_ids = MonotonicUlid()


class WireError(ValueError):
    """An envelope could not be built or decoded; the message names the field that is wrong."""


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

    def to_bytes(self) -> bytes:
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
    if env.dest == "ops" and (env.kind == "sensitive" or env.prio == "sensitive"):
        raise WireError("envelope field dest: sensitive records never go to 'ops'")


def _dump(env: Envelope) -> bytes:
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
    return cbor2.dumps(m)


def encode(env: Envelope) -> bytes:
    """Validate and serialise an envelope to CBOR bytes."""
    validate(env)
    return _dump(env)


_REQUIRED = {"v": int, "id": str, "kind": str, "dest": str, "prio": str, "video": str, "t": (int, float), "body": bytes}


def decode(data: bytes | bytearray | memoryview) -> Envelope:
    """Parse and validate CBOR bytes into an :class:`Envelope`; :class:`WireError` says what is wrong."""
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
    )
    validate(env)
    return env
