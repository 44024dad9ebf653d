"""Camera backends from other packages, each with its own ``[camera.NAME]`` section.

A package registers a backend under the ``edged.cameras`` entry points as ``NAME = "module:OBJECT"``,
where ``OBJECT`` is a :class:`CameraPlugin`: the type of its section, which the loader validates with
every key path named, and how it opens its camera (``edged.runtime.camera``). A plug-in's module is
imported only when a config names it (``camera.backend`` or a ``[camera.NAME]`` table). The simulation
package ``edged-sim`` registers ``fake`` this way; a device installs no plug-in.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from edged.config.base import ConfigError, Section

PLUGIN_GROUP = "edged.cameras"

BUILTIN_BACKENDS: tuple[str, ...] = ("file", "picamera2", "v4l2")
"""The backends the device package ships (``edged.hal``)."""


class CameraPlugin(Protocol):
    """What a camera plug-in's entry point names."""

    section: type[Section]
    """Its ``[camera.NAME]`` section; every key needs a default (an absent table is all defaults)."""

    def open(self, camera: Any) -> Any:
        """The ``edged.hal.base.Camera`` that ``camera`` (the whole ``CameraConfig``) describes, not started."""
        ...


@functools.cache
def _entries() -> dict[str, EntryPoint]:
    """The plug-ins' entry points by name, read once (installing a package means restarting)."""
    return {e.name: e for e in entry_points(group=PLUGIN_GROUP) if e.name not in BUILTIN_BACKENDS}


def plugin_names() -> list[str]:
    """Names of the installed camera plug-ins (nothing is imported)."""
    return sorted(_entries())


def known_backends() -> list[str]:
    """Every backend a config may name here: the device's own and the installed plug-ins."""
    return [*BUILTIN_BACKENDS, *plugin_names()]


def check_backend(name: str) -> None:
    """Raise :class:`ConfigError` at ``camera.backend`` unless ``name`` is a backend known here."""
    if name not in BUILTIN_BACKENDS and name not in _entries():
        raise ConfigError(f"config error at camera.backend: no camera backend {name!r} here (known: "
                          f"{', '.join(known_backends())}); others come from installed packages (the fake "
                          "camera from the simulation package edged-sim)")


def load_plugin(name: str) -> CameraPlugin:
    """The installed plug-in ``name``; :class:`ConfigError` at ``camera.NAME`` when none is or it does not import."""
    entry = _entries().get(name)
    if entry is None:
        raise ConfigError(f"config error at camera.{name}: unknown key (no installed camera backend {name!r}; "
                          f"known: {', '.join(known_backends())})")
    try:
        plugin = entry.load()
    except ImportError as err:
        raise ConfigError(f"config error at camera.{name}: camera backend {name!r} is installed but does not "
                          f"import ({entry.value}: {err})") from err
    if not (isinstance(getattr(plugin, "section", None), type) and issubclass(plugin.section, Section)):
        raise ConfigError(f"config error at camera.{name}: {entry.value} is not a camera plug-in (no config section)")
    return plugin
