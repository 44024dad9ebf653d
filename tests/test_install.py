"""A non-editable install, as ``docs/INSTALL_PI.md`` makes it, runs from any folder with the shipped models.

The package is built from a copy of the source (offline: no index, no build isolation, the dev
venv's packages seen through a ``.pth`` line) into a fresh venv, and its own ``edged`` script runs
from an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.remote_rig import make_images, privacy_section

ROOT = Path(__file__).resolve().parent.parent


def _copy_source(dest: Path) -> Path:
    """The files a ``pip install`` of the device package reads, copied (links kept as links)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", ".eval_cache.json")
    shutil.copytree(ROOT / "edged", dest / "edged", symlinks=True, ignore=skip)
    shutil.copytree(ROOT / "models", dest / "models", ignore=skip)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``(venv folder, pip's output)`` of ``pip install <copy of the source>`` into a fresh venv."""
    base = tmp_path_factory.mktemp("install")
    source = _copy_source(base / "src")
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    target = Path(subprocess.check_output(
        [env_dir / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True,
    ).strip())
    # the dev venv's packages (dependencies, setuptools) as a plain path: its .pth files (the editable
    # install of edged) are not run, so the fresh venv imports only its own edged
    (target / "dev-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-index",
         "--no-deps", "--no-build-isolation", "--ignore-installed", "--no-cache-dir", str(source)],
        capture_output=True, text=True, timeout=300, cwd=base,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (target / "edged" / "models").is_symlink()
    return env_dir, result.stdout + result.stderr


def _config(folder: Path) -> Path:
    """A config naming no models (the defaults) with its keys, folders and a photo source under ``folder``."""
    folder.mkdir()
    images = make_images(folder / "images", 1)
    text = (f'[device]\ndata_dir = "{folder / "data"}"\n[output]\ndir = "{folder / "out"}"\n'
            f'[camera]\nbackend = "file"\n[camera.file]\npath = "{images}"\n' + privacy_section(folder))
    path = folder / "edged.toml"
    path.write_text(text)
    return path


def _edged(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(env_dir / "bin" / "edged"), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


@pytest.mark.slow
def test_an_installed_edged_finds_its_default_models_from_any_folder(installed: tuple[Path, str],
                                                                     tmp_path: Path) -> None:
    env_dir, _ = installed
    config = _config(tmp_path / "etc")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _edged(env_dir, "-v", "check-config", "--print", str(config), cwd=elsewhere)
    assert where.returncode == 0, where.stderr
    loaded = json.loads(where.stdout)  # stdout is the JSON document alone
    assert "edged.toml: ok" in where.stderr
    assert "XNNPACK" not in where.stderr, "the TFLite runtime's delegate notice is not shown"
    assert loaded["detect"]["models"][0]["file"] == "models/coco_nanodet_416x256_int8.tflite"
    probe = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import edged; print(edged.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(env_dir), "the fresh venv's own edged ran"


def test_a_relative_model_file_is_found_beside_the_config_file(installed: tuple[Path, str], tmp_path: Path) -> None:
    """``file = "models/mine.tflite"`` in ``/etc/edged/edged.toml`` is ``/etc/edged/models/mine.tflite``."""
    env_dir, _ = installed
    config = _config(tmp_path / "etc")
    (tmp_path / "etc" / "models").mkdir()
    shutil.copy2(ROOT / "models" / "edged_det_int8.tflite", tmp_path / "etc" / "models" / "mine.tflite")
    section = ('[detect]\n[[detect.models]]\nname = "det"\nfile = "models/mine.tflite"\nlayout = "yolo_grid"\n'
               'input_size = [640, 384]\nlabels = ["plate", "car", "person", "truck", "bus"]\n')
    config.write_text(config.read_text() + section)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = _edged(env_dir, "check-config", str(config), cwd=elsewhere)
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "etc" / "models" / "mine.tflite").unlink()
    missing = _edged(env_dir, "check-config", str(config), cwd=elsewhere)
    assert missing.returncode == 2
    assert f"model file not found: {tmp_path / 'etc' / 'models' / 'mine.tflite'}" in missing.stderr, missing.stderr


def test_the_install_prints_no_licence_warnings(installed: tuple[Path, str]) -> None:
    _, output = installed
    assert "license" not in output.lower(), output
    assert "Warning" not in output, output


def test_where_a_model_file_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``models/NAME``: the config folder's, else the shipped one; other relative paths: the config folder."""
    from edged.core.paths import SHIPPED_MODELS, model_file

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "edged_det_int8.tflite").write_bytes(b"a copy in the working directory")
    shipped = SHIPPED_MODELS / "edged_det_int8.tflite"
    assert model_file("models/edged_det_int8.tflite") == shipped, "the working directory does not shadow it"
    assert model_file("models/edged_det_int8.tflite", tmp_path) == tmp_path / "models" / "edged_det_int8.tflite"
    assert model_file("models/edged_det_int8.tflite", tmp_path / "etc") == shipped
    assert model_file("models/mine.tflite", tmp_path / "etc") == tmp_path / "etc" / "models" / "mine.tflite"
    assert model_file("mine.tflite") == tmp_path / "mine.tflite"
    assert model_file("/abs/mine.tflite", tmp_path / "etc") == Path("/abs/mine.tflite")


@pytest.mark.parametrize("package", ["edged-sim", "edged-platform"])
@pytest.mark.slow
def test_the_other_packages_build_without_licence_warnings(package: str, tmp_path: Path) -> None:
    source = tmp_path / package
    shutil.copytree(ROOT / package, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation",
                            "--no-cache-dir", "-w", str(tmp_path / "wheels"), str(source)],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    output = built.stdout + built.stderr
    assert "license" not in output.lower() and "Warning" not in output, output
