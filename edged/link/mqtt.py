"""One MQTT broker connection's TLS context and reconnect backoff, shared by the uplinks and the remote control.

Both connect with the keys of :class:`edged.config.BrokerConfig` (host, port, TLS files,
credentials, client id, keepalive); the uplinks (:mod:`edged.link.uplink`) and the command connection
(:mod:`edged.remote.mqtt`) build their TLS context and their reconnect delays here, so the two
behave alike: a missing TLS file is one clear error naming the key, and a lost broker is retried
after delays that double from a minimum up to a maximum.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edged.config import resolve_path


class BrokerConfigError(ValueError):
    """The settings of a broker connection cannot be used (e.g. a TLS file is missing)."""


def tls_context(broker: Any, who: str) -> ssl.SSLContext | None:
    """The client TLS context of ``broker`` (server verified against ``ca_file``, else the system
    store; a client certificate for mutual TLS when ``cert_file`` is set); ``None`` without ``tls``.

    ``who`` names the connection in errors (e.g. ``uplink ops``)."""
    if not broker.tls:
        return None
    for name in ("ca_file", "cert_file", "key_file"):
        value = getattr(broker, name)
        if value and not resolve_path(value).is_file():
            raise BrokerConfigError(f"{who} {broker.host}:{broker.port}: {name} {value!r} does not exist")
    if broker.key_file and not broker.cert_file:
        raise BrokerConfigError(f"{who} {broker.host}:{broker.port}: key_file given without cert_file")
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(resolve_path(broker.ca_file)) if broker.ca_file else None
        )
        if broker.cert_file:
            key = str(resolve_path(broker.key_file)) if broker.key_file else None
            context.load_cert_chain(str(resolve_path(broker.cert_file)), key)
    except (ssl.SSLError, OSError) as err:
        raise BrokerConfigError(f"{who} {broker.host}:{broker.port}: cannot load TLS files: {err}") from None
    return context


@dataclass
class Backoff:
    """Reconnect delays: ``min_s``, doubling on each failure up to ``max_s``, each shortened by a
    random share of up to ``jitter`` so that units which lost the same broker spread out."""

    min_s: float
    max_s: float
    jitter: float = 0.0
    rand: Callable[[], float] = random.random
    failures: int = 0

    def reset(self) -> None:
        """A connection worked: the next failure waits ``min_s`` again."""
        self.failures = 0

    def next_s(self) -> float:
        """The wait before the next attempt (counts one more failure)."""
        delay = min(self.min_s * 2.0 ** self.failures, self.max_s)
        self.failures = min(self.failures + 1, 64)  # the delay is long at max_s by then
        return delay * (1.0 - self.jitter * self.rand()) if self.jitter else delay
