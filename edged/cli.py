"""Command line: ``edged run``, ``edged check-config`` and the other subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edged import __version__

if TYPE_CHECKING:
    from edged.runtime.daemon import Daemon

# Everything heavier (config, numpy, OpenCV, the models) is imported inside the functions, after
# main() has its signal handlers in place: a Ctrl-C while they load ends the run cleanly.


def _startup_errors() -> tuple[type[Exception], ...]:
    """Errors that stop the daemon at start with one clear line (bad model, key, camera, outbox, stored config...)."""
    from edged.remote.store import StoreError
    from edged.runtime.app import BUILD_ERRORS

    return (*BUILD_ERRORS, StoreError)


class _StopWhileStarting:
    """Signal handler for the start-up: remembers a stop (SIGTERM, SIGINT) or a reload (SIGHUP) until
    the daemon exists, then passes it on.

    (Raising from the handler is not safe: ``logging`` swallows an exception raised while it writes.)
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.reload = False
        self.daemon: Daemon | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            if self.daemon is not None:
                self.daemon.request_reload()
            else:
                self.reload = True
            return
        name = signal.Signals(signum).name
        if self.daemon is not None:
            self.daemon.request_stop(name)
        elif self.signal is None:
            self.signal = name

    def hand_over(self, daemon: Daemon) -> None:
        """From now on a stop or reload goes to ``daemon`` (one that came earlier, at once)."""
        self.daemon = daemon
        if self.signal is not None:
            daemon.request_stop(self.signal)
        if self.reload:
            daemon.request_reload()


