"""Shared pytest fixtures. ``mosquitto``: a real broker on a free loopback port (see tests/mosquitto.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

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
