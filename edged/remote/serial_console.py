"""Maintenance console on a serial line: one request per line, one JSON reply per line.

Requests a technician can type (blank lines are ignored; ``\\n``, ``\\r\\n`` and ``\\r`` all end a
line, so any terminal program works)::

    help
    status                   stats
    {"cmd": "set", "signed": {...}}   (a signed request from ``edged sign-config``, pasted as one line)
    {"cmd": "get", "signed": {...}}   (``edged sign-config --get``)

Anyone with a cable can type, so with ``remote.auth.mode = "signed"`` (the default) ``set`` and
``get`` must be signed JSON lines; ``status`` (health and version only) and ``stats`` are open.
After each request that fails authentication (in signed mode: each refused line that nobody signed,
a mistyped word included) the console pauses ``remote.serial.auth_backoff_s``, doubling per pause
in a row up to ``auth_backoff_max_s``; a signed request that succeeds resets it. Lines that come
during a pause are not answered one by one: open words wait for its end, validly signed requests
are served at once, the rest are discarded and counted, with one ``backoff`` notice per pause. At
most :data:`QUEUE_LINES` lines wait to be served; a burst beyond that drops its oldest lines
(counted), so a flood of lines neither grows memory nor locks out a genuine signed command.

With ``mode = "unsigned"`` (local tests) a technician may also type::

    get                      get camera          get camera.fps
    set output.jpeg_quality=80 select.classes=["person","car"] version=12
    set {"camera": {"segment_s": 30}}

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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edged.config import SerialRemoteConfig
from edged.core.lograte import BoundedLog
from edged.remote.auth import AUTH_FAILURES, verify_request
from edged.remote.commands import SERIAL_ACCESS, CommandError, RemoteControl
from edged.runtime.seams import DaemonView

log = logging.getLogger("edged.remote.serial")

HELP = (
    "commands: status | stats | help | a signed JSON request from 'edged sign-config' (set, get); "
    "unsigned mode also: get [key.path] | set key.path=value ... [version=N]; "
    "one request per line, one JSON reply per line"
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
            raise CommandError("bad_request", f"value of {key} is not valid JSON: {err.msg} (column "
                                              f"{err.pos + 1})") from None
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
    scalar: Any = json.loads(raw) if _SCALAR.fullmatch(raw) else raw
    return scalar, raw, end


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
            raise CommandError("bad_request", f"set {{...}} is not valid JSON: {err.msg} (column "
                                              f"{err.pos + 1})") from None
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
        raise CommandError("bad_request", "set needs at least one key=value (e.g. set output.jpeg_quality=80)")
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
    raise CommandError("unknown_command", f"unknown command {word[:32]!r}; type help (commands: get, set, status, "
                                          "stats)")


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


QUEUE_LINES = 64
"""Lines waiting to be served; a burst beyond this drops its oldest lines (counted)."""
OPEN_WORDS = frozenset({b"status", b"stats", b"help"})
"""Console words served to anyone, also during a pause."""
REFUSED_UNSIGNED = ("bad_request", "unknown_command")
"""Reply codes that, in signed mode, refuse a line nobody signed: they pause the console like a
failed signature."""


class LineQueue:
    """Received lines with their arrival time, at most ``max_lines`` and ``max_bytes`` of them: a
    burst beyond that drops its oldest lines (counted in :attr:`dropped`)."""

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines: deque[tuple[float, bytes | None]] = deque()
        self.size = 0
        self.dropped = 0
        self.peak = 0
        """Most lines waiting at once."""
        self.error: BaseException | None = None
        """Why the port stopped reading (unplugged)."""
        self.ready = asyncio.Event()

    def put(self, line: bytes | None, at: float) -> None:
        n = len(line) if line else 0
        while self.lines and (len(self.lines) >= self.max_lines or self.size + n > self.max_bytes):
            _, old = self.lines.popleft()
            self.size -= len(old) if old else 0
            self.dropped += 1
        self.lines.append((at, line))
        self.size += n
        self.peak = max(self.peak, len(self.lines))
        self.ready.set()

    def fail(self, err: BaseException) -> None:
        self.error = err
        self.ready.set()

    def pop(self) -> tuple[float, bytes | None] | None:
        """The oldest waiting line, or ``None`` when none waits."""
        if not self.lines:
            self.ready.clear()
            return None
        at, line = self.lines.popleft()
        self.size -= len(line) if line else 0
        return at, line

    async def wait(self, timeout: float) -> None:
        """Until a line (or an error) comes, at most ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), timeout)


