"""The measuring and reporting parts of tools/bench/vs_deface.py on tiny synthetic frames (no deface venv, no
daemon run)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tools.bench import vs_deface as vs
from tools.bench.doc import write_section


def test_changed_share_ignores_differences_within_the_tolerance() -> None:
    a = np.full((10, 10), 100, np.uint8)
    b = a.copy()
    b[0, :] = 100 + vs.TOLERANCE  # at the tolerance: not changed
    b[1, :5] = 100 - vs.TOLERANCE - 1  # beyond it, below: changed
    b[2, :5] = 255  # far above: changed (no uint8 wrap-around)
    assert vs.changed_share(a, b) == pytest.approx(10 / 100)
    assert vs.changed_share(a, a) == 0.0
    assert vs.changed_share(a, b, tolerance=0) == pytest.approx(20 / 100)


def test_changed_share_refuses_frames_of_other_sizes() -> None:
    with pytest.raises(ValueError):
        vs.changed_share(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_to_grey_accepts_grey_rgb_and_bgr() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 255  # red in RGB
    assert vs.to_grey(rgb[..., 0]) is not None
    assert vs.to_grey(rgb)[0, 0] == 76  # 0.299 * 255
    assert vs.to_grey(rgb, "bgr")[0, 0] == 29  # read as blue: 0.114 * 255


def test_ssim_is_one_for_equal_frames_and_lower_for_a_blurred_patch() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    b = a.copy()
    b[8:24, 8:24] = int(a[8:24, 8:24].mean())
    assert vs.ssim(a, a) == pytest.approx(1.0)
    assert vs.ssim(a, b) < 0.9
    assert vs.ssim(a[:5, :5], a[:5, :5]) == pytest.approx(1.0)  # window shrunk to the frame
    assert vs.ssim(a[:2, :2], b[:2, :2]) == 1.0  # too small for a window: equal or not


def test_compare_counts_frames_one_side_lacks() -> None:
    a = [np.zeros((8, 8), np.uint8)] * 3
    b = [np.zeros((8, 8), np.uint8), np.full((8, 8), 200, np.uint8)]
    sim = vs.compare(a, b)
    assert sim.changed == [0.0, 1.0] and sim.missing == 1
    assert sim.changed_mean == 0.5 and sim.changed_max == 1.0
    assert sim.ssim[0] == pytest.approx(1.0)
    assert vs.Similarity().changed_mean is None and vs.Similarity().ssim_mean is None


def test_fps_and_ratio_arithmetic() -> None:
    assert vs.fps(150, 10.0) == 15.0
    assert vs.fps(150, 0.0) is None and vs.fps(150, None) is None
    assert vs.ratio(30.0, 10.0) == 3.0
    assert vs.ratio(1.0, 0.0) is None and vs.ratio(None, 1.0) is None


def test_pins_met_needs_every_pin_at_its_version() -> None:
    installed = {"deface": "1.5.0", "onnx": "1.23.2", "onnxruntime": "1.32.0", "numpy": "2.0"}
    assert vs.pins_met(installed)
    assert not vs.pins_met({**installed, "onnxruntime": "1.20.0"})
    assert not vs.pins_met({k: v for k, v in installed.items() if k != "onnx"})


def row(tool: str, frames: int, wall: float, work: float, changed: float, floor: float | None) -> vs.Row:
    """A made-up result row with constant per-frame figures."""
    sim = vs.Similarity([changed] * frames, [0.9] * frames)
    floor_sim = vs.Similarity([floor] * frames, [0.98] * frames) if floor is not None else None
    return vs.Row("clip.avi", tool, frames, wall, work, frames * 2, sim, floor_sim, note=f"{tool} note")


def test_row_figures_and_ratios() -> None:
    edged = row("edged", 100, 10.0, 8.0, 0.05, 0.01)
    deface = row("deface", 100, 25.0, 20.0, 0.02, 0.01)
    assert edged.fps_total == 10.0 and edged.fps_steady == 12.5 and edged.startup_s == pytest.approx(2.0)
    assert edged.net_changed == pytest.approx(0.04) and deface.net_changed == pytest.approx(0.01)
    line = vs.ratios(edged, deface)
    assert "fps incl. start-up 2.50x" in line and "steady fps 2.50x" in line
    assert "changed share 2.50x" in line and "(4.00x less the codec floors)" in line
    assert "codec floors" not in vs.ratios(row("edged", 1, 1, 1, 0.1, None), row("deface", 1, 1, 1, 0.1, None))


def test_section_is_written_between_its_markers(tmp_path: Path) -> None:
    rows = [row("edged", 100, 10.0, 8.0, 0.05, 0.01), row("deface", 100, 25.0, 20.0, 0.02, 0.01)]
    body = vs.section([("clip.avi", rows)], "python -m tools.bench.vs_deface --frames 100", "abc1234",
                      "Test CPU, 2 cores", (0.5, 1.25), {"deface": "1.5.0", "onnxruntime": "1.32.0"}, 1)
    assert "--frames 100" in body and "rev abc1234" in body and "Test CPU, 2 cores" in body
    assert "load average 0.50 at the start, 1.25 at the end" in body and "deface 1.5.0, onnxruntime 1.32.0" in body
    cells = ("| edged deid | 100 | 10.0 | 10.0 | 2.0 | 12.5 | 2.00 | 5.00 % (5.00 %) | 1.00 % | 4.00 % | 0.9000 | "
             "0.9800 |")
    assert cells in body
    assert "edged deid: edged note; deface: deface note" in body
    assert "one invocation on this one machine" in body
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep\n<!-- END other -->\n")
    write_section(vs.SECTION, body, doc)
    write_section(vs.SECTION, body, doc)  # a rerun replaces, never duplicates
    text = doc.read_text()
    assert text.count("<!-- BEGIN vs-deface -->") == 1 and text.count("<!-- END vs-deface -->") == 1
    assert "keep" in text and body.strip() in text


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    """A lossless FFV1 clip of RGB frames at 10 fps."""
    av = pytest.importorskip("av")
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as dst:
        stream = dst.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="bgr0")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)


def test_cut_keeps_the_first_frames_losslessly(tmp_path: Path) -> None:
    source = tmp_path / "source.mkv"
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (16, 32, 3), dtype=np.uint8) for _ in range(5)]
    write_clip(source, frames)
    target = tmp_path / "cut.mkv"
    assert vs.cut(source, 3, target) == 3
    got = list(vs.video_grey(target))
    assert len(got) == 3
    for pixels, grey in zip(frames, got):
        assert np.array_equal(vs.to_grey(pixels), grey)


def test_cut_resizes_to_the_size_asked_and_keeps_every_frame_without_a_count(tmp_path: Path) -> None:
    source = tmp_path / "source.mkv"
    frames = [np.full((16, 32, 3), 40 * i, np.uint8) for i in range(4)]
    write_clip(source, frames)
    target = tmp_path / "big.mkv"
    assert vs.cut(source, None, target, (64, 48)) == 4
    assert vs.video_size(target) == (64, 48)
    got = list(vs.video_grey(target))
    assert len(got) == 4 and got[0].shape == (48, 64)
    assert [int(g.mean()) for g in got] == [int(vs.to_grey(f).mean()) for f in frames]  # flat frames stay flat


def test_cut_writes_h264_as_a_recorded_clip_when_asked(tmp_path: Path) -> None:
    import av

    source = tmp_path / "source.mkv"
    frames = [np.full((48, 64, 3), 30 * i + 20, np.uint8) for i in range(4)]
    write_clip(source, frames)
    target = tmp_path / "cut.mkv"
    assert vs.cut(source, 3, target, codec="h264") == 3
    with av.open(str(target)) as clip:
        assert clip.streams.video[0].codec_context.name == "h264"
    got = list(vs.video_grey(target))
    assert len(got) == 3
    for pixels, grey in zip(frames, got, strict=False):
        assert np.abs(grey.astype(int) - vs.to_grey(pixels).astype(int)).max() <= 3  # lossy, but close


def test_parse_size_reads_width_by_height_and_refuses_anything_else() -> None:
    assert vs.parse_size("1280x720") == (1280, 720)
    assert vs.parse_size(" 768X576 ") == (768, 576)
    for bad in ("1280", "1280x", "x720", "axb", "1280x720x3", "63x720", "1280x9000", "-1280x720", ""):
        with pytest.raises(ValueError):
            vs.parse_size(bad)
    assert vs.size_label((1280, 720)) == "1280x720"


def test_resize_enlarges_or_shrinks_and_leaves_the_own_size_alone() -> None:
    frame = np.zeros((576, 768, 3), np.uint8)
    assert vs.resize(frame, (1280, 720)).shape == (720, 1280, 3)
    assert vs.resize(frame, (384, 288)).shape == (288, 384, 3)
    assert vs.resize(frame, None) is frame and vs.resize(frame, (768, 576)) is frame


def test_resize_note_says_upscaled_or_downscaled() -> None:
    assert vs.resize_note((768, 576), (1280, 720)).startswith("1280x720 upscaled")
    assert "from 768x576" in vs.resize_note((768, 576), (1280, 720))
    assert vs.resize_note((1920, 1080), (1280, 720)).startswith("1280x720 downscaled")
    assert "not resized" in vs.resize_note((1280, 720), (1280, 720))


def test_prepare_names_the_resized_cut_and_leaves_photos_alone(tmp_path: Path) -> None:
    source = tmp_path / "clip.avi.mkv"
    write_clip(source, [np.zeros((16, 32, 3), np.uint8)] * 3)
    work = tmp_path / "work"
    work.mkdir()
    case = vs.prepare(source, 2, work, (64, 32))
    assert case.kind == "video" and case.frames == 2 and vs.video_size(case.path) == (64, 32)
    assert case.name == "clip.avi.mkv (first 2 frames, 64x32 upscaled (OpenCV bicubic: more pixels, no more " \
        "detail) from 32x16)"
    whole = vs.prepare(source, None, work, (64, 32))
    assert whole.frames == 3 and whole.name.startswith("clip.avi.mkv (3 frames, 64x32 upscaled")
    assert vs.prepare(source, None, work).path == source  # neither option: the file itself
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(photos / "a.png"), np.zeros((8, 8, 3), np.uint8))
    photo_case = vs.prepare(photos, None, work, (64, 32))
    assert photo_case.kind == "photos" and "does not apply to photos" in photo_case.note


def test_tool_order_rotates_who_goes_first() -> None:
    tools = ("deface", "edged", vs.DAEMON)
    assert vs.tool_order(tools, 0) == ["deface", "edged", vs.DAEMON]
    assert vs.tool_order(tools, 1) == ["edged", vs.DAEMON, "deface"]
    assert vs.tool_order(tools, 5) == [vs.DAEMON, "deface", "edged"]
    assert vs.tool_order(("deface", "edged"), 3) == ["edged", "deface"]


def test_daemon_config_parses_as_the_daemon_row_needs(tmp_path: Path) -> None:
    from edged.config import Config, from_dict, load

    video = tmp_path / 'a "clip" with spaces.mkv'
    keys, data, out = tmp_path / "keys", tmp_path / "data", tmp_path / "out"
    text = vs.daemon_config(video, 23.976, keys, data, out)
    config = from_dict(tomllib.loads(text))
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    assert load(path) == config
    assert config.camera.backend == "file" and config.camera.file.path == str(video)
    assert config.camera.file.realtime is False and config.camera.file.loop is False
    assert config.camera.width is None and config.camera.height is None  # the file's own size
    assert config.camera.fps == pytest.approx(23.976)
    assert config.detect == Config().detect  # no [detect]: the default real-world models
    assert config.privacy.categories == ["face", "plate"]
    assert config.privacy.recipients == {"face": str(keys / "func-face.pub"), "plate": str(keys / "func-plate.pub")}
    assert config.privacy.signing_key == str(keys / "device.key")
    assert config.device.data_dir == str(data) and config.outbox.path == "outbox.sqlite"
    assert config.output.dir == str(out) and config.output.save_every == 0
    assert config.uplink.enabled is False
    assert config.remote.mqtt.enabled is False and config.remote.serial.enabled is False
    assert from_dict(tomllib.loads(vs.daemon_config(video, 5000.0, keys, data, out))).camera.fps == 120.0


SUMMARY = {
    "stop_reason": "captured 20 frames",
    "wall_s": 2.809,
    "frames": {"captured": 20, "processed": 20, "dropped": 0, "auto_exposure": 11, "retimed": 0, "accounted": True},
    "fps": 7.12,
    "first_frame_s": 0.912,
    "steady_fps": 10.11,
    "stage_ms": {"capture": {"p50": 7.8, "p95": 9.0, "mean": 8.0}, "detect": {"p50": 90.9, "p95": 120.0, "mean": 95.0},
                 "privacy": {"p50": 5.1, "p95": 6.0, "mean": 5.2}, "sink": {"p50": 4.7, "p95": 8.0, "mean": 5.0},
                 "track": {"p50": 0.4, "p95": 0.9, "mean": 0.5}},
    "exposure": {"meter_cycles": [], "clamped": 0},
    "sink_failures": {},
    "outbox": {"stored": 25, "failed": {"disk_full": 0, "too_large": 0, "other": 0}},
}


def test_daemon_summary_reads_fps_and_frames_from_summary_json(tmp_path: Path) -> None:
    run = tmp_path / "out" / "run-20260101-000000"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(SUMMARY))
    found = vs.find_summary(tmp_path / "out")
    assert found == run / "summary.json"
    s = vs.DaemonSummary.from_dict(json.loads(found.read_text()))
    assert s.fps == 7.12 and s.wall_s == 2.809 and (s.captured, s.processed, s.dropped) == (20, 20, 0)
    assert s.stage_p50_ms["detect"] == 90.9 and s.outbox_stored == 25
    assert (s.first_frame_s, s.steady_fps) == (0.912, 10.11)
    assert s.note == ("summary.json: 7.12 fps over wall_s 2.8 s, captured 20, processed 20, dropped 0, "
                      "first frame done at 0.91 s, 10.11 fps after it, p50 detect 90.9 ms, capture 7.8 ms, privacy 5.1 ms, sink 4.7 ms, outbox stored 25 messages")
    bare = vs.DaemonSummary.from_dict({"wall_s": 1.0, "fps": 3.0,
                                       "frames": {"captured": 3, "processed": 3, "dropped": 0}})
    assert bare.stage_p50_ms == {} and bare.outbox_stored is None and bare.note.endswith("dropped 0")
    assert bare.first_frame_s is None and bare.steady_fps is None  # a summary from before these figures
    (tmp_path / "out" / "run-20260101-000001").mkdir()
    (tmp_path / "out" / "run-20260101-000001" / "summary.json").write_text("{}")
    with pytest.raises(RuntimeError):
        vs.find_summary(tmp_path / "out")  # two runs: which one is ambiguous
    with pytest.raises(RuntimeError):
        vs.find_summary(tmp_path / "empty")


def test_the_daemon_row_shows_its_own_fps_and_no_output_figures() -> None:
    edged = row("edged", 100, 10.0, 8.0, 0.05, 0.01)
    deface = row("deface", 100, 25.0, 20.0, 0.02, 0.01)
    daemon = vs.Row("clip.avi", vs.DAEMON, 100, 6.0, 5.0, None, vs.Similarity(), None, "summary.json: ...", 21.0)
    assert daemon.fps_steady == 21.0  # its summary's figure, not frames / work_s (20.0)
    assert daemon.fps_total == pytest.approx(100 / 6.0)
    body = vs.section([("clip.avi", [edged, daemon, deface])], "cmd", "abc1234", "Test CPU", (0.0, 0.0),
                      {"deface": "1.5.0"}, 1)
    assert "| edged run (daemon) | 100 | 6.0 | 16.7 | 1.0 | 21.0 | - | - (-) | - | - | - | - |" in body
    assert "edged deid/deface: fps incl. start-up 2.50x, steady fps 2.50x" in body
    assert "edged run (daemon)/deface: end-to-end fps (summary.json) / deface steady fps 4.20x, " \
        "fps incl. start-up 4.17x" in body
    assert "edged run (daemon): summary.json: ..." in body
    assert "edged run (daemon)" not in vs.ratios(edged, deface)
