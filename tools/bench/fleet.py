"""Fleet load test: many simulated devices, one broker, a consumer group of 1, 2 or 4 receivers.

    nice -n 10 python -m tools.bench.fleet [--devices 60] [--seconds 30] [--receivers 1,2,4]
        [--stores file,postgresql] [--backlog 3000] [--wait 120] [--out fleet.json]

Each simulated device has its own MQTT connection and publishes signed envelopes as a device's
uplink does (QoS 1, the next one after the broker's PUBACK): an upload ``package`` of 30-60 KB every
``--package-period`` seconds and small ``event`` records (200-400 bytes) ``--records-per-s`` times
a second, each video ``--video-s`` long. Receivers run as processes of ``edged_platform.receiver
--group`` (real mosquitto, the real file store or a real PostgreSQL server on loopback). Per store
and group size:

* steady: the fleet at its rate for ``--seconds``; one receiver is SIGKILLed a third of the way in
  and restarted 2 s later, and (PostgreSQL) the database is stopped at half way for 3 s. Reported:
  messages published and stored, stored messages/s, p50/p99 delay from the envelope's creation to
  its being durable (the receivers log it as they store), how late the publishers were (p99),
  duplicates dropped by the receivers, duplicates in the store, lost (published, never stored);
* drain: the receivers stopped, ``--backlog`` messages published (queued at the broker for the
  group's members), the receivers started: the stored messages/s of the backlog (the group's capacity).

Everything is bounded (devices, seconds, backlog, a drain timeout) and on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
from nacl.signing import SigningKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.core.keys import generate_device_key, load_signing_key
from edged.link import wire
from edged_platform.receiver import member_client_id
from edged_platform.store import SegmentStore
from edged_platform.stores import Store, is_url, open_store
from edged_sim.broker import Broker
from edged_sim.pgserver import PgServer, have_postgres

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "edged/+/ops/#"
GROUP = "fleet"
STORED = re.compile(r"stored \S+ (\S+) .*\(\d+ bytes, (-?[0-9.]+) s after it was made\)")
SUMMARY = re.compile(r"receiver: (\d+) received, (\d+) stored, (\d+) duplicates")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a live process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ReceiverProcess:
    """One ``edged_platform.receiver`` process, a member of a consumer group; its log in ``folder``."""

    def __init__(self, folder: Path, port: int, store: str, device_keys: list[Path], *,
                 group: str | None = GROUP, member: str = "0") -> None:
        self.folder, self.port, self.store, self.device_keys = folder, port, store, device_keys
        self.group, self.member = group, member
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.cpu_s = 0.0
        """CPU seconds of its runs that ended."""

    def start(self) -> None:
        """Start it; :meth:`wait_subscribed` waits for its subscription."""
        log = self.folder / f"receiver-{self.member}-{len(self.logs)}.log"
        self.logs.append(log)
        cmd = [sys.executable, "-m", "edged_platform.receiver", "--port", str(self.port), "--topic", TOPIC,
               "--store", self.store]
        if self.group:
            cmd += ["--group", self.group, "--member", self.member]
        for key in self.device_keys:
            cmd += ["--device-key", str(key)]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)

    def wait_subscribed(self, timeout_s: float = 20.0) -> None:
        """Wait until the current run logged its subscription."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.logs[-1].read_text(errors="replace")
            if "subscribed to" in text:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"receiver {self.member} exited: {text[-800:]}")
            time.sleep(0.05)
        raise RuntimeError(f"receiver {self.member} did not subscribe in {timeout_s:g} s")

    def kill(self) -> None:
        """SIGKILL: nothing flushed, nothing acknowledged that was not already."""
        if self.proc is not None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait (its summary line is logged)."""
        if self.proc is not None and self.proc.poll() is None:
            self.cpu_s += cpu_seconds(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        """Every run's log, concatenated."""
        return "".join(p.read_text(errors="replace") for p in self.logs)

    def delays(self) -> list[float]:
        """Seconds from each stored envelope's creation to its being durable, as logged."""
        return [float(m.group(2)) for m in STORED.finditer(self.text())]

    def duplicates(self) -> int:
        """Duplicates dropped, from the summary lines of the runs that ended cleanly."""
        return sum(int(m.group(3)) for m in SUMMARY.finditer(self.text()))


