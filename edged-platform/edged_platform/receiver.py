"""Platform receiver: subscribe to a broker topic and store every envelope in a folder or a database.

The store is a folder of per-video files or a PostgreSQL database (:func:`edged_platform.stores.open_store`).

Used for the operations platform and for each functional platform (one receiver, or one consumer
group of receivers, each with its own store), by the tests and the demo::

    python -m edged_platform.receiver --host 127.0.0.1 --port 1883 --topic 'edged/+/ops/#' --store platform/ops \
        --device-key data/keys/device.pub

Every envelope must carry a valid signature by one of the trusted device keys (``--device-key``,
repeatable: the ``.pub`` files ``edged keygen device`` writes). One that is unsigned, signed by an
unknown key or whose signature does not verify is dropped and counted (``unsigned``, ``unknown
key``, ``bad signature``), never stored: the first drop is logged at once, later ones as one line per
:data:`REJECT_LOG_PERIOD_S` (the latest, with counts); the counts by reason are in the final summary line.

A store holds only what was addressed to it: each receiver is for one destination (``--dest``,
by default the level of ``--topic`` that is ``ops`` or ``func.<category>``; a topic naming none
needs ``--dest``), and a genuine envelope whose signed ``dest`` names another platform (a sealed
record republished on the ops topic) is dropped and counted as ``wrong destination``. Payloads
that are not a well-formed envelope (:func:`edged.link.wire.decode` reads strictly) are dropped
and counted as malformed; no payload stops the receiver.

The store is named by ``--store``: a folder (the per-video files) or a ``postgresql://`` URL
(:func:`edged_platform.stores.open_store`).

The session is persistent (MQTT 5, ``clean_start=False``, a session that never expires, a fixed
client id), so QoS 1 messages published while the receiver is offline wait at the broker. The
default client id is derived from the store and the topic (:func:`default_client_id`): the same
receiver restarted resumes its session, while the ops and the functional-platform receivers on one
broker never share an id (a shared id makes the broker drop one connection whenever the other connects).

A message is acknowledged (PUBACK) only once it is durable in the store: written and flushed to the
folder's file (``--fsync``: synced to disk) or committed to the database. The messages already
waiting behind the one taken are taken with it (at most ``--batch``, :data:`BATCH_MAX`, and
:data:`BATCH_BYTES`), stored as one batch (one commit, one flush per file) and acknowledged together
once it is durable; nothing is waited for, so a batch is one message when the receiver keeps up and
grows only with a backlog. A batch the store cannot take (disk full, database down: an ``OSError``)
is not acknowledged; the receiver retries it with exponential backoff and takes no further message
meanwhile, and a receiver stopped or killed before that has it redelivered by the broker when it
comes back. Delivery is at-least-once end to end; duplicates are dropped by message id in the store.
Payloads that are malformed, unsigned, signed by an unknown key or addressed elsewhere are
acknowledged and dropped (counted); no payload stops the receiver. Reconnects with exponential backoff.

``--group NAME`` makes the receiver one member of a consumer group: it subscribes to the MQTT 5
shared subscription ``$share/NAME/<topic>``, so the broker hands each message to one of the
group's members and N receiver processes split one destination's traffic into one store (several
processes may append to one store folder; the database's unique message id does the same for
PostgreSQL). Each member has its own persistent session, named by ``--member`` (default: the host
name) in its client id (:func:`member_client_id`); a broker may queue a member's share while it is
offline (mosquitto does), so a member is restarted under the same name to resume its session, and
a member retired for good is run once with ``--leave`` (:meth:`Receiver.leave`), which stores what
its session holds and ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import random
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from nacl.signing import VerifyKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.core.keys import KeyFileError
from edged.core.lograte import BoundedLog
from edged.core.progname import prog_name
from edged.link.destinations import FUNC_PREFIX, OPS
from edged.link.wire import Envelope, EnvelopeAuthError, WireError, decode, trusted_keys
from edged_platform.stores import Store, StoreUnavailable, open_store, redact, store_folder

log = logging.getLogger("edged_platform.receiver")

REJECT_LOG_PERIOD_S = 10.0
"""Dropped payloads are logged at once, then summarised in one line at most this often."""
WRONG_DESTINATION = "wrong destination"
"""Drop reason of a genuine envelope addressed to another platform than this receiver's store."""
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5 session expiry interval meaning "never": a receiver's queued messages wait for it however long."""
BATCH_MAX = 64
"""Most messages appended (and then acknowledged) together: one that arrived and those already queued behind it."""
BATCH_BYTES = 8 << 20
"""A batch takes no further queued message once its payloads reach this many bytes."""
_DESTINATION = re.compile(rf"^(?:{OPS}|{re.escape(FUNC_PREFIX)}[a-z][a-z0-9_-]{{0,31}})$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""What a group or member name looks like (no MQTT wildcard or level separator)."""


def is_destination(name: str) -> bool:
    """Whether ``name`` is a platform destination: ``ops`` or ``func.<category>``."""
    return bool(_DESTINATION.match(name))


def topic_destination(topic: str) -> str | None:
    """The destination a topic filter names (its one level that is ``ops`` or ``func.<category>``), or ``None``."""
    named = {level for level in topic.split("/") if is_destination(level)}
    return named.pop() if len(named) == 1 else None


def shared_topic(topic: str, group: str | None) -> str:
    """The filter a receiver subscribes to: ``$share/GROUP/topic`` for a group member, else ``topic``."""
    return f"$share/{group}/{topic}" if group else topic


@dataclass
class ReceiverStats:
    """What the receiver did with the payloads it got."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: int = 0
    """Payloads that are not a valid envelope (not CBOR, a field missing or wrong)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Well-formed envelopes dropped by the signature check, per reason (``unsigned``, ``unknown
    key``, ``bad signature``)."""
    failed: int = 0
    """Payloads dropped after an unexpected error (acknowledged: one payload never stops the receiver)."""
    store_errors: int = 0
    """Appends the store could not take (disk, database down): retried, the message not acknowledged meanwhile."""
    connects: int = 0
    arrivals: list[str] = field(default_factory=list)
    """Message ids in first-arrival order (kept only with ``keep_order=True``)."""

    @property
    def rejected_total(self) -> int:
        """Envelopes dropped by the signature check, all reasons."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line of counts, as the receiver logs it when it stops."""
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.rejected.items()))
        failed = f", {self.failed} failed" if self.failed else ""
        retried = f", {self.store_errors} store errors (retried)" if self.store_errors else ""
        return (f"{self.received} received, {self.stored} stored, {self.duplicates} duplicates, "
                f"{self.malformed} malformed, {self.rejected_total} rejected{f' ({why})' if why else ''}{failed}"
                f"{retried}")


