"""The MQTT broker keys shared by the uplinks (``[uplink.ops]``, ``[uplink.functional.*]``) and ``[remote.mqtt]``."""

from __future__ import annotations

from typing import Annotated

import msgspec

from edged.config.base import Section


class BrokerConfig(Section):
    """One MQTT broker connection: the keys the uplinks and the remote control share
    (:mod:`edged.link.mqtt` builds the TLS context and the reconnect delays from them)."""

    host: str = "localhost"
    """Broker host: on a roadside unit usually one reached over the cellular link, or a local bridge
    on ``localhost`` that forwards to it."""
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    """1883 is MQTT's plain port; use 8883 with ``tls = true``."""
    tls: bool = False
    ca_file: str = ""
    """CA bundle that signs the broker's certificate ("" with ``tls``: the system store)."""
    cert_file: str = ""
    """Client certificate for mutual TLS ("" for none)."""
    key_file: str = ""
    """Private key of ``cert_file``; keep it mode 0600, owned by the service user."""
    username: str = ""
    password: str = ""
    """Never logged; shown as ``<redacted>`` wherever the config is echoed."""
    client_id: str = ""
    """MQTT client id; "" gives ``edged-<device.id>-remote-<token>`` (remote control) or
    ``edged-<device.id>-<destination>-<token>`` (an uplink), where the token is random and kept in
    ``device.data_dir``: unique, and not guessable by another user of the broker (who could otherwise
    connect under it and knock the device off). A broker set up as in ``config/mosquitto`` replaces
    the id by the user name, so there every connection needs its own ``username``."""
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    """MQTT keepalive (s): a dead link is noticed within 1.5 keepalives; 30 s keeps idle cellular
    traffic small while "offline" appears on ``status`` within ~45 s."""
