"""Analytics benchmark: exports and rollups against references measured in the same run.

    .venv/bin/python bench/analytics.py [--rows 2000000] [--reuse] [--keep]

Generates ``--rows`` LLM interactions (plus sessions, agents, executions, change_log lines)
with server-side generate_series into a scratch database ``bench_analytics`` (dropped at the
end unless --keep; --reuse keeps an existing one of the right size), then measures:

- ``copy_binary_s``: ``COPY (SELECT * FROM llm_interactions) TO STDOUT (FORMAT binary)``
  read to the end by psycopg: the database's read limit (reference);
- ``pandas_s``: ``pandas.read_sql`` + ``to_parquet`` (zstd): the naive path (reference);
- ``export_s``: ``analytics.export.export_table`` of the whole table (Parquet, partitioned);
- ``pg_percentile_s``: PostgreSQL ``percentile_cont`` rollup, hour x model, 4 percentiles
  (reference);
- ``rollup_full_s``: ``run_rollup(full=True)``: facts rebuilt from the seed tables and all 12
  grouping sets (hour and day x all/model/agent/agent_type/user/session) recomputed;
- ``pg_grouping_sets_s`` (with --pg-grouping-sets): PostgreSQL computing the same 12
  grouping sets over the facts with percentile_cont: a like-for-like reference;
- ``rollup_incremental_s``: ``run_rollup()`` after 10k new LLM rows, 1k executions and their
  100 sessions and 200 agents, logged in change_log as the sink logs them;
- ``usage_details_share``: the share of LLM interactions with usage details (about half);
- ``export_rss_mb``: peak RSS of an export process over about half the rows and over all.

Prints one JSON line. Uses the server at AGENTSTREAM_DATABASE_URL (its database is replaced).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentstream.contract.settings import get_settings
from agentstream.migrations import apply_migrations
from bench._gen_analytics import END, generate

DB = "bench_analytics"

_CHILD = """
import json, resource, sys, time
from datetime import date
from pathlib import Path
from agentstream.analytics.export import export_table
import adbc_driver_manager, adbc_driver_postgresql  # imported before the clock, like psycopg
since = date.fromisoformat(sys.argv[3]) if sys.argv[3] != "-" else None
r = export_table(sys.argv[1], "llm_interactions", Path(sys.argv[2]), since=since,
                 full=since is None, progress=False)
