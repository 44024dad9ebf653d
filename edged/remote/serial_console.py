"""Maintenance console on a serial line: one request per line, one JSON reply per line.

Requests a technician can type (blank lines are ignored; ``\\n``, ``\\r\\n`` and ``\\r`` all end a
line, so any terminal program works)::

    help
    status                   stats
    {"cmd": "set", "signed": {...}}   (a signed request from ``edged sign-config``, pasted as one line)
    {"cmd": "get", "signed": {...}}   (``edged sign-config --get``)

Anyone with a cable can type, so with ``remote.auth.mode = "signed"`` (the default) ``set`` and
``get`` must be signed JSON lines; ``status`` (health and version only) and ``stats`` are open.
After each request that fails authentication the console pauses ``remote.serial.auth_backoff_s``,
doubling per failure in a row up to ``auth_backoff_max_s``; a signed request that succeeds resets it.

With ``mode = "unsigned"`` (local tests) a technician may also type::

    get                      get camera          get camera.fps
    set camera.fps=5 output.dir="my out" version=12
    set {"camera": {"fps": 5}}

``key=value``: the value is read as JSON when it is a JSON number, ``true``/``false``/``null``, a
"quoted string", a [list] or an {object}; otherwise it is the bare word. ``version``, ``id`` and
``mode`` are options of the request, not config keys; without ``version`` the next version is used.

Replies are one JSON object per line ending in ``\\r\\n`` (the port is raw, so ``\\r`` keeps a
human's terminal tidy; scripts strip it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edged.config import SerialRemoteConfig
from edged.remote.auth import AUTH_FAILURES
from edged.remote.commands import SERIAL_ACCESS, CommandError, RemoteControl

log = logging.getLogger("edged.remote.serial")

HELP = (
    "commands: status | stats | help | a signed JSON request from 'edged sign-config' (set, get); "
    "unsigned mode also: get [key.path] | set key.path=value ... [version=N]; one request per line, one JSON reply per line"
)
OPTIONS = ("version", "id", "mode")
_KEY = re.compile(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)=")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
_DECODER = json.JSONDecoder()


def _value(text: str, pos: int, key: str) -> tuple[Any, str, int]:
    """Read one value at ``pos``: (parsed value, raw text, end position)."""
    if pos < len(text) and text[pos] in '"[{':
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise CommandError("bad_request", f"value of {key} is not valid JSON: {err.msg} (column {err.pos + 1})") from None
        except RecursionError:
            raise CommandError("bad_request", f"value of {key} is nested too deeply") from None
        if end < len(text) and not text[end].isspace():
            raise CommandError("bad_request", f"expected a space after the value of {key} (column {end + 1})")
        return value, text[pos:end], end
    end = pos
    while end < len(text) and not text[end].isspace():
        end += 1
    raw = text[pos:end]
    if not raw:
        raise CommandError("bad_request", f"{key}= needs a value")
    value: Any = json.loads(raw) if _SCALAR.fullmatch(raw) else raw
    return value, raw, end


def _option(request: dict[str, Any], key: str, value: Any, raw: str) -> None:
    if key in request:
        raise CommandError("bad_request", f"{key} given twice")
    if key == "version":
        if not isinstance(value, int) or isinstance(value, bool):
            raise CommandError("bad_request", f"version must be a whole number, got {raw[:32]!r}")
        request["version"] = value
    else:  # id, mode: text
        request[key] = value if isinstance(value, str) else raw


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise CommandError("bad_request", f"{'.'.join(parts[: i + 1])} is given a value and also keys below it")
        node = child
    last = parts[-1]
    if last in node:
        raise CommandError("bad_request", f"{path} given twice (or also as a section)")
    node[last] = value


def parse_set(rest: str) -> dict[str, Any]:
    """``key=value ...`` or ``{json} options...`` after ``set``."""
    request: dict[str, Any] = {"cmd": "set"}
    config: dict[str, Any] = {}
    pos = 0
    rest = rest.strip()
    if rest.startswith("{"):
        try:
            config, pos = _DECODER.raw_decode(rest, 0)
        except json.JSONDecodeError as err:
            raise CommandError("bad_request", f"set {{...}} is not valid JSON: {err.msg} (column {err.pos + 1})") from None
        except RecursionError:
            raise CommandError("bad_request", "set {...} is nested too deeply") from None
        json_form = True
    else:
        json_form = False
    while True:
        while pos < len(rest) and rest[pos].isspace():
            pos += 1
        if pos >= len(rest):
            break
        m = _KEY.match(rest, pos)
        if m is None:
            word = rest[pos:].split(None, 1)[0]
            raise CommandError("bad_request", f"expected key=value at column {pos + 5}, got {word[:40]!r}")
        key = m.group(1)
        value, raw, pos = _value(rest, m.end(), key)
        if key in OPTIONS:
            _option(request, key, value, raw)
        elif json_form:
            raise CommandError("bad_request", f"after set {{...}} only {', '.join(OPTIONS)} may follow, got {key}")
        else:
            _put(config, key, value)
    if not config:
        raise CommandError("bad_request", "set needs at least one key=value (e.g. set camera.fps=5)")
    request["config"] = config
    return request


def parse_line(line: str) -> dict[str, Any] | None:
    """One console line as a request (``None`` for ``help``). Raises :class:`CommandError`."""
    text = line.strip()
    if text.startswith("{"):
        return {"_json": text}
    word, _, rest = text.partition(" ")
    word = word.lower()
    rest = rest.strip()
    if word in ("status", "stats", "help"):
        if rest:
            raise CommandError("bad_request", f"{word} takes no arguments")
        return None if word == "help" else {"cmd": word}
    if word == "get":
        if not rest:
            return {"cmd": "get"}
        if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", rest):
            raise CommandError("bad_request", f"get takes one key path like camera.fps, got {rest[:40]!r}")
        return {"cmd": "get", "path": rest}
    if word == "set":
        return parse_set(rest)
    raise CommandError("unknown_command", f"unknown command {word[:32]!r}; type help (commands: get, set, status, stats)")


async def serve_line(control: RemoteControl, raw: bytes) -> dict[str, Any]:
    """Serve one console line (without its line ending); always returns the reply."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return {"ok": False, "cmd": None, "code": "bad_request", "error": f"line is not valid UTF-8 (byte {err.start})"}
    try:
        request = parse_line(line)
    except CommandError as err:  # the error may echo part of the line: a mistyped secret stays hidden
        return {"ok": False, "cmd": None, "code": err.code, "error": control.scrub(str(err))}
    if request is None:
        return {"ok": True, "cmd": "help", "help": HELP}
    if "_json" in request:
        return await control.handle_payload(request["_json"], "serial", SERIAL_ACCESS)
    return await control.handle(request, "serial", SERIAL_ACCESS)


