"""The alerts process on the real services: alerts fire once, and the windows' values are
the rollup's (spend to the picodollar; percentiles within the sketch's stated error)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import psycopg
import pytest

from agentstream.alerts.sketch import EXACT_MAX, RELATIVE_ERROR, LatencySketch
from agentstream.analytics.rollup import run_rollup
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alerts_topic
from tests.support.alerts import (
    AlertsProcess,
    alert_settings,
    day,
    hour,
    make_traffic,
    publish,
    published_alerts,
    stored_alerts,
    window_states,
)
from tests.support.kafka import create_pipeline_topics
from tests.support.worker import WorkerProcess, wait_for, wait_rows

pytestmark = [pytest.mark.integration]

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
RULES = """
[[rule]]
name = "spend-hourly"
metric = "cost_usd"
group_by = "user_id"
window = "1h"
budget = "0.5"
levels = [0.5, 1.0]

[[rule]]
name = "spend-daily"
metric = "cost_usd"
group_by = "user_id"
window = "1d"
budget = "1000"
levels = [1.0]

[[rule]]
name = "p95-by-model"
metric = "latency_p95_ms"
group_by = "model"
window = "1h"
thresholds = [1]
min_count = 5

[[rule]]
name = "p99-all"
metric = "latency_p99_ms"
window = "1d"
thresholds = [1]
min_count = 5

[[rule]]
name = "calls-all"
metric = "calls"
window = "1d"
thresholds = [1000000000]

[[rule]]
name = "errors-planner"
metric = "error_rate"
group_by = "agent_type"
window = "1h"
hop = "30m"
thresholds = [0.05]
min_count = 20
filter = { agent_type = "planner" }

[[rule]]
name = "exec-failures"
metric = "execution_failure_rate"
window = "1d"
thresholds = [0.2]
min_count = 10
"""


async def _run_until_counted(settings: Settings, alerts: WorkerProcess, calls: int) -> None:
    def counted() -> bool:
        assert alerts.alive, alerts.log()[-3000:]
        states = asyncio.run(window_states(settings))
        return sum(int(s["n"]) for (r, _, _), s in states.items() if r == "calls-all") >= calls

    # window_states runs its own event loop: poll from a thread.
    ok = await asyncio.to_thread(wait_for, counted, 120, 1.0)
    assert ok, "the alerts process did not count every call"


async def test_alerts_fire_once_and_windows_equal_the_rollup(
    settings: Settings, tmp_path: Path
) -> None:
    settings = alert_settings(settings)
    prefix = settings.topic_prefix
    await create_pipeline_topics(settings, partitions=4, extra=[alerts_topic(prefix)])
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    traffic = make_traffic(sessions=60, calls_per_session=40, start=START, spread_s=7200, seed=15)
    alerts = AlertsProcess(settings, tmp_path / "alerts.log", rules).start()
    sink = WorkerProcess(settings, tmp_path / "sink.log").start()
    try:
        await publish(settings, traffic.records)
        await _run_until_counted(settings, alerts, len(traffic.calls))
        assert await wait_rows(
            settings.database_conninfo(), "llm_interactions", len(traffic.calls)
        ) == len(traffic.calls)
        await asyncio.to_thread(
            wait_for, lambda: len(stored_alerts(settings.database_conninfo())) > 0, 30
        )
    finally:
        alerts.terminate()
        sink.terminate()
    conninfo = settings.database_conninfo()
    run_rollup(conninfo)
    states = await window_states(settings)

    # Truth: spend per user per hour and per day, to the picodollar.
    with psycopg.connect(conninfo) as conn:
        rollup = {
            (g, key, bucket): int(cost * 10**12)
            for g, key, bucket, cost in conn.execute(
                "SELECT granularity, key, bucket, cost FROM analytics.llm_rollup "
                "WHERE dimension = 'user'"
            ).fetchall()
        }
    stream = {
        ("hour" if rule == "spend-hourly" else "day", group, datetime.fromtimestamp(start, UTC)): s[
            "v"
        ]
        for (rule, group, start), s in states.items()
        if rule in ("spend-hourly", "spend-daily")
    }
    assert stream == rollup
    assert len(stream) == 5 * 3 + 5  # 5 users x 3 hours (09:30-11:30), and 1 day

    # Percentiles: numpy's (linear interpolation) exactly while a window holds at most
    # EXACT_MAX values; past that, within the sketch's relative error of numpy's value at
    # the same rank.
    latencies: dict[tuple[str, str, datetime], list[int]] = defaultdict(list)
    for _, call in traffic.calls:
        assert call.created_at is not None
        latencies[("p95-by-model", call.model, hour(call.created_at))].append(call.latency_ms)
        latencies[("p99-all", "*", day(call.created_at))].append(call.latency_ms)
    checked = Counter[bool]()
    for (rule, group, start), s in states.items():
        if rule not in ("p95-by-model", "p99-all"):
            continue
        q = 0.95 if rule == "p95-by-model" else 0.99
        values = np.array(latencies[(rule, group, datetime.fromtimestamp(start, UTC))])
        sketch = LatencySketch.from_json(s["k"])
        assert sketch.count == len(values)
        got = sketch.quantile(q)
        assert got is not None
        if len(values) <= EXACT_MAX:
            assert got == pytest.approx(float(np.quantile(values, q)), rel=1e-12)
        else:
            at_rank = float(np.quantile(values, q, method="lower"))
            assert abs(got - at_rank) <= RELATIVE_ERROR * at_rank
        checked[len(values) <= EXACT_MAX] += 1
    assert sum(checked.values()) == len(latencies) and checked[True] and checked[False]

    # Once: one alert per (rule, group, window, level), in the table and on the topic.
    rows = stored_alerts(conninfo)
    keys = [r[:4] for r in rows]
    assert len(keys) == len(set(keys))
    published = await published_alerts(settings)
    repeats = Counter((a["rule"], a["group_key"], a["window_start"], a["level"]) for a in published)
    assert max(repeats.values()) == 1 and len(published) == len(rows)
    # `agentstream alerts list` shows them all, oldest first.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agentstream", "alerts", "list", "--json", "--since", "1d"],
        env={**os.environ, "AGENTSTREAM_DATABASE_URL": conninfo},
        capture_output=True,
        text=True,
        check=True,
    )
    listed = done.stdout.splitlines()
    assert sorted(json.loads(line)["id"] for line in listed) == sorted(a["id"] for a in published)
    # Every user crossed half its hourly budget in some hour; each alert's value is at or
    # past its threshold.
    fired: dict[str, set[str]] = defaultdict(set)
    for rule, group, *_ in rows:
        fired[rule].add(group)
    assert fired["spend-hourly"] == {f"user-{i}" for i in range(5)}
    assert "calls-all" not in fired and "spend-daily" not in fired
    assert fired["exec-failures"] == {"*"}  # 1 session in 3 fails: 33% > 20%
    for rule, _, _, level, value in rows:
        if rule == "spend-hourly":
            assert value >= Decimal("0.5") * Decimal(level)
