"""Sealing sensitive records and opening them: the device's seal and sign, the functional platform's verify and open.

A record's CBOR plaintext (:mod:`edged.link.records`) is sealed with NaCl ``SealedBox`` to its
category's functional-platform public key; the clear header plus ciphertext are signed with the
device's Ed25519 key; overlaps of several categories travel in nested sealed boxes, one layer per
category. :func:`open_sealed` is the functional platform's side: it checks, in order, the container,
the format version, that the signer is trusted, the signature, that the record is sealed to the given
key, decrypts, and checks the sealed content agrees with the clear header, raising a
:class:`~edged.link.records.RecordError` subclass that says which check failed. The byte format is
specified in ``docs/SEALED_RECORDS.md``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import cbor2
import msgspec
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from edged.core.keys import sealing_key_id, signing_key_id
from edged.link.records import (
    READABLE_VERSIONS,
    DecryptError,
    OverlapPixels,
    RecordFormatError,
    RecordHeader,
    SealedOverlap,
    SensitiveRecord,
    SignatureError,
    UnknownKeyError,
    WrongKeyError,
    as_struct,
    cbor_map,
    decode_overlap,
    decode_record,
    encode_overlap,
    encode_record,
    readable_versions,
)

SIGNATURE_DOMAIN = b"edged sealed record v1\x00"
"""Prefix of every signed message, so a record signature can never be replayed as another kind."""


class _WireHeaderVersion(msgspec.Struct):
    """The header's version field alone."""

    fmt: int


class _WireHeader(msgspec.Struct):
    """The clear header of a sealed record."""

    fmt: int
    rk: str
    sk: str
    cat: str
    image: str
    video: str


class _WireContainer(msgspec.Struct):
    """The sealed container: clear header, ciphertext and signature, each a byte string."""

    h: bytes
    c: bytes
    s: bytes


def _signed_message(header: bytes, ciphertext: bytes) -> bytes:
    """What the device signs: the domain, the header's length, the header and the ciphertext."""
    return SIGNATURE_DOMAIN + struct.pack(">I", len(header)) + header + ciphertext


def seal(record: SensitiveRecord, recipient: PublicKey, signer: SigningKey) -> bytes:
    """Seal ``record`` to ``recipient`` and sign it: the container bytes that travel and are stored."""
    header = cbor2.dumps(
        {
            "fmt": record.format_version,
            "rk": sealing_key_id(recipient),
            "sk": signing_key_id(signer),
            "cat": record.category,
            "image": record.image_id,
            "video": record.video_id,
        }
    )
    ciphertext = SealedBox(recipient).encrypt(encode_record(record))
    signature = signer.sign(_signed_message(header, bytes(ciphertext))).signature
    return cbor2.dumps({"h": header, "c": bytes(ciphertext), "s": bytes(signature)})


def seal_overlap(overlap: OverlapPixels, recipients: Mapping[str, PublicKey]) -> SealedOverlap:
    """Seal ``overlap`` in nested sealed boxes, innermost to its last category's key, outermost to its first."""
    data = encode_overlap(overlap)
    for category in reversed(overlap.categories):
        data = bytes(SealedBox(recipients[category]).encrypt(data))
    key_ids = tuple(sealing_key_id(recipients[c]) for c in overlap.categories)
    return SealedOverlap(overlap.categories, key_ids, data)


def _split(sealed: bytes) -> tuple[_WireContainer, RecordHeader]:
    """The container's parts and its parsed clear header (nothing verified yet)."""
    try:
        container = msgspec.convert(cbor2.loads(sealed), _WireContainer, strict=True, builtin_types=(bytes,))
    except msgspec.ValidationError:
        raise RecordFormatError("not a sealed record: expected a CBOR map with byte strings 'h', 'c' and 's'") from None
    except Exception as err:  # cbor2 raises several types on garbage
        raise RecordFormatError(f"not a sealed record: not valid CBOR ({err})") from None
    where = "sealed record header"
    h = cbor_map(container.h, where)
    fmt = as_struct(h, _WireHeaderVersion, where).fmt
    if fmt not in READABLE_VERSIONS:
        raise RecordFormatError(
            f"sealed record has format version {fmt}; this build reads versions {readable_versions()}"
        )
    w = as_struct(h, _WireHeader, where)
    return container, RecordHeader(w.fmt, w.rk, w.sk, w.cat, w.image, w.video)


def read_header(sealed: bytes) -> RecordHeader:
    """The clear header of a sealed record (nothing verified yet)."""
    return _split(sealed)[1]


