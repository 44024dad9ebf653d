"""The README's platform walkthrough, run as written (twice, in a scratch folder): each run restores
an image of its own run, so a second run never picks up the first one's outbox or stores."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = Path("/usr/sbin/mosquitto")


def walkthrough() -> str:
    """The first ``sh`` block after the README's "Platform side" heading."""
    text = (ROOT / "README.md").read_text()
    start = text.index("```sh\n", text.index("### Platform side")) + len("```sh\n")
    return text[start : text.index("```\n", start)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch_checkout(tmp: Path) -> Path:
    """A folder that looks like the repository root to the walkthrough: the venv, configs and
    Makefile; pyproject stand-ins older than the venv's stamp, so ``make keys`` installs nothing."""
    work = tmp / "repo"
    work.mkdir()
    for name in (".venv", "config", "models"):
        (work / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "Makefile", work / "Makefile")
    for rel in ("pyproject.toml", "edged-sim/pyproject.toml", "edged-platform/pyproject.toml"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("")
        os.utime(work / rel, (0, 0))
    return work


def run_once(work: Path, port: int) -> tuple[str, set[str]]:
    env = {**os.environ, "PORT": str(port), "SECS": "6"}
    proc = subprocess.run(["bash", "-e", "-c", walkthrough()], cwd=work, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    w = work / "data" / "walkthrough"
    restored = w / "restore" / "restored.png"
    assert restored.is_file() and restored.stat().st_size > 0
    images = subprocess.run(
        [str(ROOT / ".venv/bin/edged-store"), "images", "--device-key", "data/keys/device.pub",
         "--store", str(w / "platform/ops"), "--store", str(w / "platform/func.face"),
         "--store", str(w / "platform/func.plate")], cwd=work, capture_output=True, text=True, check=True)
    ids = set(images.stdout.split())
    sidecar = (w / "restore" / "deid.jpg.json").read_text()
    return sidecar, ids


@pytest.mark.slow
@pytest.mark.skipif(not MOSQUITTO.exists(), reason="mosquitto is not installed (make system-deps)")
def test_the_readme_walkthrough_runs_as_written_and_again(tmp_path: Path) -> None:
    work = scratch_checkout(tmp_path)
    _, first = run_once(work, free_port())
    sidecar, second = run_once(work, free_port())
    assert first and second and not first & second, "the second run saw the first run's images"
    assert any(i in sidecar for i in second)


@pytest.mark.slow
def test_the_readme_keygen_lines_work_after_make_demo_made_the_demo_keys(tmp_path: Path) -> None:
    work = scratch_checkout(tmp_path)
    subprocess.run(["make", "keys"], cwd=work, check=True, capture_output=True)  # as `make demo` does
    text = (ROOT / "README.md").read_text()
    block = text[text.index("```sh\n", text.index("## Using it")) :]
    lines = [ln for ln in block[: block.index("```\n", 6)].splitlines() if "edged keygen" in ln]
    assert len(lines) >= 2
    for _ in range(2):
        proc = subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
