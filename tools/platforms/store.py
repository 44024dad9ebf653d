"""Platform-side message store: one append-only file per video segment.

Layout: ``<root>/<video_id>.cbors`` holds every envelope of that video as a CBOR *sequence*
(RFC 8742: encoded envelopes written back to back, each one a complete CBOR map as produced by
:func:`edged.wire.encode`). Messages without a video id go to ``<root>/_unsegmented.cbors``.
Files are only ever appended to; each append is flushed (and fsynced when ``fsync=True``).

Usage (ops platform, restore by image id)::

    from tools.platforms.store import SegmentStore
    store = SegmentStore("platform/ops")
    env = store.get_image(image_id)                 # newest 'package' envelope with that image id
    for env in store.iter_segment(video_id): ...    # all messages of one video, in arrival order
    store.segments()                                # video ids that have a file
    store.by_image(image_id, kind="sensitive")      # every message for an image, filtered by kind

``append(env)`` returns ``False`` (and writes nothing) when a message with the same id is already
stored: at-least-once delivery becomes exactly-once storage. The id and image indexes are built by
scanning the files at open; :meth:`refresh` picks up what another process appended since. A torn
tail (a writer killed mid-append) is skipped on read and counted in :attr:`torn_tails`; the next
append starts a fresh item after it is truncated away, so the file stays a valid sequence.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import cbor2

from edged.wire import Envelope, WireError, decode, encode

SUFFIX = ".cbors"
UNSEGMENTED = "_unsegmented"


class SegmentStore:
    """Append-only store of envelopes, one CBOR-sequence file per video id, de-duplicated by id."""

    def __init__(self, root: str | Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._torn: set[tuple[str, int]] = set()  # (file stem, offset) of incomplete tails seen
        self.duplicates = 0
        self._lock = threading.Lock()
        self._ids: dict[str, tuple[str, int]] = {}  # message id -> (file stem, offset)
        self._images: dict[str, list[str]] = {}  # image id -> message ids, arrival order
        self._scanned: dict[str, int] = {}  # file stem -> bytes indexed so far
        self.refresh()

    # ------------------------------------------------------------------ writing
    def append(self, env: Envelope) -> bool:
        """Store ``env`` in its video's file; ``False`` if its id is already stored."""
        data = encode(env)
        stem = _stem(env.video_id)
        with self._lock:
            self._scan(stem)
            if env.id in self._ids:
                self.duplicates += 1
                return False
            path = self._path(stem)
            with open(path, "ab") as f:
                end = f.seek(0, io.SEEK_END)
                if end != self._scanned.get(stem, 0):  # a torn tail from a killed writer: cut it
                    f.truncate(self._scanned.get(stem, 0))
                    end = f.seek(0, io.SEEK_END)
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            self._index(env, stem, end)
            self._scanned[stem] = end + len(data)
            return True

    def append_bytes(self, payload: bytes) -> bool:
        """Decode a received payload and :meth:`append` it (raises :class:`WireError` if malformed)."""
        return self.append(decode(payload))

    # ------------------------------------------------------------------ reading
    def segments(self) -> list[str]:
        """Video ids with a file, sorted (``""`` for unsegmented messages)."""
        self.refresh()
        return sorted("" if p.stem == UNSEGMENTED else p.stem for p in self.root.glob(f"*{SUFFIX}"))

    def iter_segment(self, video_id: str) -> Iterator[Envelope]:
        """Every stored envelope of ``video_id`` in arrival order (torn tail skipped)."""
        path = self._path(_stem(video_id))
        if not path.exists():
            return
        with open(path, "rb") as f:
            for _offset, env in _read_items(f):
                yield env

    def get(self, msg_id: str) -> Envelope | None:
        """The envelope with message id ``msg_id``, or ``None``."""
        self.refresh()
        loc = self._ids.get(msg_id)
        if loc is None:
            return None
        stem, offset = loc
        with open(self._path(stem), "rb") as f:
            f.seek(offset)
            return decode(cbor2.dumps(cbor2.load(f)))

    def by_image(self, image_id: str, kind: str | None = None) -> list[Envelope]:
        """Every stored envelope with ``image_id`` (optionally only of ``kind``), arrival order."""
        self.refresh()
        out = [self.get(m) for m in self._images.get(image_id, [])]
        return [e for e in out if e is not None and (kind is None or e.kind == kind)]

    def get_image(self, image_id: str, kind: str = "package") -> Envelope | None:
        """The last stored ``kind`` envelope for ``image_id`` (the ops image for restore), or ``None``."""
        found = self.by_image(image_id, kind)
        return found[-1] if found else None

    def __contains__(self, msg_id: object) -> bool:
        self.refresh()
        return msg_id in self._ids

    def __len__(self) -> int:
        self.refresh()
        return len(self._ids)

    def ids(self) -> set[str]:
        """All stored message ids."""
        self.refresh()
        return set(self._ids)

    @property
    def torn_tails(self) -> int:
        """Incomplete items seen at the end of a file (a writer killed mid-append)."""
        return len(self._torn)

    def refresh(self) -> None:
        """Index whatever was appended to the files since the last scan (e.g. by a receiver process)."""
        with self._lock:
            for p in self.root.glob(f"*{SUFFIX}"):
                self._scan(p.stem)

    # ------------------------------------------------------------------ internals
    def _path(self, stem: str) -> Path:
        return self.root / f"{stem}{SUFFIX}"

    def _scan(self, stem: str) -> None:
        path = self._path(stem)
        start = self._scanned.get(stem, 0)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size <= start:
            return
        with open(path, "rb") as f:
            f.seek(start)
            end = start
            for offset, env in _read_items(f):
                if env.id not in self._ids:
                    self._index(env, stem, offset)
                end = f.tell()
            if end < size:
                self._torn.add((stem, end))
        self._scanned[stem] = end

    def _index(self, env: Envelope, stem: str, offset: int) -> None:
        self._ids[env.id] = (stem, offset)
        if env.image_id is not None:
            self._images.setdefault(env.image_id, []).append(env.id)


def _stem(video_id: str) -> str:
    return video_id or UNSEGMENTED


def _read_items(f: io.BufferedReader) -> Iterator[tuple[int, Envelope]]:
    """(offset, envelope) for each complete item from the current position; stops at a torn tail."""
    while True:
        offset = f.tell()
        try:
            item = cbor2.load(f)
        except (EOFError, cbor2.CBORDecodeError):
            f.seek(offset)
            return
        try:
            yield offset, decode(cbor2.dumps(item))
        except WireError:
            f.seek(offset)
            return
