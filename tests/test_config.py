"""Config loading: defaults, precise errors naming the key path, check-config CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.cli import main
from edged.config import Config, ConfigError, from_dict, load, to_dict

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_default_config_loads_and_round_trips() -> None:
    config = load(ROOT / "config" / "default.toml")
    assert config.camera.backend == "fake"
    assert from_dict(to_dict(config)) == config


def test_demo_config_runs_the_fake_scene_models_and_a_real_camera_gets_the_real_world_ones() -> None:
    from edged.config import default_models, fake_scene_models

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
        ('[camera]\nbackend = "usb"', "config error at camera.backend: invalid enum value 'usb'"),
        ("[camera.fake]\nseed = 1.5", "config error at camera.fake.seed: expected int, got float"),
        ('[[detect.models]]\nname = "x"', "config error at detect.models[0].file: missing required key"),
        ("[device.position]\nlat = 91", "config error at device.position.lat: expected float <= 90.0"),
        (
            "[uplink.functional.'Bad Name']",
            "config error at uplink.functional: expected str matching regex '^[a-z][a-z0-9_-]{0,31}$' "
            "(a key of this table)",
        ),
    ],
)
def test_errors_name_the_key_and_the_expectation(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, toml))
    assert str(err.value) == message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*missing\.toml"):
        load(tmp_path / "missing.toml")


def test_bad_toml_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.toml is not valid TOML: .*line 2"):
        load(write(tmp_path, "[camera]\nfps = = 3"))


def test_int_accepted_for_float(tmp_path: Path) -> None:
    assert load(write(tmp_path, "[camera]\nfps = 5")).camera.fps == 5.0


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(ROOT / "config" / "default.toml")]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["check-config", str(write(tmp_path, "[camera]\nfps = -1"))]) == 2
    assert "config error at camera.fps" in capsys.readouterr().err
