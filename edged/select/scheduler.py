"""Send policy for upload packages (SPEC S4.3): immediate first, cached oldest first at a set rate.

Two pieces, both pure (the caller passes the time; nothing here sleeps or does I/O):

:class:`CachedRate`
    The rate policy alone: how many cached items may go now (one per ``cached_period_s``, at most
    ``cached_in_flight`` unconfirmed). Use it on top of the persistent outbox, which already keeps the
    order (immediate first, cached oldest first) and the leases::

        rate = CachedRate.from_config(config.select)
        batch = outbox.next_batch("ops", limit, cached_limit=rate.allowance(now))
        rate.sent(sum(p.prio == "cached" for p in batch), now)
        # on PUBACK:  outbox.ack([p.id]);      rate.done()  if p.prio == "cached"
        # on failure: outbox.release([p.id]);  rate.done()  if p.prio == "cached"
        # wake up again at rate.next_time(now)

:class:`UploadQueue`
    A standalone in-memory queue of keys with the same policy plus the bookkeeping the outbox would
    do: an item leaves only when :meth:`UploadQueue.confirmed` is called; a failed or timed-out send
    goes back to its place (a failed immediate item joins the cached queue in age order).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from edged.config import SelectConfig


class CachedRate:
    """One cached send per ``period_s``, at most ``max_in_flight`` awaiting confirmation."""

    def __init__(self, period_s: float, max_in_flight: int = 1) -> None:
        if period_s <= 0 or max_in_flight < 1:
            raise ValueError(f"need period_s > 0 and max_in_flight >= 1, got {period_s}, {max_in_flight}")
        self.period_s = period_s
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._next_slot = -math.inf

    @classmethod
    def from_config(cls, config: SelectConfig) -> CachedRate:
        return cls(config.cached_period_s, config.cached_in_flight)

    def allowance(self, now: float) -> int:
        """Cached items that may be sent now: 1 when a slot is open and the in-flight limit allows."""
        return 1 if now >= self._next_slot and self.in_flight < self.max_in_flight else 0

    def sent(self, n: int, now: float) -> None:
        """``n`` cached items were handed to the link at ``now`` (each uses a slot)."""
        if n <= 0:
            return
        self.in_flight += n
        self._next_slot = now + self.period_s * n

    def done(self, n: int = 1) -> None:
        """``n`` cached sends ended (confirmed or failed)."""
        self.in_flight = max(0, self.in_flight - n)

    def next_time(self, now: float) -> float:
        """When the next slot opens (``now`` if open; it also needs the in-flight limit to allow)."""
        return max(now, self._next_slot)


@dataclass(slots=True)
class _Item:
    key: Hashable
    seq: int
    immediate: bool
    sent_at: float | None = None


class UploadQueue:
    """Keys waiting to be sent: ``add`` then, in a loop, ``due(now)`` -> send -> ``confirmed``/``failed``."""

    def __init__(self, period_s: float, max_in_flight: int = 1, ack_timeout_s: float = 30.0) -> None:
        self.rate = CachedRate(period_s, max_in_flight)
        self.ack_timeout_s = ack_timeout_s
        self._items: dict[Hashable, _Item] = {}
        self._seq = 0

    @classmethod
    def from_config(cls, config: SelectConfig) -> UploadQueue:
        return cls(config.cached_period_s, config.cached_in_flight, config.ack_timeout_s)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def add(self, key: Hashable, immediate: bool) -> None:
        """Queue ``key`` (later adds are younger). Adding a key that is already queued is an error."""
        if key in self._items:
            raise ValueError(f"upload {key!r} is already queued")
        self._items[key] = _Item(key, self._seq, immediate)
        self._seq += 1

    def extend(self, keys: Iterable[tuple[Hashable, bool]]) -> None:
        """Queue several ``(key, immediate)`` in age order (e.g. the outbox's pending items at start)."""
        for key, immediate in keys:
            self.add(key, immediate)

    def due(self, now: float) -> list[Hashable]:
        """Keys to send now: every waiting immediate item (oldest first), then the oldest waiting
        cached item if the rate allows. Returned keys count as in flight until confirmed or failed;
        one unconfirmed past ``ack_timeout_s`` is failed first."""
        for item in list(self._items.values()):
            if item.sent_at is not None and now - item.sent_at >= self.ack_timeout_s:
                self.failed(item.key)
        waiting = sorted((i for i in self._items.values() if i.sent_at is None), key=lambda i: i.seq)
        out = [i for i in waiting if i.immediate]
        cached = [i for i in waiting if not i.immediate]
        if cached and self.rate.allowance(now):
            out.append(cached[0])
            self.rate.sent(1, now)
        for item in out:
            item.sent_at = now
        return [i.key for i in out]

    def confirmed(self, key: Hashable) -> None:
        """The receiver acknowledged ``key``: it leaves the queue (unknown keys are ignored)."""
        item = self._items.pop(key, None)
        if item is not None and not item.immediate and item.sent_at is not None:
            self.rate.done()

    def failed(self, key: Hashable) -> None:
        """The send of ``key`` failed: it waits again at its place; an immediate item becomes cached."""
        item = self._items.get(key)
        if item is None or item.sent_at is None:
            return
        if not item.immediate:
            self.rate.done()
        item.immediate = False
        item.sent_at = None

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` without sending (e.g. the outbox evicted it)."""
        item = self._items.pop(key, None)
        if item is not None and not item.immediate and item.sent_at is not None:
            self.rate.done()

    def pending(self) -> tuple[int, int]:
        """``(immediate, cached)`` items not yet confirmed."""
        imm = sum(1 for i in self._items.values() if i.immediate)
        return imm, len(self._items) - imm

    def backlog_s(self) -> float:
        """Seconds the cached items need to drain at the configured rate."""
        return self.pending()[1] * self.rate.period_s

    def next_time(self, now: float) -> float | None:
        """When ``due`` may next return something (None: nothing waiting or everything in flight)."""
        waiting = [i for i in self._items.values() if i.sent_at is None]
        if any(i.immediate for i in waiting):
            return now
        times = [i.sent_at + self.ack_timeout_s for i in self._items.values() if i.sent_at is not None]
        if waiting:
            times.append(self.rate.next_time(now) if self.rate.in_flight < self.rate.max_in_flight else math.inf)
        finite = [t for t in times if math.isfinite(t)]
        return min(finite) if finite else None
