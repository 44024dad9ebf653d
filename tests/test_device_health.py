"""Health on the device: a covered camera is logged locally (one line per change) and its health events
reach local tools as JSON on ``edged/<id>/events`` (a real mosquitto and a real subscriber); the stats
carry the software version, the free disk and the CPU temperature."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import cv2
import numpy as np
import pytest

from edged import __version__
from edged.remote import build_services
from edged.runtime.stats import cpu_temp_c
from tests.mosquitto import Mosquitto
from tests.remote_rig import running_daemon, write_config

DEVICE = "rsu-health"


def covered_camera_config(tmp: Path, port: int) -> Path:
    """A file camera looping over black frames (a lens cap), health checks on, MQTT to ``port``."""
    cfg = write_config(tmp, f"""
[health]
enabled = true
[remote]
stats_period_s = 0.2
[remote.mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
reconnect_min_s = 0.1
reconnect_max_s = 0.5
""", device=DEVICE)
    for image in (tmp / "images").glob("*.png"):
        cv2.imwrite(str(image), np.zeros((120, 160, 3), np.uint8))
    return cfg


@contextlib.asynccontextmanager
async def subscriber(port: int, topic: str) -> AsyncIterator[list[bytes]]:
    """A real MQTT client subscribed to ``topic``, collecting payloads."""
    got: list[bytes] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier="test-local-tool") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                got.append(bytes(message.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(collect())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(check: Any, timeout: float = 15.0) -> Any:
    for _ in range(int(timeout / 0.05)):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def test_a_covered_camera_is_logged_once_and_published_as_json(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = covered_camera_config(tmp_path, mosquitto.port)

    async def main() -> list[dict[str, Any]]:
        async with subscriber(mosquitto.port, f"edged/{DEVICE}/events") as got:
            async with running_daemon(cfg, lambda startup: build_services(startup)):
                def health() -> list[dict[str, Any]]:
                    docs = [json.loads(p) for p in got]  # JSON, not CBOR: a local tool reads it as is
                    return [d for d in docs if d.get("event") == "health"]

                return await until(health)

    with caplog.at_level(logging.INFO):
        events = asyncio.run(main())
    cover = [e for e in events if e["kind"] == "cover"]
    assert cover and cover[0]["state"] == "start", events
    assert cover[0]["device"] == DEVICE and cover[0]["image_id"] and isinstance(cover[0]["frame_index"], int)
    lines = [r.getMessage() for r in caplog.records if "camera health: cover started" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]


def test_stats_carry_version_disk_free_and_cpu_temperature(tmp_path: Path, mosquitto: Mosquitto) -> None:
    cfg = covered_camera_config(tmp_path, mosquitto.port)

    async def main() -> dict[str, Any]:
        async with subscriber(mosquitto.port, f"edged/{DEVICE}/stats") as got:
            async with running_daemon(cfg, lambda startup: build_services(startup)):
                await until(lambda: got)
                return json.loads(got[-1])

    stats = asyncio.run(main())
    assert stats["edged_version"] == __version__
    assert isinstance(stats["disk_free_bytes"], int) and stats["disk_free_bytes"] > 0
    assert "cpu_temp_c" in stats
    assert stats["cpu_temp_c"] is None or 0 < stats["cpu_temp_c"] < 150


def test_cpu_temperature_prefers_the_cpu_zone_and_is_none_without_one(tmp_path: Path) -> None:
    assert cpu_temp_c(tmp_path) is None
    for name, kind, milli in (("thermal_zone0", "acpitz", "27800"), ("thermal_zone1", "cpu-thermal", "51234")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(milli + "\n")
    assert cpu_temp_c(tmp_path) == 51.2
