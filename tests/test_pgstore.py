"""The PostgreSQL store against a real server: the same answers as the file store, each message once,
verification on read, outages as one line with nothing lost, and the platform commands on a URL."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest

from edged.core.keys import generate_device_key, load_platform_private_key, load_signing_key, sealing_key_id
from edged.link import wire
from edged_platform import clips, restore
from edged_platform import store as store_cli
from edged_platform.pgstore import PgStore
from edged_platform.search import cli as search_cli
from edged_platform.search.sources import Tally, from_store
from edged_platform.store import SegmentStore
from edged_platform.stores import Store, StoreUnavailable, open_store
from edged_sim.pgserver import PgServer, have_postgres
from tests.test_privacy_restore import platform  # noqa: F401  (the fixture: ops and func.face stores of a scene)
from tests.test_store_url import append_from_processes, signed_envelopes

pytestmark = pytest.mark.skipif(not have_postgres(), reason="PostgreSQL is not installed (apt-get install postgresql)")


@pytest.fixture
def device(tmp_path: Path):
    """A device key pair: (signing key, trusted keys, public key file)."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    return load_signing_key(dev.private), wire.trusted_keys([dev.public]), dev.public


@pytest.fixture(params=["file", "postgresql"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of either backend, as a ``--store`` argument."""
    if request.param == "file":
        return str(tmp_path / "store")
    return str(request.getfixturevalue("pg_url"))


def env(sk, kind: str = "package", video: str = "VA", image: str | None = "I1", device: str = "rsu-1") -> bytes:
    """A signed envelope's wire bytes."""
    return wire.encode(wire.make(kind, "ops", "normal", os.urandom(48), video_id=video, image_id=image,
                                 device=device), sk)


# ------------------------------------------------------------------ the same answers from either backend
def test_append_dedup_and_lookups_agree_across_backends(spec: str, device) -> None:
    sk, keys, _ = device
    a1, a2, b1 = env(sk, image="I1"), env(sk, image="I2"), env(sk, "event", "VB", "I1")
    u = env(sk, video="", image=None)
    store = open_store(spec, keys)
    assert isinstance(store, Store)
    assert [store.append_bytes(p) for p in (a1, a2, b1, u)] == [True] * 4
    assert not store.append_bytes(a1) and store.duplicates == 1
    e = {p: wire.decode(p) for p in (a1, a2, b1, u)}
    assert store.segments() == ["", "VA", "VB"]
    assert list(store.iter_segment("VA")) == [e[a1], e[a2]] and list(store.iter_segment("")) == [e[u]]
    assert [x.to_bytes() for x in store.iter_segment("VA")] == [a1, a2]  # the bytes as received
    assert store.get_image("I1") == e[a1] and store.get_image("I1", "event") == e[b1]
    assert store.by_image("I1") == [e[a1], e[b1]] and store.by_image("I1", "package") == [e[a1]]
    assert store.get(e[b1].id) == e[b1] and store.get("nope") is None and store.get_image("nope") is None
    assert len(store) == 4 and e[u].id in store and "nope" not in store
    assert store.ids() == {x.id for x in e.values()}
    assert store.rejected == [] and store.rejected_counts() == {} and store.damaged == [] and store.torn() == []
    store.close()
    again = open_store(spec, keys)  # a new instance (another process) sees the same and refuses the same
    assert again.ids() == store.ids() and not again.append_bytes(a2) and list(again.iter_segment("VB")) == [e[b1]]


def test_unverified_envelopes_are_refused_on_append(spec: str, device, tmp_path: Path) -> None:
    sk, keys, _ = device
    other = load_signing_key(generate_device_key(tmp_path / "keys" / "other").private)
    store = open_store(spec, keys)
    with pytest.raises(wire.EnvelopeAuthError):
        store.append_bytes(env(other))
    with pytest.raises(wire.EnvelopeAuthError):
        store.append(wire.make("package", "ops", "normal", b"x", video_id="VA"))  # unsigned
    assert len(store) == 0 and store.segments() == []


def test_a_batch_is_stored_in_order_each_message_once(spec: str, device) -> None:
    """append_many stores what append would, in order: an id already stored, or twice in the batch, once."""
    sk, keys, _ = device
    a, b, c, u = env(sk, image="I1"), env(sk, image="I2"), env(sk, "event", "VB", "I1"), env(sk, video="", image=None)
    store = open_store(spec, keys)
    assert store.append_bytes(a)
    items = [(wire.decode(p), p) for p in (b, a, c, b, u)]
    assert store.append_many(items) == [True, False, True, False, True]
    assert store.duplicates == 2 and store.append_many([]) == []
    assert [x.to_bytes() for x in store.iter_segment("VA")] == [a, b]
    assert [x.to_bytes() for x in store.iter_segment("VB")] == [c] and len(store) == 4
    store.close()
    again = open_store(spec, keys)
    assert again.append_many([(wire.decode(c), None), (wire.decode(p := env(sk)), p)]) == [False, True]
    assert len(again) == 5 and again.rejected == []


def test_an_unverified_message_stores_nothing_of_its_batch(spec: str, device, tmp_path: Path) -> None:
    sk, keys, _ = device
    other = load_signing_key(generate_device_key(tmp_path / "keys" / "other").private)
    store = open_store(spec, keys)
    good, bad = env(sk), env(other)
    with pytest.raises(wire.EnvelopeAuthError):
        store.append_many([(wire.decode(good), good), (wire.decode(bad), bad)])
    assert len(store) == 0 and store.segments() == []


def test_a_batch_is_one_transaction_and_a_failed_commit_stores_none_of_it(pg_url: str, device) -> None:
    """Every row of a batch comes from one transaction; when its COMMIT fails (a deferred check refuses it)
    none is stored, and the same batch stored again once the database takes it is all there."""
    sk, keys, _ = device
    store = PgStore(pg_url, device_keys=keys)
    batch = [env(sk, image=f"I{i}", video=f"V{i % 3}") for i in range(12)]
    items = [(wire.decode(p), p) for p in batch]
    ids = [e.id for e, _ in items]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'disk full (test)' USING ERRCODE = '53100'; END $$")
        conn.execute("CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON store_envelopes DEFERRABLE INITIALLY DEFERRED "
                     "FOR EACH ROW EXECUTE FUNCTION refuse()")
        with pytest.raises(StoreUnavailable, match="disk full"):
            store.append_many(items)
        assert conn.execute("SELECT count(*) FROM store_envelopes").fetchone() == (0,)
        conn.execute("DROP TRIGGER refuse ON store_envelopes")
        assert store.append_many(items) == [True] * 12
        rows = conn.execute("SELECT message_id, xmin::text FROM store_envelopes ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == ids and len({r[1] for r in rows}) == 1  # in order, one transaction
    assert open_store(pg_url, keys).ids() == set(ids) and store.duplicates == 0


def test_any_signed_device_name_is_stored_and_read_back(spec: str, device) -> None:
    sk, keys, _ = device
    odd = [env(sk, device="rsu\x00nul"), env(sk, device="x" * 5000), env(sk, device="")]
    store = open_store(spec, keys)
    assert all(store.append_bytes(p) for p in odd)
    assert [e.to_bytes() for e in store.iter_segment("VA")] == odd and store.rejected == []


def test_two_processes_appending_to_one_database_store_each_message_once(pg_url: str, tmp_path: Path) -> None:
    payloads, keys = signed_envelopes(tmp_path, 300, videos=3)
    counts = append_from_processes(pg_url, tmp_path, payloads, tmp_path / "keys" / "device.pub")
    assert sum(counts) == 300, counts
    store = open_store(pg_url, keys)
    assert len(store) == 300 and store.rejected == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT message_id) FROM store_envelopes").fetchone() == (300, 300)
        assert conn.execute("SELECT count(*) FROM store_videos").fetchone() == (3,)


# ------------------------------------------------------------------ verification on read
def test_a_row_altered_in_the_database_is_skipped_and_listed(pg_url: str, device, capsys) -> None:
    sk, keys, pub = device
    good, body, column = env(sk, image="I1"), env(sk, image="I2"), env(sk, image="I3")
    store = PgStore(pg_url, device_keys=keys)
    for p in (good, body, column):
        store.append_bytes(p)
    ids = [wire.decode(p).id for p in (good, body, column)]
    altered = bytearray(body)
    altered[-80] ^= 0x01  # a byte of the signed body
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE store_envelopes SET envelope = %s WHERE message_id = %s", (bytes(altered), ids[1]))
        conn.execute("UPDATE store_envelopes SET image_id = 'I1' WHERE message_id = %s", (ids[2],))
    assert store.get(ids[1]) is None and store.get_image("I2") is None
    assert store.by_image("I1") == [wire.decode(good)]  # the row claiming image I1 is not believed
    assert [e.id for e in store.iter_segment("VA")] == [ids[0]]
    assert [(r.message_id, r.reason) for r in store.rejected] == [(ids[1], "bad signature"), (ids[2], "row mismatch")]
    assert store.rejected_for("I2")[0].reason == "bad signature" and len(store) == 1 and store.ids() == {ids[0]}
    assert store_cli.main(["verify", "--store", pg_url, "--device-key", str(pub)]) == 3
    out, err = capsys.readouterr()
    assert "1 verified, 2 refused (1 bad signature, 1 row mismatch), 0 damaged" in out
    assert ids[1] in err and ids[2] in err and "Traceback" not in err


def test_the_schema_is_created_once_with_its_version(pg_url: str, device) -> None:
    PgStore(pg_url).close()
    PgStore(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM store_schema").fetchall() == [(1,)]
        conn.execute("UPDATE store_schema SET version = 99")
        conn.commit()
    with pytest.raises(StoreUnavailable, match="schema version 99 is newer"):
        PgStore(pg_url)


# ------------------------------------------------------------------ outages
def test_a_stopped_server_is_one_line_and_nothing_is_lost(tmp_path: Path, device, capsys) -> None:
    sk, keys, pub = device
    server = PgServer(tmp_path / "pg")
    server.start()
    try:
        url = server.url.replace("postgres@", "postgres:s3cret@")  # trust ignores it; it must never be shown
        store = open_store(url, keys)
        before = [env(sk, image=f"I{i}") for i in range(5)]
        assert all(store.append_bytes(p) for p in before)
        server.stop()
        with pytest.raises(StoreUnavailable) as info:
            store.append_bytes(env(sk))
        line = str(info.value)
        assert "\n" not in line and "s3cret" not in line and f"127.0.0.1:{server.port}/edged" in line
        assert store_cli.main(["verify", "--store", url, "--device-key", str(pub)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "cannot connect" in err and "s3cret" not in err, err
        server.start()
        after = env(sk, image="I9")
        assert store.append_bytes(after)  # the same instance connects again
        assert not store.append_bytes(before[0])
        assert open_store(url, keys).ids() == {wire.decode(p).id for p in (*before, after)}
    finally:
        server.remove()


# ------------------------------------------------------------------ the platform commands on a URL
def _copy(folder: Path, url: str) -> None:
    """Every envelope of a file store into a database store, in arrival order."""
    src, dst = SegmentStore(folder), open_store(url)
    for video in src.segments():
        for e in src.iter_segment(video):
            assert dst.append(e, e.to_bytes())


def test_restore_export_images_and_search_from_database_stores(platform, pg_server: PgServer, capsys) -> None:  # noqa: F811
    tmp, dev, face, _plate, frames = platform
    ops_url, func_url = pg_server.new_database("t_restore_ops"), pg_server.new_database("t_restore_func")
    _copy(tmp / "ops", ops_url)
    _copy(tmp / "func.face", func_url)
    m, pixels, out = next(f for f in frames if any(e.dest == "func.face" for e in f[2].envelopes))
    keys = ["--key", str(face.private), "--signer", str(dev.public)]
    assert restore.main([*keys, "--func-store", func_url, "--ops-store", ops_url, "--image-id", m.image_id,
                         "--out", str(tmp / "db.png")]) == 0
    assert restore.main([*keys, "--func-store", str(tmp / "func.face"), "--ops-store", str(tmp / "ops"),
                         "--image-id", m.image_id, "--out", str(tmp / "files.png")]) == 0
    restored = cv2.imread(str(tmp / "db.png"))
    assert np.array_equal(restored, cv2.imread(str(tmp / "files.png")))
    face_mask = np.zeros(pixels.shape[:2], bool)
    for k in np.flatnonzero(out.regions.class_ids == 0):
        x1, y1, x2, y2 = out.rects[k]
        face_mask[y1:y2, x1:x2] = True
    assert face_mask.any() and np.array_equal(restored[face_mask], pixels[face_mask])  # the original pixels

    capsys.readouterr()
    signer = ["--device-key", str(dev.public)]
    assert store_cli.main(["images", "--store", ops_url, "--store", func_url, *signer]) == 0
    db_images = capsys.readouterr().out
    assert store_cli.main(["images", "--store", str(tmp / "ops"), "--store", str(tmp / "func.face"), *signer]) == 0
    assert capsys.readouterr().out == db_images and m.image_id in db_images
    for where, name in ((ops_url, "db"), (str(tmp / "ops"), "files")):
        assert store_cli.main(["export", "--store", where, *signer, "--image-id", m.image_id,
                               "--out", str(tmp / f"{name}.jpg")]) == 0
        assert store_cli.main(["export-records", "--store", func_url if name == "db" else str(tmp / "func.face"),
                               *signer, "--image-id", m.image_id, "--out", str(tmp / f"{name}-rec")]) == 0
    assert (tmp / "db.jpg").read_bytes() == (tmp / "files.jpg").read_bytes()
    assert sorted(p.read_bytes() for p in (tmp / "db-rec").iterdir()) == \
        sorted(p.read_bytes() for p in (tmp / "files-rec").iterdir())

    key = load_platform_private_key(face.private)
    ring = {sealing_key_id(key): key}
    trusted = wire.trusted_keys([dev.public])
    found = {}
    for where in (func_url, tmp / "func.face"):
        opened = list(from_store(where, ring, trusted, lambda _m: False, Tally()))
        found[str(where)] = sorted((o.message, o.record.image_id) for o in opened)
        assert opened and opened[0].location == (f"store:{func_url}" if where == func_url
                                                  else f"store:{(tmp / 'func.face').resolve()}")
    assert found[func_url] == found[str(tmp / "func.face")]
    capsys.readouterr()
    for where, name in ((func_url, "db"), (str(tmp / "func.face"), "files")):
        assert search_cli.main(["index", "--index", str(tmp / f"{name}.sqlite"), "--key", str(face.private),
                                "--device-key", str(dev.public), "--store", where, "--no-faces"]) == 0
    db_line, files_line = capsys.readouterr().out.splitlines()
    assert db_line.split(";")[:2] == files_line.split(";")[:2] and " 0 new record(s)" not in db_line


def test_clips_from_a_database_store_match_the_file_store(platform, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    tmp, dev, face, _plate, _frames = platform
    _copy(tmp / "func.face", pg_url)
    base = ["--key", str(face.private), "--signer", str(dev.public), "--quiet"]
    assert clips.main([*base, "--store", pg_url, "--out", str(tmp_path / "db")]) == 0
    assert clips.main([*base, "--store", str(tmp / "func.face"), "--out", str(tmp_path / "files")]) == 0
    index = (tmp_path / "db" / "index.json").read_text()
    assert '"objects": []' not in index and index == (tmp_path / "files" / "index.json").read_text()
