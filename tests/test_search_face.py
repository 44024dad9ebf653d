"""``edged-search face`` on real photographs: ``edged deid --sealed`` on real photos (real default
models), ``edged-search index --records`` over its sealed records, and a face query with a
photograph of one of the people; dlib's descriptor models come from the model cache (skipped with
the reason when they are not fetched)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import pytest

from edged.cli import main as edged_main
from edged.core.keys import generate_device_key, generate_platform_key, load_platform_private_key, load_verify_key
from edged.link.sealing import open_sealed, trusted_signers
from edged_platform.search import cli, faces

REAL = Path(__file__).resolve().parent / "data" / "real"

pytestmark = pytest.mark.skipif(faces.available() is not None, reason=f"face models: {faces.available()}")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two real photographs de-identified with their faces sealed, and the record files' image ids."""
    import skimage.data

    tmp = tmp_path_factory.mktemp("face-search")
    photos = tmp / "photos"
    photos.mkdir()
    shutil.copy(REAL / "messi5.jpg", photos / "messi.jpg")
    cv2.imwrite(str(photos / "astronaut.png"), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    return _seal_photos(tmp)


def _seal_photos(tmp: Path) -> dict:
    """``edged deid --sealed`` on ``tmp/photos`` with new device and face-platform keys; the keys and
    each sealed record's image id mapped to its photo's name."""
    device, face = generate_device_key(tmp / "device"), generate_platform_key(tmp / "face")
    config = tmp / "deid.toml"
    config.write_text(f'[privacy]\ncategories = ["face"]\nsigning_key = "{device.private}"\n'
                      f'recipients = {{ face = "{face.public}" }}\n')
    assert edged_main(["deid", str(tmp / "photos"), "--out", str(tmp / "out"), "--config", str(config),
                       "--sealed", str(tmp / "sealed")]) == 0
    signers = trusted_signers([load_verify_key(device.public)])
    key = load_platform_private_key(face.private)
    images = {open_sealed(p.read_bytes(), key, signers).image_id: p.name.split(".")[0]
              for p in (tmp / "sealed").rglob("*.sealed")}
    return {"tmp": tmp, "device": device, "face": face, "images": images}


def _index(sealed: dict, index: Path) -> int:
    return cli.main(["index", "--index", str(index), "--key", str(sealed["face"].private),
                     "--device-key", str(sealed["device"].public), "--records", str(sealed["tmp"] / "sealed")])


def _query(photo: Path, index: Path, capsys: pytest.CaptureFixture[str], top: int = 3) -> list[dict]:
    assert cli.main(["face", str(photo), "--index", str(index), "--top", str(top), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_a_photo_of_a_person_finds_their_sealed_face(sealed: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(sealed, index) == 0
    assert "face(s) described" in capsys.readouterr().out
    astronaut = cv2.cvtColor(__import__("skimage.data").data.astronaut(), cv2.COLOR_RGB2BGR)
    portrait = tmp_path / "eileen.jpg"  # the astronaut's face, half size, JPEG: not the sealed pixels
    cv2.imwrite(str(portrait), cv2.resize(astronaut[0:260, 120:330], None, fx=0.5, fy=0.5),
                [cv2.IMWRITE_JPEG_QUALITY, 80])
    hits = _query(portrait, index, capsys)
    assert hits and sealed["images"][hits[0]["sightings"][0]["image_id"]] == "astronaut"
    assert hits[0]["score"] < faces.SAME_PERSON
    assert Path(hits[0]["best_crop"]).is_file()
    messi = cv2.imread(str(REAL / "messi5.jpg"))
    crop = tmp_path / "messi.png"
    cv2.imwrite(str(crop), cv2.resize(messi, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC))
    hits = _query(crop, index, capsys)
    assert hits and sealed["images"][hits[0]["sightings"][0]["image_id"]] == "messi"
    assert hits[0]["score"] < faces.SAME_PERSON


@pytest.mark.slow
def test_max_distance_and_a_photo_that_is_not_an_image(sealed: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "search.sqlite"
    assert _index(sealed, index) == 0
    capsys.readouterr()
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), __import__("numpy").full((120, 120, 3), 128, "uint8"))
    assert cli.main(["face", str(blank), "--index", str(index), "--max-distance", "0.01"]) == 0
    assert "no face found" in capsys.readouterr().out
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not a picture")
    assert cli.main(["face", str(bad), "--index", str(index)]) == 2
    assert "not an image" in capsys.readouterr().err


@pytest.mark.slow
def test_a_face_hit_restores_from_the_deid_output(sealed: dict, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    import skimage.data

    index = tmp_path / "search.sqlite"
    assert _index(sealed, index) == 0
    capsys.readouterr()
    original = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    portrait = tmp_path / "eileen.png"
    cv2.imwrite(str(portrait), original[0:260, 120:330])
    (hit,) = _query(portrait, index, capsys)[:1]
    keys = ["--key", str(sealed["face"].private), "--device-key", str(sealed["device"].public)]
    out = tmp_path / "restored"
    assert cli.main(["restore", str(hit["hit"]), "--index", str(index), *keys, "--ops-store", str(tmp_path / "none"),
                     "--out", str(out)]) == 1  # an ops store without the image: refused, named
    assert "have no de-identified image there" in capsys.readouterr().err
    assert cli.main(["restore", str(hit["hit"]), "--index", str(index), *keys,
                     "--deid-out", str(sealed["tmp"] / "out"), "--out", str(out)]) == 0
    report = json.loads((out / "hit.json").read_text())
    (frame,) = report["frames"]
    restored = cv2.imread(frame["file"], cv2.IMREAD_COLOR)
    deid = cv2.imread(str(sealed["tmp"] / "out" / "astronaut.png"), cv2.IMREAD_COLOR)
    x, y, w, h = hit["sightings"][0]["box"]
    assert np.array_equal(restored[y:y + h, x:x + w], original[y:y + h, x:x + w])
    assert not np.array_equal(deid[y:y + h, x:x + w], original[y:y + h, x:x + w])
    assert Path(report["clip"]).is_file()
    assert cli.main(["restore", "99999", "--index", str(index), *keys, "--deid-out", str(sealed["tmp"] / "out"),
                     "--out", str(out)]) == 1
    assert "hit 99999 is not in the index" in capsys.readouterr().err


def _named_photos() -> dict | None:
    from tools.eval.face_identities import photos

    got = photos()
    return None if got is None else {p.name.removeprefix("facerec_"): p.path for p in got}


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two photographs of two named people sealed by ``edged deid --sealed`` and indexed; skipped when the
    photographs are not fetched (``python -m tools.eval.face_identities``)."""
    found = _named_photos()
    if found is None:
        pytest.skip("named face photographs not fetched: python -m tools.eval.face_identities")
    tmp = tmp_path_factory.mktemp("named-faces")
    photos = tmp / "photos"
    photos.mkdir()
    for name in ("obama2.jpg", "biden.jpg"):
        shutil.copy(found[name], photos / name)
    sealed = _seal_photos(tmp)
    images = sealed["images"]
    assert set(images.values()) == {"obama2", "biden"}
    index = tmp / "search.sqlite"
    assert _index(sealed, index) == 0
    return {"index": index, "images": images, "photos": found}


@pytest.mark.slow
def test_another_photograph_of_a_person_finds_them_first(named: dict, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    for query in ("obama.jpg", "obama3.jpg"):  # other photographs of the person sealed from obama2.jpg
        hits = _query(named["photos"][query], named["index"], capsys, top=10)
        who = [named["images"][h["sightings"][0]["image_id"]] for h in hits]
        assert who[0] == "obama2" and hits[0]["score"] < faces.SAME_PERSON, (query, who)
        assert "biden" in who and who.index("biden") == who.count("obama2"), (query, who)  # every obama2 face first
        assert all(h["score"] >= faces.SAME_PERSON for h, w in zip(hits, who, strict=True) if w == "biden"), query
