"""Remote configuration and operations: MQTT commands, serial console, and the
systemd notifier, as daemon services.

What the CLI does at start::

    from edged.remote import build_services, load_startup_config

    startup = load_startup_config(args.config)   # the file, or the persisted remote config
    log.info(startup.note)
    config = startup.config
    daemon = Daemon(config, builder, sinks, services=build_services(startup))
"""

from __future__ import annotations

from edged.remote.commands import Access, CommandError, RemoteControl
from edged.remote.store import ConfigStore, StartupConfig, load_startup_config
from edged.runtime.seams import Service

__all__ = [
    "Access",
    "CommandError",
    "ConfigStore",
    "RemoteControl",
    "StartupConfig",
    "build_services",
    "load_startup_config",
]


def build_services(startup: StartupConfig, control: RemoteControl | None = None) -> list[Service]:
    """The MQTT command service, the serial console and the systemd notifier.

    All three are always included: each idles while its part is off (``remote.mqtt.enabled``,
    ``remote.serial.enabled``, no ``NOTIFY_SOCKET``), so a remote change can switch MQTT or the
    console on or off without a restart.
    """
    from edged.remote.mqtt import MqttService
    from edged.remote.serial_console import SerialConsoleService
    from edged.runtime.notify import NotifyService

    control = control if control is not None else RemoteControl.from_startup(startup)
    return [MqttService(control), SerialConsoleService(control), NotifyService()]
