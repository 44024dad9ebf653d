"""Query times of the search index at fleet scale (``docs/BENCHMARKS.md``, "Forensic search").

    nice -n 10 python -m tools.eval.search_scale [--rows 1000000 10000000] [--sqlite-rows 1000000]

Synthetic rows as in :mod:`tools.eval.search_bench`: half plate objects with random 7-character
texts (their deletion keys in ``plate_keys``), half face objects with random 128-D descriptors
(N(0, 0.05) per dimension: random pairs lie about 0.8 apart, like different people under dlib).
PostgreSQL: a real server of this machine's Debian package (:class:`edged_sim.pgserver.PgServer`),
its tables made by ``edged-search``'s own schema, filled with ``COPY ... FREEZE`` (foreign-key
triggers off during the load: the rows are consistent by construction), then analysed. SQLite: the
same rows through ``executemany``. The queries are the tool's own (:mod:`edged_platform.search.query`).

Face cells (:mod:`edged_platform.search.cells`): k-means on a 100,000-descriptor sample, every face
given its nearest cell before the load. Two recalls of the default probe: *planted* (50 queries,
each a stored descriptor plus noise 0.35 away, like another photo of the same person: is that face
in the top 5?) and *random* (20 random descriptors: how many of the exact scan's top 5 the probe
finds; random neighbours are all about as far, the worst case for any prefilter).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "edged-sim"))

LETTERS = np.frombuffer(b"ABCDEFGHJKLMNPRSTVWXY0123456789", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
CHUNK = 250_000
COLUMNS = "id, category, device, video, name, track, first_t, last_t, best_value, best_image, best_frame, plate, " \
          "face, face_cell"
SERVER = {"shared_buffers": "4GB", "maintenance_work_mem": "1GB", "work_mem": "64MB", "max_wal_size": "20GB",
          "wal_level": "minimal", "max_wal_senders": "0", "effective_cache_size": "12GB"}


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of ``v`` as an (n, width) uint8 matrix."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (v[:, None].astype(np.int64) // powers % 10 + 48).astype(np.uint8)


def _rows(prefix: bytes, parts: list[np.ndarray | bytes], n: int) -> bytes:
    """COPY text rows: constant byte strings and per-row uint8 matrices, side by side."""
    cols = [np.broadcast_to(np.frombuffer(p, np.uint8), (n, len(p))) if isinstance(p, bytes) else p
            for p in [prefix, *parts]]
    return np.concatenate(cols, axis=1).tobytes()


class Synthetic:
    """``n`` synthetic objects (ids 1..n): odd ids plates, even ids faces; reproducible from ``seed``."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.n = n
        self.plate_ids = np.arange(1, n + 1, 2, dtype=np.int64)
        self.face_ids = np.arange(2, n + 1, 2, dtype=np.int64)
        self.plates = LETTERS[rng.integers(0, len(LETTERS), (len(self.plate_ids), 7))]
        self.faces = (rng.standard_normal((len(self.face_ids), 128), dtype=np.float32) * 0.05).astype(np.float32)
        self.rng = rng
        self.centroids: np.ndarray | None = None
        self.cells = np.zeros(len(self.face_ids), np.int32)

    def make_cells(self, k: int) -> float:
        from edged_platform.search import cells

        t0 = time.perf_counter()
        self.centroids = cells.train(self.faces, k)
        self.cells = cells.nearest(self.faces, self.centroids)
        return time.perf_counter() - t0

    def plate_text(self, k: int) -> str:
        return self.plates[k].tobytes().decode()

    def copy_objects(self, write: Callable[[bytes], object]) -> None:
        """Every object as COPY text rows."""
        fixed = b"\t1\t0\t0\t1\ti\t0\t"
        for s in range(0, len(self.plate_ids), CHUNK):
            ids = self.plate_ids[s:s + CHUNK]
            n, d = len(ids), _digits(ids, 10)
            write(_rows(b"", [d, b"\tplate\trsu\tv\tt", d, fixed, self.plates[s:s + CHUNK], b"\t\\N\t\\N\n"], n))
        for s in range(0, len(self.face_ids), CHUNK):
            ids = self.face_ids[s:s + CHUNK]
            n, d = len(ids), _digits(ids, 10)
            raw = self.faces[s:s + CHUNK].view(np.uint8)
            hexed = np.stack([HEX[raw >> 4], HEX[raw & 15]], axis=2).reshape(n, -1)
            write(_rows(b"", [d, b"\tface\trsu\tv\tt", d, fixed, b"\\N\t\\\\x", hexed, b"\t",
                              _digits(self.cells[s:s + CHUNK], 6), b"\n"], n))

    def copy_plate_keys(self, write: Callable[[bytes], object]) -> None:
        """Every plate's deletion keys as COPY text rows (duplicates of one plate dropped)."""
        for s in range(0, len(self.plate_ids), CHUNK):
            plates, d = self.plates[s:s + CHUNK], _digits(self.plate_ids[s:s + CHUNK], 10)
            n = len(plates)
            write(_rows(b"", [plates, b"\t", d, b"\n"], n))
            for k in range(7):
                key = np.delete(plates, k, axis=1)
                dup = np.zeros(n, bool)  # deleting either of two equal neighbours gives the same key
                if k > 0:
                    dup = plates[:, k] == plates[:, k - 1]
                keep = ~dup
                write(_rows(b"", [key[keep], b"\t", d[keep], b"\n"], int(keep.sum())))

    def sqlite_rows(self):
        for k, i in enumerate(self.plate_ids):
            yield int(i), "plate", f"t{i}", self.plate_text(k), None, None
        for k, i in enumerate(self.face_ids):
            yield int(i), "face", f"t{i}", None, self.faces[k].tobytes(), int(self.cells[k])

    def planted(self, count: int, distance: float = 0.35) -> list[tuple[np.ndarray, int]]:
        """``count`` queries: a stored face moved ``distance`` away, with that face's object id."""
        out = []
        for k in self.rng.choice(len(self.face_ids), count, replace=False):
            noise = self.rng.standard_normal(128).astype(np.float32)
            out.append((self.faces[k] + noise * (distance / np.linalg.norm(noise)), int(self.face_ids[k])))
        return out

    def exact_top(self, q: np.ndarray, top: int = 5) -> set[int]:
        d = np.linalg.norm(self.faces - q, axis=1)
        return {int(self.face_ids[k]) for k in np.argpartition(d, top)[:top]}


