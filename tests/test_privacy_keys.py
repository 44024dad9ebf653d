"""Key files: generation with 0600 private keys, loading with clear errors, the daemon's key check."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edged.cli import build_parser
from edged.config import from_dict
from edged.core.keys import (
    KeyFileError,
    check_keys,
    generate_device_key,
    generate_platform_key,
    load_platform_private_key,
    load_platform_public_key,
    load_signing_key,
    load_verify_key,
    sealing_key_id,
    signing_key_id,
)

REPO = Path(__file__).resolve().parent.parent


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_device_and_platform_keys_round_trip_with_0600_private_files(tmp_path: Path) -> None:
    old = os.umask(0)  # even with no umask, the private key is created 0600
    try:
        dev = generate_device_key(tmp_path / "keys" / "device")
        face = generate_platform_key(tmp_path / "keys" / "face")
    finally:
        os.umask(old)
    assert dev.private.name == "device.key" and dev.public.name == "device.pub"
    assert mode(dev.private) == 0o600 and mode(face.private) == 0o600
    assert mode(dev.public) & 0o044  # public keys are readable
    sk, vk = load_signing_key(dev.private), load_verify_key(dev.public)
    assert sk.verify_key == vk and signing_key_id(sk) == signing_key_id(vk) == dev.key_id
    priv, pub = load_platform_private_key(face.private), load_platform_public_key(face.public)
    assert priv.public_key == pub and sealing_key_id(priv) == face.key_id
    assert len(dev.key_id) == 16 and dev.key_id != face.key_id


def test_existing_keys_are_not_overwritten_without_force(tmp_path: Path) -> None:
    first = generate_platform_key(tmp_path / "p")
    with pytest.raises(KeyFileError, match="already exists"):
        generate_platform_key(tmp_path / "p")
    assert sealing_key_id(load_platform_private_key(first.private)) == first.key_id
    # --force replaces a private key even if the old file had a wide mode: the new one is 0600
    first.private.chmod(0o644)
    second = generate_platform_key(tmp_path / "p", force=True)
    assert second.key_id != first.key_id and mode(second.private) == 0o600


def test_load_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    dev = generate_device_key(tmp_path / "device")
    face = generate_platform_key(tmp_path / "face")
    with pytest.raises(KeyFileError, match="not found"):
        load_signing_key(tmp_path / "missing.key")
    with pytest.raises(KeyFileError, match="holds an x25519-secret key, expected an ed25519-secret"):
        load_signing_key(face.private)
    with pytest.raises(KeyFileError, match="holds an ed25519-public key, expected an x25519-public"):
        load_platform_public_key(dev.public)
    junk = tmp_path / "junk.pub"
    junk.write_text("hello\n")
    with pytest.raises(KeyFileError, match="not an edged key file"):
        load_platform_public_key(junk)
    short = tmp_path / "short.pub"
    short.write_text("edged-key v1 x25519-public\nAAAA\n")
    with pytest.raises(KeyFileError, match="32 bytes"):
        load_platform_public_key(short)
    dev.private.chmod(0o640)
    with pytest.raises(KeyFileError, match="mode 0640.*chmod 600"):
        load_signing_key(dev.private)


def config_with(tmp_path: Path, **privacy) -> object:
    return from_dict({"privacy": privacy})


def test_check_keys_refuses_missing_recipients_and_loads_complete_sets(tmp_path: Path) -> None:
    dev = generate_device_key(tmp_path / "device")
    face = generate_platform_key(tmp_path / "face")
    plate = generate_platform_key(tmp_path / "plate")
    with pytest.raises(KeyFileError, match="categories face, plate: set privacy.recipients.face"):
        check_keys(from_dict({"privacy": {"signing_key": str(dev.private)}}))
    with pytest.raises(KeyFileError, match="category plate"):
        check_keys(from_dict({"privacy": {"signing_key": str(dev.private), "recipients": {"face": str(face.public)}}}))
    with pytest.raises(KeyFileError, match="functional-platform public key not found"):
        check_keys(from_dict({"privacy": {"signing_key": str(dev.private),
                                          "recipients": {"face": str(face.public), "plate": str(tmp_path / "nope.pub")}}}))
    with pytest.raises(KeyFileError, match="device signing key not found"):
        check_keys(from_dict({"privacy": {"signing_key": str(tmp_path / "nope.key"),
                                          "recipients": {"face": str(face.public), "plate": str(plate.public)}}}))
    keys = check_keys(from_dict({"privacy": {"signing_key": str(dev.private),
                                             "recipients": {"face": str(face.public), "plate": str(plate.public)}}}))
    assert keys.signer_id == dev.key_id
    assert keys.recipient_id("face") == face.key_id and keys.recipient_id("plate") == plate.key_id
    # a deployment that keeps no crops at all needs no recipients
    assert check_keys(from_dict({"privacy": {"signing_key": str(dev.private), "categories": []}})).recipients == {}


def test_keygen_parser_and_module_cli(tmp_path: Path) -> None:
    args = build_parser().parse_args(["keygen", "platform", "--out", str(tmp_path / "func" / "face")])
    assert args.handler(args) == 0
    assert mode(tmp_path / "func" / "face.key") == 0o600
    assert args.handler(args) == 1  # exists: refused with a message, nothing replaced
    run = subprocess.run(
        [sys.executable, "-m", "edged.cli", "keygen", "device", "--out", str(tmp_path / "dev")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "device key id" in run.stdout and mode(tmp_path / "dev.key") == 0o600
