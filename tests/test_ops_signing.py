"""Signed ops envelopes: the device signs every envelope, platforms verify, restore checks image and frame.

Real key files, real stores on disk, a real mosquitto and the receiver's command line.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import cbor2
import cv2
import numpy as np
import pytest
from nacl.signing import SigningKey

from edged import config as edged_config
from edged.config import PrivacyConfig
from edged.core.keys import (
    PrivacyKeys,
    generate_device_key,
    generate_platform_key,
    load_platform_public_key,
    load_signing_key,
)
from edged.core.types import Frame
from edged.link import wire
from edged.link.outbox import Outbox
from edged.link.uplink import Uplink
from edged.link.wire import BadSignatureError, UnknownSignerError, UnsignedError, WireError
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.select.package import UploadPackage
from edged.stages.track.observations import OBS_DTYPE
from edged_platform import clips, restore
from edged_platform.receiver import Receiver
from edged_platform.store import SegmentStore, export_image
from tests.mosquitto import Mosquitto
from tests.privacy_support import gt_tracks, meta, scene_frames

ROOT = Path(__file__).resolve().parent.parent


def _env(**kw: object) -> wire.Envelope:
    args = {"kind": "package", "dest": "ops", "prio": "immediate", "body": b"\x00image\xff",
            "video_id": "V1", "image_id": "I1", "created": 1700000000.5, "device": "rsu-1"} | kw
    return wire.make(args.pop("kind"), args.pop("dest"), args.pop("prio"), args.pop("body"), **args)  # type: ignore[arg-type]


def _resign_map(data: bytes, **changes: object) -> bytes:
    """The envelope map with fields changed after signing (``sk``/``sig`` kept)."""
    m = cbor2.loads(data)
    m.update(changes)
    return cbor2.dumps(m)


# ------------------------------------------------------------------------------------------ wire
def test_signed_envelope_verifies_and_every_forgery_is_named() -> None:
    device, other = SigningKey.generate(), SigningKey.generate()
    trusted = wire.trusted_keys([device.verify_key])
    data = wire.encode(_env(), device)
    env = wire.decode(data, trusted)
    assert env.signed and env.signer in trusted and len(env.signature or b"") == 64
    assert wire.decode(data).signed  # local tools may decode without keys
    assert wire.encode(env) == data  # a decoded envelope keeps its signature, byte for byte

    with pytest.raises(UnsignedError, match="not signed"):
        wire.decode(wire.encode(_env()), trusted)
    with pytest.raises(UnknownSignerError, match=f"unknown device key id {wire.sign(_env(), other).signer}"):
        wire.decode(wire.encode(_env(), other), trusted)
    with pytest.raises(BadSignatureError, match="does not verify"):
        wire.decode(_resign_map(data, body=b"\x00forged\xff"), trusted)
    with pytest.raises(BadSignatureError):
        wire.decode(_resign_map(data, image="I2"), trusted)  # the image id is signed too
    with pytest.raises(BadSignatureError):
        wire.decode(_resign_map(data, note="added later"), trusted)  # so is any extra key
    swapped = cbor2.loads(wire.encode(_env(image_id="I9"), device))["sig"]
    with pytest.raises(BadSignatureError):
        wire.decode(_resign_map(data, sig=swapped), trusted)
    with pytest.raises(WireError, match="field sig"):
        wire.decode(_resign_map(data, sig=b"short"), trusted)
    assert all(issubclass(e, WireError) for e in (UnsignedError, UnknownSignerError, BadSignatureError))
    with pytest.raises(UnknownSignerError, match="trusted: none"):
        wire.decode(data, {})


def test_extra_keys_are_signed_kept_and_canonical_encoding_is_what_is_signed() -> None:
    device = SigningKey.generate()
    trusted = wire.trusted_keys([device.verify_key])
    m = cbor2.loads(wire.encode(_env()))
    m["future"] = [1, 2]
    base = wire.decode(cbor2.dumps(m))
    assert base.extra == (("future", [1, 2]),)
    signed = wire.encode(base, device)
    back = wire.decode(signed, trusted)
    assert dict(back.extra) == {"future": [1, 2]}
    # any encoder producing the same map verifies: re-encode in another key order
    raw = cbor2.loads(signed)
    assert wire.decode(cbor2.dumps(dict(reversed(list(raw.items())))), trusted) == back


# ---------------------------------------------------------------------------------------- outbox
def test_outbox_stores_signed_bytes_and_resends_them_identically_after_restart(tmp_path: Path) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    trusted = wire.trusted_keys([dev.public])
    envs = [_env(kind=k, image_id=f"I{i}", prio="normal") for i, k in enumerate(("package", "event", "telemetry"))]
    with Outbox(tmp_path / "o.db", signing_key=load_signing_key(dev.private)) as ob:
        ob.enqueue_many(envs)
        first = {p.id: p.payload for p in ob.next_batch("ops", 10)}
    assert len(first) == 3
    for payload in first.values():
        assert wire.decode(payload, trusted).signed
    with Outbox(tmp_path / "o.db") as ob:  # after a restart, even without the key: the stored bytes go
        again = {p.id: p.payload for p in ob.next_batch("ops", 10)}
    assert again == first


def test_daemon_refuses_to_start_without_its_signing_key(tmp_path: Path) -> None:
    from edged.core.keys import KeyFileError
    from edged.runtime.app import build_daemon

    cfg = edged_config.from_dict({"device": {"data_dir": str(tmp_path)}, "privacy": {
        "categories": [], "signing_key": str(tmp_path / "missing.key")}})
    with pytest.raises(KeyFileError, match="device signing key not found"):
        build_daemon(cfg, tmp_path / "out")


# ------------------------------------------------------------------------------ platform helpers
@pytest.fixture
def site(tmp_path: Path):
    """Key files and three frames through the privacy stage: 0 and 1 show the same still scene."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    face = generate_platform_key(tmp_path / "keys" / "face")
    plate = generate_platform_key(tmp_path / "keys" / "plate")
    sk = load_signing_key(dev.private)
    keys = PrivacyKeys(sk, {"face": load_platform_public_key(face.public), "plate": load_platform_public_key(plate.public)})
    stage = PrivacyStage(PrivacyConfig(stabilize=False), keys, device_id="rsu-t")
    scene = scene_frames()
    pick = next(i for i, (_, gt) in enumerate(scene) if (gt_tracks(gt).class_ids == 0).any())
    pixels, gt = scene[pick]
    frames = []
    for i in range(2):  # a still scene: consecutive frames are pixel-identical
        h, w = pixels.shape[:2]
        m = meta(200 + i, w, h)
        out = stage.process(Frame(m, pixels), gt_tracks(gt), None)
        png = cv2.imencode(".png", out.deidentified)[1].tobytes()
        pkg = UploadPackage(m, True, -1, np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, OBS_DTYPE))
        face_env = next(e for e in out.envelopes if e.dest == "func.face")
        frames.append({"meta": m, "pixels": pixels, "out": out, "package": pkg.envelope(png, "rsu-t", "png"),
                       "face": face_env})
    return tmp_path, dev, face, sk, frames