class Receiver:
    """Subscribes to ``topic`` and appends each verified envelope to ``store`` (de-duplicated).

    ``device_keys`` (key id -> verify key, :func:`edged.link.wire.trusted_keys`) are the trusted device
    keys every envelope's signature must verify with. ``None`` stores envelopes unverified (a
    warning says so): only for local experiments; the command line always verifies. ``group``
    makes it a member of that consumer group (a shared subscription).
    """

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        store: Store,
        *,
        client_id: str = "edged-receiver",
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        keep_order: bool = False,
        on_envelope: Callable[[Envelope], None] | None = None,
        reconnect_max_s: float = 10.0,
        device_keys: Mapping[str, VerifyKey] | None = None,
        reject_log_period_s: float = REJECT_LOG_PERIOD_S,
        dest: str | None = None,
        group: str | None = None,
        batch_max: int = BATCH_MAX,
        batch_bytes: int = BATCH_BYTES,
    ) -> None:
        self.host, self.port, self.topic, self.store = host, port, topic, store
        self.client_id = client_id
        self.username, self.password, self.tls_context = username, password, tls_context
        self.keep_order = keep_order
        self.on_envelope = on_envelope
        self.reconnect_max_s = reconnect_max_s
        self.device_keys = device_keys
        self.group = group
        self.batch_max, self.batch_bytes = max(1, batch_max), batch_bytes
        self.stats = ReceiverStats()
        self.drops = BoundedLog(log, reject_log_period_s)
        self.subscribed = asyncio.Event()
        self.dest = dest if dest is not None else topic_destination(topic)
        """The destination this store is for; a signed envelope addressed elsewhere is dropped."""
        if device_keys is None:
            log.warning("receiver: no trusted device keys: envelopes to %s are stored WITHOUT signature verification",
                        store.location)
        if self.dest is None:
            log.warning("receiver: topic %s names no destination: envelopes to %s are stored whatever platform "
                        "they are addressed to", topic, store.location)

    @property
    def subscription(self) -> str:
        """The topic filter subscribed to (the shared one for a group member)."""
        return shared_topic(self.topic, self.group)

    def check(self, payload: bytes) -> Envelope | None:
        """Decode and verify one payload (counted as received); ``None`` when it is dropped (counted why)."""
        self.stats.received += 1
        try:
            env = decode(payload, self.device_keys)
        except EnvelopeAuthError as err:
            self.stats.rejected[err.reason] = self.stats.rejected.get(err.reason, 0) + 1
            self.drops.warning("dropped", f"receiver: dropped a payload ({err.reason}): {err}")
            return None
        except WireError as err:
            self.stats.malformed += 1
            self.drops.warning("dropped", f"receiver: dropped a payload (malformed, {len(payload)} bytes): {err}")
            return None
        if self.dest is not None and env.dest != self.dest:
            self.stats.rejected[WRONG_DESTINATION] = self.stats.rejected.get(WRONG_DESTINATION, 0) + 1
            self.drops.warning("dropped", f"receiver: dropped envelope {env.id} ({env.kind}, {WRONG_DESTINATION}): "
                                          f"addressed to {env.dest}, this store is for {self.dest}")
            return None
        return env

    def store_envelope(self, env: Envelope, payload: bytes) -> bool:
        """Append a checked envelope durably; ``True`` if it was new. The store's ``OSError`` propagates."""
        return self.store_envelopes([(env, payload)])[0]

    def store_envelopes(self, items: list[tuple[Envelope, bytes]]) -> list[bool]:
        """Append checked envelopes durably as one batch, in order; per item ``True`` if it was new.

        The store's ``OSError`` propagates (then nothing of the batch is counted as stored).
        """
        fresh = self.store.append_many(items)
        for (env, _payload), new in zip(items, fresh, strict=True):
            if not new:
                self.stats.duplicates += 1
                continue
            self.stats.stored += 1
            if self.keep_order:
                self.stats.arrivals.append(env.id)
            if self.on_envelope is not None:
                self.on_envelope(env)
        return fresh

    def handle(self, payload: bytes) -> bool:
        """Decode, verify and store one payload; ``True`` if it was new (a store ``OSError`` propagates)."""
        env = self.check(payload)
        return env is not None and self.store_envelope(env, payload)

    async def _take(self, payloads: list[bytes], stop: asyncio.Event) -> bool:
        """Check a batch of payloads and store the good ones until durable; ``False`` when ``stop`` came first
        (then none of them is to be acknowledged).

        Payloads that do not pass :meth:`check` are dropped (counted); the rest are appended as one batch.
        """
        items: list[tuple[Envelope, bytes]] = []
        for payload in payloads:
            try:
                env = self.check(payload)
            except Exception as err:  # noqa: BLE001 - one payload never stops the receiver
                self._unexpected(payload, err)
                continue
            if env is not None:
                items.append((env, payload))
        return not items or await self._store(items, stop)

    async def _store(self, items: list[tuple[Envelope, bytes]], stop: asyncio.Event) -> bool:
        """Append ``items`` until durable, retrying store errors with backoff; ``False`` when ``stop`` came first.

        An unexpected error stores the batch one item at a time, so only the payload at fault is dropped.
        """
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(self.store_envelopes, items)
                return True
            except OSError as err:
                self.stats.store_errors += 1
                env = items[0][0]
                more = f" and {len(items) - 1} more" if len(items) > 1 else ""
                log.error("receiver: could not store %s %s%s (not acknowledged; retrying in %.1f s): %s",
                          env.kind, env.id, more, delay, err)
            except Exception as err:  # noqa: BLE001 - one payload never stops the receiver
                if len(items) == 1:
                    self._unexpected(items[0][1], err)
                    return True
                for item in items:
                    if not await self._store([item], stop):
                        return False
                return True
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return False
            except TimeoutError:
                delay = min(delay * 2, self.reconnect_max_s)

    def _unexpected(self, payload: bytes, err: Exception) -> None:
        self.stats.failed += 1
        log.error("receiver: dropped a payload (%d bytes) after an unexpected %s: %s", len(payload),
                  type(err).__name__, err)

    async def run(self, stop: asyncio.Event) -> None:
        """Receive until ``stop`` is set, reconnecting with backoff; pending drop counts are logged."""
        flusher = asyncio.ensure_future(self._flush_drops(stop))
        try:
            await self._receive(stop)
        finally:
            flusher.cancel()
            self.drops.flush()

    async def _flush_drops(self, stop: asyncio.Event) -> None:
        """Log the pending drop summary once it is due, even when no further payload arrives."""
        while not stop.is_set():
            await asyncio.sleep(min(1.0, self.drops.period_s))
            self.drops.flush(due_only=True)

    async def leave(self, stop: asyncio.Event, idle_s: float = 5.0) -> bool:
        """Retire this group member: unsubscribe, store what its session still holds, then end the session.

        ``True`` once the session is ended (no message came for ``idle_s``); ``False`` when ``stop`` came
        first or the broker could not be reached (the session is kept, and what it holds with it).
        """
        try:
            async with self._client() as client:
                await client.unsubscribe(self.subscription)
                log.info("receiver: left %s on %s:%d; storing what the session still holds", self.subscription,
                         self.host, self.port)
                messages = aiter(client.messages)
                while True:
                    try:
                        msg = await asyncio.wait_for(anext(messages), timeout=idle_s)
                    except TimeoutError:
                        break
                    if not await self._take([_payload(msg)], stop):
                        return False
                    client._client.ack(msg.mid, msg.qos)  # noqa: SLF001 - durable (or dropped): PUBACK
                    if stop.is_set():
                        return False
            async with self._client(session_expiry=0, clean_start=True):
                pass  # a clean session that expires at once: the member's session is gone
        except aiomqtt.MqttError as err:
            log.error("receiver: could not leave %s: %s (the session is kept)", self.subscription, err)
            return False
        log.info("receiver: session %s ended", self.client_id)
        return True

    def _client(self, session_expiry: int = SESSION_NEVER_EXPIRES, clean_start: bool = False) -> aiomqtt.Client:
        """An MQTT 5 client with a persistent, never-expiring session that acknowledges only when told."""
        connect = Properties(PacketTypes.CONNECT)
        connect.SessionExpiryInterval = session_expiry
        client = aiomqtt.Client(
            self.host, self.port, identifier=self.client_id, protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=clean_start, properties=connect, username=self.username, password=self.password,
            tls_context=self.tls_context, keepalive=15, max_queued_incoming_messages=0,
        )
        # aiomqtt has no manual acknowledgement of its own: the paho client under it does (set before
        # connecting, so messages queued for the session are not acknowledged on arrival either).
        client._client.manual_ack_set(True)  # noqa: SLF001
        return client

    async def _queued(self, client: aiomqtt.Client, first: aiomqtt.Message) -> list[aiomqtt.Message]:
        """``first`` and the messages already waiting behind it, in arrival order, up to the batch limits."""
        batch, size = [first], len(_payload(first))
        while len(client.messages) and len(batch) < self.batch_max and size < self.batch_bytes:
            msg = await anext(aiter(client.messages))  # queued already: no wait
            batch.append(msg)
            size += len(_payload(msg))
        return batch

    async def _receive(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            try:
                async with self._client() as client:
                    await client.subscribe(self.subscription, qos=1)
                    log.info("receiver: subscribed to %s on %s:%d", self.subscription, self.host, self.port)
                    self.stats.connects += 1
                    self.subscribed.set()
                    delay = 0.2
                    messages = aiter(client.messages)
                    stopper = asyncio.ensure_future(stop.wait())
                    try:
                        while True:
                            nxt = asyncio.ensure_future(anext(messages))
                            done, _ = await asyncio.wait({nxt, stopper}, return_when=asyncio.FIRST_COMPLETED)
                            if nxt not in done:
                                nxt.cancel()
                                return
                            batch = await self._queued(client, nxt.result())
                            if not await self._take([_payload(m) for m in batch], stop):
                                return  # stopped before they were durable: the broker redelivers them
                            for msg in batch:  # durable (or dropped): PUBACK
                                client._client.ack(msg.mid, msg.qos)  # noqa: SLF001
                    finally:
                        stopper.cancel()
            except aiomqtt.MqttError as err:
                self.subscribed.clear()
                log.info("receiver: %s; reconnecting in %.1f s", err, delay)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay * (0.5 + random.random() / 2))
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.reconnect_max_s)


