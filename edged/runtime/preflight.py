"""What ``edged run`` needs before it starts, checked without starting: ``edged check-config``.

Each problem is one line naming the config key and the file or folder: a model that does not load
or does not match its config, a key file that is missing, of the wrong kind or readable by others, a
folder that cannot be created or written, a camera that does not open (a file source without a
readable frame, a missing camera library, device or tool), a broker's TLS file that does not load.
``run`` checks the same before it opens anything, so a bad setup fails at once with every problem
listed, in the same lines.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edged.config import Config, resolve_path
from edged.core.paths import private_dir


def writable_folder(path: Path) -> str | None:
    """``None`` when ``path`` is (or can be made, private) a folder we can write in; else why not."""
    try:
        private_dir(path, configured=True)
    except OSError as err:
        return f"cannot create {path}: {err.strerror or err}"
    if not path.is_dir():
        return f"{path} is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".edged-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"cannot write in {path}: {err.strerror or err}"
    return None


def folder_problems(config: Config) -> list[str]:
    """The data, output and outbox folders: each must be creatable and writable."""
    data = resolve_path(config.device.data_dir)
    outbox = Path(config.outbox.path)
    folders = {
        "device.data_dir": data,
        "output.dir": resolve_path(config.output.dir),
        "outbox.path": (outbox if outbox.is_absolute() else data / outbox).parent,
    }
    problems = []
    for key, folder in folders.items():
        why = writable_folder(folder)
        if why:
            problems.append(f"{key}: {why}")
    return problems


def key_problems(config: Config) -> list[str]:
    """The device signing key, the functional platforms' keys and the trusted operator keys."""
    from edged.core.keys import KeyFileError, check_keys, load_operator_verify_key

    problems = []
    try:
        check_keys(config)  # the recipients of privacy.categories, then always the signing key
    except KeyFileError as err:
        problems.append(str(err))
    try:
        for path in (*config.remote.auth.operator_keys, *config.remote.auth.admin_keys):
            load_operator_verify_key(resolve_path(path))  # as the remote control loads its trusted keys
    except KeyFileError as err:
        problems.append(f"remote.auth: {err}")
    return problems


def model_problems(config: Config) -> list[str]:
    """Every configured model loads and matches its config (input size, outputs, labels), as the
    detection stage checks it at start."""
    if not config.detect.enabled:
        return []
    from edged.stages.detect.detector import LoadedModel, check_crop_sources, check_model_names
    from edged.stages.detect.runtime import ModelError

    try:
        check_model_names(config.detect)
    except ModelError as err:
        return [str(err)]
    problems, loaded = [], []
    for i, model in enumerate(config.detect.models):
        try:
            loaded.append(LoadedModel(model))
        except (ModelError, ValueError, OSError) as err:
            problems.append(f"detect.models[{i}] ({model.name}): {err}")
    if not problems:
        try:
            check_crop_sources(loaded)
        except ModelError as err:
            problems.append(f"detect.models: {err}")
    return problems


CAMERA_KEYS = {"file": "camera.file.path", "v4l2": "camera.v4l2.device"}
"""The config key a camera problem names, by backend (others: ``camera.backend``)."""


def camera_problems(config: Config) -> list[str]:
    """The camera opens as ``run`` opens it: a file source is read (its first frame), a Pi camera's
    library and the camera itself are found, a v4l2 device and ``v4l2-ctl`` are there."""
    from edged.hal.base import CameraError
    from edged.runtime.camera import make_camera

    key = CAMERA_KEYS.get(config.camera.backend, "camera.backend")
    try:
        camera = make_camera(config.camera)
        probe = getattr(camera, "probe", None)  # a plug-in camera may have none
        if probe is not None:
            probe()
    except CameraError as err:
        return [f"{key}: {err}"]
    return []


def _brokers(config: Config) -> list[tuple[str, Any]]:
    """``(config key, broker settings)`` of every broker connection in use (uplinks, remote control)."""
    brokers: list[tuple[str, Any]] = []
    if config.uplink.enabled:
        brokers.append(("uplink.ops", config.uplink.ops))
        brokers += [(f"uplink.functional.{name}", b) for name, b in config.uplink.functional.items()]
    if config.remote.mqtt.enabled:
        brokers.append(("remote.mqtt", config.remote.mqtt))
    return brokers


def shared_broker_users(config: Config) -> list[str]:
    """Connections to one broker under one user name, one line each: a broker that binds client ids
    to user names (``config/mosquitto``) lets only one of them stay connected."""
    seen: dict[tuple[str, int, str], str] = {}
    lines = []
    for key, broker in _brokers(config):
        if not broker.username:
            continue
        first = seen.setdefault((broker.host, broker.port, broker.username), key)
        if first != key:
            lines.append(f"{key} and {first} connect to {broker.host}:{broker.port} as the same user "
                         f"{broker.username!r}; a broker that binds client ids to users keeps only one of them "
                         "connected (give each connection its own user)")
    return lines


def broker_problems(config: Config) -> list[str]:
    """The TLS files of every broker connection in use (uplinks, remote control) must load."""
    from edged.link.mqtt import BrokerConfigError, tls_context

    problems = []
    for key, broker in _brokers(config):
        try:
            tls_context(broker, key)
        except BrokerConfigError as err:
            problems.append(str(err))
    return problems


def preflight(config: Config) -> list[str]:
    """Every problem that would stop ``edged run`` at start, one line each (empty: ready)."""
    return (folder_problems(config) + key_problems(config) + model_problems(config) + camera_problems(config)
            + broker_problems(config))
