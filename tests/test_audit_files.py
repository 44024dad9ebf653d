"""The daemon's own files: links planted in ``data_dir`` or the output folder are refused, never
followed or written through, and what the daemon creates is private (folders 0700, files 0600).

Each case runs the real ``edged run`` (in process, a file camera, real SQLite and real files) with a
link planted where the daemon keeps a file, pointing at a file outside that must stay as it was.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.cli import main
from edged.link.outbox import Outbox
from edged.stages.track.ids import IdAllocator, IdStoreError
from tests.remote_rig import write_config

TARGET_TEXT = b'{"next_free": 5}\n' + b"x" * 100


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The umask of a plain shell: the daemon must not rely on systemd's UMask=0077."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def config(tmp: Path) -> Path:
    return write_config(tmp, f'[output]\ndir = "{tmp / "out"}"\nsave_every = 1\n')


def run(path: Path, frames: int = 3) -> int:
    return main(["run", "--config", str(path), "--frames", str(frames)])


def outside(tmp: Path, exists: bool = True) -> Path:
    target = tmp / "outside" / "target"
    target.parent.mkdir(exist_ok=True)
    if exists:
        target.write_bytes(TARGET_TEXT)
        os.utime(target, (1_000_000, 1_000_000))
    return target


def untouched(target: Path, existed: bool = True) -> bool:
    if not existed:
        return not os.path.lexists(target)
    st = target.stat()
    return target.read_bytes() == TARGET_TEXT and st.st_mtime == 1_000_000


@pytest.mark.parametrize("name,exists", [
    ("outbox.sqlite.reserve", True),
    ("outbox.sqlite", False),
    ("outbox.sqlite", True),
    ("outbox.sqlite-wal", True),
    ("outbox.sqlite-shm", True),
    ("outbox.sqlite-journal", False),
    ("track_ids.json", True),
    ("track_ids.json", False),
])
def test_a_link_planted_in_data_dir_stops_the_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, exists: bool
) -> None:
    path = config(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    target = outside(tmp_path, exists)
    (data / name).symlink_to(target)
    assert run(path) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("edged: cannot start")]
    assert len(lines) == 1 and f"{data / name} is a symbolic link" in lines[0], err
    assert "Traceback" not in err
    assert untouched(target, exists)
    assert (data / name).is_symlink()  # refused, left for the operator to look at


def test_a_stale_temp_link_beside_the_id_mark_is_replaced_not_written_through(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    target = outside(tmp_path)
    (data / "track_ids.json.tmp").symlink_to(target)
    ids = IdAllocator.in_dir(data, block=4)
    assert [ids.next_id() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert untouched(target)
    assert not os.path.lexists(data / "track_ids.json.tmp")
    assert IdAllocator.in_dir(data).next_id() == 9
    assert stat.S_IMODE((data / "track_ids.json").stat().st_mode) == 0o600


def test_the_id_mark_must_be_a_plain_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    os.mkfifo(data / "track_ids.json")  # would block a plain open for ever
    with pytest.raises(IdStoreError, match="not a regular file"):
        IdAllocator.in_dir(data)


def test_a_reserve_link_planted_while_running_is_not_followed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = outside(tmp_path)
    with Outbox(tmp_path / "o.db", reserve_bytes=1 << 20) as outbox:
        reserve = tmp_path / "o.db.reserve"
        assert reserve.stat().st_size == outbox.reserve_bytes
        reserve.unlink()
        reserve.symlink_to(target)
        assert outbox._ensure_reserve() is False
        assert untouched(target)
        assert f"{reserve} is a symbolic link" in caplog.text


def test_links_planted_as_run_folders_are_passed_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    targets = []
    now = time.time()
    for s in range(-1, 30):  # dangling links under every name the next run folder may take
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now + s))
        for name in (f"run-{stamp}", f"run-{stamp}-2"):
            target = tmp_path / "outside" / name
            targets.append(target)
            (out / name).symlink_to(target)
    assert run(path) == 0
    assert not any(os.path.lexists(t) for t in targets)
    runs = [p for p in out.iterdir() if not p.is_symlink()]
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file()
    assert f"output in {runs[0]}" in capsys.readouterr().out


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_what_the_daemon_creates_is_private(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert run(path, frames=4) == 0
    data, out = tmp_path / "data", tmp_path / "out"
    (folder,) = out.iterdir()
    frames = sorted((folder / "frames").iterdir())
    assert frames, "no local frames written"
    assert {p.name: mode(p) for p in (data, out, folder, folder / "frames")} == dict.fromkeys(
        ("data", "out", folder.name, "frames"), 0o700)
    IdAllocator.in_dir(data).next_id()  # (no detections in this run: the tracker allocated no id)
    files = [*frames, folder / "summary.json", *(p for p in data.iterdir() if p.is_file())]
    assert data / "outbox.sqlite" in files and data / "track_ids.json" in files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


@pytest.mark.usefixtures("umask_022")
def test_an_outbox_left_readable_by_an_older_build_is_made_private(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db"):
        pass
    os.chmod(tmp_path / "o.db", 0o644)
    with Outbox(tmp_path / "o.db") as outbox:
        assert outbox.pending() == (0, 0)
        names = [p for p in tmp_path.iterdir() if p.name.startswith("o.db")]
        assert {p.name: mode(p) for p in names} == {p.name: 0o600 for p in names}


def test_salvage_does_not_open_a_damaged_outbox_through_a_planted_link(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edged.link.outbox_salvage import salvage_outbox

    target = outside(tmp_path, exists=False)
    aside = tmp_path / "outbox.sqlite.damaged-1"
    aside.write_bytes(b"SQLite format 3\0" + bytes(4080))
    (tmp_path / "outbox.sqlite.damaged-1-shm").symlink_to(target)
    found = salvage_outbox(aside)
    assert found.payloads == [] and untouched(target, existed=False)
    assert f"{tmp_path / 'outbox.sqlite.damaged-1-shm'} is a symbolic link" in caplog.text
