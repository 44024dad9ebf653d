"""One MQTT broker connection's TLS context and reconnect backoff, shared by the uplinks and the remote control.

Both connect with the keys of :class:`edged.config.BrokerConfig` (host, port, TLS files,
credentials, client id, keepalive); the uplinks (:mod:`edged.link.uplink`) and the command connection
(:mod:`edged.remote.mqtt`) build their TLS context and their reconnect delays here, so the two
behave alike: a missing TLS file is one clear error naming the key, and a lost broker is retried
after delays that double from a minimum up to a maximum.

A connection without a configured ``client_id`` gets :func:`default_client_id`: the device id and
the connection's name, then a random token kept in the data dir. Another user of the broker cannot
guess it, so cannot connect under it and knock the device off; it stays the same across restarts, so
a new connection still replaces the device's own half-open one. (A broker set up as in
``config/mosquitto`` replaces every client id by the user name anyway.)
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.config import resolve_path
from edged.core.paths import open_private, private_dir, write_private

log = logging.getLogger(__name__)

CLIENT_TOKEN_FILE = "mqtt_client_token"
"""The file in ``device.data_dir`` that keeps the random part of the default client ids."""
_TOKEN = re.compile(r"[0-9a-f]{16,64}")
_tokens: dict[Path | None, str] = {}
"""Tokens already read, by data dir: every connection of this process uses the same one."""


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


def client_id(broker: Any, device_id: str, connection: str, data_dir: Path | None) -> str:
    """The connection's client id: ``broker.client_id`` when set, else :func:`default_client_id`."""
    return broker.client_id or default_client_id(device_id, connection, data_dir)


def default_client_id(device_id: str, connection: str, data_dir: Path | None) -> str:
    """``edged-<device id>-<connection>-<token>`` with the token of :func:`client_token`."""
    return f"edged-{device_id}-{connection}-{client_token(data_dir)}"


def client_token(data_dir: Path | None) -> str:
    """A random token kept in ``data_dir`` (made on first use, private): the same at every start.

    Where it cannot be kept (no data dir, a planted link, a read-only disk) the process makes one
    for itself and says why, once."""
    if data_dir not in _tokens:
        _tokens[data_dir] = _load_token(data_dir) if data_dir is not None else secrets.token_hex(8)
    return _tokens[data_dir]


def _load_token(data_dir: Path) -> str:
    path = data_dir / CLIENT_TOKEN_FILE
    try:
        private_dir(data_dir, configured=True)
        try:
            fd = open_private(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            with os.fdopen(fd, "rb") as f:
                text = f.read(128).decode("ascii", "replace").strip()
            if _TOKEN.fullmatch(text):
                return text
        token = secrets.token_hex(8)
        write_private(path, token.encode() + b"\n", fsync=True)
        return token
    except OSError as err:
        log.warning("MQTT client id token %s cannot be kept (%s); this run uses a random one of its own",
                    path, err.strerror or err)
        return secrets.token_hex(8)
