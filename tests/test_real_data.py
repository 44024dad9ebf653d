"""The committed real-image subset (tests/data/real) and the hand labels in tools/eval/real_labels.json."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tools.eval import real_data

SUBSET = Path(__file__).resolve().parent / "data" / "real"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
REQUIRED_KEYS = {
    "person.jpg", "dog.jpg", "kite.jpg", "horses.jpg", "messi5.jpg", "basketball1.png", "basketball2.png",
    "licenseplate_motion.jpg",
    *(f"vtest.avi#{i:04d}" for i in (0, 100, 200, 300, 400, 500)),
}


def _subset_labels() -> dict:
    return json.loads((SUBSET / "labels.json").read_text())


def test_subset_files_and_labels_match() -> None:
    lab = _subset_labels()
    on_disk = {p.name for p in SUBSET.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    assert set(lab) == on_disk, "every committed image is labelled and every labelled image is committed"
    assert set(lab) == set(real_data.SUBSET)


@pytest.mark.parametrize("name", sorted(real_data.SUBSET))
def test_subset_boxes_valid(name: str) -> None:
    img = cv2.imread(str(SUBSET / name))
    assert img is not None, f"{name} does not decode"
    problems = real_data.check_boxes(_subset_labels()[name], img.shape[:2])
    assert problems == [], f"{name}: {problems}"


def test_subset_labels_equal_full_labels() -> None:
    full = json.loads(real_data.LABELS.read_text())
    sub = _subset_labels()
    for name, key in real_data.SUBSET.items():
        assert sub[name] == full[key], f"{name} labels differ from {key} in {real_data.LABELS.name}"


def test_subset_sizes_and_readme() -> None:
    files = [p for p in SUBSET.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 600_000
    readme = (SUBSET / "README.md").read_text()
    for name in real_data.SUBSET:
        assert name in readme, f"README.md does not name {name}"
    # frames keep the source's size (labels are in source pixels)
    assert cv2.imread(str(SUBSET / "vtest_0000.jpg")).shape == (576, 768, 3)
    assert cv2.imread(str(SUBSET / "person.jpg")).shape == (424, 640, 3)


def test_full_labels_load() -> None:
    lab = real_data.labels()
    assert REQUIRED_KEYS <= set(lab)
    for key in lab:
        name, frame = real_data.split_key(key)
        assert name in real_data.FILES, key
        assert frame is None or name in real_data.VIDEOS
    assert lab["horses.jpg"] == []
    n = real_data.counts(lab)
    assert n["person"][0] >= 40 and n["face"][0] >= 10 and n["plate"][0] >= 1
    assert all(isinstance(b, real_data.Box) and b.cls in real_data.CLASSES for bs in lab.values() for b in bs)


def test_full_labels_within_known_sizes() -> None:
    # source sizes: darknet/OpenCV sample files as shipped in the Debian packages
    sizes = {"person.jpg": (424, 640), "dog.jpg": (576, 768), "kite.jpg": (900, 1352), "horses.jpg": (512, 773),
             "messi5.jpg": (342, 548), "basketball1.png": (480, 640), "basketball2.png": (480, 640),
             "licenseplate_motion.jpg": (482, 600), "vtest.avi": (576, 768)}
    raw = json.loads(real_data.LABELS.read_text())
    for key, entries in raw.items():
        problems = real_data.check_boxes(entries, sizes[real_data.split_key(key)[0]])
        assert problems == [], f"{key}: {problems}"


@pytest.mark.parametrize("bad, fragment", [
    ([{"cls": "person", "box": [10, 10, 5, 20]}], "reversed"),
    ([{"cls": "person", "box": [10, 10, 10, 20]}], "empty"),
    ([{"cls": "person", "box": [0, 0, 50, 70]}], "outside"),
    ([{"cls": "pedestrian", "box": [0, 0, 5, 5]}], "unknown class"),
    ([{"cls": "face", "box": [0, 0, 5]}], "4 integers"),
    ([{"cls": "face", "box": [0, 0, 5, 5], "ignore": "yes"}], "ignore"),
    ([{"cls": "face", "box": [0, 0, 5, 5], "score": 1}], "unknown keys"),
])
def test_check_boxes_rejects(bad: list, fragment: str) -> None:
    problems = real_data.check_boxes(bad, (60, 40))
    assert problems and fragment in problems[0]


def test_load_label_file_rejects_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "labels.json"
    p.write_text(json.dumps({"a.jpg": [{"cls": "car", "box": [5, 5, 1, 1]}]}))
    with pytest.raises(ValueError, match="a.jpg"):
        real_data.load_label_file(p)


def test_fetch_without_apt_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(real_data.RealDataError) as e:
        real_data.fetch(tmp_path / "cache")
    assert "apt-get" in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("EDGED_REAL_DATA", str(tmp_path / "cache2"))
    assert real_data.cache_path() == tmp_path / "cache2"
    assert real_data.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_fetch_refuses_other_bytes(tmp_path: Path) -> None:
    for name in real_data.FILES:
        (tmp_path / name).write_bytes(b"not the packaged file")
    for pkg in real_data.PACKAGES:
        (tmp_path / f"{pkg}.copyright").write_text("x")
    with pytest.raises(real_data.RealDataError, match="SHA-256"):
        real_data.fetch(tmp_path)
