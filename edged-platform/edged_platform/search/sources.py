"""Sealed records to index: from receiver stores and ``edged deid --sealed`` folders, verified and
opened as restore opens them, skipping those already indexed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nacl.public import PrivateKey
from nacl.signing import VerifyKey

from edged.link.records import RecordError, SensitiveRecord
from edged.link.sealing import open_sealed, read_header
from edged.link.wire import WireError
from edged_platform.clips import check_usable, read_header_or_none
from edged_platform.pixels import PixelsError
from edged_platform.restore import RestoreError, sealed_bytes
from edged_platform.stores import open_store, shown, store_folder

RECORD_SUFFIXES = (".sealed", ".cbor")


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified, decrypted record and where it is kept."""

    record: SensitiveRecord
    recipient: str
    """Key id of the private key that opened it."""
    location: str
    """``store:<folder>`` (absolute), ``store:<URL without password>`` or ``file:<path>`` (absolute), for restore."""
    message: str
    """The envelope's message id, or the file's SHA-256: what ``seen`` remembers."""


@dataclass(slots=True)
class Tally:
    """What a scan found besides the records it opened."""

    seen: int = 0
    other_key: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """``(where, reason)`` of records refused by verification, decryption or the usability checks."""


def _open(sealed: bytes, ring: dict[str, PrivateKey], signers: dict[str, VerifyKey], tally: Tally,
          where: str) -> tuple[SensitiveRecord, str] | None:
    """Open one sealed container with the key it names, or count why not."""
    try:
        rk = read_header(sealed).recipient_key_id
        if rk not in ring:
            tally.other_key += 1
            return None
        record = open_sealed(sealed, ring[rk], signers)
        check_usable(record)
        return record, rk
    except (RecordError, PixelsError) as err:
        tally.rejected.append((where, str(err)))
    except (ValueError, TypeError) as err:  # a signed record whose content has values of the wrong kind
        tally.rejected.append((where, f"malformed record content ({type(err).__name__}: {str(err)[:80]})"))
    return None


def from_store(spec: str | Path, ring: dict[str, PrivateKey], signers: dict[str, VerifyKey],
               is_seen: Callable[[str], bool], tally: Tally) -> Iterator[Opened]:
    """Every sensitive record of a receiver store (a folder or a ``postgresql://`` URL) not yet seen that one
    of ``ring`` opens; an unreachable database raises :class:`edged_platform.stores.StoreUnavailable`."""
    store = open_store(spec, signers)
    path = store_folder(spec)
    folder = shown(spec)
    location = f"store:{path.resolve()}" if path is not None else f"store:{folder}"
    for video in store.segments():
        for env in store.iter_segment(video):
            if env.kind != "sensitive":
                continue
            if is_seen(env.id):
                tally.seen += 1
                continue
            body = bytes(env.body)
            header_image = read_header_or_none(body)
            if header_image is not None and env.image_id is not None and header_image != env.image_id:
                tally.rejected.append((f"{folder} message {env.id}",
                                       f"envelope names image {env.image_id}, its sealed record image {header_image}"))
                continue
            got = _open(body, ring, signers, tally, f"{folder} message {env.id}")
            if got is not None:
                yield Opened(got[0], got[1], location, env.id)
    tally.rejected += [(f"{folder} message {r.message_id}", r.error) for r in store.rejected_for(kind="sensitive")]


def from_folder(folder: Path, ring: dict[str, PrivateKey], signers: dict[str, VerifyKey],
                is_seen: Callable[[str], bool], tally: Tally) -> Iterator[Opened]:
    """Every record file (``*.sealed``, ``*.cbor``) under ``folder`` not yet seen that one of ``ring`` opens."""
    for path in sorted(folder.rglob("*")):
        if path.suffix not in RECORD_SUFFIXES or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if is_seen(digest):
            tally.seen += 1
            continue
        try:
            sealed = sealed_bytes(data, signers)
        except (RestoreError, WireError) as err:
            tally.rejected.append((str(path), str(err)))
            continue
        got = _open(sealed, ring, signers, tally, str(path))
        if got is not None:
            yield Opened(got[0], got[1], f"file:{path.resolve()}", digest)
