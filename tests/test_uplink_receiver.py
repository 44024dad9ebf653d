"""Platform side: SegmentStore (one file per video, de-dup, image lookup) and the receiver tool."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edged import config as edged_config
from edged.core.keys import generate_device_key, load_signing_key
from edged.link import wire
from edged.link.destinations import destination
from edged.link.outbox import Outbox
from edged.link.uplink import Uplink, quality_for_rate
from edged_platform.receiver import Receiver
from edged_platform.store import SegmentStore
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parent.parent


def pkg(video: str, image: str | None = None, kind: str = "package") -> wire.Envelope:
    return wire.make(kind, "ops", "normal", os.urandom(64), video_id=video, image_id=image)


def test_one_file_per_video_dedup_and_lookup(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path)
    a1, a2, b1 = pkg("VA", "I1"), pkg("VA", "I2"), pkg("VB", "I1", kind="event")
    assert store.append(a1) and store.append(a2) and store.append(b1)
    assert not store.append(a1) and store.duplicates == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["VA.cbors", "VB.cbors"]
    assert store.segments() == ["VA", "VB"]
    assert list(store.iter_segment("VA")) == [a1, a2]
    assert store.get_image("I1") == a1  # kind "package" by default
    assert store.by_image("I1") == [a1, b1]
    assert store.get(b1.id) == b1 and store.get("nope") is None
    again = SegmentStore(tmp_path)  # indexes rebuilt from the files
    assert again.ids() == {a1.id, a2.id, b1.id} and not again.append(a2)


def test_torn_tail_is_skipped_and_kept_as_damage_on_next_append(tmp_path: Path) -> None:
    store = SegmentStore(tmp_path)
    a = pkg("V")
    store.append(a)
    torn = wire.encode(pkg("V"))[:20]
    with open(tmp_path / "V.cbors", "ab") as f:
        f.write(torn)  # a writer killed mid-append
    s2 = SegmentStore(tmp_path)
    assert s2.torn_tails == 1 and list(s2.iter_segment("V")) == [a]
    b = pkg("V")
    assert s2.append(b)
    assert s2.torn_tails == 0 and len(s2.damaged) == 1
    again = SegmentStore(tmp_path)
    assert [e.id for e in again.iter_segment("V")] == [a.id, b.id]
    assert [(d.offset, d.length) for d in again.damaged] == [(len(a.to_bytes()), len(torn))]  # skipped, never cut


def test_receiver_drops_malformed_payloads_and_counts_duplicates(tmp_path: Path) -> None:
    rx = Receiver("127.0.0.1", 1, "t", SegmentStore(tmp_path), keep_order=True)
    e = pkg("V")
    assert rx.handle(wire.encode(e)) and not rx.handle(wire.encode(e))
    assert not rx.handle(b"garbage")
    assert (rx.stats.stored, rx.stats.duplicates, rx.stats.malformed) == (1, 1, 1)


def test_receiver_cli_stores_what_the_uplink_sends(tmp_path: Path, mosquitto: Mosquitto) -> None:
    store_dir = tmp_path / "platform-ops"
    dev = generate_device_key(tmp_path / "keys" / "device")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged_platform.receiver", "--host", "127.0.0.1", "--port", str(mosquitto.port),
         "--topic", "edged/+/ops/#", "--store", str(store_dir), "--client-id", "cli-rx",
         "--device-key", str(dev.public)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for the subscription (the receiver logs it)
            if "subscribed to" in line:
                break
        else:
            raise AssertionError("receiver exited before subscribing")
        ob = Outbox(tmp_path / "o.db", signing_key=load_signing_key(dev.private))
        envs = [pkg("V7", f"I{i}") for i in range(5)]
        ob.enqueue_many(envs)
        cfg = edged_config.from_dict({"device": {"id": "rsu-9"}, "uplink": {"ops": {"port": mosquitto.port}}})
        up = Uplink.from_config(cfg, "ops", ob)
        assert up.topic("package") == "edged/rsu-9/ops/package"

        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.ensure_future(up.run(stop))
            while ob.pending()[0]:
                await asyncio.sleep(0.02)
            stop.set()
            await task

        asyncio.run(main())
        deadline = time.monotonic() + 5
        while len(SegmentStore(store_dir)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    store = SegmentStore(store_dir, device_keys=wire.trusted_keys([dev.public]))
    assert [e.id for e in store.iter_segment("V7")] == [e.id for e in envs]
    got = store.get_image("I3")
    assert got is not None and got.signed and got.body == envs[3].body and got.id == envs[3].id
    assert "5 stored" in err and "0 rejected" in err


def test_one_uplink_per_destination(tmp_path: Path) -> None:
    from edged.runtime.app import uplink_destinations

    cfg = edged_config.from_dict({"uplink": {"enabled": True,
                                             "functional": {"face": {"port": 1884}, "plate": {"host": "police"}}}})
    ob = Outbox(tmp_path / "o.db")
    ups = [Uplink.from_config(cfg, d, ob) for d in uplink_destinations(cfg)]
    assert [u.dest for u in ups] == ["ops", destination("face"), "func.plate"]
    assert len({u.client_id for u in ups}) == 3
    assert ups[2].broker.host == "police" and ups[1].broker.port == 1884
    assert ups[0].cached_period_s == cfg.select.cached_period_s
    with pytest.raises(ValueError, match="no uplink configured"):
        Uplink.from_config(cfg, "func.bike", Outbox(tmp_path / "p.db"))


def test_quality_follows_the_measured_rate() -> None:
    assert quality_for_rate(None, (50, 90), 1e6) == 90
    assert quality_for_rate(0.0, (50, 90), 1e6) == 50
    assert quality_for_rate(5e5, (50, 90), 1e6) == 70
    assert quality_for_rate(5e6, (50, 90), 1e6) == 90


def test_the_stats_document_carries_each_links_status(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A running daemon's remote ``stats`` reply has every destination's connection, acks and backlog
    (``LinkStatus`` used to reach no message)."""
    from edged.remote import load_startup_config
    from edged.remote.commands import MQTT_ACCESS, RemoteControl
    from edged.runtime.app import UplinkService
    from tests.remote_rig import running_daemon, write_config

    path = write_config(tmp_path, f'[uplink]\nenabled = true\nops = {{ port = {mosquitto.port} }}\n'
                                  f'functional = {{ face = {{ port = {mosquitto.port} }} }}\n')
    ob = Outbox(tmp_path / "o.db")

    def services(startup: object) -> list[UplinkService]:
        cfg = load_startup_config(path).config
        return [UplinkService(Uplink.from_config(cfg, d, ob)) for d in ("ops", "func.face")]

    async def main() -> dict:
        async with running_daemon(path, services) as (daemon, startup):
            for env in (pkg("V"), pkg("V"), wire.make("sensitive", "func.face", "sensitive", b"sealed", video_id="V")):
                ob.enqueue(env)
            for sv in daemon.services:
                sv.uplink.wake()
            t0 = time.monotonic()
            while ob.pending()[0] and time.monotonic() - t0 < 10:
                await asyncio.sleep(0.02)
            for sv in daemon.services:  # the rows go before each link counts its acks
                await sv.uplink.wait_acks()
            control = RemoteControl.from_startup(startup)
            control.attach(daemon)
            return await control.handle({"cmd": "stats"}, "test", MQTT_ACCESS)

    stats = asyncio.run(main())
    assert stats["ok"], stats
    links = stats["links"]
    assert sorted(links) == ["func.face", "ops"]
    assert links["ops"]["acked"] == 2 and links["func.face"]["acked"] == 1
    assert links["ops"]["connected"] and links["ops"]["backlog_messages"] == 0 and links["ops"]["eta_s"] == 0.0


