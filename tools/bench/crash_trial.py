"""Crash trials: SIGKILL an outbox writer at random moments and check what survived.

Each trial starts a child process that opens the outbox and loops: enqueue a message (sometimes a
batch, sometimes a 200 kB image), and now and then take a batch, ack it. After each call returns
the child reports it on its stdout pipe (``E <id>`` stored, ``A <id>`` acked). The parent kills
the child with SIGKILL after a random delay, then reopens the outbox and checks:

* ``PRAGMA integrity_check`` is ``ok`` and every stored payload decodes as an envelope;
* every id reported ``E`` is still stored or was handed to ``ack`` (``P``: delivered; the kill may
  fall between the ack's commit and its report);
* no id reported ``A`` is still stored;
* nothing is stored that the child did not try to store.

Trials share one outbox file, so later trials start from whatever earlier kills left behind.
SIGKILL tests process crashes; power loss is covered by ``synchronous=full`` (fsync per commit),
which this tool does not simulate.

    python -m tools.bench.crash_trial --trials 200 [--dir DIR] [--seed 1] [--bench]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edged.link.wire import WireError, decode

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrialReport:
    trials: int = 0
    kills: int = 0
    reported_stored: int = 0
    reported_acked: int = 0
    lost: list[str] = field(default_factory=list)
    resurrected: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    integrity_failures: list[str] = field(default_factory=list)
    kill_delays_ms: list[float] = field(default_factory=list)
    killed_mid_enqueue: int = 0
    """Trials whose last report was an enqueue started but not reported complete."""
    killed_mid_ack: int = 0
    """Trials whose last report was an ack started but not reported complete."""

    @property
    def ok(self) -> bool:
        return not (self.lost or self.resurrected or self.unknown or self.corrupt or self.integrity_failures)


def child(path: Path, seed: int) -> None:
    """The writer: enqueue/ack forever, reporting each completed call on stdout."""
    from edged.link import wire
    from edged.link.outbox import Outbox

    rng = random.Random(seed)
    ob = Outbox(path, budget_bytes=1 << 33)
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    n = 0
    while True:
        r = rng.random()
        if r < 0.6:
            prio = rng.choice(["immediate", "normal", "cached", "sensitive"])
            dest, kind = ("func.face", "sensitive") if prio == "sensitive" else ("ops", "package")
            size = 200_000 if rng.random() < 0.05 else rng.randint(10, 2000)
            e = wire.make(kind, dest, prio, rng.randbytes(size), video_id=f"V{seed}", image_id=f"I{n}")
            n += 1
            print(f"T {e.id}", file=out, flush=True)  # about to try
            if ob.enqueue(e):
                print(f"E {e.id}", file=out, flush=True)
        elif r < 0.8:
            envs = [wire.make("event", "ops", "normal", rng.randbytes(rng.randint(10, 500)), video_id=f"V{seed}")
                    for _ in range(rng.randint(2, 20))]
            out.write("".join(f"T {e.id}\n" for e in envs))
            out.flush()
            results = ob.enqueue_many(envs)
            out.write("".join(f"E {e.id}\n" for e, res in zip(envs, results) if res))
            out.flush()
        else:
            dest = rng.choice(["ops", "func.face"])
            batch = ob.next_batch(dest, rng.randint(1, 30), cached_limit=rng.randint(0, 5))
            if batch:
                out.write("".join(f"P {p.id}\n" for p in batch))  # about to ack: may be gone after a kill
                out.flush()
                ob.ack([p.id for p in batch])
                out.write("".join(f"A {p.id}\n" for p in batch))
                out.flush()


def run_trials(trials: int, folder: Path, seed: int, max_delay_s: float = 0.6, log: bool = True) -> TrialReport:
    """Run ``trials`` kill-and-check rounds on ``folder/outbox.sqlite``."""
    from edged.link.outbox import Outbox

    rng = random.Random(seed)
    path = folder / "outbox.sqlite"
    rep = TrialReport()
    tried: set[str] = set()
    stored: set[str] = set()
    acked: set[str] = set()
    ack_tried: set[str] = set()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for t in range(trials):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.bench.crash_trial", "--child", str(path), "--seed", str(seed * 100_000 + t)],
            stdout=subprocess.PIPE, cwd=ROOT, env=env,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        if ready.strip() != b"READY":
            proc.kill()
            proc.wait()
            raise RuntimeError(f"trial {t}: child did not start: {ready!r}")
        delay = rng.uniform(0.005, max_delay_s)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rep.kills += 1
        rep.kill_delays_ms.append(delay * 1000)
        lines = proc.stdout.read().decode().splitlines()
        open_calls = {"T": set(), "P": set()}  # type: dict[str, set[str]]
        for line in lines:
            tag, _, msg_id = line.partition(" ")
            if tag in open_calls:
                open_calls[tag].add(msg_id)
            elif tag == "E":
                open_calls["T"].discard(msg_id)
            elif tag == "A":
                open_calls["P"].discard(msg_id)
        # an enqueue_many reports only its stored ids, so judge by the last line only
        last = lines[-1].split(" ")[0] if lines else ""
        rep.killed_mid_enqueue += last == "T"
        rep.killed_mid_ack += last == "P"
        for line in lines:
            tag, _, msg_id = line.partition(" ")
            if tag == "T":
                tried.add(msg_id)
            elif tag == "E":
                stored.add(msg_id)
                rep.reported_stored += 1
            elif tag == "P":
                ack_tried.add(msg_id)
            elif tag == "A":
                acked.add(msg_id)
                rep.reported_acked += 1
        proc.stdout.close()
        # check
        ob = Outbox(path, budget_bytes=1 << 33)
        check = ob.integrity_check()
        if check != "ok":
            rep.integrity_failures.append(f"trial {t}: {check}")
        present = set()
        for (msg_id, payload) in ob.db.execute("SELECT id, payload FROM messages"):
            present.add(msg_id)
            try:
                if decode(payload).id != msg_id:
                    rep.corrupt.append(msg_id)
            except WireError as err:
                rep.corrupt.append(f"{msg_id}: {err}")
        ob.close()
        rep.lost += sorted(stored - present - ack_tried - set(rep.lost))
        rep.resurrected += sorted((acked & present) - set(rep.resurrected))
        rep.unknown += sorted(present - tried - set(rep.unknown))
        rep.trials += 1
        if log and (t + 1) % 20 == 0:
            print(f"  {t + 1}/{trials} trials: stored {len(stored)}, acked {len(acked)}, "
                  f"in outbox {len(present)}, problems: {0 if rep.ok else 'YES'}", flush=True)
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.crash_trial", description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--dir", type=Path, help="folder for the outbox (default: a fresh temporary one)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-delay", type=float, default=0.6, help="longest time (s) before the kill")
    ap.add_argument("--bench", action="store_true", help="write the result to docs/BENCHMARKS.md")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.seed)
        return 0
    folder = args.dir or Path(tempfile.mkdtemp(prefix="edged-crash-"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rep = run_trials(args.trials, folder, args.seed, args.max_delay)
    wall = time.perf_counter() - t0
    summary = (
        f"{rep.trials} SIGKILL trials in {wall:.0f} s: {rep.reported_stored} enqueues and {rep.reported_acked} acks "
        f"reported complete before the kills; lost {len(rep.lost)}, acked-but-present {len(rep.resurrected)}, "
        f"unknown {len(rep.unknown)}, corrupt payloads {len(rep.corrupt)}, integrity failures "
        f"{len(rep.integrity_failures)}; {rep.killed_mid_enqueue} kills fell inside an enqueue call and "
        f"{rep.killed_mid_ack} inside an ack call"
    )
    print(summary)
    for name in ("lost", "resurrected", "unknown", "corrupt", "integrity_failures"):
        items = getattr(rep, name)
        if items:
            print(f"{name}: {items[:10]}")
    if args.bench:
        from tools.bench.doc import git_revision, machine_line, write_section

        write_section("outbox-crash", "\n".join([
            "## Outbox crash safety (SIGKILL)",
            "",
            f"Command: `nice -n 10 python -m tools.bench.crash_trial --trials {args.trials} --seed {args.seed} --bench`  ",
            f"Machine: {machine_line()}, git {git_revision()}",
            "",
            f"- {summary}.",
            f"- Kill moments uniform in [5, {args.max_delay * 1000:.0f}] ms after the writer opened the outbox "
            "(mixed single enqueues, 20-message batches, 200 kB images, acks); all trials share one file.",
            f"- Result: {'PASS' if rep.ok else 'FAIL'} (every enqueue reported complete is still stored or was "
            "handed to ack; every ack reported complete is final; nothing unknown appears; every payload decodes; "
            "`PRAGMA integrity_check` ok after each kill). `synchronous=full`.",
        ]))
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
