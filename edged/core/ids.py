"""Time-ordered unique ids (ULIDs) for images, segments and messages."""

from __future__ import annotations

import secrets
import threading

from ulid import ULID


class MonotonicUlid:
    """ULIDs that sort in creation order even within one millisecond (and if the clock steps back)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, timestamp: float) -> str:
        """A new ULID for ``timestamp`` (seconds since the epoch), greater than every earlier one."""
        ms = int(timestamp * 1000)
        with self._lock:
            if ms <= self._last_ms:
                ms, rand = self._last_ms, self._last_rand + 1
                if rand >= 1 << 80:
                    ms, rand = ms + 1, secrets.randbits(79)
            else:
                rand = secrets.randbits(79)  # leaves headroom for increments within the millisecond
            self._last_ms, self._last_rand = ms, rand
        return str(ULID.from_bytes(ms.to_bytes(6, "big") + rand.to_bytes(10, "big")))
