"""Uplink against a real mosquitto: QoS 1 delivery, order, outage, separate sensitive channel, TLS."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from edged.config import UplinkBrokerConfig
from edged.link import wire
from edged.link.mqtt import tls_context
from edged.link.outbox import Outbox
from edged.link.uplink import Uplink, UplinkConfigError
from edged_platform.receiver import Receiver
from edged_platform.store import SegmentStore
from tests.mosquitto import Mosquitto, have_mosquitto, make_tls_files

pytestmark = pytest.mark.skipif(not have_mosquitto(), reason="mosquitto is not installed")


def make(prio: str, size: int = 50, dest: str = "ops") -> wire.Envelope:
    kind = "sensitive" if prio == "sensitive" else "package"
    return wire.make(kind, dest, prio, bytes(size), video_id="V1", image_id=None)


def uplink(broker: Mosquitto, outbox: Outbox, dest: str = "ops", **kw: object) -> Uplink:
    settings = UplinkBrokerConfig(host="127.0.0.1", port=broker.port, **kw.pop("settings", {}))  # type: ignore[arg-type]
    opts = {"device_id": "t", "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "cached_period_s": 0.05,
            "ack_timeout_s": 5.0} | kw
    return Uplink(dest, settings, outbox, **opts)  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def with_tasks(receivers: list[Receiver], runners: list[Callable[[asyncio.Event], Awaitable[None]]],
                     body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Start the receivers, wait until each is subscribed, then start the runners and run ``body``."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(r.run(stop)) for r in receivers]
    try:
        for r in receivers:
            await asyncio.wait_for(r.subscribed.wait(), timeout=10)
        tasks += [asyncio.ensure_future(run(stop)) for run in runners]
        await body(stop)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)


def test_delivers_all_in_send_order_and_acks_only_after_puback(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ob = Outbox(tmp_path / "o.db")
    store = SegmentStore(tmp_path / "ops")
    rx = Receiver("127.0.0.1", mosquitto.port, "edged/t/ops/#", store, client_id="rx-ops", keep_order=True)
    up = uplink(mosquitto, ob, cached_period_s=0.1)
    order = ["cached", "normal", "immediate"] * 6
    envs = [make(p) for p in order]
    ob.enqueue_many(envs)

    async def body(stop: asyncio.Event) -> None:
        await until(lambda: len(store) == len(envs) and ob.pending()[0] == 0, 15, "delivery")

    asyncio.run(with_tasks([rx], [up.run], body))
    by = {p: [e.id for e in envs if e.prio == p] for p in ("immediate", "normal", "cached")}
    assert rx.stats.arrivals == by["immediate"] + by["normal"] + by["cached"]
    assert rx.stats.duplicates == 0 and rx.stats.malformed == 0
    assert [e.id for e in store.iter_segment("V1")] == rx.stats.arrivals
    assert store.get(envs[0].id) == envs[0]
    st = up.status()
    assert st.acked == st.published == len(envs) and st.backlog_messages == 0 and st.eta_s == 0.0
    assert st.rate_msgs is not None and st.rate_msgs > 0


@pytest.mark.slow
def test_cached_items_leave_at_the_configured_rate_and_immediates_overtake(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ob = Outbox(tmp_path / "o.db")
    store = SegmentStore(tmp_path / "ops")
    times: dict[str, float] = {}
    rx = Receiver("127.0.0.1", mosquitto.port, "edged/t/ops/#", store, client_id="rx-c", keep_order=True,
                  on_envelope=lambda e: times.__setitem__(e.id, time.monotonic()))
    up = uplink(mosquitto, ob, cached_period_s=0.4)
    cached = [make("cached") for _ in range(4)]
    ob.enqueue_many(cached)
    late = make("immediate")

    async def body(stop: asyncio.Event) -> None:
        await until(lambda: cached[0].id in store, 5, "first cached")
        ob.enqueue(late)
        up.wake()
        await until(lambda: len(store) == 5, 10, "all")

    asyncio.run(with_tasks([rx], [up.run], body))
    gaps = [times[b.id] - times[a.id] for a, b in zip(cached, cached[1:])]
    assert all(g >= 0.35 for g in gaps), gaps  # 1 per 0.4 s (timer slack 50 ms)
    assert all(g < 1.2 for g in gaps), gaps
    assert rx.stats.arrivals.index(late.id) <= 2  # jumped ahead of the waiting cached ones


@pytest.mark.slow
def test_outage_loses_nothing_duplicates_nothing_keeps_immediate_order(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ob = Outbox(tmp_path / "o.db")
    store = SegmentStore(tmp_path / "ops")
    rx = Receiver("127.0.0.1", mosquitto.port, "edged/t/ops/#", store, client_id="rx-outage", keep_order=True,
                  reconnect_max_s=0.5)
    up = uplink(mosquitto, ob, cached_period_s=0.05)
    sent: list[wire.Envelope] = []
    enqueue_ms: list[float] = []
    states: list[bool] = []

    async def producer(stop: asyncio.Event) -> None:
        for i in range(300):  # ~4.5 s at 15 ms: the outage sits in the middle
            e = make(["immediate", "normal", "immediate", "cached"][i % 4], size=200 + i)
            t = time.perf_counter()
            assert ob.enqueue(e)
            enqueue_ms.append((time.perf_counter() - t) * 1000)
            sent.append(e)
            up.wake()
            states.append(up.connected)
            await asyncio.sleep(0.015)

    async def body(stop: asyncio.Event) -> None:
        prod = asyncio.ensure_future(producer(stop))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(mosquitto.stop)  # outage (broker saves its sessions)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(mosquitto.start)
        await prod
        await until(lambda: ob.pending()[0] == 0 and len(store) == len(sent), 20, "drain after the outage")

    asyncio.run(with_tasks([rx], [up.run], body))
    assert False in states and True in states, "the producer never saw the link down"
    assert max(enqueue_ms) < 500, "enqueue blocked while the broker was away"
    assert store.ids() == {e.id for e in sent}  # every message arrived
    assert len(rx.stats.arrivals) == len(sent)  # stored once each (duplicates dropped)
    imm = [e.id for e in sent if e.prio == "immediate"]
    assert [i for i in rx.stats.arrivals if i in set(imm)] == imm
    assert up.reconnects >= 1 and rx.stats.connects >= 2
    assert ob.stats()["acked"] == len(sent)


def test_sensitive_records_travel_only_on_their_own_connection(tmp_path: Path, mosquitto: Mosquitto) -> None:
    func_broker = Mosquitto(tmp_path / "func-broker")
    func_broker.start()
    try:
        ob = Outbox(tmp_path / "o.db")
        ops_store, face_store = SegmentStore(tmp_path / "ops"), SegmentStore(tmp_path / "face")
        ops_all = SegmentStore(tmp_path / "ops-all")
        rx_ops = Receiver("127.0.0.1", mosquitto.port, "edged/t/ops/#", ops_store, client_id="rx1")
        rx_spy = Receiver("127.0.0.1", mosquitto.port, "#", ops_all, client_id="rx-spy")  # all of the ops broker
        rx_face = Receiver("127.0.0.1", func_broker.port, "edged/t/func.face/#", face_store, client_id="rx2")
        up_ops = uplink(mosquitto, ob)
        up_face = uplink(func_broker, ob, dest="func.face")
        records = [make("sensitive", dest="func.face") for _ in range(5)]
        packages = [make("immediate") for _ in range(5)]
        ob.enqueue_many(records + packages)

        async def body(stop: asyncio.Event) -> None:
            await until(lambda: ob.pending()[0] == 0, 10, "both destinations drained")
            await until(lambda: len(face_store) == 5 and len(ops_store) == 5, 5, "receivers")

        asyncio.run(with_tasks([rx_ops, rx_spy, rx_face], [up_ops.run, up_face.run], body))
        assert face_store.ids() == {r.id for r in records}
        assert ops_store.ids() == {p.id for p in packages}
        assert all(e.kind != "sensitive" for v in ops_all.segments() for e in ops_all.iter_segment(v))
        assert up_ops.client_id != up_face.client_id
    finally:
        func_broker.stop()


@pytest.mark.slow
def test_reconnects_with_backoff_until_the_broker_appears(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "late")
    ob = Outbox(tmp_path / "o.db")
    up = uplink(broker, ob, reconnect_min_s=0.05, reconnect_max_s=0.4)
    envs = [make("immediate") for _ in range(10)]

    async def body(stop: asyncio.Event) -> None:
        ob.enqueue_many(envs)
        await asyncio.sleep(1.5)
        assert not up.connected and up.sessions == 0 and up.last_error
        assert ob.pending()[0] == 10
        await asyncio.to_thread(broker.start)
        await until(lambda: ob.pending()[0] == 0, 10, "delivery after the broker came up")

    try:
        asyncio.run(with_tasks([], [up.run], body))
    finally:
        broker.stop()
    assert up.sessions == 1 and up.acked == 10


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make test certificates")
@pytest.mark.slow
def test_mutual_tls_and_refusal_without_client_certificate(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "tls-broker", tls=tls)
    broker.start()
    try:
        ob = Outbox(tmp_path / "o.db")
        good = uplink(broker, ob, settings={"tls": True, "ca_file": str(tls.ca), "cert_file": str(tls.client_cert),
                                             "key_file": str(tls.client_key)})
        ob_bad = Outbox(tmp_path / "bad.db")
        bad = uplink(broker, ob_bad, settings={"tls": True, "ca_file": str(tls.ca), "client_id": "no-cert"},
                     connect_timeout_s=1.0)
        ob.enqueue(make("immediate"))
        ob_bad.enqueue(make("immediate"))

        async def body(stop: asyncio.Event) -> None:
            await until(lambda: ob.pending()[0] == 0, 10, "delivery over mutual TLS")
            await until(lambda: bad.last_error is not None, 5, "the refused client's error")

        asyncio.run(with_tasks([], [good.run, bad.run], body))
        assert good.sessions >= 1 and good.acked == 1
        assert bad.sessions == 0 and bad.last_error and ob_bad.pending()[0] == 1
    finally:
        broker.stop()
    with pytest.raises(UplinkConfigError, match="ca_file"):
        tls_context(UplinkBrokerConfig(host="x", tls=True, ca_file=str(tmp_path / "missing.pem")), "uplink ops")


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd needed")
def test_username_password(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "rsu", "s3cret"], check=True, capture_output=True)
    broker = Mosquitto(tmp_path / "pw-broker", password_file=pw)
    broker.start()
    try:
        ob, ob_bad = Outbox(tmp_path / "o.db"), Outbox(tmp_path / "b.db")
        good = uplink(broker, ob, settings={"username": "rsu", "password": "s3cret"})
        bad = uplink(broker, ob_bad, settings={"username": "rsu", "password": "wrong", "client_id": "bad"})
        ob.enqueue(make("normal"))
        ob_bad.enqueue(make("normal"))

        async def body(stop: asyncio.Event) -> None:
            await until(lambda: ob.pending()[0] == 0, 10, "delivery with credentials")
            await asyncio.sleep(0.3)

        asyncio.run(with_tasks([], [good.run, bad.run], body))
        assert good.acked == 1 and bad.sessions == 0 and ob_bad.pending()[0] == 1
        assert "s3cret" not in (bad.last_error or "")
    finally:
        broker.stop()


def test_a_burst_acknowledged_within_a_few_milliseconds_has_a_rate() -> None:
    from edged.link.uplink import RateMeter
    meter = RateMeter(10.0)
    assert meter.rates(0.0) == (None, None)
    meter.busy(True, 100.0)
    for _ in range(18):
        meter.add(1000, 100.002)
    meter.busy(False, 100.003)
    bps, msgs = meter.rates(100.5)
    assert msgs is not None and msgs > 0 and bps is not None and bps > 0