def load_pg(db, data: Synthetic) -> float:
    """COPY ``data`` into an empty database index; returns seconds (load, analyse)."""
    t0 = time.perf_counter()
    conn = db.conn
    with conn.transaction():
        conn.execute("SET session_replication_role = replica")
        conn.execute("TRUNCATE objects, plate_keys, sightings, crops, face_cells")
        with conn.cursor().copy(f"COPY objects ({COLUMNS}) FROM STDIN WITH (FREEZE)") as copy:
            data.copy_objects(copy.write)
        with conn.cursor().copy("COPY plate_keys (key, object) FROM STDIN WITH (FREEZE)") as copy:
            data.copy_plate_keys(copy.write)
        assert data.centroids is not None
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO face_cells VALUES (%s, %s)",
                            [(k, c.tobytes()) for k, c in enumerate(data.centroids)])
        conn.execute("SELECT setval(pg_get_serial_sequence('objects', 'id'), %s)", (data.n,))
        conn.execute("SET session_replication_role = DEFAULT")
    conn.execute("VACUUM ANALYZE objects")
    conn.execute("VACUUM ANALYZE plate_keys")
    return time.perf_counter() - t0


def load_sqlite(db, data: Synthetic) -> float:
    from edged_platform.search.db import deletion_keys

    t0 = time.perf_counter()
    with db.transaction():
        db.executemany("INSERT INTO objects (id, category, device, video, name, track, first_t, last_t, best_value, "
                       "best_image, best_frame, plate, face, face_cell) "
                       "VALUES (?, ?, 'rsu', 'v', ?, 1, 0, 0, 1, 'i', 0, ?, ?, ?)", data.sqlite_rows())
        db.executemany("INSERT OR IGNORE INTO plate_keys VALUES (?, ?)",
                       ((key, int(i)) for k, i in enumerate(data.plate_ids)
                        for key in deletion_keys(data.plate_text(k))))
        assert data.centroids is not None
        db.executemany("INSERT INTO face_cells VALUES (?, ?)", [(k, c.tobytes()) for k, c in enumerate(data.centroids)])
    db.execute("ANALYZE")
    return time.perf_counter() - t0