class SerialConsoleService:
    """The serial console (a daemon :class:`~edged.runtime.seams.Service`); port and baud come from
    ``remote.serial`` of the running config unless given here.

    Back-off: a refused line (a failed signature; in signed mode also an unsigned or malformed line)
    opens a pause of ``auth_backoff_s``, doubling with each such pause in a row up to
    ``auth_backoff_max_s``. Lines that arrived before the pause ends are not served one by one:
    ``status``, ``stats`` and ``help`` (and, in unsigned mode, every unsigned line) wait for the end
    of the pause, a request with a valid signature is served at once, and everything else is
    discarded and counted, with one notice per pause. The time a burst costs is therefore one pause,
    never a pause per line."""

    name = "remote-serial"

    def __init__(self, control: RemoteControl, port: str | None = None, baud: int | None = None) -> None:
        self.control = control
        self.port_override = port
        self.baud_override = baud
        self.opened = asyncio.Event()
        """Set while the port is open (tests wait on it)."""
        self.lines_served = 0
        self.lines_discarded = 0
        """Lines that came during a pause and were not served."""
        self.lines_dropped = 0
        """Lines dropped because :data:`QUEUE_LINES` were already waiting."""
        self.queue_peak = 0
        self.auth_failures_in_row = 0
        self._quiet_until = 0.0
        self._noticed = True
        self._log = BoundedLog(log)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="serial-write")

    def _wanted(self, daemon: DaemonView) -> SerialRemoteConfig:
        s: SerialRemoteConfig = daemon.config.remote.serial
        return s

    async def run(self, daemon: DaemonView) -> None:
        self.control.attach(daemon)
        last_error = ""
        try:
            while not daemon.drained.is_set():
                settings = self._wanted(daemon)
                if not settings.enabled:
                    await self._wait(daemon, lambda s=settings: self._wanted(daemon) != s, 1.0)
                    continue
                port = self.port_override or settings.port
                baud = self.baud_override or settings.baud
                try:
                    ser = self._open(port, baud)
                except Exception as err:  # SerialException, OSError: no adapter plugged in yet
                    if str(err) != last_error:
                        log.warning("serial console %s: %s; retrying every %.0f s", port, err, settings.reopen_s)
                        last_error = str(err)
                    await self._wait(daemon, lambda s=settings: self._wanted(daemon) != s, settings.reopen_s)
                    continue
                last_error = ""
                log.info("serial console on %s at %d baud", port, baud)
                try:
                    await self._session(daemon, ser, settings)
                finally:
                    self.opened.clear()
                    with contextlib.suppress(Exception):
                        ser.close()
                    self._log.flush()
        finally:
            self._writer.shutdown(wait=False)

    def _backoff(self, reply: dict[str, Any], settings: SerialRemoteConfig, signed_mode: bool) -> float:
        """Seconds to pause after ``reply``: doubling per refusal in a row."""
        code = reply.get("code")
        if code in AUTH_FAILURES or (signed_mode and not reply.get("ok") and code in REFUSED_UNSIGNED):
            self.auth_failures_in_row += 1
            doubling = 2.0 ** min(self.auth_failures_in_row - 1, 64)
            return float(min(settings.auth_backoff_s * doubling, settings.auth_backoff_max_s))
        if reply.get("ok") and reply.get("cmd") in ("set", "get"):
            self.auth_failures_in_row = 0
        return 0.0

    @staticmethod
    def _open(port: str, baud: int) -> Any:
        import serial  # pyserial

        return serial.Serial(port, baud, timeout=0, write_timeout=2.0, exclusive=True)

    @staticmethod
    async def _wait(daemon: DaemonView, changed: Any, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while not daemon.drained.is_set() and not changed() and loop.time() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.drained.wait(), min(0.5, max(0.0, end - loop.time())))

    async def _session(self, daemon: DaemonView, ser: Any, settings: SerialRemoteConfig) -> None:
        loop = asyncio.get_running_loop()
        lines = LineQueue(QUEUE_LINES, max(4 * settings.max_line_bytes, 1 << 16))
        splitter = LineSplitter(settings.max_line_bytes)
        fd = ser.fileno()

        def readable() -> None:
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as err:  # unplugged
                loop.remove_reader(fd)
                lines.fail(err)
                return
            now = loop.time()
            for line in splitter.feed(data):
                lines.put(line, now)

        loop.add_reader(fd, readable)
        self.opened.set()
        try:
            while not daemon.drained.is_set():
                if self._wanted(daemon) != settings:
                    log.info("serial console settings changed; reopening")
                    return
                if lines.error is not None:
                    log.warning("serial console %s: %s; reopening", ser.port, lines.error)
                    await self._wait(daemon, lambda: False, settings.reopen_s)
                    return
                item = lines.pop()
                self._count_queue(lines)
                if item is None:
                    await lines.wait(0.5)
                    continue
                await self._line(daemon, ser, settings, *item)
        finally:
            self._count_queue(lines)
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)

    def _count_queue(self, lines: LineQueue) -> None:
        self.queue_peak = max(self.queue_peak, lines.peak)
        if lines.dropped:
            self.lines_dropped += lines.dropped
            self._log.warning("dropped", f"serial console: lines dropped: more than {QUEUE_LINES} were waiting")
            lines.dropped = 0

    async def _line(self, daemon: DaemonView, ser: Any, settings: SerialRemoteConfig, at: float,
                    item: bytes | None) -> None:
        """Serve one received line, or discard it when it came during a pause (class doc)."""
        loop = asyncio.get_running_loop()
        signed_mode = daemon.config.remote.auth.mode == "signed"
        if at < self._quiet_until:
            kind = self._kind(item)
            if kind == "signed":
                if not self._verifies(item, daemon):
                    await self._discard(ser)
                    return
            elif kind == "open" or not signed_mode:
                await self._wait(daemon, lambda: False, self._quiet_until - loop.time())
            else:
                await self._discard(ser)
                return
        if item is None:
            reply = {"ok": False, "cmd": None, "code": "bad_request",
                     "error": f"line longer than remote.serial.max_line_bytes ({settings.max_line_bytes}); discarded"}
        else:
            reply = await serve_line(self.control, item)
        self.lines_served += 1
        if not reply["ok"]:
            log.info("serial console: %s: %s", reply.get("cmd") or "request", reply["error"])
        await self._write(ser, reply)
        pause = self._backoff(reply, self._wanted(daemon), signed_mode)
        if pause > 0:
            self._quiet_until = loop.time() + pause
            self._noticed = False

    @staticmethod
    def _kind(item: bytes | None) -> str:
        """``signed`` (a JSON request with a signature), ``open`` (status, stats, help) or ``other``."""
        text = (item or b"").strip()
        if text.startswith(b"{"):
            try:
                request = json.loads(text)
            except (ValueError, RecursionError):
                return "other"
            if not isinstance(request, dict):
                return "other"
            if "signed" in request:
                return "signed"
            return "open" if request.get("cmd") in ("status", "stats") else "other"
        return "open" if text.lower() in OPEN_WORDS else "other"

    def _verifies(self, item: bytes | None, daemon: DaemonView) -> bool:
        """Whether ``item`` carries a valid signature by a trusted key for this device."""
        try:
            request = json.loads(item or b"")
            auth = daemon.config.remote.auth
            verify_request(request, self.control.trusted or {}, daemon.config.device.id, auth.max_validity_s)
        except Exception:  # AuthError, or claims too odd to check: not a valid signature either way
            return False
        return True

    async def _discard(self, ser: Any) -> None:
        self.lines_discarded += 1
        self._log.warning("discarded", "serial console: lines discarded: they came during the pause after a refused "
                                       "request")
        if not self._noticed:
            self._noticed = True
            left = max(0.0, self._quiet_until - asyncio.get_running_loop().time())
            await self._write(ser, {
                "ok": False, "cmd": None, "code": "backoff",
                "error": f"the console pauses {left:.1f} s more after a refused request; until then only status, "
                         "stats, help and validly signed requests are served, other lines are discarded",
            })

    async def _write(self, ser: Any, reply: dict[str, Any]) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, ser.write, _encode(reply))
        except Exception as err:
            self._log.warning("write", f"serial console: reply not written: {err}")
