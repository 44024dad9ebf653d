"""``[remote]``: config get/set and commands over MQTT or the serial console, who may send them, rollback."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from edged.config.base import Bounds, Section
from edged.config.broker import BrokerConfig


class MqttRemoteConfig(BrokerConfig):
    """Command connection to the device broker: ``edged/<device.id>/config/set`` and friends."""

    enabled: bool = False
    """Off by default: the demo runs without a broker; a roadside config turns it on."""
    reconnect_min_s: Annotated[float, Bounds(0.1, 3600)] = 1.0
    """First reconnect delay (s); doubles on each failure up to ``reconnect_max_s``."""
    reconnect_max_s: Annotated[float, Bounds(0.1, 86_400)] = 60.0
    """Longest wait (s) between attempts; a minute bounds the extra downtime after an outage without
    a thousand units hammering a recovering broker."""
    max_payload_bytes: Annotated[int, Bounds(1024, 16 << 20)] = 262_144
    """Larger command payloads are refused unread; a full config is a few kB."""

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")


class SerialRemoteConfig(Section):
    """Maintenance console on a serial line (a USB-UART adapter on site)."""

    enabled: bool = False
    """Off by default: the port may not exist (on a Pi ``/dev/ttyUSB0`` appears only when a
    technician plugs an adapter in; the console waits for it)."""
    port: str = "/dev/ttyUSB0"
    """The usual name of the first USB-serial adapter on Linux."""
    baud: Annotated[int, msgspec.Meta(ge=300, le=4_000_000)] = 115200
    """The common default of terminal programs (picocom, minicom, PuTTY) and USB-UART adapters."""
    max_line_bytes: Annotated[int, Bounds(256, 1 << 20)] = 65_536
    """Longest request line; a whole config as JSON is a few kB."""
    auth_backoff_s: Annotated[float, Bounds(0, 60)] = 1.0
    """Pause (s) after a request that fails authentication (in signed mode also after any refused
    unsigned line), doubling with each such pause in a row up to ``auth_backoff_max_s`` and reset on
    success, so guessing is slow and a mistake costs a moment. Lines that come during the pause are
    discarded unless they are ``status``, ``stats``, ``help`` or validly signed."""
    auth_backoff_max_s: Annotated[float, Bounds(0, 3600)] = 60.0
    reopen_s: Annotated[float, Bounds(0.1, 3600)] = 2.0
    """How often (s) a missing or unplugged port is retried."""


class RemoteAuthConfig(Section):
    """Who may change this unit remotely (``docs/SECURITY.md``); local-only: no remote set changes it."""

    mode: Literal["signed", "unsigned"] = "signed"
    """``signed``: a ``set`` (and a console ``get``) must be signed (Ed25519) by a key below;
    ``unsigned`` is for local tests only (the daemon warns at start)."""
    operator_keys: list[str] = []
    """Public key files (``edged keygen operator``) whose signed commands may change what the
    policy lets an operator change (``edged/remote/policy.py``)."""
    admin_keys: list[str] = []
    """Public key files that may also change privileged keys: links on or off, timers, queues."""
    max_version_step: Annotated[int, Bounds(1, 1_000_000)] = 1000
    """A set's version may exceed the applied one by at most this: one command with version 2**53
    cannot lock every later command out."""
    max_validity_s: Annotated[float, Bounds(10, 7 * 86_400)] = 3600.0
    """A signed command's ``expires`` may lie at most this far (s) ahead of the device's clock; the
    device needs a set clock (NTP or an RTC) for signed commands."""


class RemoteConfig(Section):
    """Remote configuration and operations: config get/set and commands over MQTT or the serial
    console, who may send them, and rollback of a config that stalls the pipeline."""

    mqtt: MqttRemoteConfig = msgspec.field(default_factory=MqttRemoteConfig)
    serial: SerialRemoteConfig = msgspec.field(default_factory=SerialRemoteConfig)
    auth: RemoteAuthConfig = msgspec.field(default_factory=RemoteAuthConfig)
    stats_period_s: Annotated[float, Bounds(0.1, 86_400)] = 60.0
    """Period (s) of the ``stats`` message; a minute shows a stall quickly for ~45 MB a month on a
    metered link."""
    apply_timeout_s: Annotated[float, Bounds(1, 600)] = 10.0
    """How long (s) a new config has to carry a frame through the pipeline before it is rolled back;
    10 s covers a picamera2 restart and the first frames after AE start."""
