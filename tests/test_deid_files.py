"""``edged deid`` on real photos and a real street video: faces hidden, the rest kept, bad inputs one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.cli import main
from tests.test_eval_real import FloatCenterFace

REAL = Path(__file__).resolve().parent / "data" / "real"
LABELS = json.loads((REAL / "labels.json").read_text())


@pytest.fixture(scope="module")
def reference() -> FloatCenterFace:
    """The reference face detector of ``tests/test_eval_real.py`` (float CenterFace, score >= 0.5)."""
    return FloatCenterFace()


def deid(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    """Run ``edged deid`` in-process; exit code, stdout lines and stderr lines (TFLite's INFO line dropped)."""
    code = main(["deid", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), [x for x in err.splitlines() if not x.startswith("INFO: ")]


def changed_in(a: np.ndarray, b: np.ndarray, box: list[int], levels: int = 12) -> float:
    """Share of a box's pixels that differ by more than ``levels`` in some channel."""
    x1, y1, x2, y2 = box
    return float((np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2].astype(int)).max(axis=2) > levels).mean())


def face_boxes(name: str) -> list[list[int]]:
    return [b["box"] for b in LABELS[name] if b["cls"] == "face"]


@pytest.mark.slow
def test_photos_faces_hidden_rest_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       reference: FloatCenterFace, monkeypatch: pytest.MonkeyPatch) -> None:
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("messi5.jpg", "person.jpg"):
        shutil.copy(REAL / name, photos / name)
    messi = cv2.imread(str(REAL / "messi5.jpg"))
    cv2.imwrite(str(photos / "messi5_lossless.png"), messi)  # the same pixels, written losslessly
    monkeypatch.chdir(tmp_path)  # no keys/ here: de-identifying needs none
    code, out, err = deid(capsys, photos / "messi5.jpg", photos / "person.jpg", photos / "messi5_lossless.png",
                          "--out", tmp_path / "out")
    assert code == 0 and err == [] and len(out) == 4
    summary = json.loads((tmp_path / "out" / "deid-summary.json").read_text())
    files = {Path(f["input"]).name: f for f in summary["files"]}
    assert summary["originals_kept"] is False and summary["errors"] == []
    assert all(f["frames"] == 1 and f["regions"] >= 1 for f in files.values())

    after = cv2.imread(str(tmp_path / "out" / "messi5.jpg"))
    assert len(reference.detect(messi)) == 1 and len(reference.detect(after)) == 0  # the player's face
    assert changed_in(messi, after, face_boxes("messi5.jpg")[0]) > 0.9
    person, person_after = cv2.imread(str(REAL / "person.jpg")), cv2.imread(str(tmp_path / "out" / "person.jpg"))
    assert changed_in(person, person_after, face_boxes("person.jpg")[0]) > 0.9  # the head seen from behind
    assert files["person.jpg"]["changed_share_mean"] < 0.08

    # Lossless output: exactly the pixels the summary counts changed differ; the rest is identical.
    lossless = cv2.imread(str(tmp_path / "out" / "messi5_lossless.png"))
    mask = np.any(lossless != messi, axis=2)
    assert mask.mean() == pytest.approx(files["messi5_lossless.png"]["changed_share_mean"], abs=1e-6)
    assert mask.mean() == pytest.approx(files["messi5.jpg"]["changed_share_mean"], abs=1e-6)
    assert mask[-100:].mean() == 0  # the grass and ball: no region
    # JPEG output (quality 95): outside the de-identified pixels nearly identical.
    outside = np.abs(after.astype(int) - messi.astype(int)).max(axis=2)[~mask]
    assert outside.mean() < 2.0 and np.percentile(outside, 99) < 12


def test_astronaut_portrait(tmp_path: Path, capsys: pytest.CaptureFixture[str], reference: FloatCenterFace) -> None:
    from skimage import data

    portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "astronaut.png"), portrait)
    code, _, err = deid(capsys, tmp_path / "astronaut.png", "--out", tmp_path / "out")
    after = cv2.imread(str(tmp_path / "out" / "astronaut.png"))
    assert code == 0 and err == []
    assert len(reference.detect(portrait)) == 1 and len(reference.detect(after)) == 0


def street_video(path: Path, fourcc: str = "MJPG") -> list[np.ndarray]:
    """A short real video: the two committed vtest.avi frames, four times each, 10 fps."""
    frames = [cv2.imread(str(REAL / n)) for n in ("vtest_0000.jpg", "vtest_0300.jpg") for _ in range(4)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (768, 576))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    cap = cv2.VideoCapture(str(path))  # what the file camera decodes (MJPG is lossy)
    decoded = []
    while (got := cap.read())[0]:
        decoded.append(got[1])
    cap.release()
    assert len(decoded) == 8
    return decoded


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    return frames


