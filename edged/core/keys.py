"""Key files for the privacy split: the device's Ed25519 signing key, functional platforms' X25519 keys.

A key file is two lines of text::

    edged-key v1 <kind>
    <base64 of the 32 raw key bytes>

with ``kind`` one of ``ed25519-secret``, ``ed25519-public`` (device signing key pair) and
``x25519-secret``, ``x25519-public`` (a functional platform's sealing key pair, PyNaCl ``PrivateKey``
/ ``PublicKey``). Private key files are created with mode 0600 in one ``os.open`` (never readable
by others, not even for a moment) and refused at load when group or others may read them.

A key id is the first 16 hex digits of BLAKE2b(kind tag || public key): short enough to read in a
log, long enough that two keys of one deployment never collide. Sealed records carry the key ids
of their signer and recipient in the clear (see ``docs/SEALED_RECORDS.md``).

``edged keygen device --out keys/device`` writes ``keys/device.key`` + ``keys/device.pub``;
``edged keygen platform --out keys/face`` writes a functional platform's pair. The daemon needs the
device's ``.key`` and each functional platform's ``.pub``; a platform's ``.key`` stays on that
platform.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from edged.core.classes import SENSITIVE_CLASSES
from edged.core.paths import resolve_path

MAGIC = "edged-key v1"
KeyKind = Literal["ed25519-secret", "ed25519-public", "x25519-secret", "x25519-public"]
_KINDS: tuple[str, ...] = ("ed25519-secret", "ed25519-public", "x25519-secret", "x25519-public")
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


class KeyFileError(ValueError):
    """A key file is missing, unreadable, malformed, of the wrong kind or too widely readable."""


def key_id(kind_family: Literal["ed25519", "x25519"], public: bytes) -> str:
    """Short id of a public key: 16 hex digits of BLAKE2b over the family tag and the key bytes."""
    return hashlib.blake2b(kind_family.encode() + b"\0" + bytes(public), digest_size=8).hexdigest()


def signing_key_id(key: SigningKey | VerifyKey) -> str:
    """Key id of a device signing key (or its verify key)."""
    verify = key.verify_key if isinstance(key, SigningKey) else key
    return key_id("ed25519", bytes(verify))


def sealing_key_id(key: PrivateKey | PublicKey) -> str:
    """Key id of a functional platform's key (private or public)."""
    public = key.public_key if isinstance(key, PrivateKey) else key
    return key_id("x25519", bytes(public))


# ----------------------------------------------------------------------------------------- writing
def _encode(kind: str, raw: bytes) -> bytes:
    return f"{MAGIC} {kind}\n{base64.b64encode(raw).decode()}\n".encode()


def _write_private(path: Path, data: bytes, force: bool) -> None:
    """Create ``path`` with mode 0600 from the start (O_EXCL unless ``force``); never chmod after."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    if force and path.exists():
        path.unlink()  # a pre-existing file may have a wider mode; O_CREAT would keep it
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists (use --force to replace it)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_public(path: Path, data: bytes, force: bool) -> None:
    if path.exists() and not force:
        raise KeyFileError(f"key file {path} already exists (use --force to replace it)")
    path.write_bytes(data)


@dataclass(frozen=True, slots=True)
class KeyPairFiles:
    """Where a generated pair went and its key id."""

    private: Path
    public: Path
    key_id: str


def _pair_paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = Path(prefix)
    if prefix.suffix in (PRIVATE_SUFFIX, PUBLIC_SUFFIX):
        prefix = prefix.with_suffix("")
    return prefix.with_name(prefix.name + PRIVATE_SUFFIX), prefix.with_name(prefix.name + PUBLIC_SUFFIX)


def generate_device_key(prefix: str | Path, force: bool = False) -> KeyPairFiles:
    """Generate the device's Ed25519 signing key: ``<prefix>.key`` (0600) and ``<prefix>.pub``."""
    private, public = _pair_paths(prefix)
    private.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    if public.exists() and not force:
        raise KeyFileError(f"key file {public} already exists (use --force to replace it)")
    _write_private(private, _encode("ed25519-secret", bytes(key)), force)
    _write_public(public, _encode("ed25519-public", bytes(key.verify_key)), True)
    return KeyPairFiles(private, public, signing_key_id(key))


def generate_platform_key(prefix: str | Path, force: bool = False) -> KeyPairFiles:
    """Generate a functional platform's X25519 pair: ``<prefix>.key`` (0600) and ``<prefix>.pub``."""
    private, public = _pair_paths(prefix)
    private.parent.mkdir(parents=True, exist_ok=True)
    key = PrivateKey.generate()
    if public.exists() and not force:
        raise KeyFileError(f"key file {public} already exists (use --force to replace it)")
    _write_private(private, _encode("x25519-secret", bytes(key)), force)
    _write_public(public, _encode("x25519-public", bytes(key.public_key)), True)
    return KeyPairFiles(private, public, sealing_key_id(key))


