"""Alerts benchmark: how fast one alerts process keeps up, how soon an alert follows the
record that crosses a level, and the state kept per group key.

SDK traffic (a session, its agent, ``CALLS_PER_SESSION`` calls), published with the SDK
(partitioned by session, as in production). The rules: spend per user per day (budget
levels), p95 latency per model per hour, calls per session per day with a threshold the
session's ``CROSSING_CALL``-th call reaches (one alert per session, whose crossing record
is known).

  throughput: a backlog of ``--backlog`` sessions published first, then one alerts process
      started; records/s from its first alert to its last (every session's alert), i.e.
      end to end through both stages;
  latency: at a steady ``--rate`` records/s, publish time of each session's crossing call
      -> its alert read from ``{prefix}alerts`` (read_committed); p50/p99;
  state: the windows' state on the changelog, bytes per group key, by rule.

The machine is shared (2 cores; other engineers run tests): figures vary from run to run.
Prints one JSON line.

    .venv/bin/python bench/alerts.py                 # about a minute
    .venv/bin/python bench/alerts.py --backlog 400 --latency-s 10   # quick
    .venv/bin/python bench/alerts.py --latency-only --profile /tmp/alerts.raw  # py-spy --gil

Both phases report the alerts process's CPU time per record (/proc): on a shared machine a
steadier figure than rates, and what decides whether it keeps up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from aiokafka import AIOKafkaConsumer
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from agentstream import AgentStream
from agentstream.contract.entities import Agent, LLMInteraction, Record, Session
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alerts_topic
from agentstream.migrations import apply_migrations
from agentstream.topic_admin import create_missing_topics, delete_topics

CALLS_PER_SESSION = 25
CROSSING_CALL = 20  # the calls-per-session rule's threshold
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "o3")
RULES = f"""
[[rule]]
name = "spend-daily"
metric = "cost_usd"
group_by = "user_id"
window = "1d"
budget = "1000"
levels = [0.8, 1.0]

[[rule]]
name = "p95-model"
metric = "latency_p95_ms"
group_by = "model"
window = "1h"
thresholds = [60000]
min_count = 20