print(json.dumps({"rows": r.rows, "seconds": r.seconds,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _export_child(conninfo: str, out: str, since: str | None) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, conninfo, out, since or "-"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reuse", action="store_true", help="reuse a database of this size")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", default=DB, help=f"the scratch database (default {DB})")
    parser.add_argument(
        "--ids",
        choices=("random", "uuid7"),
        default="random",
        help="ids of the LLM interactions and executions: random (md5, like uuid4; the "
        "default) or uuid7 (time-ordered, what the SDK gives a record)",
    )
    parser.add_argument("--skip-pandas", action="store_true", help="skip the ~50 s naive path")
    parser.add_argument(
        "--pg-grouping-sets",
        action="store_true",
        help="also time PostgreSQL computing all 12 grouping sets of the rollup (~20 s)",
    )
    args = parser.parse_args()

    base = get_settings().database_conninfo()
    admin = make_conninfo(base, dbname="postgres")
    db = args.database
    conninfo = make_conninfo(base, dbname=db)
    params = conninfo_to_dict(conninfo)
    uri = (
        f"postgresql://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
        f"{params.get('port', 5432)}/{db}"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
    count = 0
    if exists and args.reuse:
        with psycopg.connect(conninfo) as conn:
            count = conn.execute("SELECT count(*) FROM llm_interactions").fetchone()[0]  # type: ignore[index]
    gen_s = 0.0
    if count != args.rows:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} (FORCE)").format(sql.Identifier(db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        apply_migrations(conninfo)
        gen_s = _timed(lambda: generate(conninfo, args.rows, ids=args.ids))
    with psycopg.connect(conninfo) as conn:  # warm the cache the same way for everyone
        conn.execute("SELECT count(*) FROM llm_interactions").fetchone()
        table_mb = conn.execute(
            "SELECT pg_total_relation_size('llm_interactions') / 1e6"
        ).fetchone()[0]  # type: ignore[index]
        details_share = conn.execute(
            "SELECT (SELECT count(*) FROM agentstream.llm_usage)::float8 / count(*)"
            " FROM llm_interactions"
        ).fetchone()[0]  # type: ignore[index]

    from agentstream.analytics.rollup import run_rollup

    results: dict[str, object] = {
        "bench": "analytics",
        "rows": args.rows,
        "ids": args.ids,
        "usage_details_share": round(details_share, 3),
    }

    def copy_binary() -> None:
        query = "COPY (SELECT * FROM llm_interactions) TO STDOUT (FORMAT binary)"
        with psycopg.connect(conninfo) as conn, conn.cursor() as cur, cur.copy(query) as cp:
            for _block in cp:
                pass

    results["copy_binary_s"] = _timed(copy_binary)

    with tempfile.TemporaryDirectory(prefix="bench-export-") as out:
        full = _export_child(uri, out, None)
        results["export_s"] = full["seconds"]
        parquet_mb = sum(f.stat().st_size for f in Path(out).rglob("*.parquet")) / 1e6
    with tempfile.TemporaryDirectory(prefix="bench-export-") as out:
        half = _export_child(uri, out, "2026-10-17")  # the last ~15 of the 30 days
    results["export_rss_mb"] = {
        "rows": [int(half["rows"]), int(full["rows"])],
        "rss_mb": [round(half["rss_mb"]), round(full["rss_mb"])],
    }

    if not args.skip_pandas:
        import pandas as pd

        def naive() -> None:
            with psycopg.connect(conninfo) as conn, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas prefers SQLAlchemy; the naive user doesn't
                df = pd.read_sql("SELECT * FROM llm_interactions", conn)
            df.to_parquet(io.BytesIO(), compression="zstd")

        results["pandas_s"] = _timed(naive)

    def pg_percentile() -> None:
        with psycopg.connect(conninfo) as conn:
            conn.execute(
                "SELECT date_trunc('hour', created_at, 'UTC'), model, percentile_cont("
                "ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) "
                "FROM llm_interactions GROUP BY 1, 2"
            ).fetchall()

    results["pg_percentile_s"] = _timed(pg_percentile)
    results["rollup_full_s"] = _timed(lambda: run_rollup(conninfo, full=True))
    if args.pg_grouping_sets:  # over the facts the full rollup just built
        sets = ", ".join(
            f"({b}{d})"
            for b in ("hour", "day")
            for d in ("", ", model", ", agent_id", ", agent_type", ", user_id", ", session_id")
        )

        def pg_all_sets() -> None:
            with psycopg.connect(conninfo) as conn:
                conn.execute("SET work_mem = '256MB'")
                conn.execute(
                    "SELECT count(*), sum(cost_pico), max(latency_ms), avg(latency_ms), "
                    "percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP "
                    "(ORDER BY latency_ms) FROM (SELECT *, date_trunc('day', hour, 'UTC') AS day "
                    f"FROM analytics.llm_facts) f GROUP BY GROUPING SETS ({sets})"
                ).fetchall()

        results["pg_grouping_sets_s"] = _timed(pg_all_sets)
    generate(conninfo, 10_000, start=args.rows, ids=args.ids)
    inc = run_rollup(conninfo)
    results["rollup_incremental_s"] = inc.seconds
    results["rollup_incremental_changes"] = inc.changes

    r = results
    results["goals"] = {
        "export_vs_copy_ge_0.8": r["copy_binary_s"] / r["export_s"] >= 0.8,  # type: ignore[operator]
        "export_vs_pandas_ge_5": (r["pandas_s"] / r["export_s"] >= 5)  # type: ignore[operator]
        if "pandas_s" in r
        else None,
        "rollup_full_le_pg_percentile": r["rollup_full_s"] <= r["pg_percentile_s"],  # type: ignore[operator]
        "rollup_incremental_le_0.5s": r["rollup_incremental_s"] <= 0.5,  # type: ignore[operator]
    }
    results["ratios"] = {
        "export_speed_vs_copy": round(r["copy_binary_s"] / r["export_s"], 2),  # type: ignore[operator]
        "export_speed_vs_pandas": round(r["pandas_s"] / r["export_s"], 1)  # type: ignore[operator]
        if "pandas_s" in r
        else None,
        "rollup_full_vs_pg_percentile": round(r["rollup_full_s"] / r["pg_percentile_s"], 2),  # type: ignore[operator]
    }
    for k, v in list(results.items()):
        if isinstance(v, float):
            results[k] = round(v, 3)
    results.update(
        table_mb=round(table_mb),
        parquet_mb=round(parquet_mb),
        generate_s=round(gen_s, 1),
        data_end=END,
        machine=f"{platform.machine()} {os.cpu_count()} cores "
        f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB",
        date=datetime.now(UTC).date().isoformat(),
        bench_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    )
    if not args.keep:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} (FORCE)").format(sql.Identifier(db)))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
