"""A real mosquitto broker for tests (``edged_sim.broker.Broker``) and throwaway TLS certificates.

Usage::

    with Mosquitto(tmp_path) as broker:       # or the ``mosquitto`` fixture in conftest.py
        broker.port                             # connect aiomqtt/paho to 127.0.0.1:broker.port
        broker.stop(); broker.start()           # an outage; the port and persistence survive it

Persistence is on (saved at stop), so persistent sessions (clean_session=False) and their queued
QoS 1 messages survive a restart, as on a production broker. ``tls=TlsFiles(...)`` makes the
listener TLS with required client certificates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edged_sim.broker import Broker as Mosquitto
from edged_sim.broker import TlsFiles, mosquitto_path

__all__ = ["Mosquitto", "TlsFiles", "have_mosquitto", "make_tls_files"]


def have_mosquitto() -> bool:
    return mosquitto_path() is not None


def make_tls_files(folder: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl CLI)."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, cwd=folder, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=edged-test-ca")
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=edged-test-{name}")
        (folder / f"{name}.ext").write_text(extra + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key",
                    folder / "client.crt", folder / "client.key")
