"""Track ids unique across daemon restarts.

:class:`IdAllocator` keeps a high-water mark in a small file under the data dir. It reserves ids in
blocks: before handing out the first id of a block it durably writes the end of that block (private
temp file, fsync, atomic rename, fsync of the folder). After a crash or SIGKILL the next start resumes
from the stored mark, which is past every id ever handed out, so ids are never reused; at most one
block of ids is skipped per restart. The file is written once per block, not once per track. A link
or anything but a plain file where the mark is kept is refused (:class:`IdStoreError`), never followed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from edged.core.paths import open_private, private_dir, write_private

ID_FILE_NAME = "track_ids.json"
MAX_MARK_BYTES = 4096
"""The mark is a few bytes of JSON; more is read as a corrupt file."""


class IdStoreError(RuntimeError):
    """The id store file cannot be read, parsed or written; the message names the file."""


class IdSource(Protocol):
    def next_id(self) -> int:
        """A fresh track id, never returned before."""


class MemoryIds:
    """Ids from a counter in memory (tests, benchmarks, offline evaluation): unique within a run only."""

    def __init__(self, start: int = 1) -> None:
        self._next = start

    def next_id(self) -> int:
        value = self._next
        self._next += 1
        return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IdAllocator:
    """Persistent id source: ``IdAllocator(data_dir / "track_ids.json", block=1024)``."""

    def __init__(self, path: str | Path, block: int = 1024) -> None:
        if block < 1:
            raise ValueError(f"id block must be >= 1, got {block}")
        self.path = Path(path)
        self.block = block
        self._next = self._read_mark()
        self._reserved_until = self._next  # nothing reserved by this process yet
        self.writes = 0
        """Number of times the mark was written (one per block)."""

    @classmethod
    def in_dir(cls, data_dir: str | Path, block: int = 1024) -> IdAllocator:
        """The allocator for a daemon's data dir (created if missing)."""
        directory = Path(data_dir)
        try:
            private_dir(directory, configured=True)
        except OSError as err:
            raise IdStoreError(f"cannot create data dir {directory} for track ids: {err.strerror or err}") from None
        return cls(directory / ID_FILE_NAME, block)

    def _read_mark(self) -> int:
        try:
            fd = open_private(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 1
        except OSError as err:
            raise IdStoreError(f"cannot read track id store {self.path}: {err.strerror or err}") from None
        try:
            with os.fdopen(fd, "rb") as f:
                text = f.read(MAX_MARK_BYTES).decode("utf-8", "replace")
        except OSError as err:
            raise IdStoreError(f"cannot read track id store {self.path}: {err.strerror or err}") from None
        try:
            value = json.loads(text)["next_free"]
        except (ValueError, KeyError, TypeError):
            raise IdStoreError(
                f"track id store {self.path} is corrupt (expected {{\"next_free\": <int>}}, got {text[:80]!r}); "
                "move it aside only if you accept that ids may repeat"
            ) from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise IdStoreError(f"track id store {self.path}: next_free must be an integer >= 1, got {value!r}")
        return value

    def _write_mark(self, next_free: int) -> None:
        data = json.dumps({"next_free": next_free}).encode()
        try:
            write_private(self.path, data, fsync=True, temp=self.path.with_name(self.path.name + ".tmp"))
            _fsync_dir(self.path.parent)
        except OSError as err:
            raise IdStoreError(f"cannot write track id store {self.path}: {err.strerror or err}") from None
        self.writes += 1

    def next_id(self) -> int:
        if self._next >= self._reserved_until:
            self._write_mark(self._next + self.block)
            self._reserved_until = self._next + self.block
        value = self._next
        self._next += 1
        return value
