"""Receivers acknowledge a message only once it is durable, and split one destination as a consumer group.

Real mosquitto, real receiver processes, the real file store (and a real PostgreSQL server in
tests/test_fleet.py).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import psycopg
import pytest

from edged.core.keys import generate_device_key, load_signing_key
from edged.link import wire
from edged_platform.pgstore import PgStore
from edged_platform.receiver import default_client_id, member_client_id
from edged_platform.store import SegmentStore
from edged_platform.stores import open_store
from edged_sim.pgserver import have_postgres
from tests.mosquitto import Mosquitto
from tools.bench.fleet import ReceiverProcess

ROOT = Path(__file__).resolve().parent.parent


def signed(key_file: Path, video: str, n: int) -> list[bytes]:
    key = load_signing_key(key_file)
    return [wire.encode(wire.make("event", "ops", "normal", f"record {i}".encode(), video_id=video), key)
            for i in range(n)]


def publish(port: int, payloads: list[bytes]) -> None:
    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="test-device") as client:
            for payload in payloads:
                await client.publish("edged/rsu-1/ops/event", payload, qos=1, timeout=10)

    asyncio.run(main())


def wait_for(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_message_the_store_cannot_take_is_not_acknowledged_and_survives_a_kill(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Messages that arrive while the store cannot write are not acknowledged: a receiver SIGKILLed then
    and started again gets them redelivered and stores them once the store can write again."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    folder = tmp_path / "ops"
    folder.mkdir()
    rx = ReceiverProcess(tmp_path, mosquitto.port, str(folder), [dev.public], group=None)
    rx.start()
    try:
        rx.wait_subscribed()
        blocked = folder / "V1.cbors"
        blocked.mkdir()  # the video's file cannot be opened for appending: the store fails (an OSError)
        payloads = signed(dev.private, "V1", 5)
        publish(mosquitto.port, payloads)
        assert wait_for(lambda: "could not store" in rx.text(), 10), rx.text()[-2000:]
        rx.kill()
        blocked.rmdir()
        rx.start()
        rx.wait_subscribed()
        want = {wire.decode(p).id for p in payloads}
        assert wait_for(lambda: SegmentStore(folder).ids() == want, 15), rx.text()[-2000:]
    finally:
        rx.stop()
    assert SegmentStore(folder).ids() == want
    assert sum(1 for _ in SegmentStore(folder).iter_segment("V1")) == 5


@pytest.mark.slow
def test_the_store_recovering_under_a_running_receiver_stores_what_waited(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A store error is retried: once the store can write, the waiting messages are stored in order, none lost."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    folder = tmp_path / "ops"
    folder.mkdir()
    rx = ReceiverProcess(tmp_path, mosquitto.port, str(folder), [dev.public], group="g", member="a")
    rx.start()
    try:
        rx.wait_subscribed()
        (folder / "V2.cbors").mkdir()
        payloads = signed(dev.private, "V2", 4) + signed(dev.private, "V3", 3)
        publish(mosquitto.port, payloads)
        assert wait_for(lambda: "could not store" in rx.text(), 10)
        time.sleep(0.5)
        assert not (folder / "V3.cbors").exists()  # V3 waits behind V2: nothing is taken out of order
        (folder / "V2.cbors").rmdir()
        want = [wire.decode(p).id for p in payloads]
        assert wait_for(lambda: SegmentStore(folder).ids() == set(want), 20), rx.text()[-2000:]
    finally:
        rx.stop()
    store = SegmentStore(folder)
    assert [e.id for v in ("V2", "V3") for e in store.iter_segment(v)] == want
    assert "store errors (retried)" in rx.text()


class _Refusal:
    """Makes a store refuse a batch holding a message of ``video``: that video's file a link to a missing folder,
    or a deferred database check that fails the COMMIT of any transaction storing a row of that video."""

    def __init__(self, spec: str, video: str) -> None:
        self.spec, self.video = spec, video

    def on(self) -> None:
        if self.spec.startswith("postgresql://"):
            PgStore(self.spec).close()  # the tables
            with psycopg.connect(self.spec, autocommit=True) as conn:
                conn.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF (SELECT video_id FROM store_videos WHERE id = NEW.video) = '" + self.video + "' THEN "
                             "RAISE EXCEPTION 'disk full (test)' USING ERRCODE = '53100'; END IF; RETURN NULL; END $$")
                conn.execute("CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON store_envelopes "
                             "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse()")
        else:
            Path(self.spec).mkdir(parents=True, exist_ok=True)
            (Path(self.spec) / f"{self.video}.cbors").symlink_to(Path(self.spec).parent / "absent" / "file")

    def off(self) -> None:
        if self.spec.startswith("postgresql://"):
            with psycopg.connect(self.spec, autocommit=True) as conn:
                conn.execute("DROP TRIGGER refuse ON store_envelopes")
        else:
            (Path(self.spec) / f"{self.video}.cbors").unlink()

    def stored(self) -> list[str]:
        """Message ids stored, per video in arrival order (each as often as it is stored)."""
        store = open_store(self.spec)
        try:
            return [e.id for v in store.segments() for e in store.iter_segment(v)]
        finally:
            store.close()


@pytest.fixture(params=["file", "postgresql"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of either backend, as a ``--store`` argument."""
    if request.param == "file":
        return str(tmp_path / "ops")
    if not have_postgres():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.slow
