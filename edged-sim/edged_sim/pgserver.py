"""A real PostgreSQL server for the fleet tests and benchmarks: its own cluster in a folder, a free
loopback port, stop and restart (a database outage) on the same port with the data kept.

PostgreSQL refuses to run as root; when the caller is root, the cluster is owned by and run as the
``postgres`` system user that Debian's ``postgresql`` package creates, in a private folder of its own
under the system temp folder (a root-only ``folder`` is out of that user's reach); :meth:`PgServer.remove`
deletes it. Access is ``trust`` on
127.0.0.1 only: a throwaway server, never a production set-up (see docs/DEPLOY.md for that).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edged_sim.broker import free_port

DATABASE = "edged"


class PgServerError(RuntimeError):
    """PostgreSQL is missing, would not initialise, or did not start in time."""


def pg_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (PATH, then Debian's /usr/lib/postgresql/N/bin), or ``None``."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parent.parent.name)
    return versions[-1].parent if versions else None


def have_postgres() -> bool:
    """Whether a PostgreSQL server can be started here."""
    return pg_bindir() is not None


class PgServer:
    """One PostgreSQL cluster in ``folder`` listening on 127.0.0.1:``port``; :attr:`url` names its database."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self._user = "postgres" if os.geteuid() == 0 else None
        self.folder = Path(tempfile.mkdtemp(prefix="edged-pg-")) if self._user else Path(folder)
        self.port = port or free_port()
        self.data = self.folder / "data"
        self.socket_dir = self.folder / "run"
        self.log = self.folder / "postgres.log"
        bindir = pg_bindir()
        if bindir is None:
            raise PgServerError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir

    @property
    def url(self) -> str:
        """A libpq URL for the test database (user ``postgres``, no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def _own(self, path: Path) -> None:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        """Create the cluster (once) and the test database on first start."""
        if (self.data / "PG_VERSION").exists():
            return
        for path in (self.folder, self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o700)
            self._own(path)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--no-sync", "--locale=C")
        except subprocess.CalledProcessError as err:
            raise PgServerError(f"initdb failed: {err.stderr.strip()[-400:]}") from err

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the server (initialising it first if needed) and wait until it accepts connections."""
        self.init()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.socket_dir} "
                   "-c fsync=on -c max_connections=200")
        log_file = self.folder / "pg_ctl.log"
        if not log_file.exists():
            log_file.touch()
            self._own(log_file)
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                           "-t", str(int(timeout_s)), "start", check=False)
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-600:] if self.log.exists() else result.stderr
            raise PgServerError(f"PostgreSQL did not start on port {self.port}: {tail.strip()}")
        self._wait_ready(timeout_s)
        self._create_database()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise PgServerError(f"PostgreSQL on port {self.port} did not accept connections in {timeout_s:.0f} s")

    def _create_database(self) -> None:
        if not self._database_exists(DATABASE):
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", DATABASE)

    def _database_exists(self, name: str) -> bool:
        exists = self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc",
                           f"SELECT 1 FROM pg_database WHERE datname = '{name}'", check=False)
        return exists.stdout.strip() == "1"

    def new_database(self, name: str) -> str:
        """Create an empty database ``name`` (letters, digits, underscores) and return its URL."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and underscores only")
        if self._database_exists(name):
            self._run("dropdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "--force", name)
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: like a crash)."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        """Stop the server and delete its cluster folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
