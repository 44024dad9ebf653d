"""``edged events``: the health and track events stored in the device's outbox, read-only.

The outbox keeps every event until the ops platform acknowledges it (or the ring budget evicts it),
so this lists what is waiting to go, or everything when no uplink is configured. It opens the
SQLite file read-only, so it can run beside the daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cbor2

from edged.config import Config, load, resolve_path
from edged.link import wire
from edged.link.outbox import OutboxError, list_stored
from edged.runtime.stats import plain

DEFAULT_LIMIT = 20


def outbox_path(config: Config) -> Path:
    """The outbox file the daemon opens for ``config`` (``outbox.path`` under ``device.data_dir``)."""
    path = Path(config.outbox.path)
    return path if path.is_absolute() else resolve_path(config.device.data_dir) / path


def stored_events(path: Path, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """Stored events, newest first, as plain maps (``event``: ``health``/``trail``; ``kind``, ``state``
    and the rest as the stages raised them; the envelope's ids and destination); ``kind`` matches the
    event type or its kind (``health``, ``cover``, ``trail``...). Unreadable rows are skipped and
    counted in the last item's absence: see :func:`events_main`."""
    for message in list_stored(path, kind=wire.Kind.EVENT):
        try:
            env = wire.decode(message.payload)
            body = cbor2.loads(env.body)
        except (wire.WireError, cbor2.CBORDecodeError, ValueError, TypeError):
            yield {"unreadable": message.id}
            continue
        if not isinstance(body, dict):
            yield {"unreadable": message.id}
            continue
        event = plain({"event": body.get("type", body.get("kind")), **{k: v for k, v in body.items() if k != "v"},
                       "id": env.id, "dest": env.dest, "created": env.created, "video_id": env.video_id,
                       "image_id": env.image_id, "device": env.device})
        if kind is None or kind in (event.get("event"), event.get("kind")):
            yield event


def _when(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def describe(event: dict[str, Any]) -> str:
    """One line for a person: when, what, and the few figures that say most."""
    head = f"{_when(event.get('created'))}  {event.get('event')}"
    if event.get("event") == "trail":
        moved = f", {event['speed_mps']:.1f} m/s" if isinstance(event.get("speed_mps"), (int, float)) else ""
        duration = event.get("duration_s")
        took = f"{duration:.1f} s" if isinstance(duration, (int, float)) else "? s"
        return (f"{head}  track {event.get('track_id')} {event.get('class')}: {event.get('observations')} "
                f"observations in {took}{moved} (frame {event.get('frame_index')})")
    what = f"{event.get('kind')} {event.get('state')}"
    if event.get("state") == "update" and "count" in event:
        what += f" ({event['count']})"
    return f"{head}  {what}  frame {event.get('frame_index')}  image {event.get('image_id')}"


def events_main(args: argparse.Namespace) -> int:
    """Handler of ``edged events``: 0 when the outbox could be read (even with no events), 2 when not."""
    config = load(args.config)
    path = outbox_path(config)
    found: list[dict[str, Any]] = []
    unreadable = 0
    try:
        for event in stored_events(path, args.kind):
            if "unreadable" in event:
                unreadable += 1
                continue
            found.append(event)
            if args.limit and len(found) >= args.limit:
                break
    except OutboxError as err:
        print(f"edged events: {err}", file=sys.stderr)
        return 2
    for event in reversed(found):  # oldest first, the newest last, as a log reads
        print(json.dumps(event, separators=(",", ":")) if args.json else describe(event))
    if unreadable:
        print(f"edged events: {unreadable} stored event(s) in {path} could not be read", file=sys.stderr)
    if not found:
        which = f" of kind {args.kind}" if args.kind else ""
        print(f"edged events: no stored events{which} in {path}", file=sys.stderr)
    return 0


def add_events_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``events`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "events",
        help="list the health and track events stored in the device's outbox",
        description=(
            "Lists the events (camera health: cover, freeze, distortion, defects; track summaries) that the "
            "outbox holds, oldest first: those not yet acknowledged by the ops platform, or all of them "
            "(within the outbox budget) without an uplink. Read-only; works while the daemon runs."
        ),
    )
    p.add_argument("--config", required=True, type=Path, help="the daemon's TOML config file (names the outbox)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                   help=f"at most the N newest events (default {DEFAULT_LIMIT}; 0: all)")
    p.add_argument("--kind", help="only this event type or kind: health, trail, cover, freeze, distortion, defects")
    p.add_argument("--json", action="store_true", help="one JSON object per line (JSON Lines)")
    p.set_defaults(handler=events_main)
    return p
