"""Platform side under hostile input: crafted envelopes, damaged store files, hostile signed records,
and envelopes republished on another platform's topic. Real mosquitto, real files."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cbor2
import cv2
import numpy as np
import paho.mqtt.publish as mqtt_publish
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from edged.core.keys import (
    generate_device_key,
    generate_platform_key,
    load_platform_private_key,
    load_signing_key,
    sealing_key_id,
    signing_key_id,
)
from edged.link import wire
from edged.link.crops import encode_png
from edged.link.records import RecordRegion, SensitiveRecord, encode_record
from edged.link.sealing import _signed_message, seal
from edged_platform import clips, restore
from edged_platform import store as store_cli
from edged_platform.store import SegmentStore
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
VIDEO = "01JAAAAAAAAAAAAAAAAAAAAAAA"
IMAGE = "01JBBBBBBBBBBBBBBBBBBBBBBB"


# ------------------------------------------------------------------------------------------ helpers
def _package(key: SigningKey, image: str = IMAGE, video: str = VIDEO, pixels: bytes | None = None, frame: int = 1) -> bytes:
    """A genuine upload-package envelope, signed as the outbox signs."""
    body = cbor2.dumps({"image": os.urandom(32) if pixels is None else pixels, "image_id": image,
                        "frame_index": frame, "video_id": video, "image_format": "png"})
    return wire.encode(wire.make("package", "ops", "immediate", body, video_id=video, image_id=image), key)


def _with_extra(signed: bytes, value_cbor: bytes) -> bytes:
    """``signed`` with one more map entry ``x`` whose value is the raw CBOR ``value_cbor`` (signature kept)."""
    n = signed[0] - 0xA0
    assert 0 < n < 23, "a small canonical map"
    return bytes([0xA0 + n + 1]) + signed[1:] + b"\x61x" + value_cbor


CYCLIC = bytes.fromhex("d81ca16178d81d00")
"""A map that contains itself (CBOR shared-value tags 28/29)."""


def _crafted(key: SigningKey) -> bytes:
    """An envelope naming the trusted key whose extra value is a cyclic structure."""
    return _with_extra(_package(key), CYCLIC)


@contextlib.contextmanager
def _receiver(broker: Mosquitto, store: Path, public: Path, *extra: str, topic: str = "edged/+/ops/#") -> Iterator[subprocess.Popen]:
    """The receiver command line, subscribed; terminated (and its stderr kept in ``.err``) on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged_platform.receiver", "--host", "127.0.0.1", "--port", str(broker.port),
         "--topic", topic, "--store", str(store), "--device-key", str(public), *extra],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "subscribed to" in line:
                break
        else:
            raise AssertionError("receiver exited before subscribing:\n" + "".join(lines))
        yield proc
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=20)
        proc.err = "".join(lines) + rest  # type: ignore[attr-defined]


def _wait_for(check, timeout: float = 8.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# ------------------------------------------------------------------------- crafted envelopes (CBOR)
@pytest.mark.parametrize("value", [
    CYCLIC,
    bytes.fromhex("d9270f00"),              # an unknown tag (9999) around 0
    bytes.fromhex("c11a65000000"),          # tag 1: an epoch date
    bytes.fromhex("d90102820102"),          # tag 258: a set
    bytes.fromhex("c249010000000000000000"),  # tag 2: a bignum
    bytes.fromhex("bf6161f5ff"),            # an indefinite-length map
    bytes.fromhex("f7"),                    # undefined
    bytes.fromhex("f0"),                    # an unassigned simple value
], ids=["cyclic", "unknown-tag", "date", "set", "bignum", "indefinite", "undefined", "simple"])
def test_an_envelope_with_a_tag_or_odd_item_is_malformed_not_fatal(value: bytes) -> None:
    key = SigningKey.generate()
    trusted = wire.trusted_keys([key.verify_key])
    crafted = _with_extra(_package(key), value)
    with pytest.raises(wire.WireError) as err:
        wire.decode(crafted, trusted)
    assert not isinstance(err.value, wire.EnvelopeAuthError), "refused as malformed, before any signature work"
    with pytest.raises(wire.WireError):
        wire.decode(crafted)
    assert wire.decode(_package(key), trusted).signed  # genuine envelopes still verify


PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.floats(allow_nan=False) | st.binary(max_size=20)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)
DEVICE = SigningKey(bytes(range(32)))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.floats(0, 4e9), st.sampled_from(wire.PRIORITIES), st.booleans(),
       st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8).filter(
           lambda k: k not in {"id", "kind", "dest", "prio", "video", "device", "body", "image", "sk", "sig"}),
           PLAIN, max_size=3))