def test_a_batch_whose_commit_fails_is_not_acknowledged_and_is_stored_once_after_a_kill(
        tmp_path: Path, mosquitto: Mosquitto, store_spec: str) -> None:
    """Messages queued for a receiver are stored in batches; a batch the store refuses (the database's COMMIT
    fails, or one of its video files cannot be written) is not acknowledged: SIGKILLed then and started again,
    the receiver gets the batch redelivered and, once the store takes it, every message is stored exactly once
    and in order (a message sent twice in one burst too)."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    first, later = signed(dev.private, "V0", 9), signed(dev.private, "V0", 10)
    poisoned = signed(dev.private, "V1", 10)
    payloads = first + [first[2]] + [p for pair in zip(later, poisoned, strict=True) for p in pair]
    refusal = _Refusal(store_spec, "V1")
    rx = ReceiverProcess(tmp_path, mosquitto.port, store_spec, [dev.public], group="g", member="a")
    rx.start()
    try:
        rx.wait_subscribed()
        rx.stop()
        refusal.on()
        publish(mosquitto.port, payloads)  # queued in the member's session: a burst when it comes back
        rx.start()
        assert wait_for(lambda: re.search(r"could not store \S+ \S+ and \d+ more", rx.text()), 15), rx.text()[-2000:]
        time.sleep(0.5)
        failed = re.search(r"could not store \S+ (\S+) and (\d+) more", rx.text())
        assert failed is not None
        ids = [wire.decode(p).id for p in payloads]
        batch = ids[ids.index(failed.group(1)):][:int(failed.group(2)) + 1]
        assert any(wire.decode(p).id in batch for p in poisoned)
        if store_spec.startswith("postgresql://"):
            assert not set(batch) & set(refusal.stored())  # a failed COMMIT stored none of the batch
        rx.kill()
        refusal.off()
        rx.start()
        rx.wait_subscribed()
        want = [wire.decode(p).id for p in first + later + poisoned]
        assert wait_for(lambda: sorted(refusal.stored()) == sorted(want), 20), rx.text()[-2000:]
    finally:
        rx.stop()
    assert refusal.stored() == want  # each once: per video in the order sent


@pytest.mark.slow
def test_two_members_split_a_destination_and_store_each_message_once_across_a_kill(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Two receivers in one group over one store folder: every message stored exactly once, both took a
    share, with one member SIGKILLed and restarted under the same name mid-run."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    folder = tmp_path / "ops"
    members = [ReceiverProcess(tmp_path, mosquitto.port, str(folder), [dev.public], member=m) for m in ("0", "1")]
    payloads = [p for v in range(4) for p in signed(dev.private, f"V{v}", 60)]
    try:
        for rx in members:
            rx.start()
        for rx in members:
            rx.wait_subscribed()
        publish(mosquitto.port, payloads[:100])
        members[1].kill()
        publish(mosquitto.port, payloads[100:200])  # member 1's share waits in its session at the broker
        members[1].start()
        publish(mosquitto.port, payloads[200:])
        want = {wire.decode(p).id for p in payloads}
        assert wait_for(lambda: SegmentStore(folder).ids() == want, 20), [rx.text()[-1500:] for rx in members]
    finally:
        for rx in members:
            rx.stop()
    store = SegmentStore(folder)
    assert sum(1 for v in store.segments() for _ in store.iter_segment(v)) == len(payloads)
    assert not store.damaged and not store.torn()
    assert all(rx.delays() for rx in members), "a member stored nothing: the group did not split the topic"
    assert "already connected" not in mosquitto.log_text()


@pytest.mark.slow
def test_a_retired_member_leaves_its_share_stored_and_no_session_behind(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A member that is gone still gets its share queued by mosquitto; --leave stores that share and ends the
    session, after which the remaining member gets every message."""
    dev = generate_device_key(tmp_path / "keys" / "device")
    folder = tmp_path / "ops"
    stay, gone = (ReceiverProcess(tmp_path, mosquitto.port, str(folder), [dev.public], member=m) for m in ("a", "b"))
    first, later = signed(dev.private, "V1", 40), signed(dev.private, "V2", 20)
    try:
        for rx in (stay, gone):
            rx.start()
            rx.wait_subscribed()
        gone.stop()
        publish(mosquitto.port, first)
        time.sleep(1.0)
        assert len(SegmentStore(folder).ids()) < len(first)  # the gone member's share waits in its session
        leave = subprocess.run(
            [sys.executable, "-m", "edged_platform.receiver", "--port", str(mosquitto.port), "--topic", "edged/+/ops/#",
             "--store", str(folder), "--group", "fleet", "--member", "b", "--leave", "--device-key", str(dev.public)],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert leave.returncode == 0, leave.stderr[-2000:]
        assert "session" in leave.stderr and "ended" in leave.stderr
        publish(mosquitto.port, later)
        want = {wire.decode(p).id for p in first + later}
        assert wait_for(lambda: SegmentStore(folder).ids() == want, 15), stay.text()[-1500:]
    finally:
        stay.stop()
    assert sum(1 for v in SegmentStore(folder).segments() for _ in SegmentStore(folder).iter_segment(v)) == 60


def test_member_client_ids_are_stable_distinct_and_apart_from_the_plain_receivers(tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    a = member_client_id(ops, "edged/+/ops/#", "g", "a")
    assert a == member_client_id(str(ops), "edged/+/ops/#", "g", "a")  # a restarted member resumes its session
    assert a != member_client_id(ops, "edged/+/ops/#", "g", "b")
    assert a != member_client_id(ops, "edged/+/ops/#", "h", "a")
    assert a != default_client_id(ops, "edged/+/ops/#")
    url = "postgresql://edged:secret@db.example/ops"
    assert member_client_id(url, "t", "g", "a") == member_client_id("postgresql://edged:other@db.example/ops", "t",
                                                                   "g", "a")  # the password is no part of it
    assert "secret" not in default_client_id(url, "t")


@pytest.mark.parametrize(("extra", "says"), [
    (["--member", "a"], "give --group too"),
    (["--group", "a/b"], "--group 'a/b'"),
    (["--group", "g", "--member", "x+"], "--member 'x+'"),
    (["--leave"], "give --group and --member too"),
])
def test_bad_group_arguments_are_one_line(tmp_path: Path, extra: list[str], says: str) -> None:
    dev = generate_device_key(tmp_path / "keys" / "device")
    proc = subprocess.run(
        [sys.executable, "-m", "edged_platform.receiver", "--topic", "edged/+/ops/#", "--store", str(tmp_path / "s"),
         "--device-key", str(dev.public), *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_folder_of_device_keys_trusts_each_of_them(tmp_path: Path) -> None:
    from edged_platform.receiver import key_files

    made = [generate_device_key(tmp_path / "fleet" / f"rsu{i}") for i in range(3)]
    (tmp_path / "fleet" / "notes.txt").write_text("not a key")
    files = key_files([str(tmp_path / "fleet")])
    assert sorted(files) == sorted(k.public for k in made)
    assert len(wire.trusted_keys(files)) == 3
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "edged_platform.receiver", "--topic", "edged/+/ops/#", "--store", str(tmp_path / "s"),
         "--device-key", str(tmp_path / "empty")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "holds no .pub file" in proc.stderr and "Traceback" not in proc.stderr