# ----------------------------------------------------------------------------------------- reading
def _read(path: str | Path, expected: str, what: str) -> bytes:
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{what} not found: {path}") from None
    except OSError as err:
        raise KeyFileError(f"cannot read {what} {path}: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"{what} {path} is not a regular file")
    try:
        text = path.read_bytes().decode("ascii")
    except OSError as err:
        raise KeyFileError(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{what} {path} is not an edged key file (not ASCII text)") from None
    lines = text.strip().splitlines()
    if len(lines) != 2 or not lines[0].startswith(MAGIC + " "):
        raise KeyFileError(f"{what} {path} is not an edged key file (first line must be '{MAGIC} {expected}')")
    kind = lines[0][len(MAGIC) + 1 :].strip()
    if kind != expected:
        if kind not in _KINDS:
            raise KeyFileError(f"{what} {path} has unknown key kind {kind!r}")
        raise KeyFileError(f"{what} {path} holds an {kind} key, expected an {expected} key")
    if expected.endswith("-secret") and st.st_mode & 0o077:
        raise KeyFileError(
            f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"private keys must be mode 0600: chmod 600 {path}"
        )
    try:
        raw = base64.b64decode(lines[1].strip(), validate=True)
    except binascii.Error:
        raise KeyFileError(f"{what} {path}: key line is not valid base64") from None
    if len(raw) != 32:
        raise KeyFileError(f"{what} {path}: key must be 32 bytes, got {len(raw)}")
    return raw


def load_signing_key(path: str | Path) -> SigningKey:
    """The device's Ed25519 signing key (``.key`` file, mode 0600)."""
    return SigningKey(_read(path, "ed25519-secret", "device signing key"))


def load_verify_key(path: str | Path) -> VerifyKey:
    """A device's Ed25519 public key (``.pub``), as a functional platform trusts it."""
    return VerifyKey(_read(path, "ed25519-public", "device public key"))


def load_operator_verify_key(path: str | Path) -> VerifyKey:
    """An operator's Ed25519 public key (``.pub``): the device accepts remote commands it signed."""
    return VerifyKey(_read(path, "ed25519-public", "operator public key"))


def load_operator_signing_key(path: str | Path) -> SigningKey:
    """An operator's Ed25519 private key (``.key`` file, mode 0600): signs remote commands."""
    return SigningKey(_read(path, "ed25519-secret", "operator signing key"))


def load_platform_private_key(path: str | Path) -> PrivateKey:
    """A functional platform's X25519 private key (``.key`` file, mode 0600)."""
    return PrivateKey(_read(path, "x25519-secret", "functional-platform private key"))


def load_platform_public_key(path: str | Path) -> PublicKey:
    """A functional platform's X25519 public key (``.pub``): records of its category are sealed to it."""
    return PublicKey(_read(path, "x25519-public", "functional-platform public key"))


# -------------------------------------------------------------------------------- daemon key check
@dataclass(frozen=True, slots=True)
class PrivacyKeys:
    """Keys the privacy stage needs: the device signing key and one recipient per category."""

    signing_key: SigningKey
    recipients: dict[str, PublicKey]

    @property
    def signer_id(self) -> str:
        return signing_key_id(self.signing_key)

    def recipient_id(self, category: str) -> str:
        return sealing_key_id(self.recipients[category])


class PrivacyKeySettings(Protocol):
    """What :func:`check_keys` reads of the config's ``privacy`` section."""

    @property
    def categories(self) -> list[str]: ...

    @property
    def recipients(self) -> dict[str, str]: ...

    @property
    def signing_key(self) -> str: ...


def check_keys(config: object) -> PrivacyKeys:
    """Load and check every key ``config.privacy`` names; raise :class:`KeyFileError` saying what is missing.

    ``config`` is the root :class:`edged.config.Config` (or its ``privacy`` section). The daemon must
    call this before it starts: every category in ``privacy.categories`` needs a recipient public key
    (``privacy.recipients.<category>``), and the device signing key must load.
    """
    section: Any = getattr(config, "privacy", config)
    privacy: PrivacyKeySettings = section

    unknown = [c for c in privacy.categories if c not in SENSITIVE_CLASSES]
    if unknown:
        raise KeyFileError(
            f"privacy.categories: {unknown[0]!r} is not a sensitive class ({', '.join(sorted(SENSITIVE_CLASSES))})"
        )
    missing = [c for c in privacy.categories if not privacy.recipients.get(c)]
    if missing:
        raise KeyFileError(
            "privacy: no functional-platform public key for sensitive categor"
            f"{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}: set privacy.recipients.{missing[0]} "
            "to the platform's .pub file (make one with 'edged keygen platform --out PREFIX'), or remove "
            f"{missing[0]!r} from privacy.categories to de-identify it without keeping its crops"
        )
    recipients = {c: load_platform_public_key(resolve_path(privacy.recipients[c])) for c in privacy.categories}
    if not privacy.signing_key:
        raise KeyFileError("privacy.signing_key: not set (make one with 'edged keygen device --out PREFIX')")
    signing = load_signing_key(resolve_path(privacy.signing_key))
    return PrivacyKeys(signing, recipients)
