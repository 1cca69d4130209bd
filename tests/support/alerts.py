"""The alerts process under test: run it, publish SDK traffic, read its alerts and state."""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer

from agentstream import AgentStream
from agentstream.alerts.costing import Coster
from agentstream.contract.entities import Agent, AgentExecution, LLMInteraction, Session
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alerts_topic
from tests.support.worker import WorkerProcess

__all__ = ["AlertsProcess", "Traffic", "make_traffic", "publish", "stored_alerts", "window_states"]

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o3", "no-such-model")


def alert_settings(settings: Settings, lateness_s: int = 86400) -> Settings:
    """The test traffic's times jump back and forth by hours between sessions: a day of
    allowed lateness counts every record (the lateness test sets its own)."""
    return settings.model_copy(
        update={"alert_group": f"{settings.topic_prefix}alerts", "alert_lateness_s": lateness_s}
    )


class AlertsProcess(WorkerProcess):
    """``agentstream alerts run --rules FILE`` as a real process."""

    command = "alerts"

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        rules: Path,
        *args: str,
        **extra_env: str,
    ):
        super().__init__(
            settings,
            log_path,
            "run",
            "--rules",
            str(rules),
            *args,
            **{
                "AGENTSTREAM_ALERT_GROUP": settings.alert_group,
                "AGENTSTREAM_ALERT_LATENESS_S": str(settings.alert_lateness_s),
                "AGENTSTREAM_ALERT_DATA_DIR": str(log_path.parent / "alerts-data"),
                **extra_env,
            },
        )


@dataclass
class Traffic:
    records: list[Session | Agent | LLMInteraction | AgentExecution] = field(default_factory=list)
    calls: list[tuple[str, LLMInteraction]] = field(default_factory=list)  # (user, call)


def make_traffic(
    *, sessions: int, calls_per_session: int, start: datetime, spread_s: int, seed: int
) -> Traffic:
    """Sessions of 5 users, an agent each, calls with created_at spread over ``spread_s``
    from ``start`` (in order within a session), one execution per session."""
    rng = random.Random(seed)
    t = Traffic()
    for s in range(sessions):
        user = f"user-{s % 5}"
        session = Session(id=uuid.UUID(int=rng.getrandbits(128)), user_id=user)
        agent = Agent(
            id=uuid.UUID(int=rng.getrandbits(128)),
            name=f"a{s}",
            type=("planner", "coder")[s % 2],
            session_id=session.id,
        )
        t.records += [session, agent]
        offsets = sorted(rng.randrange(spread_s * 1000) for _ in range(calls_per_session))
        for ms in offsets:
            prompt, response = rng.randint(1, 20_000), rng.randint(1, 4_000)
            if rng.random() < 0.05:  # past the long-context bands' prompt size
                prompt = rng.randint(200_001, 400_000)
            details: dict[str, Any] = {}
            if rng.random() < 0.5:  # usage details, priced by the rollup (issue 14)
                details = {
                    "cache_read_tokens": rng.randint(0, prompt // 2),
                    "cache_write_tokens": rng.randint(0, prompt // 4),
                    "reasoning_tokens": rng.randint(0, response),
                    "service_tier": rng.choice(("default", "flex", "priority", "batch")),
                }
            call = LLMInteraction(
                id=uuid.UUID(int=rng.getrandbits(128)),
                session_id=session.id,
                agent_id=agent.id,
                prompt="p",
                response="r",
                model=rng.choice(MODELS),
                prompt_tokens=prompt,
                response_tokens=response,
                latency_ms=int(rng.lognormvariate(7, 0.6)),
                success=rng.random() > 0.1,
                created_at=start + timedelta(milliseconds=ms),
                **details,
            )
            t.records.append(call)
            t.calls.append((user, call))
        t.records.append(
            AgentExecution(
                id=uuid.UUID(int=rng.getrandbits(128)),
                agent_id=agent.id,
                session_id=session.id,
                input_data={},
                status="failed" if s % 3 == 0 else "completed",
                started_at=start + timedelta(seconds=rng.randrange(spread_s)),
            )
        )
    return t


async def publish(settings: Settings, records: list[Any]) -> None:
    async with AgentStream(settings) as stream:
        for record in records:
            await stream.publish(record)
        await stream.flush()


async def read_topic(settings: Settings, topic: str, idle_ms: int = 3000) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            if not batch:
                return out
            for messages in batch.values():
                out.extend(messages)
    finally:
        await consumer.stop()


async def published_alerts(settings: Settings) -> list[dict[str, Any]]:
    return [
        json.loads(m.value) for m in await read_topic(settings, alerts_topic(settings.topic_prefix))
    ]


async def window_states(settings: Settings) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The windows' latest state, read from the table's changelog topic."""
    topic = f"{settings.alert_group}-alerts-windows-changelog"
    states: dict[tuple[str, str, int], dict[str, Any]] = {}
    for m in await read_topic(settings, topic):
        rule, group, start = json.loads(json.loads(m.key))
        if m.value is None:
            states.pop((rule, group, start), None)
        else:
            states[(rule, group, start)] = json.loads(m.value)
    return states


def stored_alerts(conninfo: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT rule, group_key, window_start, level, value FROM agentstream.alerts "
            "ORDER BY rule, group_key, window_start, level"
        ).fetchall()


def hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day(t: datetime) -> datetime:
    return hour(t).replace(hour=0)


def cost_of(coster: Coster, call: LLMInteraction) -> int | None:
    assert call.created_at is not None
    return coster.call_pico(call, call.created_at)