def _catch(early: _StopWhileStarting, signals: tuple[int, ...]) -> dict[int, object]:
    """Route ``signals`` to ``early``; returns the handlers they had (none off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, early) for sig in signals}


def _restore(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


def _run(args: argparse.Namespace, early: _StopWhileStarting | None = None) -> int:
    """``edged run``; a stop signal during start-up (imports, models loading, outbox opening) is kept
    and ends the run cleanly once the daemon exists, or before it is built when it came during the
    checks; a SIGHUP then reloads the config file once the daemon runs."""
    early = early if early is not None else _StopWhileStarting()
    previous = _catch(early, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
    try:
        return _run_daemon(args, early)
    finally:
        _restore(previous)


def _run_daemon(args: argparse.Namespace, early: _StopWhileStarting) -> int:
    import asyncio

    from edged.remote import RemoteControl, build_services, load_startup_config
    from edged.remote.reload import FileReloadService
    from edged.runtime.app import build_daemon, run_folder

    if early.signal:
        print(f"edged: stopped by {early.signal} while starting", file=sys.stderr)
        return 0

    log = logging.getLogger("edged")
    startup = load_startup_config(args.config)
    log.info("%s", startup.note)
    config = startup.config
    if args.out:
        config.output.dir = args.out
    from edged.runtime.preflight import preflight

    problems = preflight(config)
    for problem in problems:
        print(f"edged: cannot start: {args.config}: {problem}", file=sys.stderr)
    if problems:
        return 2
    if early.signal:
        print(f"edged: stopped by {early.signal} while starting", file=sys.stderr)
        return 0
    errors = _startup_errors()
    try:
        out = run_folder(config)
        control = RemoteControl.from_startup(startup)
        services = [*build_services(startup, control), FileReloadService(control, args.config)]
        daemon = build_daemon(config, out, services=services)
        early.hand_over(daemon)
        log.info("run output in %s", out)
        summary = asyncio.run(daemon.run(max_frames=args.frames, duration=args.duration))
    except errors as err:
        print(f"edged: cannot start: {err}", file=sys.stderr)
        return 2
    frames = summary.frames
    print(
        f"edged: stopped ({summary.stop_reason}): captured {frames.captured}, "
        f"processed {frames.processed}, dropped {frames.dropped}, {summary.fps} fps"
    )
    if summary.summary_written is not False:
        print(f"edged: output in {out} (summary: {out / 'summary.json'})")
    else:
        print(f"edged: output in {out}; the summary could not be written there (it is in the log)")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from edged.config import load, to_dict
    from edged.runtime.preflight import preflight

    config = load(args.file)
    if args.print:
        print(json.dumps(to_dict(config), indent=2))
    problems = preflight(config)
    for problem in problems:
        print(f"edged: {args.file}: {problem}", file=sys.stderr)
    if problems:
        return 2
    # with --print, stdout holds only the JSON document
    print(f"{args.file}: ok (models, keys, folders and camera source checked)",
          file=sys.stderr if args.print else sys.stdout)
    return 0


def _add_keygen_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``keygen`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "keygen",
        help="generate the device signing key or a functional platform's key pair",
        description=(
            "device: the roadside unit's Ed25519 signing key (PREFIX.key stays on the device, PREFIX.pub goes "
            "to the functional platforms). platform: a functional platform's X25519 pair (PREFIX.pub goes to "
            "the device's privacy.recipients, PREFIX.key stays on the platform). Private keys are written "
            "with mode 0600. operator: an Ed25519 pair that signs remote commands (PREFIX.pub goes to the "
            "device's remote.auth.operator_keys or admin_keys, PREFIX.key stays with the operator)."
        ),
    )
    p.add_argument("kind", choices=("device", "platform", "operator"), help="which key pair")
    p.add_argument("--out", required=True, help="path prefix: writes PREFIX.key and PREFIX.pub")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(handler=_keygen)
    return p


def _keygen(args: argparse.Namespace) -> int:
    """Handler of ``keygen``: prints the files written and the key id; 1 with a message on error."""
    from edged.core.keys import KeyFileError, generate_device_key, generate_platform_key
    from edged.core.paths import os_reason

    try:
        made = (generate_platform_key if args.kind == "platform" else generate_device_key)(args.out, args.force)
    except KeyFileError as err:
        print(f"edged keygen: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        folder = Path(args.out).parent.absolute()
        print(f"edged keygen: cannot write the key files in {folder}: {os_reason(err)}", file=sys.stderr)
        return 1
    print(f"{args.kind} key id {made.key_id}: private {made.private} (mode 0600), public {made.public}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edged", description="Privacy-first roadside vision daemon.")
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run the daemon",
        description="Run the daemon until stopped. SIGTERM or Ctrl-C: capture stops, frames in flight are finished "
                    "and the summary is written. SIGHUP (systemctl reload): the config file is read again, validated "
                    "and applied, rolled back if no frame passes; a bad file keeps the running config.",
    )
    run.add_argument("--config", required=True, type=Path, help="TOML config file")
    run.add_argument("--frames", type=int, help="stop after capturing N frames")
    run.add_argument("--duration", type=float, help="stop after S seconds")
    run.add_argument("--out", help="local output folder (overrides output.dir)")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", type=Path)
    check.add_argument("--print", action="store_true",
                       help="print the full config with defaults as JSON on stdout (the verdict goes to stderr)")
    check.set_defaults(handler=_check_config)

    _add_keygen_parser(sub)
    from edged.runtime.deid_files import add_deid_parser

    add_deid_parser(sub)
    from edged.remote.auth import add_sign_parser

    add_sign_parser(sub)
    from edged.runtime.events import add_events_parser

    add_events_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # A Ctrl-C while the modules load (before any command runs) is kept, not a traceback; ``run``
    # keeps catching it until its daemon takes over, other commands get Python's default back.
    early = _StopWhileStarting()
    previous = _catch(early, (signal.SIGTERM, signal.SIGINT))
    try:
        from edged.config import ConfigError

        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if early.signal:
            print(f"edged: stopped by {early.signal} while starting", file=sys.stderr)
            return 0
        if args.handler is not _run:
            _restore(previous)
            previous = {}
        try:
            return _run(args, early) if args.handler is _run else args.handler(args)
        except ConfigError as err:
            print(f"edged: {err}", file=sys.stderr)
            return 2
    finally:
        _restore(previous)


if __name__ == "__main__":
    sys.exit(main())
