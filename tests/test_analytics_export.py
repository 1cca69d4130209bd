"""Parquet exports read back by pyarrow and by DuckDB equal the tables row for row."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from psycopg.types.json import Jsonb

from agentstream.analytics.export import export_table, uuid_strings
from agentstream.analytics.export_schema import TABLES
from agentstream.analytics.rollup import run_rollup
from tests.analytics_data import add_agent, add_call, add_execution, add_session

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

D1 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
D2 = D1 + timedelta(hours=3)  # the next UTC date


def populate(conninfo: str) -> None:
    with psycopg.connect(conninfo) as conn:
        s1 = add_session(conn, "ünïcode-user", D1)
        s2 = add_session(conn, "bob", D2)
        a1 = add_agent(conn, s1, "planner", D1)
        add_execution(conn, s1, a1, D1)
        add_execution(conn, s1, a1, D2, status="running", duration_ms=None)
        add_call(
            conn, s1, a1, "gpt-4o", D1, prompt='line one\nline "two",\ttab', response=None,
            details={"cache_read_tokens": 40, "time_to_first_token_ms": 120},
        )  # fmt: skip
        add_call(conn, s2, None, "in-house", D2, success=False, prompt="∑ emoji 🚀")
        for i, (sid, at) in enumerate(((s1, D1), (s2, D2))):
            conn.execute(
                "INSERT INTO events (id, event_type, trace_id, session_id, user_id, "
                "timestamp_ms, payload, created_at) VALUES (%s, 'tool_call', %s, %s, 'u', %s, "
                "%s, %s)",
                (
                    uuid.uuid4(),
                    uuid.uuid4(),
                    sid,
                    1_700_000_000_000 + i,
                    Jsonb({"nested": {"a": [1, 2.5, None]}, "s": "x\ny"}),
                    at,
                ),
            )
        conn.execute(
            "INSERT INTO documents (id, session_id, agent_id, title, content, source_url, "
            "metadata, created_at) VALUES (%s, %s, %s, 'Doc', 'body\nmore', NULL, %s, %s)",
            (uuid.uuid4(), s1, a1, Jsonb({}), D1),
        )


def db_rows(conninfo: str, table: str) -> list[dict[str, Any]]:
    """The table as the export schema represents it: UUIDs and JSON as text."""
    spec = TABLES[table]
    cols = ", ".join(
        f'"{n}"::text AS "{n}"' if t in ("uuid", "json") else f'"{n}"' for n, t in spec.columns
    )
    with psycopg.connect(conninfo) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as c:
        rows = c.execute(f"SELECT {cols} FROM {spec.relation}").fetchall()
    return sorted(rows, key=repr)


def normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "date"}
        for k, v in row.items():
            if isinstance(v, datetime):
                row[k] = v.astimezone(UTC)
            if isinstance(v, Decimal):
                row[k] = v.normalize()
        out.append(row)
    return sorted(out, key=repr)


@pytest.mark.parametrize("table", list(TABLES))
def test_export_reads_back_equal_in_pyarrow_and_duckdb(
    database: str, tmp_path: Path, table: str
) -> None:
    populate(database)
    if table.endswith("_rollup"):
        run_rollup(database)
    result = export_table(database, table, tmp_path, full=True, progress=False)
    expected = normal(db_rows(database, table))
    assert result.rows == len(expected) > 0

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet"))
    assert all(f.startswith(f"{table}/date=2026-03-0") for f in files)
    assert pq.read_schema(tmp_path / files[0]) == TABLES[table].schema
    assert pq.ParquetFile(tmp_path / files[0]).metadata.row_group(0).column(0).compression == (
        "ZSTD"
    )

    dataset = ds.dataset(tmp_path / table, format="parquet", partitioning="hive")
    assert normal(dataset.to_table().to_pylist()) == expected

    con = duckdb.connect()
    rel = con.sql(
        f"SELECT * FROM read_parquet('{tmp_path / table}/*/*.parquet', hive_partitioning=true)"
    )
    got = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    assert normal(got) == expected


def test_rerun_rewrites_only_its_partitions_and_state_drives_incremental(
    database: str, tmp_path: Path
) -> None:
    populate(database)
    first = export_table(database, "llm_interactions", tmp_path, full=True, progress=False)
    assert first.partitions == ["2026-03-01", "2026-03-02"]
    d1 = tmp_path / "llm_interactions/date=2026-03-01/part-0.parquet"
    d2 = tmp_path / "llm_interactions/date=2026-03-02/part-0.parquet"
    before = d1.stat().st_mtime_ns, d1.read_bytes()

    with psycopg.connect(database) as conn:
        (sid,) = conn.execute("SELECT id FROM sessions WHERE user_id = 'bob'").fetchone()  # type: ignore[misc]
        add_call(conn, sid, None, "gpt-4o", D2 + timedelta(minutes=5))
    # No --since: starts at the last date written before (2026-03-02), not at the start.
    again = export_table(database, "llm_interactions", tmp_path, progress=False)
    assert again.since == date(2026, 3, 2) and again.partitions == ["2026-03-02"]
    assert (d1.stat().st_mtime_ns, d1.read_bytes()) == before
    assert pq.read_table(d2).num_rows == 2

    # The same range again writes the same rows: idempotent.
    third = export_table(
        database,
        "llm_interactions",
        tmp_path,
        since=date(2026, 3, 2),
        until=date(2026, 3, 3),
        progress=False,
    )
    assert third.rows == 2 and pq.read_table(d2).num_rows == 2
    assert not list((tmp_path / "llm_interactions").glob(".tmp-*"))


def test_uuid_strings_match_python() -> None:
    values = [uuid.uuid4() for _ in range(5)]
    arr = pa.array([v.bytes for v in values] + [None], type=pa.binary(16))
    assert uuid_strings(arr).to_pylist() == [str(v) for v in values] + [None]
    assert uuid_strings(arr.slice(2)).to_pylist() == [str(v) for v in values[2:]] + [None]


def test_an_export_does_not_import_pandas(database: str, tmp_path: Path) -> None:
    # pandas costs ~1 s to import and the export never uses it; pyarrow imports it behind
    # the scenes on the first scalar or numpy conversion, so this guards the code paths.
    populate(database)
    code = (
        "import sys; from pathlib import Path; "
        "from agentstream.analytics.export import export_table; "
        f"r = export_table({database!r}, 'llm_interactions', Path({str(tmp_path)!r}), "
        "full=True, progress=False); "
        "print(len(r.partitions), 'pandas' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
