"""Late and out-of-order records on the real services: records out of order but within the
allowed lateness are counted in their windows; records later than that are counted in
``agentstream_alerts_records_late_total``, in no window and no alert, and left to the
rollups (which count them all)."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from agentstream.analytics.rollup import run_rollup
from agentstream.contract.entities import Agent, LLMInteraction, Session
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alerts_topic
from tests.support.alerts import (
    AlertsProcess,
    alert_settings,
    publish,
    published_alerts,
    stored_alerts,
    window_states,
)
from tests.support.kafka import create_pipeline_topics
from tests.support.otlp import free_port
from tests.support.worker import WorkerProcess, wait_for, wait_rows

pytestmark = [pytest.mark.integration]

LATENESS_S = 60
T0 = datetime(2026, 11, 5, 10, 0, tzinfo=UTC)  # the first 5-minute window's start
RULES = """
[[rule]]
name = "calls-user"
metric = "calls"
group_by = "user_id"
window = "5m"
thresholds = [3, 5]
"""
# Minutes past T0, in publish order, with what the alerts process must make of each: the
# window [10:00, 10:05) is late once its partition has seen 10:06 (its end + 60 s).
CALLS = [
    (1.0, "on time"),  # watermark 10:01
    (5.5, "on time"),  # watermark 10:05:30
    (2.0, "on time"),  # out of order: 10:05 + 60 s = 10:06 > 10:05:30
    (4.0, "on time"),  # the third call of [10:00, 10:05): threshold 3 reached
    (8.0, "on time"),  # watermark 10:08
    (3.0, "late"),  # 10:06 <= 10:08: counted, the window would reach 4
    (4.98, "late"),  # and 5: the threshold that must not fire
    (6.0, "on time"),  # out of order in [10:05, 10:10): its third call
]


def _late_total(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("agentstream_alerts_records_late_total "):
            return float(line.split()[1])
    return None


async def test_late_records_counted_apart_and_left_to_the_rollups(
    settings: Settings, tmp_path: Path
) -> None:
    settings = alert_settings(settings, lateness_s=LATENESS_S)
    prefix = settings.topic_prefix
    await create_pipeline_topics(settings, partitions=4, extra=[alerts_topic(prefix)])
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    # One session: its calls share a partition, so they are read in the order published.
    session = Session(id=uuid.uuid4(), user_id="alice")
    assert session.id is not None
    agent = Agent(id=uuid.uuid4(), name="a", type="coder", session_id=session.id)
    calls = [
        LLMInteraction(
            session_id=session.id,
            agent_id=agent.id,
            prompt="p",
            model="gpt-4o",
            prompt_tokens=100,
            response_tokens=10,
            latency_ms=500,
            created_at=T0 + timedelta(minutes=minutes),
        )
        for minutes, _ in CALLS
    ]
    port = free_port()
    alerts = AlertsProcess(
        settings, tmp_path / "alerts.log", rules, "--metrics-port", str(port)
    ).start()
    sink = WorkerProcess(settings, tmp_path / "sink.log").start()
    late_expected = sum(what == "late" for _, what in CALLS)
    try:
        await publish(settings, [session, agent, *calls])

        def done() -> bool:
            assert alerts.alive, alerts.log()[-3000:]
            states = asyncio.run(window_states(settings))
            counted = sum(int(s["n"]) for s in states.values())
            return counted >= len(CALLS) - late_expected and _late_total(port) == late_expected

        # window_states runs its own event loop: poll from a thread.
        assert await asyncio.to_thread(wait_for, done, 120, 1.0), alerts.log()[-3000:]
        conninfo = settings.database_conninfo()
        assert await asyncio.to_thread(wait_for, lambda: len(stored_alerts(conninfo)) >= 2, 30)
        assert await wait_rows(conninfo, "llm_interactions", len(CALLS)) == len(CALLS)
        await asyncio.sleep(2)  # anything more it would (wrongly) publish has time to land
        late_total = _late_total(port)
    finally:
        alerts.terminate()
        sink.terminate()

    # On time, out of order or not: counted in their windows; late: in none.
    first, second = int(T0.timestamp()), int(T0.timestamp()) + 300
    states = await window_states(settings)
    assert {k: int(s["n"]) for k, s in states.items()} == {
        ("calls-user", "alice", first): 3,
        ("calls-user", "alice", second): 3,
    }
    assert late_total == late_expected
    # No alert from a late record: threshold 3 in both windows, 5 in neither.
    rows = stored_alerts(conninfo)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("calls-user", "alice", T0, "3"),
        ("calls-user", "alice", T0 + timedelta(minutes=5), "3"),
    ]
    assert len(await published_alerts(settings)) == 2
    # The rollups count every record, late or not.
    run_rollup(conninfo)
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT calls FROM analytics.llm_rollup "
            "WHERE granularity = 'hour' AND dimension = 'user' AND key = 'alice'"
        ).fetchone()
    assert row == (len(CALLS),)
