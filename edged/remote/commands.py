"""Remote commands, independent of the transport: ``get``, ``set``, ``status``, ``stats``.

A request is a JSON object::

    {"cmd": "set", "id": "r-17", "version": 8, "config": {"camera": {"fps": 5}}, "mode": "merge"}
    {"cmd": "get", "id": 3, "path": "camera"}            # path is optional
    {"cmd": "status"}   {"cmd": "stats"}

In the default ``remote.auth.mode = "signed"`` a ``set`` (and a ``get`` on the serial console)
must come signed by a trusted operator key (:mod:`edged.remote.auth`); what it may change is
declared per key in :mod:`edged.remote.policy`.

The reply always carries ``ok``, ``cmd`` (when known) and the request's ``id`` (when it had a
usable one); a failed request has ``error`` (one sentence naming what is wrong) and ``code``
(``bad_request``, ``unknown_command``, ``invalid_config``, ``stale_version``, ``version_step``,
``forbidden``, ``unsigned``, ``bad_signature``, ``unknown_key``, ``wrong_device``, ``expired``,
``stopping``, ``apply_failed``, ``persist_failed``, ``internal``). Refusals are counted by code
(``refused`` in ``status`` and ``stats``).

``set`` deep-merges ``config`` onto the running config (``mode: "replace"`` takes it as the whole
config over the defaults instead), validates the result fully, writes it to a temporary file,
applies it to the daemon (which rolls itself back on failure) and only then commits the file, so
the record on disk is always the last config that ran. ``version`` must be larger than the applied
one, by at most ``remote.auth.max_version_step``. Secrets are never echoed; sending
``"<redacted>"`` back for a secret keeps its value, and any other value for a secret is refused.

No reply depends on a secret's value: error sentences never quote text from the request. They name
a config key only by the part of its path that the config schema (or, for ``get``, the redacted
config) knows, and say what was expected; a quoted value in a config section's own message becomes
``<value>``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi

from edged.config import Config, ConfigError, from_dict, load, to_dict
from edged.core.keys import KeyFileError
from edged.core.lograte import BoundedLog
from edged.core.validation import problem
from edged.remote.auth import (
    AUTH_FAILURES,
    AuthError,
    TrustedKey,
    Verified,
    load_trusted_keys,
    verify_request,
)
from edged.remote.policy import PolicyError, Role, check_change
from edged.remote.redact import REDACTED, keep_redacted, redact, secret_paths
from edged.remote.store import (
    AppliedRecord,
    ConfigStore,
    StartupConfig,
    StoreError,
    file_sha256,
)
from edged.runtime.seams import DaemonView

log = logging.getLogger("edged.remote")

REFUSALS = (*AUTH_FAILURES, "stale_version", "version_step", "forbidden")
"""Reply codes counted as refusals (``refused`` in ``status`` and ``stats``)."""

MAX_VERSION = 2**53
"""Versions stay exact in JSON numbers of every client (JavaScript doubles included)."""


class CommandError(Exception):
    """A request that cannot be served; ``code`` classifies it, the message says what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cmd: Literal["get", "set", "status", "stats"]
    id: (Annotated[str, msgspec.Meta(max_length=128)]
         | Annotated[int, msgspec.Meta(ge=-MAX_VERSION, le=MAX_VERSION)] | None) = None
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)] | None = None
    config: dict[str, Any] | None = None
    mode: Literal["merge", "replace"] = "merge"
    path: Annotated[str, msgspec.Meta(max_length=256)] | None = None


@dataclass(frozen=True)
class Access:
    """What a transport demands of a ``set``."""

    require_version: bool = True
    """MQTT: the fleet manager owns version numbers. Console, unsigned mode: a missing version means
    "next" (a signed set always names its version)."""
    reads_need_auth: bool = False
    """Serial: anyone with a cable can type, so ``get`` must be signed and ``status`` is reduced to
    health. On MQTT the broker's ACL decides who may read (``docs/SECURITY.md``)."""


