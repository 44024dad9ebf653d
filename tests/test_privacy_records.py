"""Sealed sensitive records: content, clear header, and every refusal with its own clear error."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cbor2
import numpy as np
import pytest
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from edged.core.keys import sealing_key_id, signing_key_id
from edged.link.crops import decode_png
from edged.link.records import DecryptError, RecordFormatError, SignatureError, UnknownKeyError, WrongKeyError
from edged.link.sealing import _signed_message, open_sealed, read_header, seal, trusted_signers
from edged.stages.privacy.deid import FrameDeidentifier, sensitive_regions
from edged.stages.privacy.records import build_records
from tests.privacy_support import key_material, meta, photos


@pytest.fixture(scope="module")
def sealed_face() -> tuple[bytes, object, np.ndarray]:
    photo = photos()[1]
    regions = sensitive_regions(photo.tracks, None, 0.3)
    res = FrameDeidentifier()(photo.pixels, regions)
    records = build_records(meta(7, 600, 400), photo.pixels, res, regions, ["face", "plate"], device="rsu-7")
    device, face, _ = key_material()
    return seal(records["face"], face.public_key, device), records["face"], res.rects


def test_one_record_per_category_with_crops_and_mapping(sealed_face) -> None:
    photo = photos()[1]
    regions = sensitive_regions(photo.tracks, None, 0.3)
    res = FrameDeidentifier()(photo.pixels, regions)
    records = build_records(meta(7), photo.pixels, res, regions, ["face", "plate"], device="rsu-7")
    assert sorted(records) == ["face", "plate"]
    face = records["face"]
    assert [r.track_id for r in face.regions] == [21, 23] and [r.track_id for r in records["plate"].regions] == [22]
    assert (face.image_id, face.frame_index, face.video_id) == (meta(7).image_id, 7, meta(7).video_id)
    assert face.timestamp == meta(7).timestamp and face.device == "rsu-7"
    for r, rect in zip(face.regions, res.rects[[0, 2]], strict=True):
        x1, y1, x2, y2 = rect
        assert (r.x, r.y, r.w, r.h) == (x1, y1, x2 - x1, y2 - y1)
        assert np.array_equal(decode_png(r.crop), photo.pixels[y1:y2, x1:x2])  # lossless
    assert face.regions[1].x == 0  # the region cut by the image border is clipped
    # a category not listed keeps no crop
    assert sorted(build_records(meta(7), photo.pixels, res, regions, ["plate"])) == ["plate"]


def test_seal_and_open_round_trip_with_clear_header(sealed_face) -> None:
    sealed, record, _ = sealed_face
    device, face, _ = key_material()
    header = read_header(sealed)
    assert header.format_version == 2 and header.category == "face"
    assert header.recipient_key_id == sealing_key_id(face) and header.signer_key_id == signing_key_id(device)
    assert (header.image_id, header.video_id) == (record.image_id, record.video_id)
    opened = open_sealed(sealed, face, trusted_signers([device.verify_key]))
    assert opened == record
    assert record.regions[0].crop not in sealed  # the crop is not in the clear


def _parts(sealed: bytes) -> dict:
    return cbor2.loads(sealed)


def test_flipped_ciphertext_bit_is_rejected_by_the_signature_and_by_the_box(sealed_face) -> None:
    sealed, _, _ = sealed_face
    device, face, _ = key_material()
    m = _parts(sealed)
    c = bytearray(m["c"])
    c[len(c) // 2] ^= 0x01
    tampered = cbor2.dumps({**m, "c": bytes(c)})
    with pytest.raises(SignatureError, match="signature does not verify .* altered"):
        open_sealed(tampered, face, trusted_signers([device.verify_key]))
    # even re-signed by the device key, the altered ciphertext does not open (authenticated encryption)
    resigned = cbor2.dumps({**m, "c": bytes(c), "s": device.sign(_signed_message(m["h"], bytes(c))).signature})
    with pytest.raises(DecryptError, match="does not open"):
        open_sealed(resigned, face, trusted_signers([device.verify_key]))


def test_bad_signature_and_altered_header_are_rejected(sealed_face) -> None:
    sealed, _, _ = sealed_face
    device, face, _ = key_material()
    m = _parts(sealed)
    s = bytearray(m["s"])
    s[0] ^= 0x80
    with pytest.raises(SignatureError):
        open_sealed(cbor2.dumps({**m, "s": bytes(s)}), face, trusted_signers([device.verify_key]))
    h = cbor2.loads(m["h"])
    h["image"] = "01JBBBBBBBBBBBBBBBBB999999"  # point the record at another image
    with pytest.raises(SignatureError):
        open_sealed(cbor2.dumps({**m, "h": cbor2.dumps(h)}), face, trusted_signers([device.verify_key]))


def test_wrong_private_key_and_unknown_signer_are_rejected(sealed_face) -> None:
    sealed, _, _ = sealed_face
    device, face, plate = key_material()
    with pytest.raises(WrongKeyError, match=f"sealed to key id {sealing_key_id(face)}; the given private key has id {sealing_key_id(plate)}"):
        open_sealed(sealed, plate, trusted_signers([device.verify_key]))
    stranger = SigningKey.generate()
    with pytest.raises(UnknownKeyError, match=f"unknown device key id {signing_key_id(device)}"):
        open_sealed(sealed, face, trusted_signers([stranger.verify_key]))
    with pytest.raises(UnknownKeyError, match=r"trusted: none"):
        open_sealed(sealed, face, {})
    # a record forged by another device key that claims to be the trusted one fails the signature
    m = _parts(sealed)
    forged = cbor2.dumps({**m, "s": stranger.sign(_signed_message(m["h"], m["c"])).signature})
    with pytest.raises(SignatureError):
        open_sealed(forged, face, trusted_signers([device.verify_key]))


def test_malformed_containers_are_rejected_clearly(sealed_face) -> None:
    sealed, _, _ = sealed_face
    device, face, _ = key_material()
    signers = trusted_signers([device.verify_key])
    with pytest.raises(RecordFormatError, match="not valid CBOR"):
        open_sealed(b"\xff\x00garbage", face, signers)
    with pytest.raises(RecordFormatError, match="byte strings 'h', 'c' and 's'"):
        open_sealed(cbor2.dumps({"h": b""}), face, signers)
    m = _parts(sealed)
    h = cbor2.loads(m["h"])
    with pytest.raises(RecordFormatError, match="format version 3"):
        open_sealed(cbor2.dumps({**m, "h": cbor2.dumps({**h, "fmt": 3})}), face, signers)
    # sealed content that disagrees with its (signed) header is refused after decryption
    other = cbor2.dumps({**h, "image": "01JBBBBBBBBBBBBBBBBB000099"})
    c = m["c"]
    bad = cbor2.dumps({"h": other, "c": c, "s": device.sign(_signed_message(other, c)).signature})
    with pytest.raises(RecordFormatError, match="disagrees with the clear header"):
        open_sealed(bad, face, signers)
    junk_plain = SealedBox(face.public_key).encrypt(b"\xff\xfe not cbor")
    bad = cbor2.dumps({"h": m["h"], "c": junk_plain, "s": device.sign(_signed_message(m["h"], junk_plain)).signature})
    with pytest.raises(RecordFormatError, match="plaintext is not valid CBOR"):
        open_sealed(bad, face, signers)


def test_other_recipient_key_cannot_open_even_with_forged_header(sealed_face) -> None:
    sealed, _, _ = sealed_face
    device, _, plate = key_material()
    m = _parts(sealed)
    h = cbor2.loads(m["h"])
    h["rk"] = sealing_key_id(plate)  # header claims plate's key; re-signed by the device
    hb = cbor2.dumps(h)
    bad = cbor2.dumps({"h": hb, "c": m["c"], "s": device.sign(_signed_message(hb, m["c"])).signature})
    with pytest.raises(DecryptError):
        open_sealed(bad, plate, trusted_signers([device.verify_key]))


@pytest.mark.parametrize(("where", "value"), [
    ("camera", 5), ("camera", ["x", 1, 2]), ("camera", [1, 2]), ("device", 7),
    ("box", ["a", 0, 1, 1]), ("box", [True, 0, 1, 1]), ("sig_shape", ["2", 2, 3]), ("sig_shape", [0, 2, 3]),
])
def test_a_record_field_of_the_wrong_kind_is_a_format_error(sealed_face, where: str, value: object) -> None:
    """A signed record's plaintext with a value of the wrong kind is refused as a format error
    naming the field, never a TypeError or ValueError from deeper down."""
    from edged.link.records import decode_record, encode_record
    m = cbor2.loads(encode_record(sealed_face[1]))
    if where in ("box", "sig_shape"):
        m["regions"][0][where] = value
    else:
        m[where] = value
    with pytest.raises(RecordFormatError, match=where):
        decode_record(cbor2.dumps(m))


@pytest.mark.parametrize(("where", "change"), [
    ("v", {"v": True}), ("image", {"image": None}), ("frame", {"frame": 1.5}), ("t", {"t": "now"}),
    ("size", {"size": [0, 48]}), ("size", {"size": [64]}), ("regions", {"regions": 5}),
    ("overlaps", {"overlaps": [{"cats": ["face"], "rk": ["k"], "c": b""}]}), ("category", {"category": None}),
])
def test_a_missing_or_odd_record_field_is_a_format_error_naming_it(sealed_face, where: str, change: dict) -> None:
    from edged.link.records import decode_record, encode_record
    m = {**cbor2.loads(encode_record(sealed_face[1])), **change}
    with pytest.raises(RecordFormatError, match=where):
        decode_record(cbor2.dumps(m))
    del m[where]
    with pytest.raises(RecordFormatError, match=f"{where}: missing"):
        decode_record(cbor2.dumps(m))


@pytest.mark.parametrize(("where", "value", "named"), [
    ("track", True, r"regions\[0\]\.track: expected int, got bool"), ("type", b"face", r"regions\[0\]\.type"),
    ("x", -1, r"regions\[0\]\.x: expected int >= 0"), ("w", 0, r"regions\[0\]\.w: expected int >= 1"),
    ("angle", "0", r"regions\[0\]\.angle"), ("score", None, r"regions\[0\]\.score"),
    ("detected", 1, r"regions\[0\]\.detected"), ("crop", "aGVsbG8=", r"regions\[0\]\.crop: expected bytes, got str"),
    ("sig", b"short", r"regions\[0\]: 'sig' has 5 bytes, 'sig_shape'"),
    ("masked", [[0, 0, 999, 1]], r"regions\[0\]: masked rectangle 0 \[0, 0, 999, 1\] is not inside"),
    ("masked", [[0, 0, 1]], r"regions\[0\]\.masked\[0\]: expected array of length 4"),
])
def test_a_missing_or_odd_region_field_is_a_format_error_naming_it(sealed_face, where: str, value: object,
                                                                   named: str) -> None:
    from edged.link.records import decode_record, encode_record
    m = cbor2.loads(encode_record(sealed_face[1]))
    m["regions"][0][where] = value
    with pytest.raises(RecordFormatError, match=named):
        decode_record(cbor2.dumps(m))
    del m["regions"][0][where]
    with pytest.raises(RecordFormatError, match=rf"regions\[0\]\.{where}: missing"):
        decode_record(cbor2.dumps(m))


@pytest.mark.parametrize("field", ["rk", "sk", "cat", "image", "video"])
def test_a_missing_or_odd_header_field_is_a_format_error_naming_it(sealed_face, field: str) -> None:
    m = _parts(sealed_face[0])
    h = cbor2.loads(m["h"])
    with pytest.raises(RecordFormatError, match=f"header: field {field}: expected str, got int"):
        read_header(cbor2.dumps({**m, "h": cbor2.dumps({**h, field: 7})}))
    del h[field]
    with pytest.raises(RecordFormatError, match=f"header: field {field}: missing"):
        read_header(cbor2.dumps({**m, "h": cbor2.dumps(h)}))


# ------------------------------------------------------------------------- records sealed earlier
FIXTURES = Path(__file__).parent / "data" / "sealed_records"
"""Records sealed, with fixed keys, by the encoder as it stood before the format moved to ``edged.link``,
and what that code opened from them (``opened.json``: every field with its Python type, bytes in hex)."""


def _fixture_keys() -> tuple[SigningKey, PrivateKey, PrivateKey]:
    """The device, face and plate keys the fixtures were sealed with."""
    return SigningKey(bytes(range(32))), PrivateKey(bytes(range(32, 64))), PrivateKey(bytes(range(64, 96)))


def _plain(value: object) -> object:
    """A record, header or overlap as plain JSON values: fields by name, each scalar with its type."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return [type(value).__name__, value]