def _payload(msg: aiomqtt.Message) -> bytes:
    """A message's payload as bytes (``b""`` for a payload aiomqtt decoded as something else)."""
    return bytes(msg.payload) if isinstance(msg.payload, (bytes, bytearray)) else b""


def _tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.ca or args.cert):
        return None
    ctx = ssl.create_default_context(cafile=args.ca or None)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key or None)
    return ctx


def key_files(given: list[str]) -> list[Path]:
    """The ``.pub`` files ``--device-key`` names: each file as given, each folder's ``*.pub`` files (a fleet's keys)."""
    out: list[Path] = []
    for name in given:
        path = Path(name)
        if path.is_dir():
            found = sorted(path.glob("*.pub"))
            if not found:
                raise KeyFileError(f"--device-key {path}: the folder holds no .pub file")
            out += found
        else:
            out.append(path)
    return out


def _store_identity(store: str | Path) -> str:
    """What names a store in a client id: its resolved folder, or its URL without a password."""
    folder = store_folder(store)
    return str(folder.resolve()) if folder is not None else redact(str(store))


def default_client_id(store: str | Path, topic: str) -> str:
    """A client id unique to this store (folder or URL) and topic filter, and the same at every restart."""
    digest = hashlib.blake2b(f"{_store_identity(store)}\0{topic}".encode(), digest_size=6).hexdigest()
    return f"edged-receiver-{digest}"


