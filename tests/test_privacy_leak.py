"""Simulated run: no raw crop, plaintext record or private key reaches the data folder or ops output,
and every image that leaves (saved frames, ops packages) is de-identified in every sensitive region."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config import PrivacyConfig, TrackConfig
from edged.core.types import Frame
from edged.link.crops import decode_png
from edged.link.outbox import Outbox
from edged.link.records import encode_record
from edged.link.sealing import open_sealed, trusted_signers
from edged.runtime.sinks import FrameWriter
from edged.stages.pipeline import FrameWork
from edged.stages.privacy.stage import PrivacyStage
from edged.stages.select.package import UploadPackage
from edged.stages.track.ids import MemoryIds
from edged.stages.track.observations import OBS_DTYPE
from edged.stages.track.tracker import Tracker
from edged_platform.restore import check_region
from edged_platform.store import SegmentStore
from tests.privacy_support import key_material, meta, noisy_detections, privacy_keys, scene_frames

WINDOW = 48
"""Needles are 48-byte windows: long enough never to occur by chance, short enough to sit inside one
SQLite page (4096 B) even when a blob spans overflow pages."""


def needles_of(data: bytes, most: int = 3) -> list[bytes]:
    """Up to ``most`` windows spread over ``data`` past its first 64 bytes (a PNG's signature and
    header are alike across crops of one size); a leak carries the whole crop, so any window finds it."""
    starts = np.linspace(min(64, len(data) - WINDOW), len(data) - WINDOW, most).astype(int)
    return [data[k : k + WINDOW] for k in sorted(set(starts.tolist())) if k >= 0]


def scan(folders: list[Path], needles: list[bytes]) -> list[str]:
    """Files (and which needle) under ``folders`` that contain any needle."""
    hits = []
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            blob = path.read_bytes()
            for k, needle in enumerate(needles):
                if needle in blob:
                    hits.append(f"{path} (needle {k})")
                    break
    return hits


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """40 frames of the fake scene through tracker + privacy into outbox, saved frames and ops store."""
    tmp = tmp_path_factory.mktemp("sim")
    data, out, ops_dir = tmp / "data", tmp / "out", tmp / "ops"
    data.mkdir()
    outbox = Outbox(data / "outbox.sqlite", synchronous="normal")
    ops = SegmentStore(ops_dir)
    writer = FrameWriter(out / "frames", every=1, quality=85, allow_raw=False)
    tracker = Tracker(TrackConfig(), MemoryIds(), fps=10.0)
    stage = PrivacyStage(PrivacyConfig(), privacy_keys(), device_id="rsu-sim")
    rng = np.random.default_rng(5)
    sealed, frames, packages = [], [], []
    for i, (pixels, gt) in enumerate(scene_frames()):
        h, w = pixels.shape[:2]
        m = meta(i, w, h)
        work = FrameWork(Frame(m, pixels))
        work.detections = noisy_detections(gt, rng)
        work.tracks = tracker.update(m, work.detections).objects
        stage(work)
        writer.consume(work)
        if i % 4 == 0:  # an upload package with the de-identified image, delivered to ops
            jpeg = cv2.imencode(".jpg", work.deidentified, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
            pkg = UploadPackage(m, False, -1, np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, OBS_DTYPE))
            env = pkg.envelope(jpeg, device="rsu-sim")
            work.outgoing.append(env)
            ops.append(env)
            packages.append((m.image_id, jpeg))
        assert all(outbox.enqueue_many(work.outgoing))
        sealed += [e for e in work.outgoing if e.kind == "sensitive"]
        frames.append(m)
    outbox.close()
    writer.close()
    return tmp, data, out, ops_dir, sealed, packages


def opened(sealed):
    device, face, plate = key_material()
    keys = {"func.face": face, "func.plate": plate}
    signers = trusted_signers([device.verify_key])
    return [open_sealed(bytes(e.body), keys[e.dest], signers) for e in sealed]


@pytest.mark.slow
def test_no_crop_plaintext_or_private_key_reaches_disk_or_ops(run) -> None:
    tmp, data, out, ops_dir, sealed, _ = run
    records = opened(sealed)
    crops = [g.crop for r in records for g in r.regions]
    assert len(crops) >= 40 and {r.category for r in records} == {"face", "plate"}
    needles: list[bytes] = []
    for c in crops:
        needles += needles_of(c)  # the PNG bytes
        arr = decode_png(c)
        row = arr[arr.shape[0] // 2].tobytes()  # a raw pixel row of the crop
        if len(row) >= WINDOW:
            needles.append(row[:WINDOW])
    for r in records:
        needles += needles_of(encode_record(r))
    device, face, plate = key_material()
    needles += [bytes(face), bytes(plate), bytes(device)]
    assert scan([data, out, ops_dir], needles) == []
    # the outbox did receive the sealed records (the scan looked at the right place)
    signatures = [cbor_field(bytes(e.body), "s") for e in sealed]
    assert scan([data], signatures[:5]) != []


def cbor_field(container: bytes, key: str) -> bytes:
    import cbor2

    return cbor2.loads(container)[key]


def test_the_scan_finds_a_crop_that_did_reach_disk(run, tmp_path: Path) -> None:
    """Positive control: the same needles find a crop stored as a blob in SQLite (overflow pages)."""
    _, _, _, _, sealed, _ = run
    record = max(opened(sealed), key=lambda r: max(len(g.crop) for g in r.regions))
    crop = max((g.crop for g in record.regions), key=len)
    with sqlite3.connect(tmp_path / "leak.sqlite") as db:
        db.execute("create table t (b blob)")
        db.execute("insert into t values (?)", (b"x" * 5000 + crop,))
    assert scan([tmp_path], needles_of(crop)) != []


def test_every_image_that_leaves_is_deidentified_in_every_region(run) -> None:
    _, _, out, _, sealed, packages = run
    by_image: dict[str, list] = {}
    for r in opened(sealed):
        by_image.setdefault(r.image_id, []).append(r)
    saved = {p.stem.split("_", 1)[1]: p for p in (out / "frames").glob("*.jpg")}
    assert len(saved) == 40
    checked = 0
    images = [(iid, cv2.imread(str(p))) for iid, p in saved.items()]
    images += [(iid, cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)) for iid, b in packages]
    for image_id, image in images:
        for rec in by_image.get(image_id, []):
            for g in rec.regions:
                result = check_region(image, g, decode_png(g.crop))
                assert result.ok, f"{image_id}: {rec.category} track {g.track_id}: {result.reason}"
                checked += 1
    assert checked >= 50


@pytest.mark.slow
def test_daemon_run_leaves_no_crop_in_its_data_folder_local_output_or_ops_store(tmp_path: Path) -> None:
    """The real daemon (edged_sim: fake camera, oracle detections, outbox, MQTT uplink to real
    receivers): scan what the device wrote and what ops received for every crop the functional
    platforms received."""
    from edged.config import from_dict
    from edged.core.keys import load_platform_private_key, load_verify_key
    from edged_sim import SimOptions, run_sim
    from edged_sim.broker import mosquitto_path

    if mosquitto_path() is None:
        pytest.skip("mosquitto is not installed")
    no_models = from_dict({"detect": {"models": []}})  # oracle detections; this test needs no model file
    result = run_sim(SimOptions(seconds=5.0, width=640, height=360, realtime=False, outage=None, config=None,
                                base=no_models, present_models_only=True, reconnect_max_s=1.0,
                                out=tmp_path / "sim", report=False, detector="truth"))
    folder = result.folder
    signers = trusted_signers([load_verify_key(result.keys["device"].with_suffix(".pub"))])
    crops = []
    for category in ("face", "plate"):
        key = load_platform_private_key(result.keys[category])
        store = result.stores[f"func.{category}"]
        for video in store.segments():
            for env in store.iter_segment(video):
                crops += [g.crop for g in open_sealed(bytes(env.body), key, signers).regions]
    assert len(crops) >= 10
    needles: list[bytes] = []
    for c in crops:
        needles += needles_of(c)
        arr = decode_png(c)
        row = arr[arr.shape[0] // 2].tobytes()
        if len(row) >= WINDOW:
            needles.append(row[:WINDOW])
    device_ops = [folder / "data", folder / "local", folder / "platform" / "ops"]
    assert all(p.is_dir() for p in device_ops), sorted(p.name for p in folder.iterdir())
    assert scan(device_ops, needles) == []
    ops_kinds = {env.kind for v in result.stores["ops"].segments() for env in result.stores["ops"].iter_segment(v)}
    assert "sensitive" not in ops_kinds and "package" in ops_kinds
