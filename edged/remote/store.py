"""The last applied remote config on disk, and the config the daemon starts with.

The record ``<device.data_dir>/applied_config.json`` holds the whole config that was last applied
remotely (secrets included, so the file is mode 0600), its version, and the SHA-256 of the TOML
file the daemon was running from when it was applied. Beside it the version mark
``applied_version.json`` (``{"schema": 1, "version": N}``) holds the highest version ever
committed; it is written before the record on every commit, so it is never behind it.

Precedence at start (:func:`load_startup_config`):

1. No record (or an unreadable one): the TOML file, with the version of the mark (0 without one).
2. A record whose ``base_sha256`` equals the TOML file's hash: the record wins. The file has not
   been touched since the remote change, so the remote change is the newer intent.
3. A record with another hash: the TOML file wins. Someone edited (or reinstalled) the file after
   the last remote change, so the local edit is the newer intent. The record's version is kept, so
   the next remote ``set`` must still carry a larger version.

The version is the larger of the record's and the mark's, so a damaged record cannot bring it back
to 0 and let a captured command replay. When neither can be read (and at least one is there but
damaged) the version is unknown: remote changes are refused until an operator writes the mark by
hand (the highest version ever sent to the unit) or removes both files; the log line says how.

File hashes are compared rather than modification times: a Raspberry Pi has no real-time clock and
may boot with a wrong date, which would make timestamps lie.

Writes are atomic: a temporary file in the same folder is created exclusively and private (0600,
never through a symbolic link), written and fsynced, renamed over the record, and the folder is
fsynced, so a power cut leaves either the old or the new record. Temporary files that a killed
apply left behind are removed at start. The record and the mark are read without following
symbolic links, and only when they are regular files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edged.config import Config, ConfigError, from_dict, load, resolve_path, to_dict

log = logging.getLogger("edged.remote")
T = TypeVar("T")

RECORD_NAME = "applied_config.json"
RECORD_SCHEMA = 1
MARK_NAME = "applied_version.json"
MARK_SCHEMA = 1
TEMP_SUFFIX = ".tmp"
MAX_FILE_BYTES = 64 << 20
"""A record larger than this is not read (a whole config is a few kB)."""


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
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
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
        except RecursionError:
            raise StoreError("applied config record is unreadable: nested too deeply") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes | None:
    """The bytes of the regular file ``path``, or ``None`` when there is none; a symbolic link is not
    followed. :class:`StoreError` when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise StoreError(f"{path} is a symbolic link; not followed") from None
        raise StoreError(f"cannot read {path}: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path} is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 20):
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise StoreError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise StoreError(f"cannot read {path}: {err.strerror}") from None
    finally:
        os.close(fd)


def write_private_temp(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to a new fsynced file beside ``folder / name``, readable by the owner only and
    created exclusively (never through a planted link); return its path."""
    temp = folder / f".{name}.{os.getpid()}.{time.monotonic_ns()}{TEMP_SUFFIX}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as err:
        _unlink(temp)
        raise StoreError(f"cannot write {temp.name} in {folder}: {err.strerror or err}") from None
    return temp


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class ConfigStore:
    """Atomic two-step persistence: :meth:`prepare` (temp + fsync), then :meth:`commit` (version mark,
    rename, dir fsync) once the config is known good, or :meth:`discard`.

    Beside the record it keeps the version mark (``applied_version.json``): the highest version ever
    committed, written atomically before the record on every commit. Start-up reads both, so a
    damaged record cannot bring the version back to 0 and let a captured command replay."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = Path(data_dir)
        self.path = self.folder / RECORD_NAME
        self.mark_path = self.folder / MARK_NAME
        self.locked: str | None = None
        """Why remote changes are refused (both version records unreadable); ``None``: they are not."""
        self.mark: int | None = None
        """The version mark as last read or written."""
        self._pending: dict[Path, int] = {}

    def load(self) -> AppliedRecord | None:
        """The record, or ``None`` when there is none; :class:`StoreError` when it is unreadable."""
        raw = read_private(self.path)
        return None if raw is None else AppliedRecord.from_json(raw)

    def load_mark(self) -> int | None:
        """The version mark, or ``None`` when there is none; :class:`StoreError` when it is unreadable."""
        raw = read_private(self.mark_path)
        if raw is None:
            return None
        try:
            body = json.loads(raw)
            version = body.get("version") if isinstance(body, dict) else None
            if (body.get("schema") != MARK_SCHEMA or not isinstance(version, int) or isinstance(version, bool)
                    or version < 0):
                raise ValueError
        except (ValueError, AttributeError, RecursionError):
            raise StoreError(f"version mark {self.mark_path} is unreadable") from None
        self.mark = version
        return version

    def save_mark(self, version: int) -> None:
        """Atomically set the version mark to ``version`` (or keep a higher one)."""
        version = max(version, self.mark or 0)
        body = json.dumps({"schema": MARK_SCHEMA, "version": version}).encode() + b"\n"
        temp = write_private_temp(self.folder, MARK_NAME, body)
        try:
            os.replace(temp, self.mark_path)
            _fsync_dir(self.folder)
        except OSError as err:
            _unlink(temp)
            raise StoreError(f"cannot replace {self.mark_path}: {err.strerror or err}") from None
        self.mark = version

    def prepare(self, record: AppliedRecord) -> Path:
        """Write ``record`` to a fsynced temporary file beside the record; return its path.
        :class:`StoreError` when it cannot, or when remote changes are refused (:attr:`locked`)."""
        if self.locked is not None:
            raise StoreError(self.locked)
        temp = write_private_temp(self.folder, RECORD_NAME, record.to_json())
        self._pending[temp] = record.version
        return temp

    def commit(self, temp: Path) -> None:
        """Raise the version mark, then atomically replace the record with ``temp`` and make the
        rename durable."""
        version = self._pending.pop(temp, None)
        try:
            if version is not None:
                self.save_mark(version)
            os.replace(temp, self.path)
            _fsync_dir(self.folder)
        except (OSError, StoreError) as err:
            _unlink(temp)
            why = err if isinstance(err, StoreError) else f"cannot replace {self.path}: {err.strerror or err}"
            raise StoreError(str(why)) from None

    def discard(self, temp: Path) -> None:
        self._pending.pop(temp, None)
        _unlink(temp)

    def save(self, record: AppliedRecord) -> None:
        self.commit(self.prepare(record))

    def remove_stale_temps(self) -> int:
        """Remove temporary files a killed apply left behind (they hold a whole config, secrets
        included); return how many."""
        prefixes = (f".{RECORD_NAME}.", f".{MARK_NAME}.")
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0
        for entry in entries:
            temp = entry.name.startswith(prefixes) and entry.name.endswith(TEMP_SUFFIX)
            if temp and not entry.is_dir(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError as err:
                    log.warning("cannot remove stale temporary file %s: %s", entry.path, err.strerror)
        if removed:
            log.info("removed %d temporary file(s) of an interrupted config apply from %s", removed, self.folder)
        return removed


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


LOCKED_REPLY = (
    "remote changes are refused until an operator sets the version on the unit: the applied-config "
    "record and its version mark are both unreadable, so the applied version is unknown"
)


def _read(load: Callable[[], T]) -> tuple[T | None, StoreError | None]:
    try:
        return load(), None
    except StoreError as err:
        return None, err


def _lock(store: ConfigStore, record_error: StoreError | None, mark_error: StoreError | None) -> str:
    """Refuse remote changes (see :data:`LOCKED_REPLY`); return the log line naming the files and the fix."""
    store.locked = LOCKED_REPLY
    record_why = str(record_error) if record_error else f"{store.path} is missing"
    mark_why = str(mark_error) if mark_error else f"{store.mark_path} is missing"
    return (
        f"{LOCKED_REPLY} ({record_why}; {mark_why}). To allow them again write "
        f'{{"schema": {MARK_SCHEMA}, "version": N}} to {store.mark_path}, N being the highest version ever sent '
        "to this unit, and restart (or remove both files to start again from version 0)"
    )


def _keep_mark(store: ConfigStore, version: int, mark: int | None) -> None:
    """Write the version mark when it is missing, damaged or behind the record."""
    if mark is not None and mark >= version:
        return
    try:
        store.save_mark(version)
    except StoreError as err:
        log.warning("%s; the version mark stays as it was", err)


def load_startup_config(path: str | Path) -> StartupConfig:
    """Load the TOML file, then the persisted applied config if it takes precedence (see module
    doc). Raises :class:`ConfigError` only for a bad TOML file; a bad record is logged and skipped."""
    path = Path(path)
    file_config = load(path)
    base = file_sha256(path)
    store = ConfigStore(resolve_path(file_config.device.data_dir))
    store.remove_stale_temps()
    record, record_error = _read(store.load)
    mark, mark_error = _read(store.load_mark)
    if mark_error is not None:
        log.warning("%s", mark_error)
    if record is None and mark is None and (record_error is not None or mark_error is not None):
        note = _lock(store, record_error, mark_error)
        log.error("%s", note)
        return StartupConfig(file_config, 0, "file", note, store, base)
    floor = mark or 0
    if record is None:
        if record_error is not None:
            note = (f"{record_error}; starting from {path} (next remote set needs version > {floor}, from the "
                    "version mark)")
            log.warning("%s", note)
        elif floor:
            note = (f"config from {path}: no applied-config record (next remote set needs version > {floor}, "
                    "from the version mark)")
            log.warning("%s", note)
        else:
            note = f"config from {path} (no remote config applied yet)"
        return StartupConfig(file_config, floor, "file", note, store, base)
    _keep_mark(store, record.version, mark)
    version = max(record.version, floor)
    if record.base_sha256 != base:
        note = (
            f"config from {path}: the file changed after remote version {record.version} was applied, "
            f"so the local edit wins (next remote set needs version > {version})"
        )
        log.info("%s", note)
        return StartupConfig(file_config, version, "file", note, store, base)
    try:
        config = from_dict(record.config)
    except ConfigError as err:
        note = f"persisted remote config version {record.version} no longer validates ({err}); starting from {path}"
        log.warning("%s", note)
        return StartupConfig(file_config, version, "file", note, store, base)
    note = f"remote config version {record.version} from {store.path} (applied over unchanged {path})"
    return StartupConfig(config, version, "persisted", note, store, base, record.applied_at)


def record_for(config: Config, version: int, source: str, base_sha256: str) -> AppliedRecord:
    return AppliedRecord(version, to_dict(config), time.time(), source, base_sha256)