def member_client_id(store: str | Path, topic: str, group: str, member: str) -> str:
    """The client id of group member ``member``: the same for the same store, topic, group and member name."""
    digest = hashlib.blake2b(f"{_store_identity(store)}\0{topic}\0{group}".encode(), digest_size=6).hexdigest()
    return f"edged-receiver-{digest}-{group}-{member}"


def _destination(given: str | None, topic: str) -> tuple[str | None, str]:
    """The receiver's destination from ``--dest`` and ``--topic``, or ``None`` and one line why not."""
    named = topic_destination(topic)
    if given is None:
        if named is None:
            return None, (f"--topic {topic} names no destination (a level 'ops' or 'func.<category>'): "
                          "give --dest, the platform this store is for")
        return named, ""
    if not is_destination(given):
        return None, f"--dest {given[:40]!r} is not a destination: use 'ops' or 'func.<category>'"
    if named is not None and named != given:
        return None, f"--dest {given} but --topic {topic} names {named}"
    return given, ""


def _group_problem(args: argparse.Namespace) -> str:
    """One line saying what is wrong with ``--group``/``--member``, or ``""``."""
    if args.member is not None and args.group is None:
        return "--member names a member of a consumer group: give --group too"
    if args.group is not None and not _NAME.match(args.group):
        return f"--group {args.group[:40]!r}: letters, digits, '_', '.', '-' only (at most 64)"
    if args.member is not None and not _NAME.match(args.member):
        return f"--member {args.member[:40]!r}: letters, digits, '_', '.', '-' only (at most 64)"
    if args.leave and args.group is None:
        return "--leave retires a member of a consumer group: give --group and --member too"
    if args.topic.startswith("$share/"):
        return f"--topic {args.topic}: give the plain topic and --group NAME for a shared subscription"
    return ""