@dataclass
class Device:
    """A simulated roadside unit: its name, key, and counters of the video it is in."""

    name: str
    key: SigningKey
    video: int = 0
    seq: int = 0


@dataclass
class Load:
    """What each device sends: a package every ``package_period_s``, ``records_per_s`` small records."""

    package_period_s: float = 2.0
    records_per_s: float = 3.0
    video_s: float = 60.0
    package_bytes: tuple[int, int] = (30_000, 60_000)
    record_bytes: tuple[int, int] = (200, 400)

    def messages(self, rng: random.Random) -> Iterator[tuple[float, str, int]]:
        """``(seconds from the device's start, kind, body bytes)`` of its messages in time order, without end."""
        schedule = [(rng.uniform(0, self.package_period_s), "package"), (rng.expovariate(self.records_per_s), "event")]
        while True:
            schedule.sort()
            at, kind = schedule.pop(0)
            yield at, kind, rng.randint(*(self.package_bytes if kind == "package" else self.record_bytes))
            schedule.append((at + (self.package_period_s if kind == "package" else rng.expovariate(self.records_per_s)),
                             kind))

    def sample(self, rng: random.Random) -> tuple[str, int]:
        """One message's kind and body size, drawn in the profile's proportions (for the backlog)."""
        kind = "package" if rng.random() < 1.0 / (1.0 + self.records_per_s * self.package_period_s) else "event"
        return kind, rng.randint(*(self.package_bytes if kind == "package" else self.record_bytes))


@dataclass
class Trace:
    """A real device's outbox replayed: every message's size at its offset from the first, looped;
    each simulated device starts at its own place in the loop. Everything goes to the ops group, so
    sealed records (which the wire keeps off ``ops``) are sent as events of their size: a receiver's
    work for a message does not depend on its kind."""

    rows: list[tuple[float, str, int]]
    period_s: float
    video_s: float = 60.0

    @classmethod
    def from_outbox(cls, path: Path) -> Trace:
        """The messages an ``edged run`` left in its outbox file (uplink off: all it made)."""
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            found = conn.execute("SELECT created, kind, size FROM messages WHERE created IS NOT NULL "
                                 "ORDER BY created, seq").fetchall()
        if len(found) < 2:
            raise ValueError(f"{path}: fewer than two messages with a creation time to replay")
        t0 = float(found[0][0])
        rows = [(float(t) - t0, "event" if kind == "sensitive" else str(kind), int(size)) for t, kind, size in found]
        return cls(rows, rows[-1][0] + rows[-1][0] / (len(rows) - 1))

    def messages(self, rng: random.Random) -> Iterator[tuple[float, str, int]]:
        """As :meth:`Load.messages`: the outbox's messages from a random place in the loop on."""
        phase = rng.uniform(0, self.period_s)
        lap = 0
        while True:
            for t, kind, size in self.rows:
                at = lap * self.period_s + t - phase
                if at >= 0:
                    yield at, kind, size
            lap += 1

    def sample(self, rng: random.Random) -> tuple[str, int]:
        """One of the outbox's messages' kind and size."""
        _, kind, size = self.rows[rng.randrange(len(self.rows))]
        return kind, size

    def describe(self) -> str:
        """Messages a second and bytes a second of one device, by kind (sealed records among the events)."""
        counts: dict[str, list[int]] = {}
        for _, kind, size in self.rows:
            counts.setdefault(kind, []).append(size)
        parts = [f"{kind} {len(v) / self.period_s:.2f}/s x {sum(v) / len(v) / 1000:.1f} KB"
                 for kind, v in sorted(counts.items())]
        total = sum(size for _, _, size in self.rows) / self.period_s
        return f"{len(self.rows) / self.period_s:.2f} messages/s, {total / 1e6:.3f} MB/s a device ({'; '.join(parts)})"


