"""What a platform store is, and how one is opened from a ``--store`` argument.

A store holds the verified envelopes of one destination (``ops``, ``func.<category>``), grouped by
video, each message once. Two backends implement :class:`Store`:

- ``PATH`` or ``file:PATH``: :class:`edged_platform.store.SegmentStore`, one append-only file per
  video in a folder (the embedded default; several receiver processes may append to one folder);
- ``postgresql://...`` (or ``postgres://``): :class:`edged_platform.pgstore.PgStore`, the rows of a
  PostgreSQL database (one database per destination), for fleets.

``open_store(spec, device_keys)`` picks the backend. A store that cannot be opened or reached raises
:class:`StoreUnavailable` (an ``OSError``) whose message is one line naming the store (a URL without
its password).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nacl.signing import VerifyKey

from edged.link.wire import Envelope

if TYPE_CHECKING:
    from edged_platform.store import Damaged, Rejected

URL_SCHEMES = ("postgresql", "postgres")
FILE_PREFIX = "file:"


class StoreUnavailable(OSError):
    """A store could not be opened or reached (missing folder, database down, bad URL): one line why."""


@runtime_checkable
class Store(Protocol):
    """The envelopes of one destination: what receivers, restore, clips, search and the store CLI use."""

    device_keys: Mapping[str, VerifyKey] | None
    """Trusted device keys (key id -> verify key); ``None``: nothing is verified."""
    duplicates: int
    """Appends refused by this instance because the message was already stored."""

    @property
    def location(self) -> str:
        """What to call the store in messages: its folder, or its URL without a password."""
        ...

    @property
    def spec(self) -> str:
        """What :func:`open_store` opens this store again from (a folder path or a URL without a password)."""
        ...

    @property
    def rejected(self) -> list[Rejected]:
        """Stored items that failed verification when read (skipped, never returned)."""
        ...

    @property
    def damaged(self) -> list[Damaged]:
        """Stored bytes that hold no readable envelope (between items); empty where storage cannot tear."""
        ...

    def append(self, env: Envelope, data: bytes | None = None) -> bool:
        """Store ``env`` (its exact bytes ``data`` when given), durably; ``False`` if its id is already stored.

        With :attr:`device_keys` an unverified envelope raises ``EnvelopeAuthError`` and nothing is
        stored; a store that cannot be reached raises :class:`StoreUnavailable`.
        """
        ...

    def append_bytes(self, payload: bytes) -> bool:
        """Decode (and verify, with keys) a received payload and :meth:`append` its exact bytes."""
        ...

    def append_many(self, items: Sequence[tuple[Envelope, bytes | None]]) -> list[bool]:
        """Store a batch as :meth:`append` does each, all durable when it returns; per item ``False`` if its id
        was already stored (or came earlier in the batch).

        With :attr:`device_keys` every item is verified first: one unverified raises ``EnvelopeAuthError``
        and nothing is stored. A store error (:class:`StoreUnavailable`, another ``OSError``) means the
        batch is not known to be stored: the caller stores it all again (its stored items then count as
        duplicates).
        """
        ...

    def get(self, msg_id: str) -> Envelope | None:
        """The verified envelope with message id ``msg_id``, or ``None``."""
        ...

    def by_image(self, image_id: str, kind: str | None = None) -> list[Envelope]:
        """Every verified envelope naming ``image_id`` (optionally only of ``kind``), in arrival order."""
        ...

    def get_image(self, image_id: str, kind: str = "package") -> Envelope | None:
        """The last verified ``kind`` envelope of ``image_id``, or ``None``."""
        ...

    def iter_segment(self, video_id: str) -> Iterator[Envelope]:
        """Every verified envelope of ``video_id`` (``""``: unsegmented) in arrival order."""
        ...

    def segments(self) -> list[str]:
        """Video ids that hold a stored message, sorted (``""`` for unsegmented messages)."""
        ...

    def rejected_for(self, image_id: str | None = None, kind: str | None = None) -> list[Rejected]:
        """Items refused by verification, optionally only those naming ``image_id`` / of ``kind``."""
        ...

    def rejected_counts(self) -> dict[str, int]:
        """Refused items per reason (``unsigned``, ``unknown key``, ``bad signature``, ...)."""
        ...

    def torn(self) -> list[Damaged]:
        """Unreadable tails (a writer killed mid-append); empty where storage cannot tear."""
        ...

    def ids(self) -> set[str]:
        """All verified message ids."""
        ...

    def __contains__(self, msg_id: object) -> bool: ...

    def __len__(self) -> int: ...

    def refresh(self) -> None:
        """Take in what other processes stored since this instance last looked."""
        ...

    def close(self) -> None:
        """Release the store's files or connection (the instance is not used afterwards)."""
        ...


def is_url(spec: str | Path) -> bool:
    """Whether ``spec`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(spec, str) and spec.split("://", 1)[0].lower() in URL_SCHEMES and "://" in spec


def store_folder(spec: str | Path) -> Path | None:
    """The folder a file-store ``spec`` names (``PATH`` or ``file:PATH``), or ``None`` for a URL."""
    return None if is_url(spec) else _file_path(spec)


def _file_path(spec: str | Path) -> Path:
    text = str(spec)
    return Path(text[len(FILE_PREFIX):] if text.startswith(FILE_PREFIX) else text)


def missing_folder(spec: str | Path) -> bool:
    """Whether ``spec`` is a file store whose folder does not exist (the read commands refuse it)."""
    folder = store_folder(spec)
    return folder is not None and not folder.is_dir()


def redact(url: str) -> str:
    """``url`` without its password (in the user part or a ``password=`` parameter)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, host = netloc.rsplit("@", 1)
            netloc = f"{user.split(':', 1)[0]}@{host}"
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                           if k.lower() != "password"])
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return url.split("://", 1)[0] + "://(unreadable URL)"


def one_line(err: BaseException) -> str:
    """A database error as one line (libpq's messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__


def shown(spec: str | Path) -> str:
    """``spec`` as messages name it: a folder as given, a URL without its password."""
    return redact(str(spec)) if is_url(spec) else str(spec)


def open_store(spec: str | Path, device_keys: Mapping[str, VerifyKey] | None = None, *,
               fsync: bool = False) -> Store:
    """The store ``spec`` names: a folder (``PATH``, ``file:PATH``) or a PostgreSQL URL.

    ``fsync`` applies to file stores (a database commit is always durable). Raises
    :class:`StoreUnavailable` with one line when a database cannot be reached or the URL is bad.
    """
    if is_url(spec):
        from edged_platform.pgstore import PgStore

        return PgStore(str(spec), device_keys=device_keys)
    from edged_platform.store import SegmentStore

    return SegmentStore(_file_path(spec), fsync=fsync, device_keys=device_keys)
