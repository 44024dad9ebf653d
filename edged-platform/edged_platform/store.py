"""Platform-side message store: one append-only file per video segment.

Layout: ``<root>/<video_id>.cbors`` holds every envelope of that video as a CBOR *sequence*
(RFC 8742: encoded envelopes written back to back, each one a complete CBOR map as produced by
:func:`edged.link.wire.encode`). Messages without a video id go to ``<root>/_unsegmented.cbors``.
Files are only ever appended to; each append is flushed (and fsynced when ``fsync=True``).

Usage (ops platform, restore by image id)::

    from edged_platform.store import SegmentStore
    store = SegmentStore("platform/ops")
    env = store.get_image(image_id)                 # newest 'package' envelope with that image id
    for env in store.iter_segment(video_id): ...    # all messages of one video, in arrival order
    store.segments()                                # video ids that have a file
    store.by_image(image_id, kind="sensitive")      # every message for an image, filtered by kind

With ``device_keys`` (key id -> trusted device verify key, :func:`edged.link.wire.trusted_keys`) the
store verifies every envelope's signature: :meth:`append` refuses one that fails
(:class:`edged.link.wire.EnvelopeAuthError`), and reading skips stored items that fail (written by an
older receiver, or altered on disk), listing them in :attr:`SegmentStore.rejected`; only verified
envelopes are indexed and returned. Without keys nothing is verified (local inspection only).

``python -m edged_platform.store export --store platform/ops --device-key device.pub --image-id ID
--out deid.jpg`` writes a verified package's de-identified image exactly as sent plus a sidecar
``deid.jpg.json`` (image id, frame index, video, message id, signer key id, SHA-256 of the image
bytes), which ``edged_platform.restore --image deid.jpg`` checks records against.

``python -m edged_platform.store images --store platform/ops --store platform/func.face
--device-key device.pub`` prints, one a line, the image ids that every given store holds a verified
upload package or sensitive record of (the images that can be restored from those stores).

``python -m edged_platform.store export-records --store platform/func.face --device-key device.pub
--image-id ID --out records/`` writes every verified sensitive record of that image as one file,
``records/ID.CATEGORY.cbor`` (``ID.CATEGORY.MESSAGE.cbor`` for a second one of the same category):
the signed wire envelope, which ``edged_platform.restore --record FILE`` verifies (envelope and
record signatures) and opens. The category in the name is the record's clear header, whose signature
is checked before the file is written; the crops stay sealed.

Every command's ``--store`` is a folder or a ``postgresql://`` URL (:mod:`edged_platform.pgstore`, the
fleet backend), opened by :func:`edged_platform.stores.open_store`.

``append(env)`` returns ``False`` (and writes nothing) when a message with the same id is already
stored: at-least-once delivery becomes exactly-once storage. The id and image indexes are built by
scanning the files at open; :meth:`refresh` picks up what another process appended since. An append
holds an exclusive lock on its video's file (``flock``) and first reads what others appended, so
several receiver processes may share one folder and each message is still stored once.
:func:`edged_platform.stores.open_store` opens this store or the PostgreSQL one from a ``--store``.

Damage never costs a good item, and nothing is ever cut from a file. Envelopes are read strictly
(:func:`edged.link.wire.decode_at`); bytes that do not start one (damage on disk, a crafted item, a
torn tail from a writer killed mid-append) are skipped up to the next place where a well-formed
envelope starts, and listed in :attr:`SegmentStore.damaged` (between items) or :meth:`SegmentStore.torn`
(at a file's end, counted in :attr:`SegmentStore.torn_tails`). An item that parses but is not
verified (its signature fails, or no keys are given) and has a well-formed envelope starting inside
it is damage too (a damaged length made it swallow the next item), so the items it covers are still
read. The next append goes after all of it, so a torn tail becomes damage between items.
``python -m edged_platform.store verify`` prints each.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import mmap
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from nacl.signing import VerifyKey

from edged.core.keys import KeyFileError
from edged.core.progname import prog_name
from edged.link.records import RecordError
from edged.link.sealing import read_header, verify_sealed
from edged.link.wire import Envelope, EnvelopeAuthError, WireError, decode, decode_at, encode, trusted_keys
from edged_platform.stores import Store, StoreUnavailable, missing_folder, open_store

SUFFIX = ".cbors"
UNSEGMENTED = "_unsegmented"
SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = "edged image sidecar v1"
RECORD_SUFFIX = ".cbor"
CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
"""What a sensitive category's name looks like (it becomes part of file names)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A stored item that failed signature verification (skipped, never returned)."""

    video_id: str
    message_id: str
    kind: str
    image_id: str | None
    reason: str
    """Short tag: ``unsigned``, ``unknown key`` or ``bad signature``."""
    error: str
    """The full one-line reason."""


