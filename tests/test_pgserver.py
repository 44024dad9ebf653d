"""The PostgreSQL test rig: a real server that keeps its data across a stop and start on the same port."""

from __future__ import annotations

import psycopg

from edged_sim.pgserver import PgServer


def test_data_survives_a_restart_on_the_same_port(pg_server: PgServer, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE kept (n integer)")
        conn.execute("INSERT INTO kept VALUES (41), (1)")
    port = pg_server.port
    pg_server.stop()
    try:
        psycopg.connect(pg_url, connect_timeout=2).close()
        raise AssertionError("the stopped server still accepted a connection")
    except psycopg.OperationalError:
        pass
    pg_server.start()
    assert pg_server.port == port
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT sum(n) FROM kept").fetchone()
    assert row is not None and row[0] == 42
