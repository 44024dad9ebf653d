"""One ``--store`` argument opens either store; several processes appending to one store store each message once."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import cbor2
import pytest

from edged.core.keys import generate_device_key, load_signing_key
from edged.link import wire
from edged_platform.store import SegmentStore
from edged_platform.stores import Store, StoreUnavailable, missing_folder, open_store, redact, store_folder

ROOT = Path(__file__).resolve().parent.parent


def signed_envelopes(tmp: Path, n: int, videos: int = 1) -> tuple[list[bytes], dict]:
    """``n`` signed envelopes as received (their wire bytes) over ``videos`` videos, and the trusted keys."""
    dev = generate_device_key(tmp / "keys" / "device")
    sk = load_signing_key(dev.private)
    out = [wire.encode(wire.make("package", "ops", "normal", os.urandom(32), video_id=f"V{i % videos}",
                                 image_id=f"I{i}"), sk) for i in range(n)]
    return out, wire.trusted_keys([dev.public])


def _worker(spec: str, payloads: str, keys: str, go: str) -> None:
    """Append each payload in the CBOR list ``payloads`` to ``spec`` once ``go`` exists; print the new count."""
    from edged.link.wire import trusted_keys

    items = cbor2.loads(Path(payloads).read_bytes())
    store = open_store(spec, trusted_keys([keys]))
    while not Path(go).exists():
        time.sleep(0.001)
    print(sum(store.append_bytes(p) for p in items))
    store.close()


def append_from_processes(spec: str, tmp: Path, payloads: list[bytes], pub: Path, n: int = 2) -> list[int]:
    """Run ``n`` processes that each append all of ``payloads`` to ``spec`` at the same moment; their new counts."""
    (tmp / "payloads.cbor").write_bytes(cbor2.dumps(payloads))
    go = tmp / "go"
    code = "import sys; from tests.test_store_url import _worker; _worker(*sys.argv[1:])"
    procs = [subprocess.Popen([sys.executable, "-c", code, spec, str(tmp / "payloads.cbor"), str(pub), str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    time.sleep(1.5)  # both have read their input and opened the store
    go.touch()
    counts = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        counts.append(int(out.strip()))
    return counts


def test_two_processes_appending_to_one_folder_store_each_message_once(tmp_path: Path) -> None:
    payloads, keys = signed_envelopes(tmp_path, 300)
    counts = append_from_processes(str(tmp_path / "store"), tmp_path, payloads, tmp_path / "keys" / "device.pub")
    assert sum(counts) == len(payloads), counts
    store = SegmentStore(tmp_path / "store", device_keys=keys)
    assert len(store) == 300 and store.rejected == [] and store.damaged == []
    data = (tmp_path / "store" / "V0.cbors").read_bytes()
    assert len(data) == sum(len(p) for p in payloads)  # nothing written twice


def test_an_append_waits_for_the_lock_and_sees_what_the_holder_stored(tmp_path: Path) -> None:
    """Another receiver process holding the video's lock stores a message; ours then finds it a duplicate."""
    payloads, keys = signed_envelopes(tmp_path, 1)
    folder = tmp_path / "store"
    folder.mkdir()
    (tmp_path / "payloads.cbor").write_bytes(cbor2.dumps(payloads))
    (tmp_path / "go").touch()
    code = "import sys; from tests.test_store_url import _worker; _worker(*sys.argv[1:])"
    with open(folder / "V0.cbors", "ab") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder), str(tmp_path / "payloads.cbor"),
                                 str(tmp_path / "keys" / "device.pub"), str(tmp_path / "go")],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)
        assert proc.poll() is None, "the append did not wait for the lock"
        f.write(payloads[0])  # the holder stores the same message meanwhile
        f.flush()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "0"  # a duplicate: nothing written
    assert (folder / "V0.cbors").read_bytes() == payloads[0]
    assert len(SegmentStore(folder, device_keys=keys)) == 1


def test_open_store_reads_a_path_or_a_file_url(tmp_path: Path) -> None:
    payloads, keys = signed_envelopes(tmp_path, 3)
    store = open_store(tmp_path / "s", keys)
    assert isinstance(store, SegmentStore) and isinstance(store, Store)
    assert all(store.append_bytes(p) for p in payloads)
    again = open_store(f"file:{tmp_path / 's'}", keys)
    assert isinstance(again, SegmentStore) and again.root == tmp_path / "s" and len(again) == 3
    assert again.location == again.spec == str(tmp_path / "s")
    assert store_folder("file:/x/y") == Path("/x/y") and store_folder("postgresql://h/db") is None
    assert missing_folder(tmp_path / "nope") and not missing_folder(tmp_path / "s")
    assert not missing_folder("postgresql://h/db")


def test_urls_are_shown_without_their_password() -> None:
    assert redact("postgresql://ops:s3cret@db.example:5432/edged") == "postgresql://ops@db.example:5432/edged"
    assert redact("postgres://db/edged?password=s3cret&sslmode=require") == "postgres://db/edged?sslmode=require"
    assert redact("postgresql://db/edged") == "postgresql://db/edged"


def test_a_bad_postgresql_url_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as info:
        open_store("postgresql://u:s3cret@127.0.0.1:1/edged?connect_timeout=2")
    line = str(info.value)
    assert "s3cret" not in line and "\n" not in line and "postgresql://u@127.0.0.1:1/edged" in line