def measure(db, data: Synthetic, repeat: int = 5) -> dict[str, float]:
    """Median seconds per query (after one warm-up) and the recalls of the face cells."""
    from edged_platform.search import cells
    from edged_platform.search.query import face_hits, plate_hits

    out: dict[str, float] = {}
    plates = [data.plate_text(k) for k in range(1, 1 + repeat)]
    typos = [p[:3] + ("Z" if p[3] != "Z" else "Y") + p[4:] for p in plates]
    randoms = [data.rng.standard_normal(128).astype(np.float32) * 0.05 for _ in range(20)]
    planted = data.planted(50)
    runs: dict[str, Callable[[int], object]] = {
        "plate exact": lambda k: plate_hits(db, plates[k], 0),
        "plate 1 edit": lambda k: plate_hits(db, typos[k], 1),
        "face top 5, exact": lambda k: face_hits(db, planted[k][0], 5, exact=True),
        "face top 5, cells": lambda k: face_hits(db, planted[k][0], 5),
    }
    for name, fn in runs.items():
        fn(0)
        times = []
        for k in range(repeat):
            t0 = time.perf_counter()
            fn(k)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    assert all(any(h.plate == p for h in plate_hits(db, t, 1)) for p, t in zip(plates, typos, strict=True))
    assert data.centroids is not None
    probe = cells.default_probe(len(data.centroids))
    out["cells"], out["probe"] = len(data.centroids), probe
    for factor in (1, 4):
        found = sum(any(h.hit == want for h in face_hits(db, q, 5, probe=probe * factor)) for q, want in planted)
        out[f"planted recall, probe x{factor}"] = found / len(planted)
    got = sum(len({h.hit for h in face_hits(db, q, 5)} & data.exact_top(q)) for q in randoms)
    out["random recall@5"] = got / (5 * len(randoms))
    return out


def run_pg(rows: list[int], folder: Path, cells_cap: int) -> dict[int, dict[str, float]]:
    from edged_platform.search import cells
    from edged_platform.search.db import connect
    from edged_sim.pgserver import PgServer

    server = PgServer(folder / "pg")
    server.start()
    results: dict[int, dict[str, float]] = {}
    try:
        import psycopg

        with psycopg.connect(server.url, autocommit=True) as conn:
            for key, value in SERVER.items():
                conn.execute(f"ALTER SYSTEM SET {key} = '{value}'")
        server.stop()
        server.start()
        for n in rows:
            url = server.new_database(f"scale_{n}")
            data = Synthetic(n)
            k = min(cells.default_cells(len(data.face_ids)), cells_cap)
            t_cells = data.make_cells(k)
            db = connect(url)
            t_load = load_pg(db, data)
            size = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            result = measure(db, data)
            result.update({"load s": t_load, "cells s": t_cells, "size GB": size / 1e9})
            results[n] = result
            print(f"postgresql {n}: {_fmt(result)}", flush=True)
            db.close()
            del data
            server._run("dropdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", f"scale_{n}")
    finally:
        server.remove()
    return results


def run_sqlite(rows: list[int], folder: Path, cells_cap: int) -> dict[int, dict[str, float]]:
    from edged_platform.search import cells
    from edged_platform.search.db import connect

    results = {}
    for n in rows:
        data = Synthetic(n)
        t_cells = data.make_cells(min(cells.default_cells(len(data.face_ids)), cells_cap))
        path = folder / f"scale-{n}.sqlite"
        db = connect(path)
        t_load = load_sqlite(db, data)
        result = measure(db, data)
        result.update({"load s": t_load, "cells s": t_cells, "size GB": path.stat().st_size / 1e9})
        results[n] = result
        print(f"sqlite {n}: {_fmt(result)}", flush=True)
        db.close()
        path.unlink()
    return results


def _fmt(r: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in r.items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.eval.search_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000], help="PostgreSQL sizes")
    p.add_argument("--sqlite-rows", type=int, nargs="*", default=[1_000_000], help="SQLite sizes")
    p.add_argument("--cells-cap", type=int, default=1024, help="at most this many face cells")
    p.add_argument("--folder", type=Path, help="where the databases go (default: a temporary folder)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the temporary server and files are removed
    print(f"load: {os.getloadavg()}; cores: {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        run_sqlite(args.sqlite_rows, Path(tmp), args.cells_cap)
        run_pg(args.rows, Path(tmp), args.cells_cap)
    print(f"load: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