Profile = Load | Trace


@dataclass
class Published:
    """Message ids the broker acknowledged, and how late each publish was against its schedule."""

    ids: set[str] = field(default_factory=set)
    lateness: list[float] = field(default_factory=list)
    bytes: int = 0


def envelope(dev: Device, kind: str, size: int, started: float, video_s: float) -> bytes:
    """One signed envelope of ``dev`` (its video changes every ``video_s``), body of ``size`` random bytes."""
    video = int((time.time() - started) // video_s)
    dev.seq += 1
    env = wire.make(kind, "ops", "normal", random.randbytes(size), video_id=f"{dev.name}-v{video}",
                    image_id=f"{dev.name}-i{dev.seq}" if kind == "package" else None, device=dev.name)
    return wire.encode(env, dev.key)


async def run_device(port: int, dev: Device, load: Profile, until: float, out: Published, started: float) -> None:
    """Publish ``dev``'s messages on their schedule until ``until`` (monotonic); QoS 1, one at a time."""
    rng = random.Random(dev.name)
    t0 = time.monotonic()
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"fleet-{dev.name}", keepalive=30) as client:
        for at, kind, size in load.messages(rng):
            due = t0 + at
            if due >= until:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            out.lateness.append(time.monotonic() - due)
            payload = envelope(dev, kind, size, started, load.video_s)
            await client.publish(f"edged/{dev.name}/ops/{kind}", payload, qos=1, timeout=30)
            out.ids.add(wire.decode(payload).id)
            out.bytes += len(payload)


async def publish_all(port: int, payloads: list[tuple[str, bytes]], connections: int = 8) -> None:
    """Publish ``(topic, payload)`` pairs with QoS 1 over a few connections, each awaiting its PUBACK."""
    async def one(part: list[tuple[str, bytes]], n: int) -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"fleet-backlog-{n}") as client:
            for topic, payload in part:
                await client.publish(topic, payload, qos=1, timeout=30)

    await asyncio.gather(*(one(payloads[n::connections], n) for n in range(connections)))


def stored_counts(store: Store) -> tuple[set[str], int]:
    """The store's message ids and how many items it holds (more than the ids: a duplicate was stored)."""
    store.refresh()
    items = sum(1 for video in store.segments() for _ in store.iter_segment(video))
    return store.ids(), items


def wait_stored(spec: str, keys: dict, want: set[str], timeout_s: float) -> float:
    """Wait until every id of ``want`` is in the store; the time it took (``timeout_s`` if it did not)."""
    t0 = time.monotonic()
    with IdWatch(spec, keys) as watch:
        while time.monotonic() - t0 < timeout_s:
            if want <= watch.ids():
                return time.monotonic() - t0
            time.sleep(0.2)
    return timeout_s


class IdWatch:
    """The message ids a store holds, read cheaply while receivers write: a folder's files indexed as
    they grow (each item verified once), a database's message ids column (unverified: the final count verifies)."""

    def __init__(self, spec: str, keys: dict) -> None:
        self.spec = spec
        self._conn: psycopg.Connection[Any] | None = None
        self._files: SegmentStore | None = None
        if is_url(spec):
            self._conn = psycopg.connect(spec, autocommit=True)
        else:
            self._files = SegmentStore(spec, device_keys=keys)

    def ids(self) -> set[str]:
        """The ids stored so far."""
        if self._files is not None:
            return self._files.ids()
        assert self._conn is not None  # every id: concurrent inserts commit out of their seq order
        return {r[0] for r in self._conn.execute("SELECT message_id FROM store_envelopes").fetchall()}

    def __enter__(self) -> IdWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()