@dataclass(frozen=True, slots=True)
class Damaged:
    """Bytes of a store file that hold no readable envelope: skipped when read, kept on disk."""

    video_id: str
    offset: int
    length: int
    error: str
    """Why the first of those bytes does not start an envelope."""


@dataclass(frozen=True, slots=True)
class PackageImage:
    """The de-identified image of a verified ops upload package and what names it."""

    image: bytes
    image_format: str
    image_id: str
    frame_index: int
    video_id: str
    message_id: str
    device: str
    signer: str | None

    def sidecar(self) -> dict[str, Any]:
        """The sidecar map written next to an exported image."""
        return {
            "format": SIDECAR_FORMAT,
            "image_id": self.image_id,
            "frame_index": self.frame_index,
            "video_id": self.video_id,
            "message_id": self.message_id,
            "device": self.device,
            "signer": self.signer,
            "image_format": self.image_format,
            "sha256": hashlib.sha256(self.image).hexdigest(),
        }


class PackageError(ValueError):
    """A package envelope's body is not a valid upload package or disagrees with its envelope."""


def package_image(env: Envelope) -> PackageImage:
    """Parse a ``package`` envelope's body (CBOR map with ``image`` bytes); names and ids must agree."""
    what = f"package {env.id}"
    if env.kind != "package":
        raise PackageError(f"message {env.id} is a {env.kind!r} message, not an upload package")
    try:
        m = cbor2.loads(bytes(env.body))
    except Exception as err:  # cbor2 raises several types on garbage
        raise PackageError(f"{what}: body is not valid CBOR ({err})") from None
    if not isinstance(m, dict) or not isinstance(m.get("image"), bytes):
        raise PackageError(f"{what}: body has no 'image' bytes")
    image_id, frame = m.get("image_id"), m.get("frame_index")
    if not isinstance(image_id, str) or not isinstance(frame, int) or isinstance(frame, bool):
        raise PackageError(f"{what}: body lacks a text 'image_id' and an integer 'frame_index'")
    if image_id != env.image_id:
        raise PackageError(f"{what}: body names image {image_id}, its envelope image {env.image_id}")
    video = m.get("video_id", env.video_id)
    if video != env.video_id:
        raise PackageError(f"{what}: body names video {video!r}, its envelope video {env.video_id!r}")
    fmt = m.get("image_format", "jpeg")
    return PackageImage(m["image"], fmt if isinstance(fmt, str) else "jpeg", image_id, frame, env.video_id,
                        env.id, env.device, env.signer)


