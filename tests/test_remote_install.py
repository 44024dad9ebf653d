"""The shipped systemd unit and roadside example config are valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edged.config import load

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "config" / "edged.service"


def unit_settings() -> dict[str, str]:
    settings: dict[str, str] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def test_unit_is_a_notify_service_with_watchdog_and_graceful_stop() -> None:
    s = unit_settings()
    assert s["Type"] == "notify" and s["NotifyAccess"] == "main"
    assert int(s["WatchdogSec"]) > 2 * 10, "longer than twice the heartbeat staleness"
    assert s["KillSignal"] == "SIGTERM" and int(s["TimeoutStopSec"]) >= 30
    assert s["Restart"] == "on-failure" and s["User"] == "edged"
    assert "video" in s["SupplementaryGroups"] and s["StateDirectory"] == "edged"
    assert s["ProtectSystem"] == "strict" and s["NoNewPrivileges"] == "yes"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "edged.service"
    unit.write_text(UNIT.read_text())
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if line.strip() and "is not executable" not in line]  # /opt/edged is not installed here
    assert not problems, problems


def test_roadside_example_config_validates() -> None:
    config = load(ROOT / "config" / "roadside.example.toml")
    assert config.remote.mqtt.enabled and config.remote.mqtt.tls and config.remote.serial.enabled
    assert config.device.data_dir == "/var/lib/edged"
