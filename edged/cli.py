"""Command line: ``edged run``, ``edged check-config`` and the other subcommands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edged import __version__
from edged.config import ConfigError, load, to_dict
from edged.core.keys import add_keygen_parser

if TYPE_CHECKING:
    from edged.runtime.daemon import Daemon


def _startup_errors() -> tuple[type[Exception], ...]:
    """Errors that stop the daemon at start with one clear line (bad model, key, camera, outbox...)."""
    from edged.core.keys import KeyFileError
    from edged.hal.base import CameraError
    from edged.link.mqtt import BrokerConfigError
    from edged.link.outbox import OutboxError
    from edged.remote.store import StoreError
    from edged.stages.detect.runtime import ModelError
    from edged.stages.track.calibration import CalibrationError
    from edged.stages.track.ids import IdStoreError

    return (ModelError, KeyFileError, OutboxError, StoreError, CalibrationError, IdStoreError,
            BrokerConfigError, CameraError)


class _StopWhileStarting:
    """Signal handler for the start-up: remembers a stop until the daemon exists, then passes it on.

    (Raising from the handler is not safe: ``logging`` swallows an exception raised while it writes.)
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.daemon: Daemon | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.daemon is not None:
            self.daemon.request_stop(name)
        elif self.signal is None:
            self.signal = name

    def adopt(self, daemon: Daemon) -> None:
        """From now on a stop goes to ``daemon`` (one that came earlier, at once): it drains as usual."""
        self.daemon = daemon
        if self.signal is not None:
            daemon.request_stop(self.signal)


def _run(args: argparse.Namespace) -> int:
    """``edged run``; a stop signal during start-up (models loading, outbox opening) is kept and ends
    the run cleanly once the daemon exists, or before it is built when it came during the checks."""
    early = _StopWhileStarting()
    previous = {sig: signal.signal(sig, early) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run_daemon(args, early)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_daemon(args: argparse.Namespace, early: _StopWhileStarting) -> int:
    from edged.remote import build_services, load_startup_config
    from edged.runtime.app import build_daemon, run_folder

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
        daemon = build_daemon(config, out, services=build_services(startup))
        early.adopt(daemon)
        log.info("run output in %s", out)
        summary = asyncio.run(daemon.run(max_frames=args.frames, duration=args.duration))
    except errors as err:
        print(f"edged: cannot start: {err}", file=sys.stderr)
        return 2
    frames = summary["frames"]
    print(
        f"edged: stopped ({summary['stop_reason']}): captured {frames['captured']}, "
        f"processed {frames['processed']}, dropped {frames['dropped']}, {summary['fps']} fps"
    )
    if summary.get("summary_written", True):
        print(f"edged: output in {out} (summary: {out / 'summary.json'})")
    else:
        print(f"edged: output in {out}; the summary could not be written there (it is in the log)")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from edged.runtime.preflight import preflight

    config = load(args.file)
    if args.print:
        print(json.dumps(to_dict(config), indent=2))
    problems = preflight(config)
    for problem in problems:
        print(f"edged: {args.file}: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.file}: ok (models, keys, folders and camera source checked)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edged", description="Privacy-first roadside vision daemon.")
    parser.add_argument("--version", action="version", version=f"edged {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", required=True, type=Path, help="TOML config file")
    run.add_argument("--frames", type=int, help="stop after capturing N frames")
    run.add_argument("--duration", type=float, help="stop after S seconds")
    run.add_argument("--out", help="local output folder (overrides output.dir)")
    run.set_defaults(handler=_run)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", type=Path)
    check.add_argument("--print", action="store_true", help="print the full config with defaults")
    check.set_defaults(handler=_check_config)

    add_keygen_parser(sub)
    from edged.runtime.deid_files import add_deid_parser

    add_deid_parser(sub)
    from edged.remote.auth import add_sign_parser

    add_sign_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args)
    except ConfigError as err:
        print(f"edged: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