class SegmentStore:
    """Append-only store of envelopes, one CBOR-sequence file per video id, de-duplicated by id."""

    def __init__(
        self, root: str | Path, *, fsync: bool = False, device_keys: Mapping[str, VerifyKey] | None = None
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.device_keys = device_keys
        """Trusted device keys (key id -> verify key); ``None``: nothing is verified."""
        self.rejected: list[Rejected] = []
        """Stored items that failed verification, in the order they were read."""
        self.damaged: list[Damaged] = []
        """Unreadable stretches between readable items (damage on disk), in the order they were found."""
        self._torn: dict[str, Damaged] = {}  # file stem -> its unreadable tail (a writer killed mid-append)
        self.duplicates = 0
        self._lock = threading.Lock()
        self._ids: dict[str, tuple[str, int]] = {}  # message id -> (file stem, offset)
        self._images: dict[str, list[str]] = {}  # image id -> message ids, arrival order
        self._scanned: dict[str, int] = {}  # file stem -> bytes indexed so far (an unreadable tail is not)
        self._sizes: dict[str, int] = {}  # file stem -> its size at the last scan
        self.refresh()

    # ------------------------------------------------------------------ writing
    def append(self, env: Envelope, data: bytes | None = None) -> bool:
        """Store ``env`` in its video's file; ``False`` if its id is already stored.

        ``data`` is the envelope as received (written as it is; it must decode to ``env``): a signed
        envelope keeps its exact bytes. With :attr:`device_keys` an envelope whose signature does not
        verify raises :class:`edged.link.wire.EnvelopeAuthError` and nothing is written.
        """
        return self.append_many([(env, data)])[0]

    def append_many(self, items: Sequence[tuple[Envelope, bytes | None]]) -> list[bool]:
        """Store a batch as :meth:`append` does each, one flush (and fsync) per video file; per item ``False`` if
        its id was already stored (or came earlier in the batch).

        With :attr:`device_keys` every item is verified first: one that does not verify raises
        :class:`edged.link.wire.EnvelopeAuthError` and nothing is written.
        """
        batch = [(env, encode(env) if data is None else bytes(data)) for env, data in items]
        if self.device_keys is not None:
            for _env, data in batch:
                decode(data, self.device_keys)
        by_file: dict[str, list[int]] = {}
        for i, (env, _data) in enumerate(batch):
            by_file.setdefault(_stem(env.video_id), []).append(i)
        out = [False] * len(batch)
        with self._lock:
            for stem, where in by_file.items():
                for i, new in zip(where, self._append_file(stem, [batch[i] for i in where]), strict=True):
                    out[i] = new
        self.duplicates += out.count(False)
        return out

    def _append_file(self, stem: str, items: list[tuple[Envelope, bytes]]) -> list[bool]:
        """Append the items not yet stored to one video's file under its lock, indexed once flushed."""
        with open(self._path(stem), "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # other processes appending to this folder wait here
            self._scan(stem)  # what they stored before we got the lock counts as stored
            start = end = f.seek(0, io.SEEK_END)
            written: list[tuple[Envelope, int]] = []
            taken: set[str] = set()
            fresh: list[bool] = []
            for env, data in items:
                new = env.id not in self._ids and env.id not in taken
                fresh.append(new)
                if new:
                    taken.add(env.id)
                    f.write(data)
                    written.append((env, end))
                    end += len(data)
            if not written:
                return fresh
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
            torn = self._torn.pop(stem, None)
            if torn is not None:  # the unreadable tail is now damage between items: kept, skipped
                self.damaged.append(Damaged(torn.video_id, torn.offset, start - torn.offset, torn.error))
            for env, offset in written:
                self._index(env, stem, offset)
            self._scanned[stem] = self._sizes[stem] = end
            return fresh

    def append_bytes(self, payload: bytes) -> bool:
        """Decode (and verify, with keys) a received payload and :meth:`append` its exact bytes.

        Raises :class:`WireError` if malformed, :class:`edged.link.wire.EnvelopeAuthError` if unverified.
        """
        return self.append(decode(payload, self.device_keys), payload)

    # ------------------------------------------------------------------ reading
    def segments(self) -> list[str]:
        """Video ids with a file, sorted (``""`` for unsegmented messages)."""
        self.refresh()
        return sorted("" if p.stem == UNSEGMENTED else p.stem for p in self.root.glob(f"*{SUFFIX}"))

    def iter_segment(self, video_id: str) -> Iterator[Envelope]:
        """Every stored envelope of ``video_id`` in arrival order (torn tail skipped)."""
        reader = _ItemReader(self._path(_stem(video_id)), video_id, self.device_keys)
        for _offset, env in reader.items(0):
            yield env

    def get(self, msg_id: str) -> Envelope | None:
        """The envelope with message id ``msg_id``, or ``None``."""
        self.refresh()
        loc = self._ids.get(msg_id)
        if loc is None:
            return None
        stem, offset = loc
        return _ItemReader(self._path(stem), "", self.device_keys).at(offset)

    def by_image(self, image_id: str, kind: str | None = None) -> list[Envelope]:
        """Every stored envelope with ``image_id`` (optionally only of ``kind``), arrival order."""
        self.refresh()
        out = [self.get(m) for m in self._images.get(image_id, [])]
        return [e for e in out if e is not None and (kind is None or e.kind == kind)]

    def get_image(self, image_id: str, kind: str = "package") -> Envelope | None:
        """The last stored ``kind`` envelope for ``image_id`` (the ops image for restore), or ``None``."""
        found = self.by_image(image_id, kind)
        return found[-1] if found else None

    def rejected_for(self, image_id: str | None = None, kind: str | None = None) -> list[Rejected]:
        """Items refused by verification, optionally only those naming ``image_id`` / of ``kind``."""
        self.refresh()
        return [r for r in self.rejected
                if (image_id is None or r.image_id == image_id) and (kind is None or r.kind == kind)]

    def rejected_counts(self) -> dict[str, int]:
        """Refused items per reason (``unsigned``, ``unknown key``, ``bad signature``)."""
        self.refresh()
        out: dict[str, int] = {}
        for r in self.rejected:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out

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
        """Files that end in bytes holding no readable envelope (a writer killed mid-append)."""
        self.refresh()
        return len(self._torn)

    def torn(self) -> list[Damaged]:
        """The unreadable tail of each file that has one."""
        self.refresh()
        return list(self._torn.values())

    def refresh(self) -> None:
        """Index whatever was appended to the files since the last scan (e.g. by a receiver process)."""
        with self._lock:
            for p in self.root.glob(f"*{SUFFIX}"):
                self._scan(p.stem)

    @property
    def location(self) -> str:
        """The store's folder, as given."""
        return str(self.root)

    @property
    def spec(self) -> str:
        """The folder, for :func:`edged_platform.stores.open_store`."""
        return str(self.root)

    def close(self) -> None:
        """Nothing to release: files are opened per operation."""

    # ------------------------------------------------------------------ internals
    def _path(self, stem: str) -> Path:
        return self.root / f"{stem}{SUFFIX}"

    def _scan(self, stem: str) -> None:
        path = self._path(stem)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        start = self._scanned.get(stem, 0)
        if size <= start or size == self._sizes.get(stem):
            return
        video = "" if stem == UNSEGMENTED else stem
        reader = _ItemReader(path, video, self.device_keys, self.rejected.append, self.damaged.append)
        for offset, env in reader.items(start):
            if env.id not in self._ids:
                self._index(env, stem, offset)
        self._scanned[stem], self._sizes[stem] = reader.end, reader.size
        if reader.tail is not None:
            self._torn[stem] = reader.tail
        else:
            self._torn.pop(stem, None)

    def _index(self, env: Envelope, stem: str, offset: int) -> None:
        self._ids[env.id] = (stem, offset)
        if env.image_id is not None:
            self._images.setdefault(env.image_id, []).append(env.id)


def _stem(video_id: str) -> str:
    return video_id or UNSEGMENTED


_ENVELOPE_START = re.compile(rb"[\xa8-\xb7][\x61-\x77]")
"""Where an envelope may start: a map of 8 to 23 entries whose first key is a short text string
(the device's canonical encoding starts with ``t``). Reading resumes at such a place after damage."""


class _ItemReader:
    """Reads the envelopes of one store file, skipping (and reporting) what is not one."""

    def __init__(
        self,
        path: Path,
        video_id: str,
        trusted: Mapping[str, VerifyKey] | None = None,
        on_reject: Callable[[Rejected], None] | None = None,
        on_damage: Callable[[Damaged], None] | None = None,
    ) -> None:
        self.path, self.video_id, self.trusted = path, video_id, trusted
        self.on_reject, self.on_damage = on_reject, on_damage
        self.end = 0
        """Where reading stopped: the file's end, or the start of its unreadable tail."""
        self.size = 0
        self.tail: Damaged | None = None
        """The unreadable bytes at the end of the file, if any (not passed to ``on_damage``)."""

    def _buffer(self) -> mmap.mmap | bytes:
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            return b""

    def items(self, start: int) -> Iterator[tuple[int, Envelope]]:
        """(offset, envelope) of every readable envelope from ``start`` on (verified, with keys)."""
        buf = self._buffer()
        self.size = len(buf)
        pos = start
        while pos < len(buf):
            try:
                env, end = decode_at(buf, pos, self.trusted)
                problem = None if self.trusted is not None else _overruns(buf, pos, end)
            except EnvelopeAuthError as err:
                bare, end = decode_at(buf, pos)  # the format was checked before the signature: this decodes
                problem = _overruns(buf, pos, end)
                if problem is None:
                    if self.on_reject is not None:
                        self.on_reject(Rejected(bare.video_id, bare.id, bare.kind, bare.image_id, err.reason, str(err)))
                    pos = end
                    continue
                problem = f"{err.reason}, {problem}"
            except WireError as err:
                problem = str(err)
            if problem is None:
                yield pos, env
                pos = end
                continue
            found = _next_envelope(buf, pos + 1)
            damage = Damaged(self.video_id, pos, (found if found is not None else len(buf)) - pos, problem)
            if found is None:
                self.tail, self.end = damage, pos
                return
            if self.on_damage is not None:
                self.on_damage(damage)
            pos = found
        self.end = pos

    def at(self, offset: int) -> Envelope | None:
        """The envelope at ``offset`` (verified, with keys), or ``None`` if none is readable there."""
        try:
            return decode_at(self._buffer(), offset, self.trusted)[0]
        except WireError:
            return None


def _overruns(buf: mmap.mmap | bytes, start: int, end: int) -> str | None:
    """Why the unverified item at ``start`` (ending at ``end``) is taken for damage, or ``None``: a
    well-formed envelope starts inside it and either ends inside it too (a damaged entry swallowed the
    next item whole) or the item does not end where the file or another envelope starts (a changed
    length ran it into the next items). An envelope-like run of bytes that starts inside a whole item
    and runs past its end is chance, not damage."""
    boundary = end >= len(buf) or _envelope_at(buf, end)
    for match in _ENVELOPE_START.finditer(buf, start + 1, min(len(buf), end + 1)):
        try:
            _, inside_end = decode_at(buf, match.start())
        except WireError:
            continue
        if inside_end <= end or not boundary:
            return f"it runs over an envelope that starts {match.start() - start} bytes in"
    return None


def _envelope_at(buf: mmap.mmap | bytes, offset: int) -> bool:
    """Whether a well-formed envelope starts at ``offset``."""
    try:
        decode_at(buf, offset)
    except WireError:
        return False
    return True


def _next_envelope(buf: mmap.mmap | bytes, start: int) -> int | None:
    """The first offset from ``start`` on where a well-formed envelope starts, or ``None``."""
    for match in _ENVELOPE_START.finditer(buf, start):
        try:
            decode_at(buf, match.start())
        except WireError:
            continue
        return match.start()
    return None


def refused_note(store: Store, image_id: str, kind: str) -> str:
    """`` (N refused: why)`` for the messages of ``image_id`` and ``kind`` that failed verification, or ``""``."""
    refused = store.rejected_for(image_id, kind)
    return f" ({len(refused)} refused: {refused[-1].error})" if refused else ""


def export_image(store: Store, image_id: str, out: str | Path) -> tuple[Path, Path, PackageImage]:
    """Write the newest verified package image of ``image_id`` to ``out`` and its sidecar ``out.json``."""
    env = store.get_image(image_id)
    if env is None:
        raise PackageError(f"store {store.location} has no verified upload package for image {image_id}"
                           f"{refused_note(store, image_id, 'package')}")
    pkg = package_image(env)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(pkg.image)
    side = sidecar_path(out)
    side.write_text(json.dumps(pkg.sidecar(), indent=1) + "\n", encoding="utf-8")
    return out, side, pkg


@dataclass(frozen=True, slots=True)
class ExportedRecord:
    """A sealed record written to a file by :func:`export_records`."""

    path: Path
    category: str
    message_id: str


def _record_category(env: Envelope, keys: Mapping[str, VerifyKey] | None) -> str:
    """The category of a ``sensitive`` envelope's sealed record (its signature checked with ``keys``)."""
    try:
        header = verify_sealed(bytes(env.body), dict(keys)) if keys is not None else read_header(bytes(env.body))
    except RecordError as err:
        raise PackageError(f"message {env.id}: {err}") from None
    if header.image_id != env.image_id:
        raise PackageError(f"message {env.id}: its envelope names image {env.image_id}, "
                           f"the sealed record image {header.image_id}")
    if not CATEGORY_NAME.match(header.category):
        raise PackageError(f"message {env.id}: record category {header.category!r} is not a category name")
    return header.category


def _record_path(folder: Path, image_id: str, category: str, message_id: str, taken: set[Path]) -> Path:
    """``ID.CATEGORY.cbor`` in ``folder``, or ``ID.CATEGORY.MESSAGE.cbor`` when that name is taken."""
    path = folder / f"{image_id}.{category}{RECORD_SUFFIX}"
    return folder / f"{image_id}.{category}.{message_id}{RECORD_SUFFIX}" if path in taken else path


def export_records(store: Store, image_id: str, out: str | Path) -> list[ExportedRecord]:
    """Write every verified sensitive record of ``image_id`` as its signed envelope, one file each."""
    envs = store.by_image(image_id, kind="sensitive")
    if not envs:
        raise PackageError(f"store {store.location} has no verified sensitive record for image {image_id}"
                           f"{refused_note(store, image_id, 'sensitive')}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[ExportedRecord] = []
    for env in envs:
        category = _record_category(env, store.device_keys)
        path = _record_path(folder, image_id, category, env.id, {w.path for w in written})
        data = env.to_bytes()
        decode(data, store.device_keys)  # the file verifies as it is written (with keys)
        path.write_bytes(data)
        written.append(ExportedRecord(path, category, env.id))
    return written


IMAGE_KINDS = ("package", "sensitive")
"""Message kinds that carry an image or its records (events and telemetry name images too)."""


def image_ids(store: Store) -> list[str]:
    """Image ids of the store's verified packages and sensitive records, in arrival order."""
    seen: dict[str, None] = {}
    for video in store.segments():
        for env in store.iter_segment(video):
            if env.image_id is not None and env.kind in IMAGE_KINDS:
                seen.setdefault(env.image_id, None)
    return list(seen)


def common_images(stores: list[Store]) -> list[str]:
    """Image ids that every store in ``stores`` has a package or sensitive record of (first store's order)."""
    later = [set(image_ids(s)) for s in stores[1:]]
    return [i for i in image_ids(stores[0]) if all(i in ids for ids in later)]


def sidecar_path(image: str | Path) -> Path:
    """Where an exported image's sidecar lives: the image path plus ``.json``."""
    image = Path(image)
    return image.with_name(image.name + SIDECAR_SUFFIX)


def main(argv: list[str] | None = None) -> int:
    """``export`` a verified image with its sidecar, ``export-records`` an image's sealed records as
    files, list restorable ``images``, or ``verify`` a store and count what fails."""
    args = _parser().parse_args(argv)
    prog = "store"
    try:
        keys = trusted_keys(args.device_key)
    except KeyFileError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    folders = args.store if isinstance(args.store, list) else [args.store]
    missing = [f for f in folders if missing_folder(f)]
    if missing:
        print(f"{prog}: store folder not found: {missing[0]}", file=sys.stderr)
        return 1
    try:
        stores = [open_store(f, keys) for f in folders]
        if args.command == "images":
            return _images(stores, prog)
        if args.command == "verify":
            return _verify(stores[0], prog)
    except StoreUnavailable as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    try:
        if args.command == "export-records":
            for rec in export_records(stores[0], args.image_id, args.out):
                print(f"{prog}: wrote {rec.path} ({rec.category} record of image {args.image_id}, "
                      f"message {rec.message_id})")
            return 0
        out, side, pkg = export_image(stores[0], args.image_id, args.out)
    except (PackageError, OSError) as err:  # StoreUnavailable is an OSError without a file name
        print(f"{prog}: {_os_line(err)}", file=sys.stderr)
        return 1
    print(f"{prog}: wrote {out} (image {pkg.image_id}, frame {pkg.frame_index}) and {side}")
    return 0


def _images(stores: list[Store], prog: str) -> int:
    """Print the image ids every store can restore, one a line; 1 (and one line why) when there is none."""
    ids = common_images(stores)
    if not ids:
        print(f"{prog}: no image has a verified package or sealed record in every store given "
              f"({', '.join(s.location for s in stores)})", file=sys.stderr)
        return 1
    print("\n".join(ids))
    return 0


def _verify(store: Store, prog: str) -> int:
    """Print the store's verified, refused and damaged counts (and each of them); 3 when any was refused or damaged."""
    counts = store.rejected_counts()
    detail = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
    torn = store.torn()
    torn_note = f", {len(torn)} unreadable tail{'s' if len(torn) != 1 else ''}" if torn else ""
    refused_note = f" ({detail})" if detail else ""
    print(f"{prog}: {store.location}: {len(store)} verified, {sum(counts.values())} refused{refused_note}, "
          f"{len(store.damaged)} damaged{torn_note}")
    for r in store.rejected:
        print(f"{prog}: refused {r.message_id} ({r.video_id or UNSEGMENTED}): {r.error}", file=sys.stderr)
    for d in store.damaged:
        print(f"{prog}: damaged: {_stem(d.video_id)}{SUFFIX} bytes {d.offset}-{d.offset + d.length} skipped: {d.error}",
              file=sys.stderr)
    for d in torn:
        print(f"{prog}: unreadable tail: {_stem(d.video_id)}{SUFFIX} from byte {d.offset} ({d.length} bytes; a writer "
              f"killed mid-append, or still writing): {d.error}", file=sys.stderr)
    return 0 if not counts and not store.damaged else 3


def _os_line(err: Exception) -> str:
    """One line for an error: an ``OSError`` as ``FILE: reason``, anything else as its message."""
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return str(err)


def _parser() -> argparse.ArgumentParser:
    """The command line: ``export``, ``export-records``, ``images`` and ``verify``."""
    p = argparse.ArgumentParser(prog=prog_name("edged_platform.store"), description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, what in (("export", "write a verified package's de-identified image and its sidecar"),
                       ("export-records", "write an image's verified sealed records, one signed envelope file each"),
                       ("images", "list the image ids every --store has a verified package or record of"),
                       ("verify", "verify every stored envelope and count those that fail")):
        c = sub.add_parser(name, help=what)
        if name == "images":
            c.add_argument("--store", action="append", required=True,
                           help="store folder or postgresql:// URL; repeatable")
        else:
            c.add_argument("--store", required=True,
                           help="store folder (one .cbors file per video) or postgresql:// URL")
        c.add_argument("--device-key", action="append", required=True,
                       help="trusted device public key (.pub, 'edged keygen device'); repeatable")
        if name == "export":
            c.add_argument("--image-id", required=True, help="image id of the upload package")
            c.add_argument("--out", required=True, help="image file to write (its sidecar goes to OUT.json)")
        if name == "export-records":
            c.add_argument("--image-id", required=True, help="image id of the records")
            c.add_argument("--out", required=True, help="folder to write ID.CATEGORY.cbor files into")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
