"""The package stage (a worker thread) asks the uplink for a JPEG quality while the event loop
records PUBACKs: the stage must read a plain value, never iterate the loop's rate samples."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edged.config import Config
from edged.link.destinations import OPS
from edged.link.outbox import Outbox
from edged.link.uplink import Uplink


def test_suggested_quality_from_another_thread_while_acks_arrive(tmp_path: Path) -> None:
    cfg = Config()
    cfg.uplink.rate_window_s = 3600.0  # keep every sample: the deque only grows while the reader runs
    uplink = Uplink.from_config(cfg, OPS, Outbox(tmp_path / "o.db"))
    errors: list[BaseException] = []
    seen: set[int] = set()
    done = threading.Event()

    def stage_thread() -> None:
        try:
            while not done.is_set():
                seen.add(uplink.suggested_quality())
        except BaseException as err:  # "deque mutated during iteration" before the fix
            errors.append(err)

    reader = threading.Thread(target=stage_thread)
    reader.start()
    try:
        now = time.monotonic()
        uplink.meter.busy(True, now)
        for i in range(5_000):  # what _publish does on each PUBACK, here on the test's thread
            t = now + i * 0.01
            uplink.meter.add(200, t)
            uplink._measure_quality(t)
    finally:
        done.set()
        reader.join()
    assert not errors, errors
    assert all(cfg.uplink.quality_min <= q <= cfg.uplink.quality_max for q in seen)
    assert uplink.suggested_quality() < cfg.uplink.quality_max, "the measured (slow) rate lowered the quality"


def test_a_cancelled_session_still_records_its_acks_before_run_returns(tmp_path: Path) -> None:
    """SIGTERM mid-flush: the ack thread must finish before the outbox may close (it used to ack on
    a closed database, and those messages went out twice after restart)."""
    import asyncio

    from edged.link import wire

    outbox = Outbox(tmp_path / "o.db")
    envs = [wire.make("package", "ops", "normal", b"x" * 100, video_id="V") for _ in range(50)]
    outbox.enqueue_many(envs)
    uplink = Uplink.from_config(Config(), OPS, outbox)

    async def scenario() -> None:
        uplink._acked = outbox.next_batch("ops", 50, cached_limit=50)
        flush = asyncio.ensure_future(uplink._flush_acks())
        await asyncio.sleep(0)  # the ack thread is scheduled ...
        flush.cancel()  # ... and the session is cancelled, as on SIGTERM
        await uplink.wait_acks()

    asyncio.run(scenario())
    assert outbox.pending("ops")[0] == 0 and uplink.acked == 50
    outbox.close()
    assert outbox.ack([envs[0].id]) == 0 and "after the outbox was closed" in outbox._c.last_error