def stored_ids(spec: str, keys: dict) -> set[str]:
    """The message ids in the store now."""
    with IdWatch(spec, keys) as watch:
        return set(watch.ids())


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Result:
    """One store and group size: the steady run and the drain."""

    store: str
    receivers: int
    devices: int
    seconds: float
    published: int
    published_mb: float
    stored: int
    stored_per_s: float
    delay_p50_s: float
    delay_p99_s: float
    publish_late_p99_s: float
    duplicates_dropped: int
    duplicates_stored: int
    lost: int
    receiver_cpu_ms_per_msg: float = 0.0
    """CPU the receivers used per message stored (steady run and drain)."""
    broker_cpu_ms_per_msg: float = 0.0
    """CPU mosquitto used per message published (in and out)."""
    stored_by: list[int] = field(default_factory=list)
    """Messages each receiver logged as stored (all its runs)."""
    drain_messages: int = 0
    drain_per_s: float = 0.0
    events: list[str] = field(default_factory=list)


@dataclass
class Rig:
    """The broker, the database server and the device keys of one bench run."""

    folder: Path
    broker: Broker
    pg: PgServer | None
    keys: list[SigningKey]
    key_files: list[Path]


@contextmanager
def rig(folder: Path, with_postgres: bool, n_keys: int = 4) -> Iterator[Rig]:
    """Start mosquitto (and PostgreSQL) in ``folder``; stop them after."""
    broker = Broker(folder / "broker")
    broker.start()
    pg = PgServer(folder / "pg") if with_postgres else None
    try:
        if pg is not None:
            pg.start()
        made = [generate_device_key(folder / "keys" / f"device{i}") for i in range(n_keys)]
        yield Rig(folder, broker, pg, [load_signing_key(k.private) for k in made], [k.public for k in made])
    finally:
        broker.stop()
        if pg is not None:
            pg.remove()


def new_store(r: Rig, kind: str, name: str) -> str:
    """A fresh, empty store of ``kind`` (``file`` or ``postgresql``) for one run."""
    if kind == "postgresql":
        assert r.pg is not None
        return r.pg.new_database(name)
    folder = r.folder / "stores" / name
    folder.mkdir(parents=True)
    return str(folder)


def run_fleet(r: Rig, kind: str, n_receivers: int, devices: int, seconds: float, load: Profile, *,
              backlog: int = 0, restart: bool = True, drain_timeout_s: float = 60.0) -> Result:
    """One steady run (with a receiver killed and restarted, and the database stopped, mid-run) and one drain."""
    name = f"{kind[:4]}_{n_receivers}_{devices}_{int(time.time() * 1000) % 10**8}"
    spec = new_store(r, kind, name)
    work = r.folder / "runs" / name
    work.mkdir(parents=True)
    # a group of its own: the members of an earlier run keep their sessions (and would get their share)
    receivers = [ReceiverProcess(work, r.broker.port, spec, r.key_files, group=f"{GROUP}-{name}", member=str(i))
                 for i in range(n_receivers)]
    try:
        return _run(r, kind, spec, receivers, devices, seconds, load, backlog, restart, drain_timeout_s)
    finally:
        for rx in receivers:
            rx.stop()
        asyncio.run(end_sessions(r.broker.port, receivers))


async def end_sessions(port: int, receivers: list[ReceiverProcess]) -> None:
    """End the stopped members' persistent sessions (a clean connect with an immediate expiry): a
    session left behind keeps its shared subscription, and the broker would queue a share of every
    later run's messages for it."""
    for rx in receivers:
        if rx.group is None:
            continue
        ident = member_client_id(rx.store, TOPIC, rx.group, rx.member)
        async with aiomqtt.Client("127.0.0.1", port, identifier=ident, protocol=aiomqtt.ProtocolVersion.V5,
                                  clean_start=True, properties=_expire_now()):
            pass


