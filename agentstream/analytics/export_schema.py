"""The stable Parquet schema of every exportable table, and the column each is partitioned by.

Types are chosen for every reader (pandas, pyarrow, DuckDB, Spark):

- UUID -> ``string`` in canonical 36-character form (not ``fixed_size_binary(16)``: DuckDB
  and Spark then read and join it as text with no conversion);
- timestamptz -> ``timestamp('us', tz='UTC')``;
- jsonb -> ``string`` holding the JSON text;
- numeric (money) -> ``decimal128`` with the column's scale, never float.

Partitions are by the UTC date of: ``created_at`` (sessions, agents, llm_interactions,
documents, and events: the time the row was written; ``timestamp_ms`` is the producer's
clock and stays a column), ``started_at`` (agent_executions), ``bucket`` (rollups).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["TABLES", "ExportTable"]

UUID = "uuid"
JSON = "json"
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class ExportTable:
    name: str  # the name on the command line and the folder under --out
    relation: str  # the qualified table name in PostgreSQL
    partition_by: str
    columns: tuple[tuple[str, pa.DataType | str], ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(
            [pa.field(name, pa.string() if isinstance(t, str) else t) for name, t in self.columns]
        )

    @property
    def uuid_columns(self) -> list[str]:
        return [name for name, t in self.columns if t == UUID]


_S = pa.string()
_ROLLUP_KEYS: tuple[tuple[str, pa.DataType | str], ...] = (
    ("granularity", _S),
    ("dimension", _S),
    ("bucket", TS),
    ("key", _S),
)

TABLES: dict[str, ExportTable] = {
    t.name: t
    for t in (
        ExportTable(
            "sessions",
            "public.sessions",
            "created_at",
            (
                ("id", UUID),
                ("user_id", _S),
                ("created_at", TS),
                ("updated_at", TS),
                ("metadata", JSON),
            ),
        ),
        ExportTable(
            "events",
            "public.events",
            "created_at",
            (
                ("id", UUID),
                ("event_type", _S),
                ("trace_id", UUID),
                ("session_id", UUID),
                ("user_id", _S),
                ("timestamp_ms", pa.int64()),
                ("payload", JSON),
                ("created_at", TS),
            ),
        ),
        ExportTable(
            "agents",
            "public.agents",
            "created_at",
            (
                ("id", UUID),
                ("name", _S),
                ("type", _S),
                ("configuration", JSON),
                ("status", _S),
                ("session_id", UUID),
                ("created_at", TS),
                ("updated_at", TS),
            ),
        ),
        ExportTable(
            "agent_executions",
            "public.agent_executions",
            "started_at",
            (
                ("id", UUID),
                ("agent_id", UUID),
                ("session_id", UUID),
                ("input_data", JSON),
                ("output_data", JSON),
                ("status", _S),
                ("started_at", TS),
                ("completed_at", TS),
                ("error_message", _S),
            ),
        ),
        ExportTable(
            "llm_interactions",
            "public.llm_interactions",
            "created_at",
            (
                ("id", UUID),
                ("session_id", UUID),
                ("agent_id", UUID),
                ("prompt", _S),
                ("response", _S),
                ("model", _S),
                ("prompt_tokens", pa.int32()),
                ("response_tokens", pa.int32()),
                ("latency_ms", pa.int32()),
                ("success", pa.bool_()),
                ("error_message", _S),
                ("created_at", TS),
            ),
        ),
        ExportTable(
            "documents",
            "public.documents",
            "created_at",
            (
                ("id", UUID),
                ("session_id", UUID),
                ("agent_id", UUID),
                ("title", _S),
                ("content", _S),
                ("content_type", _S),
                ("source_url", _S),
                ("metadata", JSON),
                ("created_at", TS),
            ),
        ),
        ExportTable(
            "llm_rollup",
            "analytics.llm_rollup",
            "bucket",
            (
                *_ROLLUP_KEYS,
                ("calls", pa.int64()),
                ("errors", pa.int64()),
                ("error_rate", pa.float64()),
                ("prompt_tokens", pa.int64()),
                ("response_tokens", pa.int64()),
                ("cost", pa.decimal128(30, 12)),
                ("unpriced_calls", pa.int64()),
                ("latency_mean", pa.float64()),
                ("latency_p50", pa.float64()),
                ("latency_p90", pa.float64()),
                ("latency_p95", pa.float64()),
                ("latency_p99", pa.float64()),
                ("latency_max", pa.int32()),
                # Usage details and the cost as billed (migration 0011).
                ("cache_read_tokens", pa.int64()),
                ("cache_write_tokens", pa.int64()),
                ("reasoning_tokens", pa.int64()),
                ("cache_hit_ratio", pa.float64()),
                ("input_cost", pa.decimal128(30, 12)),
                ("cached_input_cost", pa.decimal128(30, 12)),
                ("cache_write_cost", pa.decimal128(30, 12)),
                ("output_cost", pa.decimal128(30, 12)),
                ("reasoning_cost", pa.decimal128(30, 12)),
                ("tier_fallback_calls", pa.int64()),
                ("cache_unpriced_calls", pa.int64()),
                ("ttft_p50", pa.float64()),
                ("ttft_p95", pa.float64()),
                ("ttft_p99", pa.float64()),
            ),
        ),
        ExportTable(
            "exec_rollup",
            "analytics.exec_rollup",
            "bucket",
            (
                *_ROLLUP_KEYS,
                ("executions", pa.int64()),
                ("finished", pa.int64()),
                ("succeeded", pa.int64()),
                ("failed", pa.int64()),
                ("success_rate", pa.float64()),
                ("duration_mean", pa.float64()),
                ("duration_p50", pa.float64()),
                ("duration_p90", pa.float64()),
                ("duration_p95", pa.float64()),
                ("duration_p99", pa.float64()),
                ("duration_max", pa.float64()),
            ),
        ),
    )
}