def _face_mask(out) -> np.ndarray:
    mask = np.zeros(out.deidentified.shape[:2], bool)
    for k in np.flatnonzero(out.regions.class_ids == 0):
        x1, y1, x2, y2 = out.rects[k]
        mask[y1:y2, x1:x2] = True
    return mask


def _forged_package(genuine: wire.Envelope, deid: np.ndarray) -> tuple[wire.Envelope, np.ndarray]:
    """A package reusing the genuine image id whose image was altered outside the regions."""
    fake = deid.copy()
    fake[:24, :48] = 255  # painted in a corner: the sensitive regions still pass the de-id check
    body = cbor2.loads(genuine.body)
    body["image"] = cv2.imencode(".png", fake)[1].tobytes()
    forged = wire.make("package", "ops", "immediate", cbor2.dumps(body), video_id=genuine.video_id,
                       image_id=genuine.image_id, created=genuine.created, device=genuine.device)
    return forged, fake


# ------------------------------------------------------------------------------------ receiver
def test_receiver_drops_and_counts_forgeries_and_restore_ops_store_refuses(site, mosquitto: Mosquitto, capsys) -> None:
    tmp, dev, face, sk, frames = site
    f = frames[0]
    genuine = f["package"]
    forged, _ = _forged_package(genuine, f["out"].deidentified)
    attacker = SigningKey.generate()
    genuine_bytes = wire.encode(genuine, sk)
    payloads = [
        wire.encode(forged),  # unsigned, genuine image id
        wire.encode(forged, attacker),  # signed by a key nobody trusts
        _resign_map(genuine_bytes, body=forged.body),  # genuine signature, body swapped
        _resign_map(wire.encode(forged), sk=wire.sign(genuine, sk).signer,  # genuine signature pasted on
                    sig=cbor2.loads(genuine_bytes)["sig"]),
        b"\xa1garbage",
    ]
    ops_dir = tmp / "platform" / "ops"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged_platform.receiver", "--host", "127.0.0.1", "--port", str(mosquitto.port),
         "--topic", "edged/+/ops/#", "--store", str(ops_dir), "--client-id", "sign-rx", "--device-key", str(dev.public)],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "subscribed to" in line:
                break
        else:
            raise AssertionError("receiver exited before subscribing")

        async def attack() -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="attacker") as c:
                for p in payloads:
                    await c.publish("edged/rsu-t/ops/package", p, qos=1)

        asyncio.run(attack())
        # then the genuine device sends an event through its signing outbox and uplink (a sentinel)
        ob = Outbox(tmp / "o.db", signing_key=sk)
        sentinel = wire.make("event", "ops", "normal", b"ev", video_id=genuine.video_id, device="rsu-t")
        ob.enqueue(sentinel)
        cfg = edged_config.from_dict({"device": {"id": "rsu-t"}, "uplink": {"ops": {"port": mosquitto.port}}})
        up = Uplink.from_config(cfg, "ops", ob)

        async def send() -> None:
            stop = asyncio.Event()
            task = asyncio.ensure_future(up.run(stop))
            while ob.pending()[0]:
                await asyncio.sleep(0.02)
            stop.set()
            await task

        asyncio.run(send())
        deadline = time.monotonic() + 10
        while sentinel.id not in SegmentStore(ops_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "6 received, 1 stored, 0 duplicates, 1 malformed, 4 rejected (2 bad signature, 1 unknown key, 1 unsigned)" in err
    drop_lines = [ln for ln in err.splitlines() if "receiver: dropped" in ln]
    assert 1 <= len(drop_lines) <= 2, drop_lines  # the first at once, the rest in one summary line
    store = SegmentStore(ops_dir)
    assert store.ids() == {sentinel.id}  # no forged package was stored, even without verification on read

    record = tmp / "r.cbor"
    record.write_bytes(wire.encode(f["face"], sk))
    base = ["--key", str(face.private), "--device-key", str(dev.public), "--record", str(record)]
    out = tmp / "x.png"
    capsys.readouterr()
    assert restore.main([*base, "--ops-store", str(ops_dir), "--out", str(out)]) == 1
    msg = capsys.readouterr().err
    assert "no verified de-identified image" in msg and msg.count("\n") == 1 and not out.exists()

    # a forged package that reached the store anyway (an older receiver) is refused on read too
    SegmentStore(ops_dir).append(forged)
    assert restore.main([*base, "--ops-store", str(ops_dir), "--out", str(out)]) == 1
    msg = capsys.readouterr().err
    assert "1 package(s) for it refused" in msg and "not signed" in msg and msg.count("\n") == 1 and not out.exists()

    # the genuine package arrives: restore uses it, skipping the forged one
    rx = Receiver("127.0.0.1", 1, "t", SegmentStore(ops_dir), device_keys=wire.trusted_keys([dev.public]))
    assert rx.handle(genuine_bytes)
    assert restore.main([*base, "--ops-store", str(ops_dir), "--out", str(out)]) == 0
    restored = cv2.imread(str(out))
    mask = _face_mask(f["out"])
    assert np.array_equal(restored[mask], f["pixels"][mask])
    assert np.array_equal(restored[~mask], f["out"].deidentified[~mask])


def test_receiver_summarises_a_flood_of_forgeries_in_few_lines(tmp_path: Path, caplog) -> None:
    device = SigningKey.generate()
    rx = Receiver("127.0.0.1", 1, "t", SegmentStore(tmp_path), device_keys=wire.trusted_keys([device.verify_key]),
                  reject_log_period_s=3600)
    caplog.set_level(logging.WARNING, "edged_platform.receiver")
    for _ in range(200):
        assert not rx.handle(wire.encode(_env()))
    assert rx.handle(wire.encode(_env(), device))
    rx.drops.flush()
    lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(lines) == 2 and "(unsigned)" in lines[1] and "199 since the last report, 200 in all" in lines[1]
    assert rx.stats.rejected == {"unsigned": 200} and rx.stats.stored == 1
    assert not any(p.name.endswith(".cbors") and p.stat().st_size > 0 and "V1" not in p.name for p in tmp_path.iterdir())


def test_receiver_command_line_needs_a_device_key(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "edged_platform.receiver", "--topic", "t", "--store", str(tmp_path / "s")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--device-key" in run.stderr
    run = subprocess.run([sys.executable, "-m", "edged_platform.receiver", "--topic", "t", "--store", str(tmp_path / "s"),
                          "--device-key", str(tmp_path / "none.pub")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "device public key not found" in run.stderr and "Traceback" not in run.stderr


# ------------------------------------------------------------------------------------- restore
def test_restore_image_refuses_a_record_of_a_neighbouring_frame(site, capsys) -> None:
    tmp, dev, face, sk, frames = site
    ops = SegmentStore(tmp / "ops", device_keys=wire.trusted_keys([dev.public]))
    for f in frames:
        ops.append(wire.sign(f["package"], sk))
    export_image(ops, frames[0]["meta"].image_id, tmp / "deid0.png")
    for i, f in enumerate(frames):
        (tmp / f"r{i}.cbor").write_bytes(wire.encode(f["face"], sk))
    base = ["--key", str(face.private), "--device-key", str(dev.public)]
    out = tmp / "x.png"
    # the still scene makes frame 1's record pass the de-identification check on frame 0's image ...
    from edged_platform.restore import open_records, restore_image

    rec1 = open_records([("r1", (tmp / "r1.cbor").read_bytes())], restore.load_platform_private_key(face.private),
                        wire.trusted_keys([dev.public]))
    restore_image(cv2.imread(str(tmp / "deid0.png")), rec1)
    # ... so only the image id and frame index tell them apart
    assert restore.main([*base, "--record", str(tmp / "r1.cbor"), "--image", str(tmp / "deid0.png"), "--out", str(out)]) == 1
    msg = capsys.readouterr().err
    assert f"record {frames[1]['meta'].image_id}/face (frame 201) is for another image" in msg
    assert msg.count("\n") == 1 and not out.exists()
    # by image id from the functional store onto the wrong exported image: refused as well
    func = SegmentStore(tmp / "func.face")
    for f in frames:
        func.append(wire.sign(f["face"], sk))
    assert restore.main([*base, "--func-store", str(tmp / "func.face"), "--image-id", frames[1]["meta"].image_id,
                         "--image", str(tmp / "deid0.png"), "--out", str(out)]) == 1
    assert "is image" in capsys.readouterr().err and not out.exists()
    # the signed package envelope itself as the image: verified, and it names its frame
    (tmp / "pkg0.cbor").write_bytes(wire.encode(frames[0]["package"], sk))
    assert restore.main([*base, "--record", str(tmp / "r1.cbor"), "--image", str(tmp / "pkg0.cbor"), "--out", str(out)]) == 1
    assert "is for another image" in capsys.readouterr().err
    # the genuine pairs restore
    for image in ("deid0.png", "pkg0.cbor"):
        assert restore.main([*base, "--record", str(tmp / "r0.cbor"), "--image", str(tmp / image), "--out", str(out)]) == 0
        restored, f = cv2.imread(str(out)), frames[0]
        mask = _face_mask(f["out"])
        assert np.array_equal(restored[mask], f["pixels"][mask])
        out.unlink()
    assert restore.main([*base, "--func-store", str(tmp / "func.face"), "--image-id", frames[0]["meta"].image_id,
                         "--image", str(tmp / "deid0.png"), "--out", str(out)]) == 0


def test_restore_refuses_same_image_id_with_another_frame_and_tampered_images(site, capsys) -> None:
    tmp, dev, face, sk, frames = site
    f = frames[0]
    (tmp / "r0.cbor").write_bytes(wire.encode(f["face"], sk))
    base = ["--key", str(face.private), "--device-key", str(dev.public), "--record", str(tmp / "r0.cbor")]
    out = tmp / "x.png"
    # a package naming the record's image id but another frame index (signed by the device itself)
    body = cbor2.loads(f["package"].body)
    body["frame_index"] = f["meta"].frame_index + 1
    other_frame = wire.make("package", "ops", "immediate", cbor2.dumps(body), video_id=f["meta"].video_id,
                            image_id=f["meta"].image_id, device="rsu-t")
    (tmp / "pkg.cbor").write_bytes(wire.encode(other_frame, sk))
    assert restore.main([*base, "--image", str(tmp / "pkg.cbor"), "--out", str(out)]) == 1
    assert "is for frame 200" in capsys.readouterr().err
    # a package envelope whose body was swapped after signing
    forged, _ = _forged_package(f["package"], f["out"].deidentified)
    (tmp / "pkg.cbor").write_bytes(_resign_map(wire.encode(f["package"], sk), body=forged.body))
    assert restore.main([*base, "--image", str(tmp / "pkg.cbor"), "--out", str(out)]) == 1
    assert "signature does not verify" in capsys.readouterr().err
    # an exported image altered after export: its sidecar no longer describes it
    ops = SegmentStore(tmp / "ops")
    ops.append(wire.sign(f["package"], sk))
    export_image(ops, f["meta"].image_id, tmp / "deid.png")
    assert restore.main([*base, "--image", str(tmp / "deid.png"), "--out", str(out)]) == 0
    _, fake = _forged_package(f["package"], f["out"].deidentified)
    cv2.imwrite(str(tmp / "deid.png"), fake)
    assert restore.main([*base, "--image", str(tmp / "deid.png"), "--out", str(tmp / "y.png")]) == 1
    err = capsys.readouterr().err
    assert "describes another file" in err and err.count("\n") == 1 and not (tmp / "y.png").exists()
    # a record file whose envelope signature is broken
    (tmp / "bad.cbor").write_bytes(_resign_map(wire.encode(f["face"], sk), image=frames[1]["meta"].image_id))
    assert restore.main(["--key", str(face.private), "--device-key", str(dev.public), "--record", str(tmp / "bad.cbor"),
                         "--image", str(tmp / "deid.png"), "--out", str(out)]) == 1
    assert "signature does not verify" in capsys.readouterr().err


def test_func_store_and_clips_skip_records_whose_envelope_fails(site, capsys) -> None:
    tmp, dev, face, sk, frames = site
    f = frames[0]
    func = SegmentStore(tmp / "func.face")
    func.append(f["face"])  # unsigned: as an older receiver would have stored it
    ops = SegmentStore(tmp / "ops")
    ops.append(wire.sign(f["package"], sk))
    base = ["--key", str(face.private), "--device-key", str(dev.public)]
    assert restore.main([*base, "--func-store", str(tmp / "func.face"), "--ops-store", str(tmp / "ops"),
                         "--image-id", f["meta"].image_id, "--out", str(tmp / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "no verified sensitive record" in err and "not signed" in err
    assert clips.main([*base, "--store", str(tmp / "func.face"), "--out", str(tmp / "clips")]) == 0
    captured = capsys.readouterr()
    assert "0 objects" in captured.out and "1 rejected" in captured.out and "not signed" in captured.err