def test_whatever_the_device_signs_still_verifies(body: bytes, t: float, prio: str, image: bool, extra: dict) -> None:
    dest = "func.face" if prio == "sensitive" else "ops"
    env = wire.make("event", dest, prio, body, video_id="V1", image_id="I1" if image else None, created=t)
    if extra:  # unknown keys of a later version, kept and signed (decoded, then signed again)
        m = cbor2.loads(wire.encode(env))
        env = wire.decode(cbor2.dumps({**extra, **m}))
    data = wire.encode(env, DEVICE)
    back = wire.decode(data, wire.trusted_keys([DEVICE.verify_key]))
    assert back.to_bytes() == data and cbor2.loads(data) == cbor2.loads(back.to_bytes())
    assert back.created == env.created and back.body == body and dict(back.extra) == dict(env.extra)


def test_duplicate_keys_and_trailing_bytes_are_malformed() -> None:
    key = SigningKey.generate()
    good = _package(key)
    with pytest.raises(wire.WireError, match="twice"):
        wire.decode(_dup_key(good))
    with pytest.raises(wire.WireError, match="after the envelope"):
        wire.decode(good + b"\x00")


def _dup_key(signed: bytes) -> bytes:
    """``signed`` with its ``dest`` entry repeated at the end."""
    n = signed[0] - 0xA0
    return bytes([0xA0 + n + 1]) + signed[1:] + b"\x64dest" + b"\x66func.x"


def test_a_retained_crafted_envelope_does_not_stop_the_receiver(tmp_path: Path, mosquitto: Mosquitto) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    key = load_signing_key(dev.private)
    store = tmp_path / "ops"
    topic = "edged/rsu-1/ops/package"
    mqtt_publish.single(topic, _crafted(key), qos=1, retain=True, hostname="127.0.0.1", port=mosquitto.port)
    trusted = wire.trusted_keys([dev.public])
    stored = []
    for attempt in range(2):  # the retained envelope is delivered again at every start
        genuine = _package(key, image=wire.new_id())
        with _receiver(mosquitto, store, dev.public) as proc:
            mqtt_publish.single(topic, genuine, qos=1, hostname="127.0.0.1", port=mosquitto.port)
            stored.append(wire.decode(genuine).id)
            assert _wait_for(lambda: set(stored) <= SegmentStore(store, device_keys=trusted).ids()), f"start {attempt}"
            assert proc.poll() is None, "the receiver is still running"
        assert proc.returncode == 0, proc.err  # type: ignore[attr-defined]
        assert "1 malformed" in proc.err and "Traceback" not in proc.err, proc.err  # type: ignore[attr-defined]
    assert SegmentStore(store, device_keys=trusted).ids() == set(stored)


def test_store_verify_reports_a_crafted_item_and_goes_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    key = load_signing_key(dev.private)
    first, last = _package(key, image=wire.new_id()), _package(key, image=wire.new_id())
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / f"{VIDEO}.cbors").write_bytes(first + _crafted(key) + last)
    assert store_cli.main(["verify", "--store", str(tmp_path / "ops"), "--device-key", str(dev.public)]) == 3
    out, err = capsys.readouterr()
    assert "2 verified" in out and "1 damaged" in out, out
    assert "tag" in err and "Traceback" not in err, err
    ids = SegmentStore(tmp_path / "ops", device_keys=wire.trusted_keys([dev.public])).ids()
    assert ids == {wire.decode(first).id, wire.decode(last).id}


# ---------------------------------------------------------------------------------- damaged files
def _flip_length(item: bytes) -> bytes:
    """``item`` with the length of its ``body`` byte string changed (the framing is lost from there)."""
    at = item.index(b"\x64body") + 5
    assert item[at] == 0x58, "a body of 24..255 bytes"
    return item[:at + 1] + bytes([item[at + 1] + 40]) + item[at + 2:]


