"""Forensic search end to end on a simulated run: the daemon on the fake scene, real mosquitto
receivers, ``edged-search index`` over the functional stores, a plate query for a plate the scene
rendered (read by the shipped PP-OCRv4 recogniser), and ``edged-search restore`` of the hit through
the platform's restore: the restored frame equals the raw pixels in every sealed rectangle."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import cv2
import pytest

from edged_platform.search import cli
from edged_platform.search.plates import normalise
from edged_sim import SimOptions, run_sim
from edged_sim.broker import mosquitto_path
from edged_sim.run import fake_scene_config
from edged_sim.truth import crop_digest

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto is not installed (apt-get install mosquitto)")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    """10 s of the fake scene at 1920x1080 (plates 9-12 px tall) with oracle detections, no outage."""
    return run_sim(SimOptions(seconds=10.0, width=1920, height=1080, realtime=False, outage=None, detector="truth",
                              config=None, base=fake_scene_config(), present_models_only=True, reconnect_max_s=1.0,
                              out=tmp_path_factory.mktemp("search-sim"), report=False))


def _keys(run) -> list[str]:
    return ["--key", str(run.keys["face"]), "--key", str(run.keys["plate"]),
            "--device-key", str(run.keys["device"].with_suffix(".pub"))]


def _index(run, index: Path, *extra: str) -> int:
    stores = [a for d in ("func.face", "func.plate") for a in ("--store", str(run.stores[d].root))]
    return cli.main(["index", "--index", str(index), *_keys(run), *stores, *extra])


def _scene_plates(run) -> set[str]:
    return {normalise(t) for f in run.truth.frames for t in f.gt.texts if t}


@pytest.mark.slow
def test_index_is_private_and_incremental(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(run, index) == 0
    first = capsys.readouterr().out
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
    crops = tmp_path / "search.sqlite.crops"
    assert stat.S_IMODE(crops.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in crops.iterdir())
    records = int(first.split(": ")[1].split()[0])
    assert records == run.data["run"]["receivers"]["func.face"]["stored"] + run.data["run"]["receivers"]["func.plate"]["stored"]
    assert _index(run, index) == 0
    again = capsys.readouterr().out
    assert "0 new record(s)" in again and f"{records} already indexed" in again


@pytest.mark.slow
def test_a_rendered_plate_is_found_and_its_frame_restores_exactly(run, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(run, index) == 0
    capsys.readouterr()
    found: dict[str, list[dict]] = {}
    for plate in sorted(_scene_plates(run)):
        assert cli.main(["plate", plate, "--index", str(index), "--max-edits", "1", "--json"]) == 0
        found[plate] = json.loads(capsys.readouterr().out)
    exact = {p for p, hits in found.items() if any(h["plate"] == p for h in hits)}
    assert exact, f"no plate of the scene read exactly: {found}"
    plate = sorted(exact)[0]
    hits = [h for h in found[plate] if h["plate"] == plate]
    assert max(len(h["sightings"]) for h in hits) >= 2, "sightings of one plate in one video are one object"
    typo = ("Q" if plate[0] != "Q" else "Z") + plate[1:]
    assert cli.main(["plate", typo, "--index", str(index), "--json"]) == 0
    assert not any(h["plate"] == plate for h in json.loads(capsys.readouterr().out))
    assert cli.main(["plate", typo, "--index", str(index), "--max-edits", "1", "--json"]) == 0
    near = {h["hit"]: h["score"] for h in json.loads(capsys.readouterr().out)}
    assert all(near.get(h["hit"]) == 1 for h in hits)
    for h in hits:  # each hit's frames show that plate in the ground truth
        for s in h["sightings"]:
            assert plate in {normalise(t) for t in run.truth.frame(s["image_id"]).gt.texts}
        assert Path(h["best_crop"]).is_file()
    ops = run.stores["ops"]
    restorable = [h for h in hits if any(ops.get_image(s["image_id"]) is not None for s in h["sightings"])]
    assert restorable, "no sighting of the plate has an ops image"
    hit = restorable[0]
    out = tmp_path / "hit"
    assert cli.main(["restore", str(hit["hit"]), "--index", str(index), *_keys(run), "--ops-store", str(ops.root),
                     "--out", str(out)]) == 0
    report = json.loads((out / "hit.json").read_text())
    assert report["frames"] and Path(report["clip"]).is_file()
    checked = 0
    for frame in report["frames"]:
        restored = cv2.imread(frame["file"], cv2.IMREAD_COLOR)
        rects = [k for k in run.truth.crops if k[0] == frame["image_id"]]
        assert rects
        for _image, x, y, w, h in rects:  # every sealed rectangle of the frame: the raw pixels, bit for bit
            assert crop_digest(restored[y:y + h, x:x + w]) == run.truth.crops[(_image, x, y, w, h)]
            checked += 1
    assert checked >= 1


def test_plate_query_table_and_misses(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(run, index) == 0
    capsys.readouterr()
    plate = sorted(_scene_plates(run))[0]
    assert cli.main(["plate", plate, "--index", str(index), "--max-edits", "2"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["hit", "category", "plate"]
    assert cli.main(["plate", "QQ99ZZZ", "--index", str(index)]) == 0
    assert "no plate 'QQ99ZZZ' found" in capsys.readouterr().out
    assert cli.main(["plate", plate, "--index", str(tmp_path / "missing.sqlite")]) == 2
    assert "not found" in capsys.readouterr().err


def test_older_than_drops_old_objects_and_their_crops(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(run, index) == 0
    assert any((tmp_path / "search.sqlite.crops").iterdir())
    assert cli.main(["index", "--index", str(index), "--older-than", "1h"]) == 0
    assert "dropped 0 object(s)" in capsys.readouterr().out
    db = sqlite3.connect(index)  # the scene ran faster than the wall clock: its times are now-ish
    with db:
        db.execute("UPDATE objects SET last_t = last_t - 2 * 86400")
        db.execute("UPDATE sources SET t = t - 2 * 86400")
    db.close()
    assert cli.main(["index", "--index", str(index), "--older-than", "1d"]) == 0
    assert "dropped 0 object(s)" not in capsys.readouterr().out
    db = sqlite3.connect(index)
    assert [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("objects", "sightings", "sources",
                                                                           "plate_keys")] == [0, 0, 0, 0]
    db.close()
    assert not any((tmp_path / "search.sqlite.crops").iterdir())
    assert _index(run, index) == 0  # what retention dropped is not indexed again
    assert "0 new record(s)" in capsys.readouterr().out


def test_an_index_others_can_read_is_refused(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(run, index) == 0
    os.chmod(index, 0o644)
    capsys.readouterr()
    assert cli.main(["plate", "AB12CDE", "--index", str(index)]) == 2
    assert "readable by group or others" in capsys.readouterr().err


def test_bad_input_is_one_line(run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    notdb = tmp_path / "notes.sqlite"
    notdb.write_text("not a database " * 100)
    notdb.chmod(0o600)
    linked = tmp_path / "linked.sqlite"
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "linked.sqlite.crops").symlink_to(tmp_path / "elsewhere")
    cases = [
        (["index", "--index", str(notdb)], "not a search index"),
        (["index", "--index", str(linked)], "not a link"),
        (["index", "--index", str(index), "--key", str(tmp_path / "none.key"), "--device-key",
          str(run.keys["device"].with_suffix(".pub")), "--store", str(run.stores["func.plate"].root)], "none.key"),
        (["index", "--index", str(index), *_keys(run), "--store", str(tmp_path / "nostore")], "nostore"),
        (["index", "--index", str(index), "--store", str(run.stores["func.plate"].root)], "--key and --device-key"),
        (["plate", "·-·", "--index", str(index)], "no letter or digit"),
        (["plate", "AB12", "--max-edits", "-1", "--index", str(index)], "--max-edits"),
        (["index", "--index", str(tmp_path / "nofolder" / "i.sqlite")], "not found"),
    ]
    assert cli.main(["index", "--index", str(index)]) == 0
    capsys.readouterr()
    for argv, needle in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and err[0].startswith("edged-search "), (argv, err)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_damaged_and_foreign_record_files_are_rejected_the_rest_indexed(run, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    envs = [e for e in run.stores["func.plate"].iter_segment(run.stores["func.plate"].segments()[0])
            if e.kind == "sensitive"]
    for k, env in enumerate(envs[:6]):
        (folder / f"r{k}.cbor").write_bytes(env.to_bytes())
    damaged = bytearray((folder / "r0.cbor").read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    (folder / "r0.cbor").write_bytes(bytes(damaged))
    (folder / "r1.cbor").write_bytes(b"\xa1\x61h\x40")  # a CBOR map, not a record
    index = tmp_path / "search.sqlite"
    dev = ["--device-key", str(run.keys["device"].with_suffix(".pub")), "--records", str(folder)]
    assert cli.main(["index", "--index", str(index), "--key", str(run.keys["face"]), *dev]) == 0
    assert "0 new record(s)" in capsys.readouterr().out  # sealed to the plate key: skipped, not marked as seen
    assert cli.main(["index", "--index", str(index), "--key", str(run.keys["plate"]), *dev]) == 0
    out, err = capsys.readouterr()
    assert "4 new record(s)" in out and "2 rejected" in out
    assert sum(1 for line in err.splitlines() if line.startswith("edged-search index: rejected")) == 2
    assert "r0.cbor" in err and "r1.cbor" in err and "Traceback" not in err
