"""The last applied remote config on disk, and the config the daemon starts with.

The record ``<device.data_dir>/applied_config.json`` holds the whole config that was last applied
remotely (secrets included, so the file is mode 0600), its version, and the SHA-256 of the TOML
file the daemon was running from when it was applied.

Precedence at start (:func:`load_startup_config`):

1. No record (or an unreadable one): the TOML file, version 0 (or the record's version if it
   could be read far enough to know it).
2. A record whose ``base_sha256`` equals the TOML file's hash: the record wins. The file has not
   been touched since the remote change, so the remote change is the newer intent.
3. A record with another hash: the TOML file wins. Someone edited (or reinstalled) the file after
   the last remote change, so the local edit is the newer intent. The record's version is kept, so
   the next remote ``set`` must still carry a larger version.

File hashes are compared rather than modification times: a Raspberry Pi has no real-time clock and
may boot with a wrong date, which would make timestamps lie.

Writes are atomic: a temporary file in the same folder is written and fsynced, renamed over the
record, and the folder is fsynced, so a power cut leaves either the old or the new record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.config import Config, ConfigError, from_dict, load, resolve_path, to_dict

log = logging.getLogger("edged.remote")

RECORD_NAME = "applied_config.json"
RECORD_SCHEMA = 1


class StoreError(RuntimeError):
    """The applied-config record could not be written or read; the message says why."""


@dataclass(frozen=True)
class AppliedRecord:
    version: int
    config: dict[str, Any]
    """The whole config as plain builtins (secrets included)."""
    applied_at: float
    """Wall-clock time (epoch seconds) of the apply."""
    source: str
    """Where the change came from: ``mqtt``, ``serial``, ...."""
    base_sha256: str
    """Hash of the TOML file the daemon ran from when this was applied."""

    def to_json(self) -> bytes:
        body = {
            "schema": RECORD_SCHEMA,
            "version": self.version,
            "applied_at": self.applied_at,
            "source": self.source,
            "base_sha256": self.base_sha256,
            "config": self.config,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> AppliedRecord:
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("schema") != RECORD_SCHEMA:
                raise ValueError(f"unknown record schema {body.get('schema') if isinstance(body, dict) else None!r}")
            version = body["version"]
            if not isinstance(version, int) or version < 0:
                raise ValueError("version is not a non-negative integer")
            if not isinstance(body["config"], dict):
                raise ValueError("config is not an object")
            return cls(
                version=version,
                config=body["config"],
                applied_at=float(body["applied_at"]),
                source=str(body["source"]),
                base_sha256=str(body["base_sha256"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise StoreError(f"applied config record is unreadable: {err}") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ConfigStore:
    """Atomic two-step persistence: :meth:`prepare` (temp + fsync), then :meth:`commit` (rename +
    dir fsync) once the config is known good, or :meth:`discard`."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir)
        self.path = self.folder / RECORD_NAME

    def load(self) -> AppliedRecord | None:
        """The record, or ``None`` when there is none; :class:`StoreError` when it is unreadable."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreError(f"cannot read {self.path}: {err.strerror}") from None
        return AppliedRecord.from_json(raw)

    def prepare(self, record: AppliedRecord) -> Path:
        """Write ``record`` to a fsynced temporary file beside the record; return its path."""
        temp = self.folder / f".{RECORD_NAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                data = record.to_json()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            self.discard(temp)
            raise StoreError(f"cannot write {temp.name} in {self.folder}: {err.strerror or err}") from None
        return temp

    def commit(self, temp: Path) -> None:
        """Atomically replace the record with ``temp`` and make the rename durable."""
        try:
            os.replace(temp, self.path)
            _fsync_dir(self.folder)
        except OSError as err:
            self.discard(temp)
            raise StoreError(f"cannot replace {self.path}: {err.strerror or err}") from None

    @staticmethod
    def discard(temp: Path) -> None:
        try:
            temp.unlink()
        except OSError:
            pass

    def save(self, record: AppliedRecord) -> None:
        self.commit(self.prepare(record))


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class StartupConfig:
    """What the daemon starts with, and what the remote command handler needs to go on."""

    config: Config
    version: int
    """Version of ``config`` (0: the file, never changed remotely)."""
    source: str
    """``file`` or ``persisted``."""
    note: str
    """One line for the log saying which config won and why."""
    store: ConfigStore
    base_sha256: str
    """Hash of the TOML file (recorded with every remote apply)."""
    applied_at: float | None = None


def load_startup_config(path: str | Path) -> StartupConfig:
    """Load the TOML file, then the persisted applied config if it takes precedence (see module
    doc). Raises :class:`ConfigError` only for a bad TOML file; a bad record is logged and skipped."""
    path = Path(path)
    file_config = load(path)
    base = file_sha256(path)
    store = ConfigStore(resolve_path(file_config.device.data_dir))
    try:
        record = store.load()
    except StoreError as err:
        note = f"{err}; starting from {path}"
        log.warning("%s", note)
        return StartupConfig(file_config, 0, "file", note, store, base)
    if record is None:
        return StartupConfig(file_config, 0, "file", f"config from {path} (no remote config applied yet)", store, base)
    if record.base_sha256 != base:
        note = (
            f"config from {path}: the file changed after remote version {record.version} was applied, "
            f"so the local edit wins (next remote set needs version > {record.version})"
        )
        log.info("%s", note)
        return StartupConfig(file_config, record.version, "file", note, store, base)
    try:
        config = from_dict(record.config)
    except ConfigError as err:
        note = f"persisted remote config version {record.version} no longer validates ({err}); starting from {path}"
        log.warning("%s", note)
        return StartupConfig(file_config, record.version, "file", note, store, base)
    note = f"remote config version {record.version} from {store.path} (applied over unchanged {path})"
    return StartupConfig(config, record.version, "persisted", note, store, base, record.applied_at)


def record_for(config: Config, version: int, source: str, base_sha256: str) -> AppliedRecord:
    return AppliedRecord(version, to_dict(config), time.time(), source, base_sha256)
