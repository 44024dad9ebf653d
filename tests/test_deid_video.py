"""``edged deid`` on real videos made with PyAV: H.264 out, rate, size, frames and audio kept as asked,
progress shown, Ctrl-C stops cleanly, and sealed output carries what restore needs."""

from __future__ import annotations

import json
import os
import pty
import shlex
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edged.cli import main

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data" / "real"
SCRIPTS = Path(sys.executable).parent


def street(size: tuple[int, int]) -> list[np.ndarray]:
    """The two committed vtest.avi frames (pedestrians with faces), resized to ``size``."""
    return [cv2.resize(cv2.imread(str(REAL / n)), size, interpolation=cv2.INTER_AREA)
            for n in ("vtest_0000.jpg", "vtest_0300.jpg")]


def make_video(path: Path, frames: int, rate: Fraction, size: tuple[int, int], audio: bool = True,
               metadata: dict[str, str] | None = None, codec: str = "mpeg4", times_ms: list[int] | None = None,
               audio_codec: str = "aac") -> None:
    """A real video file: ``frames`` street frames at ``rate`` (pts in the 1/rate.numerator time base;
    with ``times_ms``, at those times in a 1/1000 time base: a variable rate) and, with ``audio``, a
    440 Hz AAC tone as long as the video."""
    pictures = street(size)
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        base = Fraction(1, 1000) if times_ms else Fraction(1, rate.numerator)
        video.codec_context.time_base = base
        tone = out.add_stream(audio_codec, rate=48000, layout="mono") if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pictures[(i // 4) % 2], format="bgr24")
            frame.pts = times_ms[i] if times_ms else i * rate.denominator
            frame.time_base = base
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if tone is not None:
            seconds = frames / rate
            samples = int(48000 * seconds)
            t = np.arange(samples) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
            if audio_codec != "aac":
                wave = (wave * 32767).astype(np.int16)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[:, start:start + 1024], format="fltp" if audio_codec == "aac" else "s16",
                                                   layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                out.mux(tone.encode(chunk))
            out.mux(tone.encode())


def probe(path: Path) -> dict:
    """Codec, rate, size, frame count, audio codec and container metadata of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        audio = c.streams.audio[0].codec_context.name if c.streams.audio else None
        return {"codec": v.codec_context.name, "rate": v.average_rate, "size": (v.width, v.height),
                "frames": frames, "pix_fmt": v.codec_context.pix_fmt, "audio": audio, "metadata": dict(c.metadata)}


def deid(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[str], list[str]]:
    """Run ``edged deid`` in-process; exit code, stdout lines and stderr lines (TFLite's INFO line dropped)."""
    code = main(["deid", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), [x for x in err.splitlines() if not x.startswith("INFO: ")]


def test_h264_keeps_rate_size_frames_audio_dropped_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_video(tmp_path / "clip.mp4", 10, Fraction(30000, 1001), (320, 240),
               metadata={"title": "holiday", "location": "+48.8577+002.2950/"})
    assert probe(tmp_path / "clip.mp4")["audio"] == "aac"
    code, out, err = deid(capsys, tmp_path / "clip.mp4", "--out", tmp_path / "out", "--quiet")
    assert code == 0 and err == []
    got = probe(tmp_path / "out" / "clip.mp4")
    assert got["codec"] == "h264" and got["pix_fmt"] == "yuv420p"
    assert got["rate"] == Fraction(30000, 1001) and got["size"] == (320, 240) and got["frames"] == 10
    assert got["audio"] is None and "title" not in got["metadata"] and "location" not in got["metadata"]
    (entry,) = json.loads((tmp_path / "out" / "deid-summary.json").read_text())["files"]
    assert entry["video_codec"] == "h264" and entry["audio"].startswith("dropped")
    assert entry["metadata"] == "dropped" and entry["frames"] == 10
    assert "h264" in out[0] and "audio dropped" in out[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.mp4", "deid-summary.json"]


def test_keep_audio_and_metadata_variable_rate_odd_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_video(tmp_path / "clip.mkv", 12, Fraction(25, 2), (321, 241), metadata={"title": "holiday"})
    code, out, err = deid(capsys, tmp_path / "clip.mkv", "--out", tmp_path / "out", "--quiet",
                          "--keep-audio", "--keep-metadata")
    assert code == 0 and err == []
    got = probe(tmp_path / "out" / "clip.mp4")
    assert got["codec"] == "h264" and got["rate"] == Fraction(25, 2) and got["frames"] == 12
    assert got["size"] == (322, 242)  # 4:2:0 needs even sizes: one edge row and column repeated
    assert got["audio"] == "aac" and got["metadata"].get("title") == "holiday"
    with av.open(str(tmp_path / "out" / "clip.mp4")) as c:
        a, v = c.streams.audio[0], c.streams.video[0]
        assert abs(float(a.duration * a.time_base) - float(v.duration * v.time_base)) < 0.2
    (entry,) = json.loads((tmp_path / "out" / "deid-summary.json").read_text())["files"]
    assert entry["audio"] == "kept (aac)" and entry["metadata"] == "kept" and entry["size"] == [322, 242]


def test_method_and_thresh(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cv2.imwrite(str(tmp_path / "m.png"), cv2.imread(str(REAL / "messi5.jpg")))
    code, _, err = deid(capsys, tmp_path / "m.png", "--out", tmp_path / "fill", "--method", "fill", "--quiet")
    assert code == 0 and err == []
    before, after = cv2.imread(str(tmp_path / "m.png")), cv2.imread(str(tmp_path / "fill" / "m.png"))
    changed = np.any(before != after, axis=2)
    (entry,) = json.loads((tmp_path / "fill" / "deid-summary.json").read_text())["files"]
    assert changed.mean() > 0.001 and entry["regions"] >= 1
    assert len(np.unique(after[changed], axis=0)) <= entry["regions"]  # one flat colour per region
    code, _, err = deid(capsys, tmp_path / "m.png", "--out", tmp_path / "strict", "--thresh", "0.999", "--quiet")
    assert code == 0 and err == []
    (entry,) = json.loads((tmp_path / "strict" / "deid-summary.json").read_text())["files"]
    assert entry["regions"] == 0
    for bad in ("0", "1.5"):
        code, _, err = deid(capsys, tmp_path / "m.png", "--out", tmp_path / "o", "--thresh", bad)
        assert code == 2 and len(err) == 1 and "--thresh" in err[0]


def test_progress_lines_when_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import edged.core.progress as progress

    make_video(tmp_path / "clip.mp4", 6, Fraction(10), (320, 240), audio=False)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    code, _, err = deid(capsys, tmp_path / "clip.mp4", "--out", tmp_path / "out")
    assert code == 0
    lines = [x for x in err if "clip.mp4" in x and "frames" in x]
    assert len(lines) >= 3 and "6/6 frames" in lines[-1] and "\r" not in "".join(err)
    code, _, err = deid(capsys, tmp_path / "clip.mp4", "--out", tmp_path / "out", "--quiet")
    assert code == 0 and err == []


@pytest.mark.slow
def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    make_video(tmp_path / "clip.mp4", 6, Fraction(10), (320, 240), audio=False)
    (tmp_path / "photos").mkdir()
    shutil.copy(REAL / "person.jpg", tmp_path / "photos" / "a.jpg")
    shutil.copy(REAL / "dog.jpg", tmp_path / "photos" / "b.jpg")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([str(SCRIPTS / "edged"), "deid", str(tmp_path / "clip.mp4"), str(tmp_path / "photos"),
                             "--out", str(tmp_path / "out")], stdout=subprocess.DEVNULL, stderr=follower, cwd=tmp_path)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "clip.mp4:" in shown and "/6 [" in shown and "frame/s" in shown and "\r" in shown  # redrawn in place
    assert "3/3" in shown and "file" in shown  # the batch bar


@pytest.mark.slow
@pytest.mark.parametrize("presses", [1, 2])
def test_sigint_stops_cleanly(tmp_path: Path, presses: int) -> None:
    make_video(tmp_path / "long.mp4", 2000, Fraction(25), (320, 240), audio=False)
    shutil.copy(REAL / "person.jpg", tmp_path / "a.jpg")
    out = tmp_path / "out"
    # as from a terminal: a run started as a shell's background job inherits Ctrl-C ignored, which deid keeps
    proc = subprocess.Popen([str(SCRIPTS / "edged"), "deid", str(tmp_path / "a.jpg"), str(tmp_path / "long.mp4"),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".partial.mp4") for p in out.glob(".*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    for _ in range(presses):  # a second Ctrl-C stops at once, as cleanly
        proc.send_signal(signal.SIGINT)
        time.sleep(0.01)
    stdout, stderr = proc.communicate(timeout=60)
    # A second press that lands once Python is finalising meets the default action: killed by SIGINT,
    # which a shell reports as 130 too; everything below was done by then.
    assert proc.returncode in ((130,) if presses == 1 else (130, -signal.SIGINT)), stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "interrupted" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "deid-summary.json"]  # no partial video left
    summary = json.loads((out / "deid-summary.json").read_text())
    assert summary["interrupted"] is True
    video = next(f for f in summary["files"] if f["input"].endswith("long.mp4"))
    assert "interrupted" in video["error"] and video["frames"] < 2000


def sealing_config(tmp_path: Path) -> tuple[Path, str]:
    """A config sealing faces to a new platform key, signed by a new device key; and the device key id."""
    from edged.core.keys import generate_device_key, generate_platform_key

    device = generate_device_key(tmp_path / "keys" / "device")
    face = generate_platform_key(tmp_path / "keys" / "face")
    config = tmp_path / "deid.toml"
    config.write_text(f'[privacy]\ncategories = ["face"]\nsigning_key = "{device.private}"\n'
                      f'recipients = {{ face = "{face.public}" }}\n')
    return config, device.key_id


def test_sealed_photo_restores_from_what_is_written_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, signer = sealing_config(tmp_path)
    original = cv2.imread(str(REAL / "messi5.jpg"))
    cv2.imwrite(str(tmp_path / "m.png"), original)
    code, out, err = deid(capsys, tmp_path / "m.png", "--out", tmp_path / "out", "--config", config,
                          "--sealed", tmp_path / "sealed", "--quiet")
    assert code == 0 and err == []
    side = json.loads((tmp_path / "out" / "m.png.json").read_text())
    assert side["frame_index"] == 0 and side["signer"] == signer and side["image_id"] and side["records"]
    assert any("edged-restore" in line for line in out)  # the command is printed too
    command = shlex.split(side["restore"])
    assert command[0] == "edged-restore" and "--record" not in command  # restore reads the sidecar
    done = subprocess.run([str(SCRIPTS / "edged-restore"), *command[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    after, back = cv2.imread(str(tmp_path / "out" / "m.png")), cv2.imread(str(tmp_path / "m.restored.png"))
    changed = np.any(after != original, axis=2)
    assert changed.mean() > 0.001 and np.array_equal(back[changed], original[changed])


@pytest.mark.slow
def test_sealed_video_frame_restores_with_the_written_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, signer = sealing_config(tmp_path)
    make_video(tmp_path / "street.mp4", 4, Fraction(10), (768, 576), audio=False)
    with av.open(str(tmp_path / "street.mp4")) as c:
        source = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    code, out, err = deid(capsys, tmp_path / "street.mp4", "--out", tmp_path / "out", "--config", config,
                          "--sealed", tmp_path / "sealed", "--quiet")
    assert code == 0 and err == []
    side = json.loads((tmp_path / "out" / "street.mp4.json").read_text())
    assert side["signer"] == signer and side["video_id"] and side["frames"]
    first = side["frames"][0]
    assert all((tmp_path / "out" / r).is_file() for r in first["records"])
    command = shlex.split(side["restore"])
    assert command[command.index("--frame") + 1] == str(first["frame_index"])
    done = subprocess.run([str(SCRIPTS / "edged-restore"), *command[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (restored,) = tmp_path.glob("street.f*.restored.png")
    back = cv2.imread(str(restored))
    with av.open(str(tmp_path / "out" / "street.mp4")) as c:
        shown = next(f for i, f in enumerate(c.decode(video=0)) if i == first["frame_index"]).to_ndarray(format="bgr24")
    pasted = np.any(back != shown, axis=2)
    assert pasted.mean() > 0.0005
    assert np.array_equal(back[pasted], source[first["frame_index"]][pasted])  # the original pixels came back


def test_rotated_frames_come_upright() -> None:
    """FFmpeg's display matrix angle is counterclockwise: -90 is a phone's portrait clip shown turned clockwise."""
    from edged.runtime.deid_video import upright

    image = np.zeros((2, 3, 3), np.uint8)
    image[0, 0] = 255  # top-left
    assert upright(image, 0) is image
    assert upright(image, -90).shape == (3, 2, 3) and upright(image, -90)[0, -1, 0] == 255  # top-right
    assert upright(image, 90)[-1, 0, 0] == 255  # bottom-left
    assert upright(image, 180)[-1, -1, 0] == 255 and upright(image, -180)[-1, -1, 0] == 255


def frame_times(path: Path) -> list[float]:
    """Presentation times of a video's frames, in seconds from the first."""
    with av.open(str(path)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    return [t - times[0] for t in times]


def test_variable_frame_rate_keeps_each_frame_time(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    times = [0, 100, 250, 300, 500, 520, 700, 1000]
    make_video(tmp_path / "vfr.mkv", len(times), Fraction(10), (320, 240), audio=False, times_ms=times)
    assert frame_times(tmp_path / "vfr.mkv") == pytest.approx([t / 1000 for t in times], abs=1e-3)
    code, _, err = deid(capsys, tmp_path / "vfr.mkv", "--out", tmp_path / "out", "--quiet")
    assert code == 0 and err == []
    assert frame_times(tmp_path / "out" / "vfr.mp4") == pytest.approx([t / 1000 for t in times], abs=1e-3)


def test_pcm_audio_is_kept_as_aac(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_video(tmp_path / "cam.mkv", 10, Fraction(10), (320, 240), audio_codec="pcm_s16le")
    assert probe(tmp_path / "cam.mkv")["audio"] == "pcm_s16le"
    code, _, err = deid(capsys, tmp_path / "cam.mkv", "--out", tmp_path / "out", "--quiet", "--keep-audio")
    assert code == 0 and err == []
    assert probe(tmp_path / "out" / "cam.mp4")["audio"] == "aac"  # browsers play AAC in MP4, not PCM
    with av.open(str(tmp_path / "out" / "cam.mp4")) as c:
        a = c.streams.audio[0]
        assert abs(float(a.duration * a.time_base) - 1.0) < 0.1
    (entry,) = json.loads((tmp_path / "out" / "deid-summary.json").read_text())["files"]
    assert entry["audio"] == "kept (pcm_s16le re-encoded as aac)"


def test_the_next_frame_is_detected_while_the_last_one_is_finished_and_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames still come out in order, each finished after its own detection, with the sealed records
    naming their own frames; the detection of one overlaps the finishing of the one before."""
    from edged.stages.pipeline import FrameWork, Pipeline

    spans: dict[tuple[str, int], tuple[float, float]] = {}
    start, finish = Pipeline.start, Pipeline.finish

    def timed_start(self: Pipeline, frame):  # noqa: ANN001, ANN202
        t0 = time.perf_counter()
        work = start(self, frame)
        time.sleep(0.02)  # detection is the slow half
        spans["start", frame.meta.frame_index] = (t0, time.perf_counter())
        return work

    def timed_finish(self: Pipeline, work: FrameWork) -> FrameWork:
        t0 = time.perf_counter()
        done = finish(self, work)
        spans["finish", work.frame.meta.frame_index] = (t0, time.perf_counter())
        return done

    monkeypatch.setattr(Pipeline, "start", timed_start)
    monkeypatch.setattr(Pipeline, "finish", timed_finish)
    config, _ = sealing_config(tmp_path)
    make_video(tmp_path / "clip.mp4", 8, Fraction(10), (768, 576), audio=False)
    code, _, err = deid(capsys, tmp_path / "clip.mp4", "--out", tmp_path / "out", "--config", config,
                        "--sealed", tmp_path / "sealed", "--quiet")
    assert code == 0 and err == []
    assert probe(tmp_path / "out" / "clip.mp4")["frames"] == 8
    assert all(spans["finish", i][0] >= spans["start", i][1] for i in range(8))
    assert sum(spans["start", i + 1][0] < spans["finish", i][1] for i in range(7)) >= 5
    listed = json.loads((tmp_path / "out" / "clip.mp4.json").read_text())["frames"]
    assert [f["frame_index"] for f in listed] == sorted({f["frame_index"] for f in listed}) and len(listed) >= 4
    assert all(f"clip.mp4.f{f['frame_index']:06d}." in r for f in listed for r in f["records"])
