"""The PostgreSQL backend: bulk inserts of Arrow tables (COPY in CSV) and reads back into pandas.

Needs a server: ``GRIDWATCH_TEST_PG`` (a role that may create databases), or the private local cluster the tests
start (tests/pgserver.py) when the PostgreSQL and PostGIS packages are installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks import Result, Target, benchmark
from benchmarks.common import measure
from gridwatch.audit import open_sealed

N_ROWS = 200_000


def _detections(n: int, seed: int = 7) -> pa.Table:
    """``n`` rows of ``fire_detections`` (every column type the narrow table has)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    return pa.table({
        "key": pa.array(rng.integers(0, 2**62, n)), "batch_id": pa.array(np.ones(n, dtype=np.int64)),
        "variant": pa.array(np.zeros(n, dtype=np.int16)), "satellite": pa.array((idx % 5).astype(np.int16)),
        "latitude": pa.array(rng.uniform(31.4, 36.4, n)), "longitude": pa.array(rng.uniform(110.4, 116.6, n)),
        "acq_time": pa.array(np.datetime64("2026-06-01T05:30") + (idx % 86_400).astype("timedelta64[s]")),
        "confidence": pa.array(rng.integers(0, 100, n).astype(np.int16)),
        "confidence_class": pa.array((idx % 3).astype(np.int16)), "brightness": pa.array(rng.uniform(300, 400, n)),
        "bright_t31": pa.array(rng.uniform(280, 300, n)), "frp": pa.array(rng.uniform(0, 50, n)),
        "scan": pa.array(np.full(n, 0.39)), "track": pa.array(np.full(n, 0.36)),
        "daynight": pa.array((idx % 2).astype(np.int16)), "fire_type": pa.array(np.zeros(n, dtype=np.int16)),
        "cell": pa.array(rng.integers(0x8831AA5A00000FF, 0x8831AA5AFFFFFFF, n)),
        "outcome": pa.array((idx % 5).astype(np.int16)), "in_no_burn_zone": pa.array(idx % 7 == 0),
        "incident_key": pa.array([None] * n, type=pa.int64()),
    })


def _server() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import pgserver

    url = pgserver.server_url()
    if not url:
        raise RuntimeError(pgserver.why_unavailable())
    return url


@benchmark
def postgres_insert_arrow_200k() -> Result:
    """200,000 detections into PostgreSQL with ``insert_arrow`` (pyarrow CSV through COPY), against psycopg's own
    row-by-row ``Copy.write_row`` of the same rows; DuckDB's ``insert_arrow`` and the reads back in the details."""
    _server()
    import pgserver

    data = _detections(N_ROWS)
    url = pgserver.create_database()
    try:
        with open_sealed(url) as store:
            def ours() -> int:
                store.execute("DELETE FROM fire_detections")
                return store.insert_arrow("fire_detections", data)

            mine = measure("postgres_insert_arrow_copy_csv", ours, repeats=3, items=N_ROWS)
            rows = [tuple(r.values()) for r in data.to_pylist()]
            names = ", ".join(data.column_names)

            def by_row() -> int:
                store.execute("DELETE FROM fire_detections")
                conn = store._cursor()
                with conn.cursor() as cur, cur.copy(f"COPY fire_detections ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)

            base = measure("psycopg_copy_write_row", by_row, repeats=3, items=N_ROWS)
            read_pg = measure("postgres_query_df_200k", lambda: store.query_df("SELECT * FROM fire_detections"),
                              repeats=3)
        with open_sealed(":memory:") as duck:
            def duck_insert() -> int:
                duck.execute("DELETE FROM fire_detections")
                return duck.insert_arrow("fire_detections", data)

            duck_in = measure("duckdb_insert_arrow_200k", duck_insert, repeats=3, items=N_ROWS)
            read_duck = measure("duckdb_query_df_200k", lambda: duck.query_df("SELECT * FROM fire_detections"),
                                repeats=3)
    finally:
        pgserver.drop_database(url)
    details = {"rows": N_ROWS, "duckdb_insert_arrow_seconds": round(duck_in.seconds, 3),
               "postgres_query_df_seconds": round(read_pg.seconds, 3),
               "duckdb_query_df_seconds": round(read_duck.seconds, 3)}
    return Result(mine, base, Target(max_ratio=1.0, note="COPY of pyarrow's CSV beats row-by-row COPY"),
                  unit="rows/s", details=details)
