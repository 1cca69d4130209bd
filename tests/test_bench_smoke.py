"""The benchmarks in bench/ still run, at a tiny size (their figures mean nothing here).

They are not part of a normal test run otherwise, and a renamed column or setting once broke
one silently. Each runs as its users run it, against the real services, and must print its
JSON line with every figure it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.services import Services

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def run_bench(services: Services, script: str, *args: str, timeout: float = 180) -> Any:
    env = {
        **os.environ,
        "AGENTSTREAM_DATABASE_URL": services.conninfo("postgres"),
        "AGENTSTREAM_KAFKA_BOOTSTRAP": services.kafka_bootstrap,
        "AGENTSTREAM_TOPIC_PREFIX": f"smoke.{uuid.uuid4().hex[:8]}.",
    }
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_produce_bench(services: Services) -> None:
    out = run_bench(
        services, "produce.py", "--records", "3000", "--naive-records", "100", "--sessions", "5"
    )
    assert out["records"] == 3000
    for key in ("a_sdk_rps", "b_send_and_wait_rps", "c_send_bytes_rps"):
        assert out[key] > 0


def test_produce_bench_compares_both_wire_shapes(services: Services) -> None:
    out = run_bench(
        services,
        "produce.py",
        *("--records", "3000", "--naive-records", "100", "--sessions", "5", "--wire", "both"),
    )
    assert out["sdk"]["wire"] == "both"
    for key in ("a_sdk_rps", "a_record_sdk_rps", "a_build_record_sdk_rps", "ratio_a_record_a"):
        assert out[key] > 0


def test_ingest_bench(services: Services) -> None:
    out = run_bench(
        services,
        "ingest.py",
        # Big enough for several flushes of 5,000: the drain rate is measured from the first
        # committed flush to the last row.
        "--scale",
        "0.05",
        "--memory-factor",
        "0",
        "--no-two-workers",
        "--latency-seconds",
        "1",
        "--naive-sample",
        "100",
    )
    assert out["records"] == {"sessions": 500, "events": 15000, "llm_interactions": 3000}
    for key in ("a_raw_copy_rows_s", "b_naive_rows_s", "c_worker_rows_s", "d_single_rows_s"):
        assert out[key] > 0
    assert out["d_messages"] == 18500  # one message per record
    assert out["c_worker_cpu_us_per_record"] > 0 and out["d_worker_cpu_us_per_record"] > 0
    # PostgreSQL's side: the backends of (a) and of the worker were found and measured.
    assert out["a_pg_cpu_us_per_row"] > 0 and out["c_pg_cpu_us_per_row"] > 0
    assert 0 < out["c_pg_run_share"] <= 1 and out["c_over_a_pg_cpu"] > 0
    assert out["latency_s"]["n"] > 0 and out["latency_single_s"]["n"] > 0
    assert out["worker_exit_code"] == 0


def test_sink_statements_bench(services: Services) -> None:
    out = run_bench(services, "sink_statements.py", "--scale", "0.02", "--batch", "1000")
    assert out["records"] == 6000 + 200 + 1200
    assert out["a_pg_cpu_us_per_row"] > 0 and out["sink_pg_cpu_us_per_row"] > 0
    # children first (the default): the interactions' sessions are inferred, then COPYed
    statements = out["statements"]
    assert statements["infer sessions"]["n"] >= 1
    assert statements['COPY "public"."llm_interactions"']["n"] >= 1
    assert statements['COPY "public"."events"']["pg_cpu_s"] > 0


def test_decode_bench(services: Services) -> None:
    out = run_bench(services, "decode.py", "--events", "600", "--repeat", "1")
    assert out["records"] == {"sessions": 20, "events": 600, "llm_interactions": 120}
    for shape in ("arrays", "single"):
        for way in ("reference", "fast"):
            assert out[f"{shape}_{way}_cpu_us_per_record"] > 0
        assert out[f"{shape}_speedup"] > 0


def test_peer_bench_worker_side(services: Services) -> None:
    # The agentstream side only: the peer's side needs Maven Central and a JVM (make bench).
    out = run_bench(services, "peer.py", "--scale", "0.02", "--only", "worker")
    assert out["records"] == {"llm_interactions": 1200, "events": 6000}
    side = out["agentstream"]
    assert side["rows"] == side["messages"] == 7200  # one message per record, every row landed
    # CPU time is read in clock ticks (10 ms): at this scale the span from the first row to
    # the last can fall within one tick, so zero is a possible reading, a negative one is not.
    assert side["rows_s"][0] > 0 and side["cpu_us_per_record"][0] >= 0
    assert side["exit_code"] == 0 and "peer" not in out


@pytest.mark.parametrize("ids", ["random", "uuid7"])
def test_analytics_bench(services: Services, ids: str) -> None:
    db = f"bench_smoke_{uuid.uuid4().hex[:8]}"
    out = run_bench(
        services,
        "analytics.py",
        "--rows",
        "5000",
        "--skip-pandas",
        "--pg-grouping-sets",
        "--database",
        db,
        "--ids",
        ids,
    )
    assert (out["rows"], out["ids"]) == (5000, ids)
    assert out["export_rss_mb"]["rows"][1] == 5000
    for key in (
        "copy_binary_s",
        "export_s",
        "pg_percentile_s",
        "rollup_full_s",
        "pg_grouping_sets_s",
        "rollup_incremental_s",
    ):
        assert out[key] > 0
    assert out["rollup_incremental_changes"] == 11300  # with the new sessions and agents


def test_alerts_bench(services: Services) -> None:
    out = run_bench(
        services, "alerts.py", "--backlog", "40", "--rate", "500", "--latency-s", "2", timeout=240
    )
    assert out["throughput"]["alerts"] == 40
    latency = out["latency"]
    assert latency["missing"] == 0 and latency["p99_ms"] > 0
    assert 0 < latency["to_fired_p99_ms"] <= latency["p99_ms"]  # fired before it is read
    assert latency["cpu_us_per_record"] > 0 and out["throughput"]["cpu_us_per_record"] > 0
    assert set(latency["state_bytes_per_key"]) == {"calls-session", "p95-model", "spend-daily"}


def test_otlp_phoenix_bench_agentstream_side(services: Services) -> None:
    """Phoenix's side needs its own virtualenv and a minute to start: `make bench` only."""
    out = run_bench(
        services, "otlp_phoenix.py", "--skip-phoenix", "--spans", "1200", "--idle-seconds", "10"
    )
    side = out["agentstream"]
    assert side["spans_sent"] == side["spans_stored"] == 1200 and side["dropped"] == 0
    assert side["spans_per_s"] > 0 and side["server_cpu_us_per_span"] > 0
    assert "phoenix" not in out and out["versions"]["arize_phoenix"]


def test_otlp_bench(services: Services) -> None:
    out = run_bench(services, "otlp.py", "--spans", "1200", "--seconds", "2", "--rate", "300")
    assert out["spans"] == 1200 and out["llm_calls"] == out["llm_rows_seen"] > 0
    for key in (
        "a_intake_spans_per_s",
        "b_sdk_prebuilt_spans_per_s",
        "a_intake_cpu_us_per_span",
        "b_sdk_cpu_us_per_span",
        "c_export_to_row_p99_s",
    ):
        assert out[key] > 0
