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


@pytest.mark.slow
def test_roadside_example_starts_once_its_files_are_in_place(tmp_path: Path) -> None:
    """The example is complete: with the keys and certificates it names at its paths (here under
    ``tmp_path`` instead of /etc/edged), it starts and processes frames. The Pi camera is replaced by
    the file camera on real frames, and its brokers by closed ports on this machine (the links retry)."""
    import os

    from edged.core.keys import generate_device_key, generate_platform_key
    from edged_sim.broker import free_port
    from tests.mosquitto import make_tls_files

    etc, var = tmp_path / "etc", tmp_path / "var"
    text = (ROOT / "config" / "roadside.example.toml").read_text()
    text = text.replace("/etc/edged", str(etc)).replace("/var/lib/edged", str(var))
    text = text.replace('backend = "picamera2"', 'backend = "file"')
    text = text.replace('"broker.example.net"', '"127.0.0.1"').replace('"ops.example.net"', '"127.0.0.1"')
    text = text.replace('"func.example.net"', '"127.0.0.1"').replace("port = 8883", f"port = {free_port()}")
    text += f'\n[camera.file]\npath = "{ROOT / "tests" / "data" / "real"}"\nloop = true\nrealtime = false\n'
    tls = make_tls_files(tmp_path / "tls")
    (etc / "tls").mkdir(parents=True)
    for src, name in ((tls.ca, "ca.crt"), (tls.client_cert, "rsu-0001.crt"), (tls.client_key, "rsu-0001.key")):
        shutil.copy(src, etc / "tls" / name)
    os.chmod(etc / "tls" / "rsu-0001.key", 0o600)
    for name in ("device", "operator-fleet", "admin"):
        generate_device_key(etc / "keys" / name)
    for name in ("func-face", "func-plate"):
        generate_platform_key(etc / "keys" / name)
    config = tmp_path / "edged.toml"
    config.write_text(text)
    edged = str(Path(__import__("sys").executable).with_name("edged"))
    check = subprocess.run([edged, "check-config", str(config)], capture_output=True, text=True, cwd=ROOT)
    assert check.returncode == 0, check.stderr
    run = subprocess.run([edged, "run", "--config", str(config), "--frames", "6", "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "processed 6" in run.stdout and "Traceback" not in run.stderr


@pytest.mark.slow
def test_file_example_replays_real_frames_through_the_daemon(tmp_path: Path) -> None:
    """config/file.example.toml runs as documented once the demo keys exist (here under tmp_path)."""
    import sys

    from edged.core.keys import generate_device_key, generate_platform_key

    keys = tmp_path / "keys"
    generate_device_key(keys / "device")
    for name in ("func-face", "func-plate"):
        generate_platform_key(keys / name)
    text = (ROOT / "config" / "file.example.toml").read_text().replace('"data/keys/', f'"{keys}/')
    text = text.replace('data_dir = "data/replay"', f'data_dir = "{tmp_path / "data"}"')
    config = tmp_path / "file.toml"
    config.write_text(text)
    edged = str(Path(sys.executable).with_name("edged"))
    run = subprocess.run([edged, "run", "--config", str(config), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    shipped = len([p for p in (ROOT / "tests" / "data" / "real").iterdir() if p.suffix == ".jpg"])
    assert f"processed {shipped}," in run.stdout, run.stdout
    assert len(list((tmp_path / "out").glob("run-*/frames/*.jpg"))) == shipped
