"""The fleet load test, short: simulated devices, one broker, a consumer group of receivers, a member
SIGKILLed and restarted (and the database stopped) mid-run; nothing lost, nothing stored twice."""

from __future__ import annotations

import asyncio
import random
from itertools import islice
from pathlib import Path

import aiomqtt
import pytest

from edged.core.keys import generate_device_key, load_signing_key
from edged.link import wire
from edged.link.outbox import Outbox
from edged_platform.receiver import member_client_id
from edged_sim.pgserver import PgServer
from tests.mosquitto import Mosquitto
from tools.bench.fleet import TOPIC, Load, ReceiverProcess, Result, Rig, Trace, end_sessions, run_fleet, table

LOAD = Load(package_period_s=1.0, records_per_s=4.0, package_bytes=(30_000, 60_000))


def rig(tmp_path: Path, broker: Mosquitto, pg: PgServer | None) -> Rig:
    made = [generate_device_key(tmp_path / "keys" / f"device{i}") for i in range(2)]
    return Rig(tmp_path, broker, pg, [load_signing_key(k.private) for k in made], [k.public for k in made])


def check(result: Result) -> None:
    assert result.published > 50, table([result])
    assert result.lost == 0, table([result])
    assert result.duplicates_stored == 0, table([result])
    assert result.stored == result.published, table([result])
    assert all(result.stored_by), f"a member stored nothing: {result.stored_by}"
    assert result.delay_p99_s == result.delay_p99_s  # measured (not NaN)


@pytest.mark.slow
def test_two_receivers_over_one_folder_lose_nothing_across_a_member_kill(tmp_path: Path, mosquitto: Mosquitto) -> None:
    result = run_fleet(rig(tmp_path, mosquitto, None), "file", 2, devices=8, seconds=4.0, load=LOAD, backlog=150,
                       drain_timeout_s=30)
    check(result)
    assert any("SIGKILL" in e for e in result.events)


@pytest.mark.slow
def test_two_receivers_over_postgresql_lose_nothing_across_a_member_kill_and_a_database_restart(
        tmp_path: Path, mosquitto: Mosquitto, pg_server: PgServer) -> None:
    result = run_fleet(rig(tmp_path, mosquitto, pg_server), "postgresql", 2, devices=8, seconds=6.0, load=LOAD,
                       backlog=150, drain_timeout_s=30)
    check(result)
    assert any("database stopped" in e for e in result.events) and any("database started" in e for e in result.events)


def test_a_replayed_outbox_keeps_each_message_s_size_and_time_and_loops(tmp_path: Path) -> None:
    made = [wire.make("package", "ops", "normal", bytes(5000), image_id="i1", created=100.0),
            wire.make("event", "ops", "normal", bytes(300), created=100.5),
            wire.make("event", "ops", "normal", bytes(700), created=101.0)]
    with Outbox(tmp_path / "outbox.sqlite") as box:
        box.enqueue_many(made)
    trace = Trace.from_outbox(tmp_path / "outbox.sqlite")
    assert [(t, kind) for t, kind, _ in trace.rows] == [(0.0, "package"), (0.5, "event"), (1.0, "event")]
    assert [size for _, _, size in trace.rows][0] > 5000 > [size for _, _, size in trace.rows][1]
    assert trace.period_s == pytest.approx(1.5)
    times = [at for at, _, _ in islice(trace.messages(random.Random(3)), 9)]
    assert times == sorted(times) and times[0] >= 0
    assert times[3] - times[0] == pytest.approx(1.5)  # the loop repeats every period


def test_a_finished_run_leaves_no_session_for_the_broker_to_queue_into(tmp_path: Path, mosquitto: Mosquitto) -> None:
    made = generate_device_key(tmp_path / "keys" / "device0")
    store = tmp_path / "store"
    store.mkdir()
    member = ReceiverProcess(tmp_path, mosquitto.port, str(store), [made.public], group="g1", member="0")
    member.start()
    member.wait_subscribed()
    member.stop()
    asyncio.run(end_sessions(mosquitto.port, [member]))
    payload = wire.encode(wire.make("event", "ops", "normal", b"x"), load_signing_key(made.private))

    async def queued_for_the_old_member() -> int:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="pub") as pub:
            await pub.publish("edged/rsu/ops/event", payload, qos=1)
        ident = member_client_id(str(store), TOPIC, "g1", "0")
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=ident,
                                  protocol=aiomqtt.ProtocolVersion.V5, clean_start=False) as old:
            got = 0
            try:
                async with asyncio.timeout(1.5):
                    async for _ in old.messages:
                        got += 1
            except TimeoutError:
                pass
            return got

    assert asyncio.run(queued_for_the_old_member()) == 0