@pytest.mark.slow
def test_ops_and_functional_receivers_get_distinct_stable_client_ids(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """The README's two receiver commands, run with default ids on one broker, do not kick each other off."""
    from edged_platform.receiver import default_client_id

    ops, func = tmp_path / "platform" / "ops", tmp_path / "platform" / "func.face"
    assert default_client_id(ops, "edged/+/ops/#") != default_client_id(func, "edged/+/func.face/#")
    assert default_client_id(ops, "edged/+/ops/#") == default_client_id(ops, "edged/+/ops/#")
    dev = generate_device_key(tmp_path / "keys" / "device")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "edged_platform.receiver", "--host", "127.0.0.1", "--port", str(mosquitto.port),
             "--topic", topic, "--store", str(store), "--device-key", str(dev.public)],
            cwd=ROOT, stderr=subprocess.PIPE, text=True,
        )
        for store, topic in ((ops, "edged/+/ops/#"), (func, "edged/+/func.face/#"))
    ]
    try:
        for proc in procs:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "subscribed to" in line:
                    break
            else:
                raise AssertionError("receiver exited before subscribing")
        time.sleep(1.5)
        assert all(proc.poll() is None for proc in procs)
        assert "already connected" not in mosquitto.log_text(), "one receiver took the other's session"
    finally:
        for proc in procs:
            proc.terminate()
            proc.communicate(timeout=20)