def _expire_now() -> Properties:
    """CONNECT properties of a session that ends with the connection."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    return props


def _run(r: Rig, kind: str, spec: str, receivers: list[ReceiverProcess], devices: int, seconds: float, load: Profile,
         backlog: int, restart: bool, drain_timeout_s: float) -> Result:
    n_receivers = len(receivers)
    trusted = wire.trusted_keys(r.key_files)
    broker_cpu = cpu_seconds(r.broker.proc.pid) if r.broker.proc is not None else 0.0
    for rx in receivers:
        rx.start()
    for rx in receivers:
        rx.wait_subscribed()
    fleet = [Device(f"rsu{i:04d}", r.keys[i % len(r.keys)]) for i in range(devices)]
    out = Published()
    events: list[str] = []

    async def steady() -> None:
        t0 = time.monotonic()
        until = t0 + seconds
        started = time.time()
        tasks = [asyncio.ensure_future(run_device(r.broker.port, d, load, until, out, started)) for d in fleet]
        if restart:
            await asyncio.sleep(seconds / 3)
            receivers[0].kill()
            events.append(f"{time.monotonic() - t0:.1f} s: receiver 0 SIGKILLed")
            await asyncio.sleep(2.0)
            receivers[0].start()
            events.append(f"{time.monotonic() - t0:.1f} s: receiver 0 restarted")
            if r.pg is not None and kind == "postgresql":
                await asyncio.sleep(max(0.0, t0 + seconds / 2 - time.monotonic()))
                await asyncio.to_thread(r.pg.stop)
                events.append(f"{time.monotonic() - t0:.1f} s: database stopped")
                await asyncio.sleep(3.0)
                await asyncio.to_thread(r.pg.start)
                events.append(f"{time.monotonic() - t0:.1f} s: database started")
        await asyncio.gather(*tasks)

    t_start = time.monotonic()
    asyncio.run(steady())
    wait_stored(spec, trusted, out.ids, drain_timeout_s)
    elapsed = time.monotonic() - t_start
    delays = [d for rx in receivers for d in rx.delays()]
    steady_stored = len(stored_ids(spec, trusted) & out.ids)
    result = Result(
        store=kind, receivers=n_receivers, devices=devices, seconds=seconds, published=len(out.ids),
        published_mb=out.bytes / 1e6, stored=steady_stored, stored_per_s=steady_stored / elapsed,
        delay_p50_s=percentile(delays, 0.5), delay_p99_s=percentile(delays, 0.99),
        publish_late_p99_s=percentile(out.lateness, 0.99), duplicates_dropped=0, duplicates_stored=0,
        lost=0, events=events, stored_by=[len(rx.delays()) for rx in receivers],
    )
    want = set(out.ids)
    if backlog:
        want |= drain(r, result, spec, receivers, fleet, load, backlog, drain_timeout_s)
    wait_stored(spec, trusted, want, drain_timeout_s)  # what a timeout left waiting at the broker
    for rx in receivers:
        rx.stop()
    store = open_store(spec, trusted)
    ids, items = stored_counts(store)
    store.close()
    result.lost = len(want - ids)
    result.receiver_cpu_ms_per_msg = 1000 * sum(rx.cpu_s for rx in receivers) / max(len(ids), 1)
    if r.broker.proc is not None:
        result.broker_cpu_ms_per_msg = 1000 * (cpu_seconds(r.broker.proc.pid) - broker_cpu) / max(len(want), 1)
    result.duplicates_stored = items - len(ids)
    result.duplicates_dropped = sum(rx.duplicates() for rx in receivers)
    return result


def drain(r: Rig, result: Result, spec: str, receivers: list[ReceiverProcess], fleet: list[Device], load: Profile,
          backlog: int, timeout_s: float) -> set[str]:
    """Publish ``backlog`` messages while the group is stopped, start it, time until all are stored; their ids."""
    for rx in receivers:
        rx.stop()
    started = time.time()
    payloads: list[tuple[str, bytes]] = []
    rng = random.Random(7)
    for n in range(backlog):
        dev = fleet[n % len(fleet)]
        kind, size = load.sample(rng)
        payloads.append((f"edged/{dev.name}/ops/{kind}", envelope(dev, kind, size, started, load.video_s)))
    asyncio.run(publish_all(r.broker.port, payloads))
    want = {wire.decode(p).id for _, p in payloads}
    trusted = wire.trusted_keys(r.key_files)
    before = stored_ids(spec, trusted)
    for rx in receivers:
        rx.start()
    took = wait_stored(spec, trusted, want | before, timeout_s)
    done = stored_ids(spec, trusted) - before
    result.drain_messages = backlog
    result.drain_per_s = len(done) / max(took, 1e-9)
    return want


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    head = ("| store | receivers | devices | published (MB) | stored/s | delay p50 / p99 (s) | publishers late p99 (s) "
            "| duplicates dropped / stored | lost | drain msg/s (backlog) | CPU ms/msg receivers, broker |")
    rows = [head, "|" + "---|" * 11]
    for x in results:
        rows.append(f"| {x.store} | {x.receivers} | {x.devices} | {x.published} ({x.published_mb:.0f}) "
                    f"| {x.stored_per_s:.0f} | {x.delay_p50_s:.3f} / {x.delay_p99_s:.2f} | {x.publish_late_p99_s:.2f} "
                    f"| {x.duplicates_dropped} / {x.duplicates_stored} | {x.lost} "
                    f"| {x.drain_per_s:.0f} ({x.drain_messages}) "
                    f"| {x.receiver_cpu_ms_per_msg:.2f}, {x.broker_cpu_ms_per_msg:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--receivers", default="1,2,4", help="group sizes, comma-separated")
    ap.add_argument("--stores", default="file,postgresql", help="'file', 'postgresql' or both")
    ap.add_argument("--backlog", type=int, default=3000, help="messages of the drain (0: no drain)")
    ap.add_argument("--package-period", type=float, default=2.0, help="seconds between a device's packages")
    ap.add_argument("--records-per-s", type=float, default=3.0, help="small records a second per device")
    ap.add_argument("--wait", type=float, default=120.0, help="longest wait for a run's messages to be stored (s)")
    ap.add_argument("--replay", type=Path, metavar="OUTBOX",
                    help="replay a real device's outbox (an `edged run` outbox.sqlite, uplink off) instead of the "
                         "synthetic profile: each message's kind and size at its own time, looped")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    kinds = [k.strip() for k in args.stores.split(",") if k.strip()]
    if "postgresql" in kinds and not have_postgres():
        print("fleet: PostgreSQL is not installed: leaving the postgresql store out", file=sys.stderr)
        kinds.remove("postgresql")
    sizes = [int(n) for n in args.receivers.split(",")]
    load: Profile = Load(package_period_s=args.package_period, records_per_s=args.records_per_s)
    if args.replay is not None:
        try:
            load = Trace.from_outbox(args.replay)
        except (sqlite3.Error, ValueError) as err:
            print(f"fleet: --replay {args.replay}: {err}", file=sys.stderr)
            return 2
        print(f"fleet: replaying {args.replay}: {load.describe()}", file=sys.stderr)
    results = []
    load1 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edged-fleet-") as d, rig(Path(d), "postgresql" in kinds) as r:
        for kind in kinds:
            for n in sizes:
                res = run_fleet(r, kind, n, args.devices, args.seconds, load, backlog=args.backlog,
                                drain_timeout_s=args.wait)
                print(json.dumps(asdict(res)), flush=True)
                results.append(res)
    print(table(results))
    print(f"load average (1 min) at start {load1:.2f}, at end {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    if args.out:
        args.out.write_text(json.dumps([asdict(x) for x in results], indent=1) + "\n")
    return 0 if all(x.lost == 0 and x.duplicates_stored == 0 for x in results) else 1


if __name__ == "__main__":
    sys.exit(main())