@pytest.mark.slow
def test_video_to_mp4(tmp_path: Path, capsys: pytest.CaptureFixture[str], reference: FloatCenterFace) -> None:
    source = street_video(tmp_path / "street.avi")
    code, out, err = deid(capsys, tmp_path / "street.avi", "--out", tmp_path / "out")
    assert code == 0 and err == []
    (entry,) = json.loads((tmp_path / "out" / "deid-summary.json").read_text())["files"]
    assert entry["kind"] == "video" and entry["video_codec"] == "h264" and entry["frames"] == 8
    assert entry["regions"] >= 8 and 0 < entry["changed_share_mean"] < 0.08
    result = read_video(tmp_path / "out" / "street.mp4")
    assert len(result) == 8 and result[0].shape == (576, 768, 3)
    for i, name in ((0, "vtest_0000.jpg"), (7, "vtest_0300.jpg")):
        diff = np.abs(result[i].astype(int) - source[i].astype(int))
        assert np.median(diff) <= 6  # the street itself: only the codec's loss
        assert len(reference.detect(result[i])) == 0
    # Counted faces the default models find (vtest_0300's 590 px face, 8x10 px, they miss) are hidden.
    for i, box in ((0, [509, 160, 518, 170]), (7, [198, 161, 207, 171]), (7, [626, 163, 636, 174])):
        x1, y1, x2, y2 = box
        assert np.abs(result[i][y1:y2, x1:x2].astype(int) - source[i][y1:y2, x1:x2].astype(int)).mean() > 15


def test_encoder_fallback() -> None:
    from edged.runtime.deid_video import VideoError, pick_codec

    assert pick_codec() == "libx264"  # PyAV's wheels bundle it
    assert pick_codec(("no-such-encoder", "mpeg4")) == "mpeg4"
    with pytest.raises(VideoError, match="no-such-encoder"):
        pick_codec(("no-such-encoder",))


@pytest.mark.slow
def test_folder_recursive_and_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "shots"
    (folder / "day2").mkdir(parents=True)
    (folder / ".cache").mkdir()
    shutil.copy(REAL / "vtest_0000.jpg", folder / "a.jpg")
    shutil.copy(REAL / "person.jpg", folder / "day2" / "b.jpg")
    shutil.copy(REAL / "dog.jpg", folder / ".cache" / "hidden.jpg")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "day2" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "fake.avi").write_bytes(b"RIFF nonsense")
    (tmp_path / "report.pdf").write_bytes(b"%PDF")
    out = folder / "clean"  # inside the input folder: never read back as input
    code, lines, err = deid(capsys, folder, tmp_path / "missing.jpg", tmp_path / "fake.avi", tmp_path / "report.pdf",
                            "--out", out)
    assert code == 1
    errors = [x for x in err if not x.startswith("edged deid: skipped")]
    assert len(errors) == 4 and all(x.startswith("edged deid: ") for x in errors)
    assert not any("Traceback" in x for x in err)
    for name in ("missing.jpg", "fake.avi", "report.pdf", "broken.jpg"):
        assert sum(name in x for x in errors) == 1, name
    assert (out / "a.jpg").is_file() and (out / "day2" / "b.jpg").is_file()
    assert not (out / ".cache").exists() and not (out / "broken.jpg").exists()
    summary = json.loads((out / "deid-summary.json").read_text())
    assert summary["skipped"] == [str(folder / "notes.txt")]
    assert len(summary["errors"]) == 4 and sum(1 for f in summary["files"] if not f.get("error")) == 2

    code, _, _ = deid(capsys, folder, "--out", out)  # again: clean/ is skipped, broken.jpg still fails
    assert code == 1 and not (out / "clean").exists()


def test_setup_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "p.jpg"
    shutil.copy(REAL / "person.jpg", photo)
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["--out", blocker / "sub"], "--out"),
        (["--out", blocker], "not a folder"),
        (["--out", tmp_path / "o", "--config", tmp_path / "none.toml"], "none.toml"),
        (["--out", tmp_path / "o", "--sealed", tmp_path / "s"], "--sealed"),  # defaults name no recipients
    ]
    for extra, needle in cases:
        code, _, err = deid(capsys, photo, *extra)
        assert code == 2 and len(err) == 1 and needle in err[0] and err[0].startswith("edged deid: "), (extra, err)
    code, _, err = deid(capsys, tmp_path, "--out", tmp_path)
    assert code == 2 and len(err) == 1 and "overwritten" in err[0]
    code, _, err = deid(capsys, photo, "--out", tmp_path)  # the output would be the input itself
    assert code == 1 and len(err) == 1 and "overwrite" in err[0]
    assert photo.read_bytes() == (REAL / "person.jpg").read_bytes()


def test_sealed_records_open_with_the_platform_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edged.core.keys import generate_device_key, generate_platform_key, load_platform_private_key, load_verify_key
    from edged.link.sealing import open_sealed, trusted_signers

    device = generate_device_key(tmp_path / "device")
    face = generate_platform_key(tmp_path / "face")
    config = tmp_path / "deid.toml"
    config.write_text(f'[privacy]\ncategories = ["face"]\nsigning_key = "{device.private}"\n'
                      f'recipients = {{ face = "{face.public}" }}\n')
    shutil.copy(REAL / "messi5.jpg", tmp_path / "m.jpg")
    code, _, err = deid(capsys, tmp_path / "m.jpg", "--out", tmp_path / "out", "--config", config,
                        "--sealed", tmp_path / "sealed")
    assert code == 0 and err == []
    (record_file,) = (tmp_path / "sealed").glob("m.jpg.f000000.face.sealed")
    record = open_sealed(record_file.read_bytes(), load_platform_private_key(face.private),
                         trusted_signers([load_verify_key(device.public)]))
    assert record.regions
    summary = json.loads((tmp_path / "out" / "deid-summary.json").read_text())
    assert summary["originals_kept"] is True and summary["files"][0]["sealed_records"] == 1