def _open_store(spec: str, keys: Mapping[str, VerifyKey], fsync: bool, wait_s: float) -> Store | None:
    """Open the store, retrying for up to ``wait_s`` while it cannot be reached (a database restarting)."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return open_store(spec, keys, fsync=fsync)
        except StoreUnavailable as err:
            if time.monotonic() + delay > deadline:
                print(f"receiver: {err}", file=sys.stderr)
                return None
            log.warning("receiver: %s; trying again in %.1f s", err, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog_name("edged_platform.receiver"), description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--topic", required=True, help="MQTT topic filter, e.g. 'edged/+/ops/#'")
    ap.add_argument("--store", required=True,
                    help="the store: a folder (one file per video) or a postgresql:// URL")
    ap.add_argument("--dest", help="the platform this store is for: 'ops' or 'func.<category>' (default: the one "
                                   "--topic names); a signed envelope addressed to another is dropped")
    ap.add_argument("--device-key", action="append", required=True, metavar="PATH",
                    help="trusted device public key (.pub from 'edged keygen device'), or a folder of them (a fleet's "
                         "keys); repeatable; envelopes not signed by one of them are dropped and counted")
    ap.add_argument("--wait-store", type=float, default=30.0, metavar="SECONDS",
                    help="how long to keep trying to open a store that cannot be reached (a database starting or "
                         "restarting) before giving up (default: 30)")
    ap.add_argument("--group", help="consumer group: subscribe to $share/GROUP/<topic>, so the group's members "
                                    "split the topic's messages")
    ap.add_argument("--member", help="this member's name in --group, part of its client id: restart a member "
                                     "under the same name to resume its session (default: the host name)")
    ap.add_argument("--leave", action="store_true",
                    help="retire this member of --group for good: unsubscribe, store what its session still holds "
                         "(until no message came for 5 s), end the session and exit")
    ap.add_argument("--client-id",
                    help="MQTT client id (default: derived from --store and --topic, and --group and --member; "
                         "stable across restarts)")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--tls", action="store_true", help="TLS with the system CA store")
    ap.add_argument("--ca", help="CA file that signs the broker's certificate")
    ap.add_argument("--cert", help="client certificate (mutual TLS)")
    ap.add_argument("--key", help="client key")
    ap.add_argument("--batch", type=int, default=BATCH_MAX, metavar="N",
                    help=f"store at most N messages together (one commit), those already waiting behind the one "
                         f"taken; acknowledged once all are durable (default: {BATCH_MAX}; 1: one at a time)")
    ap.add_argument("--fsync", action="store_true",
                    help="fsync each message stored in a folder before acknowledging it")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tls = _tls(args)
    except (OSError, ssl.SSLError) as err:
        print(f"receiver: cannot load TLS files: {err}", file=sys.stderr)
        return 2
    try:
        keys = trusted_keys(key_files(args.device_key))
    except KeyFileError as err:
        print(f"receiver: {err}", file=sys.stderr)
        return 2
    dest, problem = _destination(args.dest, args.topic)
    problem = problem or _group_problem(args) or ("" if args.batch >= 1 else f"--batch {args.batch}: at least 1")
    if dest is None or problem:
        print(f"receiver: {problem}", file=sys.stderr)
        return 2
    store = _open_store(args.store, keys, args.fsync, args.wait_store)
    if store is None:
        return 2

    def on_env(env: Envelope) -> None:
        log.info("stored %s %s video=%s image=%s (%d bytes, %.3f s after it was made)", env.kind, env.id,
                 env.video_id, env.image_id, len(env.body), time.time() - env.created)

    if args.client_id:
        client_id = args.client_id
    elif args.group:
        client_id = member_client_id(args.store, args.topic, args.group, args.member or socket.gethostname())
    else:
        client_id = default_client_id(args.store, args.topic)
    log.info("receiver: client id %s", client_id)
    receiver = Receiver(args.host, args.port, args.topic, store, client_id=client_id,
                        username=args.username, password=args.password, tls_context=tls, on_envelope=on_env,
                        device_keys=keys, dest=dest, group=args.group, batch_max=args.batch)
    log.info("receiver: storing envelopes addressed to %s in %s; trusting device key%s %s", dest, store.location,
             "s" if len(keys) > 1 else "", ", ".join(sorted(keys)))

    async def amain() -> bool:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.leave:
            return await receiver.leave(stop)
        await receiver.run(stop)
        return True

    try:
        done = asyncio.run(amain())
    finally:
        store.close()
    log.info("receiver: %s", receiver.stats.summary())
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
