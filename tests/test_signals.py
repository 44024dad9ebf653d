"""``edged run`` under real signals in a real subprocess: SIGHUP reloads the config file the systemd
way (RELOADING=1 ... READY=1), a broken file is refused with one line and the old config kept, and
SIGINT at any moment of start-up ends the run without a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.remote_rig import write_config

EDGED = [sys.executable, "-m", "edged.cli"]


class Systemd:
    """The notify socket systemd listens on (a real unix datagram socket); keeps every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, field: str, proc: subprocess.Popen[str], after: int = 0, timeout: float = 30.0) -> int:
        """Index of the first message from ``after`` on that has ``field`` as one of its lines."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"daemon exited ({proc.returncode}) waiting for {field}"
            for i in range(after, len(self.messages)):
                if field in self.messages[i].split("\n"):
                    return i
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        raise AssertionError(f"no {field} from the daemon within {timeout} s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """``edged run`` as systemd starts it; stderr is read on a thread so the pipe never fills."""

    def __init__(self, config: Path, cwd: Path, notify: Path | None = None) -> None:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify)
        self.proc = subprocess.Popen([*EDGED, "run", "--config", str(config), "--out", str(cwd / "out")],
                                     cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_line(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if text in line]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"daemon exited ({self.proc.returncode}): {''.join(self.lines)}"
            time.sleep(0.05)
        raise AssertionError(f"no log line with {text!r} within {timeout} s: {''.join(self.lines)}")

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then the exit status, stdout and the whole stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        return self.proc.returncode, self.proc.stdout.read(), "".join(self.lines)


def _config(tmp: Path, health: bool) -> Path:
    return write_config(tmp, extra=f"[health]\nenabled = {'true' if health else 'false'}\n")


def _summary(tmp: Path) -> dict:
    return json.loads(next((tmp / "out").glob("run-*/summary.json")).read_text())


@pytest.mark.slow
def test_sighup_reloads_a_changed_file_and_keeps_running(tmp_path: Path) -> None:
    cfg = _config(tmp_path, health=False)
    systemd = Systemd(tmp_path / "notify.sock")
    daemon = Daemon(cfg, tmp_path, systemd.path)
    try:
        ready = systemd.wait_for("READY=1", daemon.proc)
        _config(tmp_path, health=True)
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for("RELOADING=1", daemon.proc, after=ready + 1)
        assert any(m.startswith("MONOTONIC_USEC=") for m in systemd.messages[reloading].split("\n"))
        systemd.wait_for("READY=1", daemon.proc, after=reloading + 1)
        line = daemon.wait_line(f"config file {cfg} applied")
        assert str(cfg) in line and "health" in line
        time.sleep(0.5)  # frames through the new chain
        assert daemon.proc.poll() is None, "SIGHUP must not end the daemon"
    finally:
        rc, out, err = daemon.stop()
        systemd.close()
    assert rc == 0, err
    assert "Traceback" not in err
    assert "health" in _summary(tmp_path)["stage_ms"], "the reloaded config (health checks on) is in effect"


def test_sighup_with_a_broken_file_keeps_the_old_config(tmp_path: Path) -> None:
    cfg = _config(tmp_path, health=False)
    systemd = Systemd(tmp_path / "notify.sock")
    daemon = Daemon(cfg, tmp_path, systemd.path)
    try:
        ready = systemd.wait_for("READY=1", daemon.proc)
        text = cfg.read_text().replace("fps = 25.0", 'fps = "fast"')
        cfg.write_text(text.replace("[health]\nenabled = false", "[health]\nenabled = true"))
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for("RELOADING=1", daemon.proc, after=ready + 1)
        systemd.wait_for("READY=1", daemon.proc, after=reloading + 1)
        daemon.wait_line("camera.fps")
        time.sleep(0.3)
        assert daemon.proc.poll() is None, "a broken file must not end the daemon"
    finally:
        rc, out, err = daemon.stop()
        systemd.close()
    assert rc == 0, err
    assert "Traceback" not in err
    about = [line for line in err.splitlines() if "camera.fps" in line]
    assert len(about) == 1, err
    assert str(cfg) in about[0] and "keeping" in about[0], about[0]
    assert "health" not in _summary(tmp_path)["stage_ms"], "the old config (health off) stays in effect"


def _mapped(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _interrupt(proc: subprocess.Popen[str], when: str, stderr_lines: list[str]) -> None:
    """Wait for the start-up moment ``when`` and send SIGINT (Ctrl-C) then."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if when == "imports" and _mapped(proc.pid, "_multiarray_umath"):
            break  # numpy is being imported: the command line is being built
        if when == "config" and stderr_lines:
            break  # the start-up note: the config is read, the checks and the build are under way
        if when == "running" and any(" stats " in line for line in stderr_lines):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see the import under way")
@pytest.mark.parametrize("when", ["imports", "config", "running"])
def test_ctrl_c_during_start_up_ends_without_a_traceback(tmp_path: Path, when: str) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("stats_period_s = 60.0", "stats_period_s = 0.5"))
    proc = subprocess.Popen([*EDGED, "run", "--config", str(cfg), "--out", str(tmp_path / "out")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        _interrupt(proc, when, lines)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    out = proc.stdout.read() if proc.stdout else ""
    err = "".join(lines)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == 0, err
    assert "SIGINT" in err + out, err + out


def test_sighup_with_a_file_that_fails_to_apply_rolls_back(tmp_path: Path) -> None:
    """A file that validates but whose camera cannot start: the old camera and config come back."""
    cfg = _config(tmp_path, health=False)
    systemd = Systemd(tmp_path / "notify.sock")
    daemon = Daemon(cfg, tmp_path, systemd.path)
    try:
        ready = systemd.wait_for("READY=1", daemon.proc)
        text = cfg.read_text().replace(str(tmp_path / "images"), str(tmp_path / "no-such-folder"))
        cfg.write_text(text.replace("[health]\nenabled = false", "[health]\nenabled = true"))
        daemon.proc.send_signal(signal.SIGHUP)
        reloading = systemd.wait_for("RELOADING=1", daemon.proc, after=ready + 1)
        systemd.wait_for("READY=1", daemon.proc, after=reloading + 1)
        line = daemon.wait_line("rolled back")
        assert str(cfg) in line and "camera" in line, line
        time.sleep(0.3)
        assert daemon.proc.poll() is None
    finally:
        rc, _, err = daemon.stop()
        systemd.close()
    assert rc == 0, err
    summary = _summary(tmp_path)
    assert "health" not in summary["stage_ms"] and summary["frames"]["processed"] > 0


def test_the_unit_reloads_with_sighup() -> None:
    unit = Path(__file__).resolve().parent.parent / "config" / "edged.service"
    lines = [line.strip() for line in unit.read_text().splitlines()]
    assert "ExecReload=/bin/kill -HUP $MAINPID" in lines


def test_sighup_while_starting_reloads_once_running(tmp_path: Path) -> None:
    """A reload asked for while the daemon starts is kept and done once it runs (the file may have
    changed after it was read)."""
    cfg = _config(tmp_path, health=False)
    daemon = Daemon(cfg, tmp_path)
    try:
        daemon.wait_line("config from")  # the file is read; the daemon is being built
        _config(tmp_path, health=True)
        daemon.proc.send_signal(signal.SIGHUP)
        line = daemon.wait_line(f"config file {cfg} applied")
        assert "health" in line
    finally:
        rc, _, err = daemon.stop()
    assert rc == 0, err
    assert "health" in _summary(tmp_path)["stage_ms"]