[[rule]]
name = "calls-session"
metric = "calls"
group_by = "session_id"
window = "1d"
thresholds = [{CROSSING_CALL}]
"""


def session_records(rng: random.Random, s: int, at: datetime) -> list[Record]:
    session = Session(id=uuid.UUID(int=rng.getrandbits(128)), user_id=f"user-{s % 200}")
    assert session.id is not None
    agent = Agent(
        id=uuid.UUID(int=rng.getrandbits(128)), name="a", type="coder", session_id=session.id
    )
    calls: list[Record] = [
        LLMInteraction(
            session_id=session.id,
            agent_id=agent.id,
            prompt="p",
            model=rng.choice(MODELS),
            prompt_tokens=rng.randint(100, 8000),
            response_tokens=rng.randint(10, 2000),
            latency_ms=int(rng.lognormvariate(7, 0.6)),
            success=True,
            created_at=at,
        )
        for _ in range(CALLS_PER_SESSION)
    ]
    return [session, agent, *calls]


class Bench:
    def __init__(self, base: Settings, tmp: Path) -> None:
        self.base = base
        self.tmp = tmp
        self.prefixes: list[str] = []
        self.databases: list[str] = []
        self.admin = base.database_conninfo()

    def settings(self, tag: str) -> Settings:
        prefix = f"bench.alerts.{tag}.{uuid.uuid4().hex[:8]}."
        self.prefixes.append(prefix)
        name = f"bench_alerts_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        conninfo = make_conninfo(self.admin, dbname=name)
        apply_migrations(conninfo)
        return self.base.model_copy(
            update={
                "topic_prefix": prefix,
                "database_url": SecretStr(conninfo),
                "alert_group": f"{prefix}alerts",
                "alert_lateness_s": 86400,
            }
        )

    def start(self, settings: Settings) -> subprocess.Popen[bytes]:
        rules = self.tmp / "rules.toml"
        rules.write_text(RULES)
        env = {
            **os.environ,
            "AGENTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "AGENTSTREAM_DATABASE_URL": settings.database_conninfo(),
            "AGENTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "AGENTSTREAM_ALERT_GROUP": settings.alert_group,
            "AGENTSTREAM_ALERT_LATENESS_S": str(settings.alert_lateness_s),
            "AGENTSTREAM_ALERT_DATA_DIR": str(self.tmp / "alerts-data"),
        }
        log = (self.tmp / f"{settings.alert_group}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "agentstream", "alerts", "run", "--rules", str(rules)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def cleanup(self) -> None:
        if self.prefixes:
            prefixes = tuple(self.prefixes)
            asyncio.run(delete_topics(self.base, lambda t: t.startswith(prefixes)))
        with psycopg.connect(self.admin, autocommit=True) as conn:
            for name in self.databases:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


async def read_alerts(
    settings: Settings, want: int, timeout_s: float
) -> dict[str, tuple[float, float]]:
    """session id -> when its calls-session alert was read, and its ``fired_at`` (when the
    evaluate stage found the level reached)."""
    consumer = AIOKafkaConsumer(
        alerts_topic(settings.topic_prefix),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    seen: dict[str, tuple[float, float]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for messages in batch.values():
                for m in messages:
                    alert = json.loads(m.value)
                    if alert["rule"] == "calls-session":
                        fired = datetime.fromisoformat(alert["fired_at"]).timestamp()
                        seen.setdefault(alert["group_key"], (now, fired))
    finally:
        await consumer.stop()
    return seen


async def topics_for(settings: Settings) -> None:
    names = [
        f"{settings.topic_prefix}{e}"
        for e in ("sessions", "agents", "llm_interactions", "agent_executions", "alerts")
    ]
    await create_missing_topics(settings, names, timeout_s=30)


async def throughput(bench: Bench, sessions: int) -> dict[str, Any]:
    settings = bench.settings("tput")
    await topics_for(settings)
    rng = random.Random(1)
    at = datetime(2026, 11, 2, 12, tzinfo=UTC)
    records = [r for s in range(sessions) for r in session_records(rng, s, at)]
    async with AgentStream(settings) as stream:
        for r in records:
            await stream.publish(r)
        await stream.flush()
    proc = bench.start(settings)
    started = time.monotonic()
    try:
        seen = await read_alerts(settings, sessions, timeout_s=600)
        cpu = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    times = sorted(read for read, _ in seen.values())
    first_to_last = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {
        "records": len(records),
        "alerts": len(seen),
        "seconds_start_to_last_alert": round(time.monotonic() - started, 2),
        "records_per_s_first_to_last_alert": round(
            len(records) * (len(times) - 1) / len(times) / first_to_last
        )
        if first_to_last > 0
        else None,
        # the alerts process's CPU time from its start (joining, recovery) to the last alert
        "cpu_us_per_record": round(cpu * 1e6 / len(records)),
    }


async def latency(
    bench: Bench, rate: float, seconds: float, profile: Path | None = None
) -> dict[str, Any]:
    settings = bench.settings("lat")
    await topics_for(settings)
    proc = bench.start(settings)
    rng = random.Random(2)
    per_session = 2 + CALLS_PER_SESSION
    sessions = int(rate * seconds / per_session)
    crossing_sent: dict[str, float] = {}
    try:
        # Warm-up: one session's alert says the process has joined and holds its partitions.
        warm = session_records(rng, sessions, datetime.now(UTC) - timedelta(seconds=1))
        async with AgentStream(settings) as stream:
            for record in warm:
                await stream.publish(record)
        if not await read_alerts(settings, 1, timeout_s=180):
            raise SystemExit("the alerts process did not start within 180 s (see its log)")
        # the warm-up's alert is read again: one more than the sessions measured
        reader = asyncio.create_task(read_alerts(settings, sessions + 1, timeout_s=seconds + 60))
        profiler = None if profile is None else start_profiler(proc.pid, seconds, profile)
        cpu_before = cpu_seconds(proc.pid)
        async with AgentStream(settings) as stream:
            start = time.monotonic()
            # Interleave sessions so that a crossing comes every few ms, not in bursts.
            live = [
                session_records(rng, s, datetime.now(UTC) - timedelta(seconds=1))
                for s in range(sessions)
            ]
            cursor = [0] * sessions
            order = [s for s in range(sessions) for _ in range(per_session)]
            rng.shuffle(order)
            for sent, s in enumerate(order, 1):
                record = live[s][cursor[s]]
                cursor[s] += 1
                # Each session's records go out in order: the session first.
                await stream.publish(record)
                if cursor[s] == 2 + CROSSING_CALL:
                    crossing_sent[str(live[s][0].id)] = time.time()
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await stream.flush()
        seen = await reader
        cpu = cpu_seconds(proc.pid) - cpu_before
        if profiler is not None:
            profiler.wait(60)
    finally:
        proc.terminate()
        proc.wait(60)
    lat = np.array([seen[k][0] - t for k, t in crossing_sent.items() if k in seen]) * 1000
    # publish -> fired_at: the two stages; the rest is the alert's way to the reader
    fired = np.array([seen[k][1] - t for k, t in crossing_sent.items() if k in seen]) * 1000
    state = await state_sizes(settings)
    return {
        "rate_records_per_s": rate,
        "sessions": sessions,
        "alerts": len(seen),
        "missing": len(crossing_sent) - len(lat),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "max_ms": round(float(lat.max()), 1) if len(lat) else None,
        "to_fired_p50_ms": round(float(np.percentile(fired, 50)), 1) if len(fired) else None,
        "to_fired_p99_ms": round(float(np.percentile(fired, 99)), 1) if len(fired) else None,
        # the alerts process's CPU time from the first live record to the last alert read
        "cpu_us_per_record": round(cpu * 1e6 / (sessions * per_session)),
        "state_bytes_per_key": state,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (not a project dependency: ``.venv/bin/pip install py-spy``) sampling the alerts
    process through the latency phase's traffic; collapsed stacks to ``out``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    cmd = [str(py_spy), "record", "-p", str(pid), "-d", str(int(seconds) + 2), "-r", "50", "--gil"]
    return subprocess.Popen([*cmd, "-f", "raw", "-o", str(out)], stdout=subprocess.DEVNULL)


async def state_sizes(settings: Settings) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        f"{settings.alert_group}-alerts-windows-changelog",
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latest: dict[bytes, int] = {}
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            for messages in batch.values():
                for m in messages:
                    latest[m.key] = len(m.value or b"")
    finally:
        await consumer.stop()
    by_rule: dict[str, list[int]] = defaultdict(list)
    for key, size in latest.items():
        by_rule[json.loads(json.loads(key))[0]].append(size)
    return {rule: round(sum(v) / len(v), 1) for rule, v in sorted(by_rule.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=4000, help="sessions in the backlog")
    parser.add_argument("--rate", type=float, default=2000.0, help="records/s (latency)")
    parser.add_argument("--latency-s", type=float, default=20.0, help="seconds of traffic")
    parser.add_argument("--profile", type=Path, help="py-spy the latency phase into this file")
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput phase")
    parser.add_argument("--throughput-only", action="store_true", help="skip the latency phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Settings(), Path(tmp))
        try:
            out: dict[str, Any] = {"load_average": os.getloadavg()[0]}
            if not args.latency_only:
                out["throughput"] = asyncio.run(throughput(bench, args.backlog))
            if not args.throughput_only:
                out["latency"] = asyncio.run(
                    latency(bench, args.rate, args.latency_s, args.profile)
                )
        finally:
            bench.cleanup()
    print(json.dumps({"bench": "alerts", **out}))


if __name__ == "__main__":
    main()