def trusted_signers(keys: list[VerifyKey] | tuple[VerifyKey, ...]) -> dict[str, VerifyKey]:
    """Key id -> device verify key, for :func:`open_sealed`."""
    return {signing_key_id(k): k for k in keys}


def _verified(sealed: bytes, signers: dict[str, VerifyKey]) -> tuple[_WireContainer, RecordHeader]:
    """The container and its header, after checking format, trusted signer and signature."""
    container, header = _split(sealed)
    verify = signers.get(header.signer_key_id)
    if verify is None:
        known = ", ".join(sorted(signers)) or "none"
        raise UnknownKeyError(
            f"record {header.image_id}/{header.category} is signed by unknown device key id "
            f"{header.signer_key_id} (trusted: {known})"
        )
    try:
        verify.verify(_signed_message(container.h, container.c), container.s)
    except BadSignatureError:
        raise SignatureError(
            f"record {header.image_id}/{header.category}: signature does not verify with device key "
            f"{header.signer_key_id}: header or ciphertext was altered after signing, or the signature is damaged"
        ) from None
    return container, header


def verify_sealed(sealed: bytes, signers: dict[str, VerifyKey]) -> RecordHeader:
    """Check format, trusted signer and signature; returns the (now authentic) header."""
    return _verified(sealed, signers)[1]


def open_sealed(sealed: bytes, private: PrivateKey, signers: dict[str, VerifyKey]) -> SensitiveRecord:
    """Verify and decrypt a sealed record (the functional platform's side); see the module doc."""
    container, header = _verified(sealed, signers)
    own = sealing_key_id(private)
    if header.recipient_key_id != own:
        raise WrongKeyError(
            f"record {header.image_id}/{header.category} is sealed to key id {header.recipient_key_id}; "
            f"the given private key has id {own}"
        )
    try:
        plaintext = SealedBox(private).decrypt(container.c)
    except CryptoError:
        raise DecryptError(
            f"record {header.image_id}/{header.category}: ciphertext does not open with key {own} "
            "(damaged, or sealed to another key)"
        ) from None
    record = decode_record(plaintext)
    _check_agrees(record, header, own)
    return record


def _check_agrees(record: SensitiveRecord, header: RecordHeader, own: str) -> None:
    """Refuse sealed content that disagrees with its clear header or carries an overlap not sealed to ``own``."""
    if (record.image_id, record.video_id, record.category) != (header.image_id, header.video_id, header.category):
        raise RecordFormatError(
            f"record {header.image_id}/{header.category}: sealed content (image {record.image_id}, video "
            f"{record.video_id}, category {record.category}) disagrees with the clear header"
        )
    if record.format_version != header.format_version:
        raise RecordFormatError(
            f"record {header.image_id}/{header.category}: sealed content has format version "
            f"{record.format_version}, the clear header {header.format_version}"
        )
    for o in record.overlaps:
        if record.category not in o.categories or o.recipient_key_ids[o.categories.index(record.category)] != own:
            raise RecordFormatError(
                f"record {header.image_id}/{header.category}: carries an overlap ({'+'.join(o.categories)}) "
                "not sealed to this record's category and key"
            )


def can_open_overlap(sealed: SealedOverlap, keys: Mapping[str, PrivateKey]) -> bool:
    """Whether ``keys`` (key id -> private key) holds the key of every layer of ``sealed``."""
    return all(k in keys for k in sealed.recipient_key_ids)


def open_overlap(sealed: SealedOverlap, keys: Mapping[str, PrivateKey], image_id: str) -> OverlapPixels:
    """Peel every layer of a sealed overlap with its key from ``keys`` (key id -> private key) and
    check it is ``image_id``'s overlap of the categories it claims."""
    what = f"overlap {'+'.join(sealed.categories)} of image {image_id}"
    missing = [k for k in sealed.recipient_key_ids if k not in keys]
    if missing:
        raise WrongKeyError(
            f"{what} needs the keys {', '.join(sealed.recipient_key_ids)}; missing {', '.join(missing)}"
        )
    data = sealed.ciphertext
    for key_id in sealed.recipient_key_ids:
        try:
            data = SealedBox(keys[key_id]).decrypt(data)
        except CryptoError:
            raise DecryptError(
                f"{what}: a layer does not open with key {key_id} (damaged, or sealed to another key)"
            ) from None
    overlap = decode_overlap(data)
    if (overlap.image_id, overlap.categories) != (image_id, sealed.categories):
        raise RecordFormatError(
            f"{what}: sealed content (image {overlap.image_id}, categories {'+'.join(overlap.categories)}) "
            "disagrees with the record that carries it"
        )
    return overlap
