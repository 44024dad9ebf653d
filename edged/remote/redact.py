"""Secrets never leave the device in replies, state, events or logs.

A config key is secret when its name contains one of :data:`SECRET_WORDS` (``password``,
``secret``, any ``*_token`` ...). Key *paths* such as ``key_file`` are not secret: they name
a file, and the file itself stays on the device.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
"""Shown instead of a set secret. Sent back in a ``set``, it means "keep the current value"."""

MIN_SCRUB = 4

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


def secret_values(value: Any, found: set[str] | None = None) -> set[str]:
    """Every non-empty string held under a secret key in ``value``."""
    found = set() if found is None else found
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_key(str(k)) and isinstance(v, str) and v and v != REDACTED:
                found.add(v)
            else:
                secret_values(v, found)
    elif isinstance(value, list):
        for v in value:
            secret_values(v, found)
    return found


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with any occurrence of a secret value of ``MIN_SCRUB`` or more characters replaced
    (longest first); shorter values would mangle ordinary words.

    Case is ignored (the console lower-cases a command word before it echoes an unknown one, so a
    password typed at the wrong prompt comes back in another case), and so is a secret cut short
    by an error message's quoted echo of the input (``'...'`` of at most 32-64 characters): a
    ``MIN_SCRUB``-character or longer start of a secret right before a closing quote is redacted.
    """
    for s in sorted(secrets, key=len, reverse=True):
        if len(s) >= MIN_SCRUB:
            text = re.sub(re.escape(s), REDACTED, text, flags=re.IGNORECASE)
            starts = "|".join(re.escape(s[:k]) for k in range(len(s) - 1, MIN_SCRUB - 1, -1))
            if starts:
                text = re.sub(f"(?:{starts})(?=['\"])", REDACTED, text, flags=re.IGNORECASE)
    return text
