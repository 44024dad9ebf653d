"""The fleet load test, short: simulated devices, one broker, a consumer group of receivers, a member
SIGKILLed and restarted (and the database stopped) mid-run; nothing lost, nothing stored twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.core.keys import generate_device_key, load_signing_key
from edged_sim.pgserver import PgServer
from tests.mosquitto import Mosquitto
from tools.bench.fleet import Load, Result, Rig, run_fleet, table

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