MQTT_ACCESS = Access(require_version=True, reads_need_auth=False)
SERIAL_ACCESS = Access(require_version=False, reads_need_auth=True)


REQUEST_FIELDS = {
    "cmd": "one of get, set, status, stats",
    "id": "a string of at most 128 characters or an integer within +-2**53",
    "version": f"an integer from 1 to {MAX_VERSION}",
    "config": "an object of config keys",
    "mode": "merge or replace",
    "path": "a dotted config key path of at most 256 characters",
}
"""What each field of a request must be (error replies say this instead of quoting the field)."""


def _request_error(err: msgspec.ValidationError) -> str:
    """``request error at <field>: expected ...``, naming only a field a request may have."""
    name = problem(err).path
    if name not in REQUEST_FIELDS:
        return f"request error: unknown field (a request has {', '.join(REQUEST_FIELDS)}, and signed)"
    return f"request error at {name}: expected {REQUEST_FIELDS[name]}"


_PATH_TOKEN = re.compile(r"(?P<dot>\.?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d{1,9})\]")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _unwrap(t: Any) -> Any:
    """The struct or list inside an optional type (``X | None``)."""
    if isinstance(t, mi.UnionType):
        inner = [u for u in t.types if not isinstance(u, mi.NoneType)]
        return inner[0] if len(inner) == 1 else t
    return t


def known_path(path: str) -> tuple[str, Any]:
    """The longest start of a config key path (``a.b[0].c``) that the config schema has, and its type."""
    node: Any = mi.type_info(Config)
    known, pos = "", 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            break
        if m.group("name") is not None:
            if bool(m.group("dot")) != bool(known) or not isinstance(node, mi.StructType):
                break
            field = next((f for f in node.fields if f.name == m.group("name")), None)
            if field is None:
                break
            known, node = (f"{known}.{field.name}" if known else field.name), _unwrap(field.type)
        else:
            if not isinstance(node, mi.ListType):
                break
            known, node = f"{known}[{int(m.group('index'))}]", _unwrap(node.item_type)
        pos = m.end()
    return known, node


def unknown_key_under(value: Any, node: Any = None, known: str = "") -> str | None:
    """The config key path under which ``value`` (a config tree) has a key the schema lacks, or
    ``None``; ``"(root)"`` for an unknown section. Walks only as deep as the schema goes."""
    node = mi.type_info(Config) if node is None else node
    if isinstance(node, mi.StructType) and isinstance(value, dict):
        fields = {f.name: f.type for f in node.fields}
        for key, item in value.items():
            if key not in fields:
                return known or "(root)"
            found = unknown_key_under(item, _unwrap(fields[key]), f"{known}.{key}" if known else key)
            if found is not None:
                return found
    elif isinstance(node, mi.ListType) and isinstance(value, list):
        for i, item in enumerate(value):
            found = unknown_key_under(item, _unwrap(node.item_type), f"{known}[{i}]")
            if found is not None:
                return found
    return None


_CONFIG_ERROR = re.compile(r"config error at (?P<path>\S*): (?P<what>.*)", re.DOTALL)


def config_error(text: str) -> str:
    """A config validation message fit for a reply: the key path cut to what the schema knows and
    no quoted value (a wrong value may be anything a caller typed)."""
    m = _CONFIG_ERROR.match(text)
    if m is None:
        return "config error: the config is not valid"
    path, what = m.group("path").removeprefix("(root)").removesuffix("[...]"), m.group("what")
    known, node = known_path(path)
    where = known or "(root)"
    if known != path or what.startswith("unknown key"):
        return f"config error at {where}: contains an unknown key"
    if what.startswith("invalid enum value"):
        choices = getattr(node, "values", None)
        allowed = f" ({', '.join(map(str, choices))})" if choices else ""
        return f"config error at {where}: not one of the allowed values{allowed}"
    return f"config error at {where}: {_QUOTED.sub('<value>', what)}"


