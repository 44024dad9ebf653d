"""Shared pytest fixtures. ``mosquitto``: a real broker on a free loopback port (see tests/mosquitto.py);
``pg_server`` (one per test session) and ``pg_url`` (a fresh database per test): a real PostgreSQL server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from edged_sim.pgserver import PgServer, have_postgres
from tests.mosquitto import Mosquitto, have_mosquitto

# Property tests are deterministic by default: the same examples on every run and machine, and no
# example database replaying a local failure, so a run cannot pass or fail by chance (a surviving
# mutation is not killed "sometimes"). HYPOTHESIS_PROFILE=explore draws fresh random examples.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running mosquitto (anonymous, persistence on); stop()/start() it to simulate an outage."""
    if not have_mosquitto():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A running PostgreSQL server on a free loopback port, shared by the session's tests."""
    if not have_postgres():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PgServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg_server: PgServer, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of its own for this test on the shared server."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return pg_server.new_database(name)
