"""The search index on a real PostgreSQL server: the flow of ``tests/test_search_flow.py`` (simulated
run, real mosquitto receivers) indexed into a file and into a database gives the same plate and face
hits and the same best crops; a hit restores exactly from the database index; retention, privacy
(nothing open to ``PUBLIC``) and bad input, each in one line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest

from edged_platform.search import cli, faces
from edged_sim.pgserver import PgServer
from edged_sim.truth import crop_digest
from tests.test_search_flow import _keys, _scene_plates, run  # noqa: F401  # the simulated run, module-scoped

pytestmark = pytest.mark.skipif(faces.available() is not None, reason=f"face models: {faces.available()}")


def _index(run, index: str, *extra: str) -> int:  # noqa: F811  # ``run`` is the fixture's value here
    stores = [a for d in ("func.face", "func.plate") for a in ("--store", str(run.stores[d].root))]
    return cli.main(["index", "--index", index, *_keys(run), *stores, *extra])


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert cli.main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _same(file_hits: list[dict], pg_hits: list[dict]) -> None:
    """Hits equal field by field; best crops equal byte for byte (they lie in different folders)."""
    assert len(file_hits) == len(pg_hits)
    for f, p in zip(file_hits, pg_hits, strict=True):
        assert {k: v for k, v in f.items() if k != "best_crop"} == {k: v for k, v in p.items() if k != "best_crop"}
        assert Path(f["best_crop"]).read_bytes() == Path(p["best_crop"]).read_bytes()


def test_file_and_database_give_the_same_plate_and_face_hits(run, pg_url: str, tmp_path: Path,  # noqa: F811
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    file_index = str(tmp_path / "search.sqlite")
    assert _index(run, file_index) == 0 and _index(run, pg_url) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split(" in ")[0] == out[1].split(" in ")[0]  # the same records, objects, sightings, reads
    assert "postgresql://postgres@127.0.0.1" in out[1]
    crops = {"file": tmp_path / "crops-file", "pg": tmp_path / "crops-pg"}
    both = {"file": file_index, "pg": pg_url}
    found = 0
    for plate in sorted(_scene_plates(run)):
        for edits in ("0", "1", "2"):
            hits = {k: _json(["plate", plate, "--index", i, "--max-edits", edits, "--crops", str(crops[k])], capsys)
                    for k, i in both.items()}
            _same(hits["file"], hits["pg"])
            found += len(hits["pg"])
    assert found > 0
    with psycopg.connect(pg_url) as conn:
        face_ids = [r[0] for r in conn.execute("SELECT id FROM edged_search.objects WHERE face IS NOT NULL "
                                               "ORDER BY id")]
        assert face_ids, "the run has described faces"
        png = conn.execute("SELECT png FROM edged_search.crops WHERE object=%s", (face_ids[0],)).fetchone()[0]
    photo = tmp_path / "photo.png"  # a face's best crop from the database, enlarged: the investigator's photo
    face = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    cv2.imwrite(str(photo), cv2.resize(face, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC))
    for argv in ([], ["--exact"]):
        hits = {k: _json(["face", str(photo), "--index", i, "--top", "3", "--crops", str(crops[k]), *argv], capsys)
                for k, i in both.items()}
        _same(hits["file"], hits["pg"])
        assert hits["pg"] and hits["pg"][0]["hit"] == face_ids[0]
    for i in both.values():  # face cells on both: the same cells, the same hits
        assert cli.main(["cells", "--index", i, "--cells", "2"]) == 0
    assert "2 cell(s)" in capsys.readouterr().out
    hits = {k: _json(["face", str(photo), "--index", i, "--top", "3", "--probe", "1", "--crops", str(crops[k])],
                     capsys) for k, i in both.items()}
    _same(hits["file"], hits["pg"])
    assert hits["pg"][0]["hit"] == face_ids[0]


def test_database_index_is_incremental_and_a_hit_restores_exactly(run, pg_url: str, tmp_path: Path,  # noqa: F811
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert _index(run, pg_url) == 0
    records = int(capsys.readouterr().out.split(": ")[1].split()[0])
    assert _index(run, pg_url) == 0
    again = capsys.readouterr().out
    assert "0 new record(s)" in again and f"{records} already indexed" in again
    ops = run.stores["ops"]
    hit = next(h for p in sorted(_scene_plates(run))
               for h in _json(["plate", p, "--index", pg_url, "--max-edits", "1"], capsys)
               if any(ops.get_image(s["image_id"]) is not None for s in h["sightings"]))
    assert hit["best_crop"] is None  # a database index writes crops only where --crops says
    out = tmp_path / "hit"
    assert cli.main(["restore", str(hit["hit"]), "--index", pg_url, *_keys(run), "--ops-store", str(ops.root),
                     "--out", str(out)]) == 0
    report = json.loads((out / "hit.json").read_text())
    assert report["frames"] and Path(report["clip"]).is_file()
    for frame in report["frames"]:
        restored = cv2.imread(frame["file"], cv2.IMREAD_COLOR)
        rects = [k for k in run.truth.crops if k[0] == frame["image_id"]]
        assert rects
        for _image, x, y, w, h in rects:
            assert crop_digest(restored[y:y + h, x:x + w]) == run.truth.crops[(_image, x, y, w, h)]


TABLES = ("objects", "sightings", "sources", "plate_keys", "crops")


def test_older_than_empties_the_database_index(run, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert _index(run, pg_url) == 0
    assert cli.main(["index", "--index", pg_url, "--older-than", "1h"]) == 0
    assert "dropped 0 object(s)" in capsys.readouterr().out
    with psycopg.connect(pg_url) as conn:
        assert all(conn.execute(f"SELECT COUNT(*) FROM edged_search.{t}").fetchone()[0] for t in TABLES)
        conn.execute("UPDATE edged_search.objects SET last_t = last_t - 2 * 86400")
        conn.execute("UPDATE edged_search.sources SET t = t - 2 * 86400")
    assert cli.main(["index", "--index", pg_url, "--older-than", "1d"]) == 0
    assert "dropped 0 object(s)" not in capsys.readouterr().out
    with psycopg.connect(pg_url) as conn:
        assert [conn.execute(f"SELECT COUNT(*) FROM edged_search.{t}").fetchone()[0] for t in TABLES] == [0] * 5
    assert _index(run, pg_url) == 0  # what retention dropped is not indexed again
    assert "0 new record(s)" in capsys.readouterr().out


@pytest.mark.parametrize("grant", ["SELECT ON edged_search.objects", "USAGE ON SCHEMA edged_search"])
def test_a_database_index_open_to_public_is_refused(grant: str, pg_url: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", "--index", pg_url]) == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert not conn.execute("SELECT has_schema_privilege('public', 'edged_search', 'USAGE')").fetchone()[0]
        conn.execute(f"GRANT {grant} TO PUBLIC")
    capsys.readouterr()
    assert cli.main(["plate", "AB12CDE", "--index", pg_url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "open to PUBLIC" in err[0] and "REVOKE" in err[0]


def test_database_bad_input_is_one_line(pg_server: PgServer, pg_url: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    empty = pg_server.new_database("t_search_empty")
    nowhere = f"postgresql://search:s3cret@127.0.0.1:{pg_server.port + 1}/edged"
    cases = [
        (["plate", "AB12", "--index", empty], "no search index in this database"),
        (["index", "--index", nowhere], "cannot connect"),
        (["plate", "AB12", "--index", pg_url.rsplit("/", 1)[0] + "/no_such_db"], "no_such_db"),
        (["cells", "--index", empty], "no search index"),
    ]
    for argv, needle in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0] and err[0].startswith("edged-search "), (argv, err)
        assert "s3cret" not in err[0]
    open_crops = tmp_path / "open"
    open_crops.mkdir(mode=0o755)
    open_crops.chmod(0o755)
    assert cli.main(["index", "--index", pg_url]) == 0
    capsys.readouterr()
    assert cli.main(["plate", "AB12", "--index", pg_url, "--crops", str(open_crops)]) == 2
    assert "must be a private (0700) folder" in capsys.readouterr().err


def test_a_read_only_role_queries_and_cannot_write(run, pg_url: str, tmp_path: Path,  # noqa: F811
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _index(run, pg_url) == 0
    role = "investigator_" + pg_url.rsplit("/", 1)[1][-20:]  # roles belong to the whole server
    with psycopg.connect(pg_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA edged_search TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA edged_search TO {role}")
    reader = pg_url.replace("//postgres@", f"//{role}@")
    capsys.readouterr()
    plate = sorted(_scene_plates(run))[0]
    owner_hits = _json(["plate", plate, "--index", pg_url, "--max-edits", "2"], capsys)
    assert owner_hits and _json(["plate", plate, "--index", reader, "--max-edits", "2"], capsys) == owner_hits
    crops = tmp_path / "crops"
    hits = _json(["plate", plate, "--index", reader, "--max-edits", "2", "--crops", str(crops)], capsys)
    assert all(Path(h["best_crop"]).is_file() for h in hits)
    for argv in (["index", "--index", reader], ["cells", "--index", reader]):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "permission denied" in err[0], (argv, err)