def _claims_request(claims: dict[str, Any], rid: str | int | None) -> dict[str, Any]:
    """The request the signed claims describe (``device`` and ``expires`` were checked already)."""
    request = {k: v for k, v in claims.items() if k not in ("device", "expires")}
    if rid is not None:
        request["id"] = rid
    return request


def _usable_id(request: Any) -> str | int | None:
    """The request's ``id`` when a reply may echo it (a short string or an exact integer), else ``None``."""
    rid = request.get("id") if isinstance(request, dict) else None
    if isinstance(rid, str) and len(rid) <= 128:
        return rid
    if isinstance(rid, int) and not isinstance(rid, bool) and abs(rid) <= MAX_VERSION:
        return rid
    return None


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` laid over it: objects merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _lookup(tree: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of the (redacted) config; the error names only what was found."""
    node: Any = tree
    found: list[str] = []
    for part in path.split("."):
        if not isinstance(node, dict):
            raise CommandError("bad_request", f"no config key there: {'.'.join(found)} is a value, not a section")
        if part not in node:
            where = ".".join(found) if found else "the config"
            raise CommandError("bad_request", f"no config key there: {where} has no key by that name")
        found.append(part)
        node = node[part]
    return node


class FpsMeter:
    """Processed frames per second over roughly the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def update(self, processed: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.samples.append((now, processed))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        t0, p0 = self.samples[0]
        return round((processed - p0) / (now - t0), 2) if now > t0 else 0.0


class RemoteControl:
    """Serves requests against the running daemon; one instance shared by every transport."""

    def __init__(
        self,
        store: ConfigStore,
        version: int = 0,
        base_sha256: str = "",
        applied_at: float | None = None,
        source: str = "file",
        trusted: dict[str, TrustedKey] | None = None,
    ) -> None:
        self.store = store
        self.trusted = trusted
        """Key id -> trusted operator/admin key; ``None``: loaded from the config on :meth:`attach`."""
        self.refused: Counter[str] = Counter()
        self._refusal_log = BoundedLog(log)
        """A flood of refusals logs one line per code and minute, with counts."""
        self.version = version
        self.base_sha256 = base_sha256
        self.applied_at = applied_at
        self.source = source
        self.target: DaemonView | None = None
        self.last_error: str | None = None
        self.started = time.monotonic()
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._fps = FpsMeter()

    @classmethod
    def from_startup(cls, startup: StartupConfig) -> RemoteControl:
        """The handler for the startup config; :class:`KeyFileError` when a trusted key does not load."""
        auth = startup.config.remote.auth
        trusted = load_trusted_keys(auth.operator_keys, auth.admin_keys)
        return cls(startup.store, startup.version, startup.base_sha256, startup.applied_at, startup.source, trusted)

    # -------------------------------------------------------------------------------- plumbing
    def attach(self, target: DaemonView) -> None:
        """Serve requests against ``target`` (idempotent; every service calls it in ``run``)."""
        first = self.target is None
        self.target = target
        auth = target.config.remote.auth
        if self.trusted is None:
            try:
                self.trusted = load_trusted_keys(auth.operator_keys, auth.admin_keys)
            except KeyFileError as err:
                log.error("remote.auth: %s; no remote command will be accepted", err)
                self.trusted = {}
        if first and auth.mode == "unsigned":
            log.warning("remote.auth.mode is unsigned: anyone who reaches the MQTT topics or the serial port may "
                        "change this device's config (for local tests only)")
        elif first and not self.trusted:
            log.info("remote.auth: no trusted operator keys; remote config changes are refused")

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every event (config applied/rejected/rolled back); returns
        a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    @staticmethod
    def scrub(text: str) -> str:
        """``text`` with every quoted echo of a request (``'...'``, ``"..."``) left out, whatever it
        says: nothing is compared with a secret, as hiding only what matched one would tell a guesser
        that the guess was right (for the console's parse errors, which quote what was typed)."""
        return _QUOTED.sub("(not echoed)", text)

    def emit(self, event: dict[str, Any]) -> None:
        event = {"time": round(time.time(), 3), **event}
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener must not break a command
                log.exception("event listener failed")

    def _target(self) -> DaemonView:
        if self.target is None:
            raise CommandError("stopping", "daemon is not running yet")
        return self.target

    def _config(self) -> Config:
        return self._target().config

    def state(self) -> dict[str, Any]:
        """The reported config (secrets redacted) and its version: the ``config/state`` document."""
        return {
            "version": self.version,
            "config": redact(to_dict(self._config())),
            "applied_at": self.applied_at,
            "source": self.source,
        }

    # ------------------------------------------------------------------------------- entry points
    def parse(self, payload: bytes | str | None, implied_cmd: str | None = None) -> dict[str, Any]:
        """Decode a JSON request. ``implied_cmd`` comes from the transport (an MQTT topic); an empty
        payload is then an empty request. Raises :class:`CommandError`."""
        if payload is None or payload in (b"", ""):
            if implied_cmd is None:
                raise CommandError("bad_request", "empty request")
            return {"cmd": implied_cmd}
        if isinstance(payload, (bytes, bytearray, memoryview)):
            try:
                payload = bytes(payload).decode("utf-8")
            except UnicodeDecodeError as err:
                raise CommandError("bad_request", f"request is not valid UTF-8 (byte {err.start})") from None
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as err:
            raise CommandError("bad_request", f"request is not valid JSON: {err.msg} at line {err.lineno} column "
                                              f"{err.colno}") from None
        except RecursionError:
            raise CommandError("bad_request", "request is nested too deeply") from None
        if not isinstance(data, dict):
            raise CommandError("bad_request", f"request must be a JSON object, got {type(data).__name__}")
        if implied_cmd is not None:
            cmd = data.setdefault("cmd", implied_cmd)
            if cmd != implied_cmd:
                raise CommandError("bad_request", f"request cmd does not match the topic ({implied_cmd})")
        return data

    async def handle_payload(
        self, payload: bytes | str | None, source: str, access: Access, implied_cmd: str | None = None
    ) -> dict[str, Any]:
        """Parse and serve one request; always returns a reply, never raises."""
        try:
            request = self.parse(payload, implied_cmd)
        except CommandError as err:
            return {"ok": False, "cmd": implied_cmd, "code": err.code, "error": str(err)}
        return await self.handle(request, source, access)

    async def handle(self, request: dict[str, Any], source: str, access: Access) -> dict[str, Any]:
        """Serve one decoded request; always returns a reply, never raises."""
        rid = _usable_id(request)
        cmd = request.get("cmd") if isinstance(request, dict) else None
        reply: dict[str, Any] = {"ok": False, "cmd": cmd if cmd in ("get", "set", "status", "stats") else None}
        if rid is not None:
            reply["id"] = rid
        try:
            if "cmd" not in request:
                raise CommandError("bad_request", "request error at cmd: missing (one of get, set, status, stats)")
            if cmd not in ("get", "set", "status", "stats"):
                raise CommandError("unknown_command", "unknown command; use get, set, status or stats")
            verified = self._authenticate(request) if "signed" in request else None
            if verified is not None:
                request = _claims_request(verified.claims, rid)
            role = self._role(cmd, verified, access)
            try:
                req = msgspec.convert(request, Request, strict=True)
            except msgspec.ValidationError as err:
                raise CommandError("bad_request", _request_error(err)) from None
            reply.update(await self._serve(req, source, access, role, signed=verified is not None))
            reply["ok"] = True
        except (CommandError, AuthError) as err:
            reply["code"] = err.code
            reply["error"] = str(err)
            if err.code in REFUSALS:
                self._count_refusal(err.code, source, reply["error"])
        except Exception as err:  # a bug must not take the console or the broker connection down
            log.exception("remote %s from %s failed", cmd, source)
            reply["code"] = "internal"
            reply["error"] = f"internal error ({type(err).__name__}); the device log has the details"
        return reply

    async def _serve(
        self, req: Request, source: str, access: Access, role: Role | None, signed: bool
    ) -> dict[str, Any]:
        """The body of the reply to a checked request."""
        if req.cmd == "get":
            return self._get(req)
        if req.cmd == "status":
            return self.status(full=role is not None or not access.reads_need_auth)
        if req.cmd == "stats":
            return self.stats()
        assert role is not None
        return await self._set(req, source, access, role, signed=signed)

    # --------------------------------------------------------------------------- authentication
    def _authenticate(self, request: dict[str, Any]) -> Verified:
        config = self._config()
        return verify_request(request, self.trusted or {}, config.device.id, config.remote.auth.max_validity_s)

    def _role(self, cmd: str, verified: Verified | None, access: Access) -> Role | None:
        """Who is asking: the signer's role, ``admin`` in unsigned mode, ``None`` for an unsigned read.

        Raises :class:`AuthError` for a command that needs a signature and has none."""
        if verified is not None:
            return "admin" if verified.role == "admin" else "operator"
        if self._config().remote.auth.mode == "unsigned":
            return "admin"
        if cmd == "set":
            raise AuthError("unsigned", "set must be signed by a trusted operator key (make one with: edged "
                                        "sign-config)")
        if cmd == "get" and access.reads_need_auth:
            raise AuthError("unsigned", "get on the console must be signed (edged sign-config --get); status works "
                                        "unsigned")
        return None

    def _count_refusal(self, code: str, source: str, why: str) -> None:
        self.refused[code] += 1
        n = self.refused[code]
        self._refusal_log.warning(code, f"remote request from {source} refused ({code}): {why}")
        if code in AUTH_FAILURES:
            self.emit({"event": "command_refused", "code": code, "source": source, "count": n})

    # -------------------------------------------------------------------------------- commands
    def _get(self, req: Request) -> dict[str, Any]:
        body = self.state()
        if req.path:
            body["path"] = req.path
            body["config"] = _lookup(body["config"], req.path)
        return body

    def status(self, full: bool = True) -> dict[str, Any]:
        """Health and version; ``full=False`` (an unsigned console) leaves out where the config
        came from and the last error, which may name hosts or files."""
        config = self._config()
        target = self._target()
        stopping = target.stop.event.is_set()
        heartbeat = target.heartbeat
        stats = target.stats
        body: dict[str, Any] = {
            "state": "stopping" if stopping else ("running" if heartbeat else "starting"),
            "device": config.device.id,
            "version": self.version,
            "applied_at": self.applied_at,
            "source": self.source,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "heartbeat_age_s": round(time.monotonic() - heartbeat, 3) if heartbeat else None,
            "camera": config.camera.backend,
            "last_error": self.last_error,
        }
        body["frames"] = {"captured": stats.captured, "processed": stats.processed, "dropped": stats.dropped}
        body["refused"] = dict(self.refused)
        if not full:
            for key in ("source", "camera", "last_error"):
                body.pop(key)
        return body

    def stats(self) -> dict[str, Any]:
        """fps, per-stage latency, queue depths and drops: the ``stats`` document."""
        target = self._target()
        stats = target.stats
        body: dict[str, Any] = {"uptime_s": round(time.monotonic() - self.started, 1), "refused": dict(self.refused)}
        body["links"] = target.link_status()
        body.update(
            fps=self._fps.update(stats.processed),
            captured=stats.captured,
            processed=stats.processed,
            dropped=stats.dropped,
            stage_ms=stats.stage_summary(),
        )
        body.update(target.device_stats())
        body["queues"] = {name: {"depth": n, "capacity": cap} for name, (n, cap) in target.queue_depths().items()}
        return body

    async def _set(self, req: Request, source: str, access: Access, role: Role, signed: bool) -> dict[str, Any]:
        if req.config is None:
            raise CommandError("bad_request", "set needs a config object (the keys to change)")
        if (access.require_version or signed) and req.version is None:
            raise CommandError("bad_request", "request error at version: missing (an integer larger than the applied "
                                              "version)")
        # Shielded: a transport that goes away mid-apply must not cancel the daemon's apply or
        # leave the record half-done; the set finishes, and its event still goes out.
        task = asyncio.ensure_future(self._apply(req, source, role))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved even if no one waits
        return await asyncio.shield(task)

    async def _apply(self, req: Request, source: str, role: Role) -> dict[str, Any]:
        target = self.target
        assert target is not None
        async with self._lock:
            if target.stop.event.is_set():
                raise CommandError("stopping", "daemon is stopping; config not applied")
            current = self._config()
            version = req.version if req.version is not None else self.version + 1
            if version <= self.version:
                self._reject(version, source, f"version {version} is not larger than the applied version "
                                              f"{self.version}")
                raise CommandError("stale_version", f"version {version} is not larger than the applied version "
                                                    f"{self.version}")
            step = current.remote.auth.max_version_step
            if version - self.version > step:
                why = (f"version {version} is more than remote.auth.max_version_step ({step}) ahead of the applied "
                       f"version {self.version}")
                self._reject(version, source, why)
                raise CommandError("version_step", why)
            new = self._validated(current, req, version, source, role)
            return await self._commit_change(current, new, version, source, self.base_sha256,
                                             f"remote config version {version} from {source}")

    async def reload_file(self, path: Path) -> dict[str, Any]:
        """Read the config file again and apply it as a local change (no version step, no policy: the
        file is the device's own config), through the same validate/apply/commit/rollback as a ``set``.

        As at start (:func:`edged.remote.store.load_startup_config`), a file unchanged since a remote
        change was applied over it leaves that change running. Raises :class:`CommandError` with one
        line naming the file (and the key) when the file is not applied."""
        target = self.target
        if target is None:
            raise CommandError("stopping", "daemon is not running yet")
        async with self._lock:
            if target.stop.event.is_set():
                raise CommandError("stopping", "daemon is stopping; config file not reloaded")
            current = self._config()
            label = f"config file {path}"
            try:
                base = await asyncio.to_thread(file_sha256, path)
                new = await asyncio.to_thread(load, path)
            except OSError as err:
                self._reject(self.version, "file", f"cannot read {path}: {err.strerror or err}; keeping the running "
                                                   "config", label)
                raise CommandError("invalid_config", f"cannot read {path}: {err.strerror or err}") from None
            except ConfigError as err:
                why = str(err) if str(path) in str(err) else f"{path}: {err}"
                self._reject(self.version, "file", f"{why}; keeping the running config", label=None)
                raise CommandError("invalid_config", why) from None
            if base == self.base_sha256 and self.source != "file":
                log.info("%s unchanged since remote config version %d was applied over it; keeping that version",
                         path, self.version)
                return {"version": self.version, "changed": []}
            auth = new.remote.auth
            try:
                trusted = load_trusted_keys(auth.operator_keys, auth.admin_keys)
            except KeyFileError as err:
                self._reject(self.version, "file", f"{path}: remote.auth: {err}; keeping the running config",
                             label=None)
                raise CommandError("invalid_config", f"{path}: remote.auth: {err}") from None
            # Nothing is written: the file is its own record, and the next start reads it by the same
            # rule (a remote record applies only over the very file it was applied over).
            body = await self._commit_change(current, new, self.version, "file", base, label, persist=False)
            self.base_sha256, self.trusted = base, trusted
            return body

    async def _commit_change(
        self, current: Config, new: Config, version: int, source: str, base_sha256: str, label: str,
        persist: bool = True,
    ) -> dict[str, Any]:
        """Write the record to a temporary file, apply ``new`` to the daemon (which rolls itself back
        on failure), then commit the record; any failure leaves ``current`` running and raises."""
        target = self.target
        assert target is not None
        temp: Path | None = None
        if persist:
            try:
                temp = self.store.prepare(AppliedRecord(version, to_dict(new), time.time(), source, base_sha256))
            except StoreError as err:
                self._reject(version, source, str(err), label)
                raise CommandError("persist_failed", f"config not applied: {err}") from None
        timeout = current.remote.apply_timeout_s
        try:
            changed = await target.apply_config(new, up_timeout_s=timeout)
        except Exception as err:  # ApplyError, or anything the daemon let through
            if temp is not None:
                self.store.discard(temp)
            why = str(err) or type(err).__name__
            self.last_error = f"version {version}: {why}"
            log.warning("%s rolled back: %s", label, why)
            self.emit({"event": "config_rolled_back", "version": version, "restored_version": self.version,
                       "source": source, "reason": why})
            raise CommandError("apply_failed", f"config version {version} failed to apply and was rolled back to "
                                               f"version {self.version}: {why}") from None
        if temp is not None:
            try:
                self.store.commit(temp)
            except StoreError as err:
                why = f"applied but could not be persisted ({err})"
                try:
                    await target.apply_config(current, up_timeout_s=timeout)
                    why += "; rolled back"
                except Exception as back:
                    why += f"; rollback failed too: {back}"
                self.last_error = f"version {version}: {why}"
                self.emit({"event": "config_rolled_back", "version": version, "restored_version": self.version,
                           "source": source, "reason": why})
                raise CommandError("persist_failed", f"config version {version} {why}") from None
        self.version, self.applied_at, self.source = version, time.time(), source
        self.last_error = None
        names = sorted(changed)
        log.info("%s applied; changed: %s", label, ", ".join(names) or "nothing")
        self.emit({"event": "config_applied", "version": version, "source": source, "changed": names})
        return {"version": version, "changed": names}

    def _validated(self, current: Config, req: Request, version: int, source: str, role: Role) -> Config:
        assert req.config is not None
        now = to_dict(current)
        patch = keep_redacted(req.config, now)
        merged = deep_merge(now, patch) if req.mode == "merge" else patch
        unknown = unknown_key_under(merged)
        if unknown is not None:
            why = f"config error at {unknown}: contains an unknown key"
            self._reject(version, source, why)
            raise CommandError("invalid_config", why)
        try:
            new = from_dict(merged)
        except (ConfigError, ValueError, TypeError) as err:  # ValueError, TypeError: a section's own check
            why = config_error(str(err))
            self._reject(version, source, why)
            raise CommandError("invalid_config", why) from None
        except RecursionError:
            self._reject(version, source, "config error: nested too deeply")
            raise CommandError("invalid_config", "config error: nested too deeply") from None
        secrets = secret_paths(req.config)
        if secrets:
            why = (f"config error at {known_path(secrets[0])[0] or '(root)'}: cannot be changed remotely (edit the "
                   f"local config file; {REDACTED!r} keeps a secret as it is)")
            self._reject(version, source, why)
            raise CommandError("forbidden", why)
        try:
            check_change(current, new, role)
        except PolicyError as err:
            self._reject(version, source, str(err))
            raise CommandError("forbidden", str(err)) from None
        return new

    def _reject(self, version: int, source: str, why: str, label: str | None = "") -> None:
        """Log (``label`` names what was rejected; ``None``: ``why`` says it all) and emit the rejection."""
        if label is None:
            log.error("%s", why)
        else:
            log.warning("%s rejected: %s", label or f"remote config version {version} from {source}", why)
        self.emit({"event": "config_rejected", "version": version, "source": source, "reason": why})
