"""Config loading: defaults, precise errors naming the key path, check-config CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.cli import main
from edged.config import CameraConfig, Config, ConfigError, from_dict, load, to_dict

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_default_config_loads_and_round_trips() -> None:
    config = load(ROOT / "config" / "default.toml")
    assert config.camera.backend == "fake"
    assert from_dict(to_dict(config)) == config


def test_the_device_default_camera_is_one_the_device_ships() -> None:
    assert Config().camera.backend == "picamera2"
    assert Config().camera.plugins == {} and "fake" not in to_dict(Config())["camera"]


def test_a_plugin_backend_brings_its_own_section() -> None:
    """The demo's fake camera is edged-sim's: its ``[camera.fake]`` section is edged-sim's type, round-trips
    as ``camera.fake``, and is there with its defaults when the backend is named without one."""
    sim = pytest.importorskip("edged_sim.config")
    camera = from_dict({"camera": {"backend": "fake", "fake": {"seed": 3}}}).camera
    assert isinstance(camera.plugin_section(), sim.FakeCameraConfig) and camera.plugin_section().seed == 3
    assert to_dict(Config(camera=camera))["camera"]["fake"]["seed"] == 3
    assert from_dict({"camera": {"backend": "fake"}}).camera.plugins == {"fake": sim.FakeCameraConfig()}
    assert from_dict({"camera": {"backend": "fake"}}).camera == CameraConfig(backend="fake")
    assert from_dict({"camera": {"fake": {"seed": 3}}}).camera.backend == "picamera2"  # kept, not used


def test_an_unknown_backend_is_one_error_naming_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, '[camera]\nbackend = "usb"'))
    message = str(err.value)
    assert "config error at camera.backend: no camera backend 'usb' here" in message
    assert "known: file, picamera2, v4l2" in message


def test_demo_config_runs_the_fake_scene_models_and_a_real_camera_gets_the_real_world_ones() -> None:
    from edged.config import default_models

    fake_scene_models = pytest.importorskip("edged_sim.config").fake_scene_models
    assert load(ROOT / "config" / "default.toml").detect.models == fake_scene_models()
    assert Config().detect.models == default_models() != fake_scene_models()
    assert load(ROOT / "config" / "roadside.example.toml").detect.models == default_models()


def test_camera_size_is_the_sources_own_unless_both_sides_are_set(tmp_path: Path) -> None:
    assert (Config().camera.width, Config().camera.height) == (None, None)
    assert Config().camera.size_or_default() == (1280, 720)
    assert load(write(tmp_path, "[camera]\nwidth = 640\nheight = 360")).camera.size_or_default() == (640, 360)
    with pytest.raises(ConfigError, match="camera: set both width and height"):
        load(write(tmp_path, "[camera]\nwidth = 640"))


def test_empty_file_gives_all_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, "")) == Config()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[camera]\nfps = "fast"', "config error at camera.fps: expected float, got str"),
        ("[camera]\nfpss = 10", "config error at camera.fpss: unknown key"),
        ("[nope]\nx = 1", "config error at nope: unknown key"),
        ("[camera]\nfps = 0", "config error at camera.fps: expected float >= 0.1"),
        ("[camera.fake]\nseed = 1.5", "config error at camera.fake.seed: expected int, got float"),
        ("[camera.fake]\nsede = 1", "config error at camera.fake.sede: unknown key"),
        ("[camera.plugins]\nfake = {}", "config error at camera.plugins: unknown key (no installed camera backend "
                                         "'plugins'; known: file, picamera2, v4l2, fake)"),
        ('[[detect.models]]\nname = "x"', "config error at detect.models[0].file: missing required key"),
        ("[device.position]\nlat = 91", "config error at device.position.lat: expected float <= 90.0"),
        ('[privacy]\nedge_fill = ["car"]', "config error at privacy: edge_fill: 'car' is not a sensitive category "
                                           "(face, plate)"),
        (
            "[uplink.functional.'Bad Name']",
            "config error at uplink.functional: expected str matching regex '^[a-z][a-z0-9_-]{0,31}$' "
            "(a key of this table)",
        ),
    ],
)
def test_errors_name_the_key_and_the_expectation(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == f"{path}: {message}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*missing\.toml"):
        load(tmp_path / "missing.toml")


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml is not valid TOML: .*line 2"):
        load(write(tmp_path, "[camera]\nfps = = 3"))


def test_int_accepted_for_float(tmp_path: Path) -> None:
    assert load(write(tmp_path, "[camera]\nfps = 5")).camera.fps == 5.0


def _startable(tmp_path: Path) -> str:
    """A config whose keys, folders and camera source exist (the demo's models)."""
    from tests.remote_rig import make_images, privacy_section

    images = make_images(tmp_path / "images", 1)
    privacy_section(tmp_path)  # generates the keys under tmp_path / "keys"
    return (
        (ROOT / "config" / "default.toml").read_text().replace('data_dir = "data"', f'data_dir = "{tmp_path / "data"}"')
        .replace('dir = "out"', f'dir = "{tmp_path / "out"}"').replace('backend = "fake"', 'backend = "file"')
        .replace('file = "models/', f'file = "{ROOT}/models/')
        .replace('"data/keys/', f'"{tmp_path / "keys"}/')
        + f'\n[camera.file]\npath = "{images}"\n'
    )


def test_check_config_checks_what_run_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _startable(tmp_path)
    assert main(["check-config", str(write(tmp_path, good))]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check-config", str(write(tmp_path, "[camera]\nfps = -1"))]) == 2
    err = capsys.readouterr().err
    assert "c.toml: config error at camera.fps" in err, "the error names the file and the key"

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a model")
    (tmp_path / "keys" / "func-plate.pub").unlink()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    bad = (good.replace(f'{ROOT}/models/edged_det_int8.tflite', str(broken))
           .replace(f'dir = "{tmp_path / "out"}"', f'dir = "{blocked / "out"}"')
           .replace(str(tmp_path / "images"), str(tmp_path / "no-images")))
    assert main(["check-config", str(write(tmp_path, bad))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4, lines
    assert any("output.dir: cannot create" in line and "a-file" in line for line in lines)
    assert any("func-plate.pub" in line and "not found" in line for line in lines)
    assert any("detect.models[0] (det)" in line and "not a valid TFLite model" in line for line in lines)
    assert any("camera.file.path" in line and "no-images" in line for line in lines)
    assert all(line.startswith("edged: ") and "c.toml" in line for line in lines)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 3000 + b"]" * 3000, "is nested too deeply"),
        (b"[camera]\nfps = 5 # \xff\xfe\n", "is not UTF-8 text (byte 19, line 2)"),
        (b"x" * (2 << 20), "a config is at most"),
        (b"[camera]\nwidth = 640\n", "set both width and height, or neither"),
    ],
)
def test_any_file_content_is_one_line_naming_the_file(tmp_path: Path, content: bytes, message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.toml"
    path.write_bytes(content)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "odd.toml" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_a_folder_or_a_missing_file_as_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--frames", "1"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_check_config_checks_the_brokers_tls_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing CA file stopped ``run`` (the uplink loads it at start) while check-config said ok."""
    good = _startable(tmp_path)
    missing = tmp_path / "no-ca.pem"
    bad = good + (f'\n[uplink]\nenabled = true\nops = {{ tls = true, ca_file = "{missing}" }}\n'
                  f'[remote.mqtt]\nenabled = true\ntls = true\ncert_file = "{missing}"\n')
    assert main(["check-config", str(write(tmp_path, bad))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("uplink.ops" in line and "ca_file" in line and "does not exist" in line for line in lines), lines
    assert any("remote.mqtt" in line and "cert_file" in line for line in lines), lines


def test_each_section_lives_in_the_module_named_after_it() -> None:
    """One module per TOML section (``[camera]`` in ``edged.config.camera``), all re-exported by ``edged.config``."""
    import msgspec

    import edged.config

    for field in msgspec.structs.fields(Config):
        assert field.type.__module__ == f"edged.config.{field.name}", field.name
        assert getattr(edged.config, field.type.__name__) is field.type
    for name in edged.config.__all__:
        assert hasattr(edged.config, name), name


def test_privacy_hides_whatever_the_default_sensitive_models_report() -> None:
    """``privacy.min_score`` is no higher than any default face or plate model's threshold: a
    detection a shipped model reports is never dropped by privacy before the tracker confirms it."""
    cfg = Config()
    for m in cfg.detect.models:
        for label in set(m.labels) & {"face", "plate"}:
            assert cfg.privacy.min_score <= m.thresholds.get(label, m.score_threshold), m.name
