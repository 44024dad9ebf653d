"""Record a real device's traffic for the fleet bench: the whole daemon on a real street clip, paced.

    python -m tools.bench.fleet_trace [--frames 300] [--size 1280x720] [--out DIR]
    python -m tools.bench.fleet --replay DIR/data/outbox.sqlite ...

``edged run`` (default real-world models, sealing for face and plate, the SQLite outbox on, uplink
off) reads the first ``--frames`` frames of ``vtest.avi`` (OpenCV's sample street clip, from the
real-data cache, :mod:`tools.eval.real_data`) resized to ``--size``, paced at the clip's 10 fps as a
camera delivers them. With the uplink off every message the device made stays in its outbox with
its creation time and size: that is the trace ``tools.bench.fleet --replay`` plays back.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.bench.vs_deface import ROOT, cut, daemon_config, edged_command, make_keys, parse_size


def record(out: Path, frames: int, size: tuple[int, int]) -> Path:
    """Run the daemon paced on the clip; the outbox file it left."""
    from tools.eval import real_data

    out.mkdir(parents=True, exist_ok=True)
    make_keys(out / "keys")
    clip = out / "street.avi"
    cut(real_data.videos()["vtest.avi"], frames, clip, size)
    config = daemon_config(clip, 10.0, out / "keys", out / "data", out / "run")
    (out / "daemon.toml").write_text(config.replace("realtime = false", "realtime = true"))
    subprocess.run([*edged_command(), "run", "--config", str(out / "daemon.toml"), "--frames", str(frames)],
                   check=True, cwd=ROOT)
    return out / "data" / "outbox.sqlite"


def summary(outbox: Path) -> str:
    """Messages by destination and kind: count, mean size, over how many seconds."""
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT dest, kind, count(*), avg(size) FROM messages GROUP BY dest, kind").fetchall()
        first, last = conn.execute("SELECT min(created), max(created) FROM messages").fetchone()
    span = (last or 0.0) - (first or 0.0)
    parts = [f"{dest} {kind}: {n} x {size / 1000:.1f} KB" for dest, kind, n, size in rows]
    return f"{outbox}: over {span:.1f} s, " + "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300, help="frames of the clip (10 a second)")
    ap.add_argument("--size", type=parse_size, default=(1280, 720), help="frame size WxH (default 1280x720)")
    ap.add_argument("--out", type=Path, help="folder for the run (default: a new temporary folder)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="edged-fleet-trace-"))
    try:
        outbox = record(out, args.frames, args.size)
    except (subprocess.CalledProcessError, OSError, KeyError) as err:
        print(f"fleet_trace: {err}", file=sys.stderr)
        return 1
    print(summary(outbox))
    return 0


if __name__ == "__main__":
    sys.exit(main())