@pytest.mark.parametrize(("name", "category"), [("v2_face", "face"), ("v2_plate", "plate"), ("v1_face", "face")])
def test_records_sealed_earlier_open_as_they_did_and_reencode_to_the_same_bytes(name: str, category: str) -> None:
    from edged.link.records import encode_record
    device, face, plate = _fixture_keys()
    key = {"face": face, "plate": plate}[category]
    sealed = (FIXTURES / f"{name}.cbor").read_bytes()
    opened = json.loads((FIXTURES / "opened.json").read_text())
    record = open_sealed(sealed, key, trusted_signers([device.verify_key]))
    assert _plain(record) == opened[name]
    assert _plain(read_header(sealed)) == opened[f"{name}.header"]
    container = _parts(sealed)
    assert encode_record(record) == SealedBox(key).decrypt(container["c"])
    assert _parts(seal(record, key.public_key, device))["h"] == container["h"]


def test_an_overlap_sealed_earlier_opens_as_it_did() -> None:
    from edged.link.records import encode_overlap
    from edged.link.sealing import open_overlap
    device, face, plate = _fixture_keys()
    record = open_sealed((FIXTURES / "v2_plate.cbor").read_bytes(), plate, trusted_signers([device.verify_key]))
    ring = {sealing_key_id(face.public_key): face, sealing_key_id(plate.public_key): plate}
    overlap = open_overlap(record.overlaps[0], ring, record.image_id)
    assert _plain(overlap) == json.loads((FIXTURES / "opened.json").read_text())["overlap"]
    inner = SealedBox(plate).decrypt(SealedBox(face).decrypt(record.overlaps[0].ciphertext))
    assert encode_overlap(overlap) == inner
