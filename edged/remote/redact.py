"""Secrets never leave the device in replies, state, events or logs.

A config key is secret when its name matches :data:`SECRET_KEY` (``password``, ``secret``, any
``*_token`` ...). Key *paths* such as ``key_file`` are not secret: they name a file, and the file
itself stays on the device.

Nothing is ever found by comparing text with a secret's value: a reply that hid whatever matched a
secret would tell a guesser when a guess was right. Secrets stay out of replies because replies
carry only the redacted config and error sentences that never quote what a request said.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
"""Shown instead of a set secret. Sent back in a ``set``, it means "keep the current value"."""

SECRET_KEY = re.compile(r"password|passphrase|secret|token|private_key|psk", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    return bool(SECRET_KEY.search(name))


def redact(value: Any) -> Any:
    """A copy of ``value`` with every non-empty secret replaced by :data:`REDACTED` ("" stays "")."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if is_secret_key(str(k)) and value[k] not in ("", None) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def keep_redacted(new: Any, current: Any) -> Any:
    """``new`` with every :data:`REDACTED` secret replaced by the value in ``current``."""
    if isinstance(new, dict):
        out = {}
        for k, v in new.items():
            cur = current.get(k) if isinstance(current, dict) else None
            if v == REDACTED and is_secret_key(str(k)):
                out[k] = cur if cur is not None else ""
            else:
                out[k] = keep_redacted(v, cur)
        return out
    return new


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted paths in ``value`` under a secret key that hold anything but ``""`` or :data:`REDACTED`.

    A remote change names a secret only to keep it (:data:`REDACTED`); any other value would be
    compared with the running one, and whether they were equal must not show in a reply.
    """
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if is_secret_key(str(k)) and v not in ("", REDACTED):
                found.append(path)
            else:
                found += secret_paths(v, path)
    return found
