"""A real mosquitto broker for the simulated run and the tests: free loopback port, persistence,
stop and restart, optional TLS and password file.

The simulation stops the broker mid-run (an outage) and starts it again on the same port; with
persistence on, the receivers' persistent sessions and their queued QoS 1 messages survive, as on a
production broker.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class BrokerError(RuntimeError):
    """mosquitto is missing, would not start, or did not listen in time."""


def mosquitto_path() -> Path | None:
    """The mosquitto binary (PATH, then /usr/sbin), or ``None`` when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    fallback = Path("/usr/sbin/mosquitto")
    return fallback if fallback.exists() else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """CA, server and client certificates for a TLS listener that requires client certificates."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


class Broker:
    """One mosquitto process on 127.0.0.1 with its config, log and persistence in ``folder``.

    ``tls`` makes the listener TLS with required client certificates; ``password_file`` turns
    anonymous access off.
    """

    def __init__(self, folder: Path, port: int | None = None, *, tls: TlsFiles | None = None,
                 password_file: Path | None = None) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"user {getpass.getuser()}",  # a root run would otherwise drop to 'mosquitto'
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous " + ("false" if password_file else "true"),
            "persistence true",
            f"persistence_location {self.folder}/",
            "autosave_interval 1",
            "max_queued_messages 0",  # no limit: the receivers' queues must not drop
            "max_queued_bytes 0",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if password_file:
            lines.append(f"password_file {password_file}")
        if tls:
            lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}",
                      "require_certificate true"]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout_s: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts connections."""
        if self.running():
            return
        self.proc = subprocess.Popen(
            [str(self.exe), "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.proc = None
                raise BrokerError(f"mosquitto exited at start: {err.strip()} {self.log_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s:g} s")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM: mosquitto saves its persistence first); killed after ``timeout_s``."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