class LineSplitter:
    """Bytes in, complete lines out; a line longer than ``limit`` becomes one ``None`` (overflow)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer = bytearray()
        self.discarding = False

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        for piece in re.split(rb"(\r\n|\r|\n)", data):
            if piece in (b"\r\n", b"\r", b"\n"):
                if not self.discarding and self.buffer.strip():
                    out.append(bytes(self.buffer))
                self.buffer.clear()
                self.discarding = False
            elif piece and not self.discarding:
                self.buffer += piece
                if len(self.buffer) > self.limit:
                    self.buffer.clear()
                    self.discarding = True
                    out.append(None)
        return out


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":"), default=str).encode() + b"\r\n"


class SerialConsoleService:
    """The serial console (a daemon :class:`~edged.runtime.daemon.Service`); port and baud come from
    ``remote.serial`` of the running config unless given here."""

    name = "remote-serial"

    def __init__(self, control: RemoteControl, port: str | None = None, baud: int | None = None) -> None:
        self.control = control
        self.port_override = port
        self.baud_override = baud
        self.opened = asyncio.Event()
        """Set while the port is open (tests wait on it)."""
        self.lines_served = 0
        self.auth_failures_in_row = 0
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="serial-write")

    def _wanted(self, daemon: Any) -> SerialRemoteConfig:
        s: SerialRemoteConfig = daemon.config.remote.serial
        return s

    async def run(self, daemon: Any) -> None:
        self.control.attach(daemon)
        last_error = ""
        try:
            while not daemon.drained.is_set():
                settings = self._wanted(daemon)
                if not settings.enabled:
                    await self._wait(daemon, lambda: self._wanted(daemon) != settings, 1.0)
                    continue
                port = self.port_override or settings.port
                baud = self.baud_override or settings.baud
                try:
                    ser = self._open(port, baud)
                except Exception as err:  # SerialException, OSError: no adapter plugged in yet
                    if str(err) != last_error:
                        log.warning("serial console %s: %s; retrying every %.0f s", port, err, settings.reopen_s)
                        last_error = str(err)
                    await self._wait(daemon, lambda: self._wanted(daemon) != settings, settings.reopen_s)
                    continue
                last_error = ""
                log.info("serial console on %s at %d baud", port, baud)
                try:
                    await self._session(daemon, ser, settings)
                finally:
                    self.opened.clear()
                    with contextlib.suppress(Exception):
                        ser.close()
        finally:
            self._writer.shutdown(wait=False)

    def _backoff(self, reply: dict[str, Any], settings: SerialRemoteConfig) -> float:
        """Seconds to pause after ``reply``: doubling per authentication failure in a row."""
        if reply.get("code") in AUTH_FAILURES:
            self.auth_failures_in_row += 1
            return float(min(settings.auth_backoff_s * 2 ** (self.auth_failures_in_row - 1), settings.auth_backoff_max_s))
        if reply.get("ok") and reply.get("cmd") in ("set", "get"):
            self.auth_failures_in_row = 0
        return 0.0

    @staticmethod
    def _open(port: str, baud: int) -> Any:
        import serial  # pyserial

        return serial.Serial(port, baud, timeout=0, write_timeout=2.0, exclusive=True)

    @staticmethod
    async def _wait(daemon: Any, changed: Any, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not daemon.drained.is_set() and not changed() and loop.time() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), min(0.5, max(0.0, end - loop.time())))

    async def _session(self, daemon: Any, ser: Any, settings: SerialRemoteConfig) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None | BaseException] = asyncio.Queue()
        splitter = LineSplitter(settings.max_line_bytes)
        fd = ser.fileno()

        def readable() -> None:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as err:  # unplugged
                loop.remove_reader(fd)
                lines.put_nowait(err)
                return
            for line in splitter.feed(data):
                lines.put_nowait(line)

        loop.add_reader(fd, readable)
        self.opened.set()
        try:
            while not daemon.drained.is_set():
                if self._wanted(daemon) != settings:
                    log.info("serial console settings changed; reopening")
                    return
                try:
                    item = await asyncio.wait_for(lines.get(), 0.5)
                except TimeoutError:
                    continue
                if isinstance(item, BaseException):
                    log.warning("serial console %s: %s; reopening", ser.port, item)
                    await self._wait(daemon, lambda: False, settings.reopen_s)
                    return
                if item is None:
                    reply = {"ok": False, "cmd": None, "code": "bad_request",
                             "error": f"line longer than remote.serial.max_line_bytes ({settings.max_line_bytes}); discarded"}
                else:
                    reply = await serve_line(self.control, item)
                self.lines_served += 1
                if not reply["ok"]:
                    log.info("serial console: %s: %s", reply.get("cmd") or "request", reply["error"])
                try:
                    await loop.run_in_executor(self._writer, ser.write, _encode(reply))
                except Exception as err:
                    log.warning("serial console: reply not written: %s", err)
                await asyncio.sleep(self._backoff(reply, self._wanted(daemon)))
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)
