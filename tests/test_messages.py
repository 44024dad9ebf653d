"""What the commands print: usage lines name the command typed, errors are sentences, JSON output
is JSON only, and the TFLite runtime's start-up notice stays out of the way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edged.cli import main
from tests.test_privacy_restore import platform  # noqa: F401 (the restore fixture)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", ["edged-receiver", "edged-store", "edged-restore", "edged-clips",
                                    "edged-sim", "edged-sim-report"])
def test_a_scripts_help_names_the_script(script: str) -> None:
    shown = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: {script} "), shown.stdout.splitlines()[0]
    assert "python -m" not in shown.stdout.splitlines()[0]


def test_a_module_run_with_python_m_is_named_so() -> None:
    shown = subprocess.run([sys.executable, "-m", "edged_platform.store", "--help"], capture_output=True, text=True,
                           timeout=60, cwd=ROOT)
    assert shown.stdout.startswith("usage: python -m edged_platform.store "), shown.stdout.splitlines()[0]


def test_check_config_print_is_json_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_preflight import _config

    config = _config(tmp_path)
    assert main(["check-config", "--print", str(config)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["device"]["data_dir"] == str(tmp_path / "data")
    assert f"{config}: ok" in err
    assert main(["check-config", str(config)]) == 0
    assert f"{config}: ok" in capsys.readouterr().out, "without --print the verdict stays on stdout"


def test_loading_a_model_shows_no_runtime_notice() -> None:
    code = ("from edged.stages.detect.runtime import TFLiteModel\n"
            "TFLiteModel('models/edged_det_int8.tflite')\n"
            "print('loaded')\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert shown.returncode == 0 and shown.stdout == "loaded\n", shown.stderr
    assert shown.stderr == "", shown.stderr


def test_what_else_the_runtime_prints_while_a_model_loads_is_kept() -> None:
    code = ("import os\n"
            "from edged.stages.detect.runtime import runtime_notices_held\n"
            "with runtime_notices_held():\n"
            "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "    os.write(2, b'ERROR: something the runtime wants seen\\n')\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == "ERROR: something the runtime wants seen\n"


def test_keygen_says_what_went_wrong_in_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert main(["keygen", "device", "--out", str(blocked / "keys" / "device")]) == 1
    err = capsys.readouterr().err
    assert "Errno" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"edged keygen: cannot write the key files in {blocked / 'keys'}: ") and "not a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_keygen_in_a_folder_it_may_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["keygen", "device", "--out", str(locked / "device")]) == 1
    err = capsys.readouterr().err
    assert "Errno" not in err and "permission denied" in err and "sudo" in err, err


def test_restore_says_why_it_cannot_write(platform, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from edged_platform import restore

    tmp, dev, face, _, frames = platform
    from edged.link import wire
    from edged_platform.store import SegmentStore, export_image

    m, _, out = next(f for f in frames if any(e.dest == "func.face" for e in f[2].envelopes))
    env = next(e for e in out.envelopes if e.dest == "func.face")
    (tmp / "r.cbor").write_bytes(env.to_bytes())
    export_image(SegmentStore(tmp / "ops", device_keys=wire.trusted_keys([dev.public])), m.image_id, tmp / "deid.png")
    base = ["--key", str(face.private), "--signer", str(dev.public), "--record", str(tmp / "r.cbor"),
            "--image", str(tmp / "deid.png")]
    blocked = tmp / "a-file"
    blocked.write_text("")
    assert restore.main([*base, "--out", str(blocked / "sub" / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot create the folder {blocked / 'sub'}" in err and "not a folder" in err, err
    (tmp / "taken.png").mkdir()
    assert restore.main([*base, "--out", str(tmp / "taken.png")]) == 1
    err = capsys.readouterr().err
    assert err == f"restore: could not write {tmp / 'taken.png'}: it is a folder\n", err