def _swallow_next(item: bytes) -> bytes:
    """``item`` with its last entry ``device: ""`` damaged into a key ``devicf`` whose value is whatever
    follows: the next item, which it swallows whole while still parsing as an envelope."""
    assert item.endswith(b"\x66device\x60")
    return item[:-8] + b"\x66devicf"


DAMAGE = {
    "swallows the next item": _swallow_next,
    "garbage between items": lambda item: random.Random(1).randbytes(37) + item,
    "length changed": _flip_length,
    "item cut short": lambda item: item[: len(item) // 2],
    "bytes zeroed": lambda item: item[:10] + bytes(30) + item[40:],
}


@pytest.mark.parametrize("verified", [True, False], ids=["with-keys", "no-keys"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_item_never_costs_the_later_items(tmp_path: Path, damage: str, verified: bool, capsys) -> None:  # noqa: ANN001
    dev = generate_device_key(tmp_path / "keys" / "device")
    key = load_signing_key(dev.private)
    trusted = wire.trusted_keys([dev.public]) if verified else None
    items = [_package(key, image=wire.new_id()) for _ in range(5)]
    ids = [wire.decode(i).id for i in items]
    path = tmp_path / "ops" / f"{VIDEO}.cbors"
    path.parent.mkdir()
    path.write_bytes(items[0] + items[1] + DAMAGE[damage](items[2]) + items[3] + items[4])
    good = {ids[0], ids[1], ids[3], ids[4]}
    store = SegmentStore(path.parent, device_keys=trusted)
    assert good <= store.ids(), "every genuine item after the damage is found"
    assert store.damaged, "the damage is reported"
    extra = wire.decode(_package(key, image=wire.new_id()))
    assert store.append(extra)
    again = SegmentStore(path.parent, device_keys=trusted)
    assert good | {extra.id} <= again.ids(), "the append kept every genuine item"
    assert [e.id for e in again.iter_segment(VIDEO) if e.id in good | {extra.id}] == [ids[0], ids[1], ids[3], ids[4], extra.id]
    assert again.get(ids[4]) is not None and again.get(ids[4]).id == ids[4]
    assert store_cli.main(["verify", "--store", str(path.parent), "--device-key", str(dev.public)]) == 3
    out, err = capsys.readouterr()
    assert "damaged" in out and "damaged" in err, (out, err)


def test_a_torn_tail_is_skipped_and_the_next_append_is_read(tmp_path: Path) -> None:
    key = SigningKey.generate()
    trusted = wire.trusted_keys([key.verify_key])
    a, torn, b = (_package(key, image=wire.new_id()) for _ in range(3))
    path = tmp_path / f"{VIDEO}.cbors"
    path.write_bytes(a + torn[:50])
    store = SegmentStore(tmp_path, device_keys=trusted)
    assert store.torn_tails == 1 and store.ids() == {wire.decode(a).id}
    assert store.append(wire.decode(b), b)
    assert SegmentStore(tmp_path, device_keys=trusted).ids() == {wire.decode(a).id, wire.decode(b).id}


# -------------------------------------------------------------------------------- hostile records
def _png_header(width: int, height: int, colour: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(pixels: np.ndarray) -> bytes:
    """A PNG of 8-bit ``pixels`` (h, w, c) written by hand: c = 2 is grey with alpha, 4 colour with alpha."""
    h, w, c = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return _png_header(w, h, colour) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


@functools.lru_cache(maxsize=4)
def bomb_png(side: int) -> bytes:
    """A valid, small PNG that decodes to ``side`` x ``side`` BGR pixels."""
    z = zlib.compressobj(9)
    row = bytes(1 + 3 * side)
    data = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return _png_header(side, side, 2) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _region(crop: bytes, x: int = 8, y: int = 8, w: int = 16, h: int = 16, track: int = 5) -> RecordRegion:
    return RecordRegion(
        track_id=track, object_type="face", x=x, y=y, w=w, h=h, angle=0.0,
        box=(float(x), float(y), float(x + w), float(y + h)), score=0.9, detected=True, crop=crop,
        deid_sig=bytes([128] * 12), deid_sig_shape=(2, 2, 3),
    )


def _sealed_envelope(device: SigningKey, recipient: PrivateKey, regions: list[RecordRegion], *,
                     category: str = "face", image: str = IMAGE, frame: int = 3, env_image: str | None = IMAGE) -> bytes:
    record = SensitiveRecord(image, VIDEO, frame, 1_700_000_000.0 + frame, category, 64, 48, "rsu-1", tuple(regions))
    sealed = seal(record, recipient.public_key, device)
    env = wire.make("sensitive", "func.face", "sensitive", sealed, video_id=VIDEO, image_id=env_image)
    return wire.encode(env, device)


@pytest.fixture
def keys(tmp_path: Path):
    dev = generate_device_key(tmp_path / "keys" / "device")
    face = generate_platform_key(tmp_path / "keys" / "face")
    return dev, face, load_signing_key(dev.private), load_platform_private_key(face.private)


def _grey_image(tmp: Path) -> Path:
    """A 64x48 de-identified image, grey 128 (what a 'fill' leaves), as a bare PNG."""
    path = tmp / "deid.png"
    cv2.imwrite(str(path), np.full((48, 64, 3), 128, np.uint8))
    return path


def _restore_args(tmp: Path, dev, face, record: Path) -> list[str]:  # noqa: ANN001
    return ["--key", str(face.private), "--signer", str(dev.public), "--record", str(record),
            "--image", str(_grey_image(tmp)), "--image-id", IMAGE, "--frame", "3", "--out", str(tmp / "out.png")]


def test_restore_refuses_a_crop_bomb_from_its_png_header(tmp_path: Path, keys) -> None:  # noqa: ANN001
    dev, face, sk, _ = keys
    record = tmp_path / "bomb.cbor"
    record.write_bytes(_sealed_envelope(sk, load_platform_private_key(face.private), [_region(bomb_png(6000))]))
    script = ("import resource, sys\nfrom edged_platform import restore\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "rc = restore.main(sys.argv[1:])\n"
              "print(rc, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    run = subprocess.run([sys.executable, "-c", script, *_restore_args(tmp_path, dev, face, record)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    rc, grew_kib = run.stdout.split()
    assert rc == "1", run.stderr
    assert "6000x6000" in run.stderr and "16x16" in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert int(grew_kib) < 50_000, f"restore grew by {int(grew_kib) // 1024} MiB refusing a crop it never needed to decode"
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("shape", [(16, 16, 4), (16, 16, 2)], ids=["bgra", "grey-alpha"])
def test_restore_refuses_a_crop_with_an_alpha_channel_in_one_line(tmp_path: Path, keys, shape, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    crop = raw_png(np.full(shape, 128, np.uint8))
    record = tmp_path / "alpha.cbor"
    record.write_bytes(_sealed_envelope(sk, face_key, [_region(crop)]))
    assert restore.main(_restore_args(tmp_path, dev, face, record)) == 1
    err = capsys.readouterr().err
    assert "alpha" in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.png").exists()


def test_restore_refuses_an_ops_image_too_large_before_decoding_it(tmp_path: Path, keys, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    record = tmp_path / "ok.cbor"
    record.write_bytes(_sealed_envelope(sk, face_key, [_region(encode_png(np.full((16, 16, 3), 128, np.uint8)))]))
    ops = SegmentStore(tmp_path / "ops", device_keys=wire.trusted_keys([dev.public]))
    assert ops.append_bytes(_package(sk, pixels=bomb_png(6000), frame=3))
    assert restore.main(["--key", str(face.private), "--signer", str(dev.public), "--record", str(record),
                         "--ops-store", str(tmp_path / "ops"), "--image-id", IMAGE, "--out", str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err
    assert "6000x6000, more than" in err and err.count("\n") == 1, err


def test_restore_still_restores_a_plain_crop(tmp_path: Path, keys, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    record = tmp_path / "ok.cbor"
    record.write_bytes(_sealed_envelope(sk, face_key, [_region(encode_png(np.full((16, 16, 3), 128, np.uint8)))]))
    assert restore.main(_restore_args(tmp_path, dev, face, record)) == 0, capsys.readouterr().err
    assert cv2.imread(str(tmp_path / "out.png")).shape == (48, 64, 3)


def _func_store(tmp: Path, envelopes: list[bytes], dev_public: Path) -> SegmentStore:
    store = SegmentStore(tmp / "func.face", device_keys=wire.trusted_keys([dev_public]))
    for data in envelopes:
        assert store.append_bytes(data)
    return store


def _files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_clips_skip_records_with_hostile_crops_and_write_the_rest(tmp_path: Path, keys, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    plain = encode_png(np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    envelopes = [
        _sealed_envelope(sk, face_key, [_region(plain)], image=wire.new_id(), frame=1, env_image=None),
        _sealed_envelope(sk, face_key, [_region(encode_png(np.full((16, 16, 4), 9, np.uint8)))], image=wire.new_id(),
                         frame=2, env_image=None),
        _sealed_envelope(sk, face_key, [_region(bomb_png(2000))], image=wire.new_id(), frame=3, env_image=None),
        _sealed_envelope(sk, face_key, [_region(plain, x=60)], image=wire.new_id(), frame=4, env_image=None),
    ]
    _func_store(tmp_path, envelopes, dev.public)
    out = tmp_path / "clips"
    assert clips.main(["--key", str(face.private), "--signer", str(dev.public), "--store", str(tmp_path / "func.face"),
                       "--out", str(out)]) == 0
    _, err = capsys.readouterr()
    index = json.loads((out / "index.json").read_text())
    assert len(index["rejected"]) == 3, index["rejected"]
    reasons = " ".join(r["reason"] for r in index["rejected"])
    assert "alpha" in reasons and "2000x2000" in reasons and "outside" in reasons, reasons
    assert [o["frame_indexes"] for o in index["objects"]] == [[1]]
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["category", "image id"])
def test_clips_never_write_outside_out_for_names_from_records(tmp_path: Path, keys, where: str, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    crop = encode_png(np.random.default_rng(2).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    hostile = (dict(category="../../x") if where == "category"
               else dict(image="../../../y", env_image=None))
    envelopes = [
        _sealed_envelope(sk, face_key, [_region(crop, track=-1)], frame=7, **hostile),
        _sealed_envelope(sk, face_key, [_region(crop)], image=(other := wire.new_id()), frame=8, env_image=other),
    ]
    _func_store(tmp_path, envelopes, dev.public)
    out = tmp_path / "a" / "b" / "clips"
    before = _files_under(tmp_path)
    assert clips.main(["--key", str(face.private), "--signer", str(dev.public), "--store", str(tmp_path / "func.face"),
                       "--out", str(out)]) == 0
    written = _files_under(tmp_path) - before
    assert written and all(out in p.parents for p in written), sorted(map(str, written))
    index = json.loads((out / "index.json").read_text())
    assert len(index["rejected"]) == 1 and "name" in index["rejected"][0]["reason"], index["rejected"]
    assert [o["frame_indexes"] for o in index["objects"]] == [[8]]


def _odd_content_envelope(device: SigningKey, recipient: PrivateKey, crop: bytes, **changes: object) -> bytes:
    """A signed sealed record whose plaintext has ``changes`` applied (values of the wrong kind)."""
    record = SensitiveRecord(IMAGE, VIDEO, 3, 1_700_000_003.0, "face", 64, 48, "rsu-1", (_region(crop),))
    plain = cbor2.loads(encode_record(record))
    plain.update(changes)
    header = cbor2.dumps({"fmt": 2, "rk": sealing_key_id(recipient.public_key), "sk": signing_key_id(device),
                          "cat": "face", "image": IMAGE, "video": VIDEO})
    ciphertext = bytes(SealedBox(recipient.public_key).encrypt(cbor2.dumps(plain)))
    signature = device.sign(_signed_message(header, ciphertext)).signature
    sealed = cbor2.dumps({"h": header, "c": ciphertext, "s": bytes(signature)})
    return wire.encode(wire.make("sensitive", "func.face", "sensitive", sealed, video_id=VIDEO, image_id=IMAGE), device)


@pytest.mark.parametrize("changes", [{"camera": 5}, {"camera": ["x", 1, 2]}], ids=["camera-int", "camera-text"])
def test_restore_and_clips_refuse_odd_record_content_in_one_line(tmp_path: Path, keys, changes, capsys) -> None:  # noqa: ANN001
    dev, face, sk, face_key = keys
    crop = encode_png(np.full((16, 16, 3), 128, np.uint8))
    data = _odd_content_envelope(sk, face_key, crop, **changes)
    record = tmp_path / "odd.cbor"
    record.write_bytes(data)
    assert restore.main(_restore_args(tmp_path, dev, face, record)) == 1
    err = capsys.readouterr().err
    assert err.startswith("restore: ") and err.count("\n") == 1, err
    _func_store(tmp_path, [data], dev.public)
    assert clips.main(["--key", str(face.private), "--signer", str(dev.public), "--store", str(tmp_path / "func.face"),
                       "--out", str(tmp_path / "clips")]) == 0
    index = json.loads((tmp_path / "clips" / "index.json").read_text())
    assert len(index["rejected"]) == 1 and index["objects"] == []


# --------------------------------------------------------------------------------- destinations
def test_a_record_republished_on_the_ops_topic_is_not_stored_there(tmp_path: Path, mosquitto: Mosquitto) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    face = generate_platform_key(tmp_path / "keys" / "face")
    sk = load_signing_key(dev.private)
    trusted = wire.trusted_keys([dev.public])
    record = _sealed_envelope(sk, _face_private(face), [_region(b"\x89PNG")])
    package = _package(sk, image=wire.new_id())
    ops, func = tmp_path / "platform" / "ops", tmp_path / "platform" / "func.face"
    with _receiver(mosquitto, ops, dev.public) as rx_ops, \
         _receiver(mosquitto, func, dev.public, topic="edged/+/func.face/#") as rx_func:
        publish = [("edged/rsu-1/ops/sensitive", record), ("edged/rsu-1/func.face/sensitive", record),
                   ("edged/rsu-1/func.face/package", package), ("edged/rsu-1/ops/package", package)]
        for topic, data in publish:
            mqtt_publish.single(topic, data, qos=1, hostname="127.0.0.1", port=mosquitto.port)
        assert _wait_for(lambda: len(SegmentStore(ops, device_keys=trusted)) == 1
                         and len(SegmentStore(func, device_keys=trusted)) == 1)
        time.sleep(0.3)  # anything else would have arrived by now
        assert rx_ops.poll() is None and rx_func.poll() is None
    assert SegmentStore(ops, device_keys=trusted).ids() == {wire.decode(package).id}
    assert SegmentStore(func, device_keys=trusted).ids() == {wire.decode(record).id}
    for proc in (rx_ops, rx_func):
        assert "1 rejected (1 wrong destination)" in proc.err, proc.err  # type: ignore[attr-defined]


def _face_private(face) -> PrivateKey:  # noqa: ANN001
    return load_platform_private_key(face.private)


def test_the_receiver_needs_a_destination_it_can_check(tmp_path: Path) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    base = [sys.executable, "-m", "edged_platform.receiver", "--store", str(tmp_path / "s"), "--device-key", str(dev.public)]
    run = subprocess.run([*base, "--topic", "#"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert run.returncode == 2 and "--dest" in run.stderr and run.stderr.count("\n") == 1, run.stderr
    run = subprocess.run([*base, "--topic", "#", "--dest", "../x"], cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert run.returncode == 2 and "--dest" in run.stderr, run.stderr


def test_an_envelope_like_run_of_bytes_inside_a_whole_item_is_not_damage(tmp_path: Path) -> None:
    """Three genuine items from a fleet run: the signature and body of the first happen to start a
    well-formed envelope that runs on into the second. Each item ends where the next one starts, so
    a read without keys keeps all three and reports no damage."""
    data = (Path(__file__).parent / "data" / "store_chance_envelope.cbors").read_bytes()
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "rsu0038-v0.cbors").write_bytes(data)
    store = SegmentStore(tmp_path / "ops")
    assert len(store.ids()) == 3 and not store.damaged, store.damaged
