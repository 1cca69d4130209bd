"""Deterministic test traffic as plain JSON records, and what must be in PostgreSQL after it.

Independent of the SDK on purpose: the fault suite publishes with plain aiokafka, as a
producer in any language would, and checks rows against the very dicts it sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for


@dataclass
class Traffic:
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(v) for v in self.records.values())

    def messages(self, per_message: int) -> list[tuple[str, bytes]]:
        """Batch messages, parents' topics first within each slice, interleaved by session."""
        out: list[tuple[str, bytes]] = []
        for entity, rows in self.records.items():
            for i in range(0, len(rows), per_message):
                out.append((entity, json.dumps(rows[i : i + per_message]).encode()))
        return out


def make_traffic(
    sessions: int, events_per_session: int, llm_per_session: int, seed: int
) -> Traffic:
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    t = Traffic({"sessions": [], "agents": [], "llm_interactions": [], "events": []})
    for s in range(sessions):
        sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        start = base + timedelta(seconds=s)
        t.records["sessions"].append(
            {
                "id": sid,
                "user_id": f"user-{s % 17}",
                "created_at": start.isoformat(),
                "updated_at": start.isoformat(),
                "metadata": {"n": s},
            }
        )
        aid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        t.records["agents"].append(
            {
                "id": aid,
                "name": f"agent-{s}",
                "type": "react",
                "session_id": sid,
                "status": "active",
                "created_at": start.isoformat(),
                "updated_at": start.isoformat(),
            }
        )
        for i in range(llm_per_session):
            t.records["llm_interactions"].append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "session_id": sid,
                    "agent_id": aid,
                    "prompt": f"p{i}",
                    "response": f"r{i}",
                    "model": "gpt-4o",
                    "prompt_tokens": rng.randint(1, 999),
                    "response_tokens": rng.randint(1, 999),
                    "latency_ms": rng.randint(50, 5000),
                    "success": True,
                    "created_at": (start + timedelta(milliseconds=i)).isoformat(),
                }
            )
        for i in range(events_per_session):
            t.records["events"].append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "event_type": "step",
                    "trace_id": sid,
                    "session_id": sid,
                    "user_id": f"user-{s % 17}",
                    "timestamp_ms": int(start.timestamp() * 1000) + i,
                    "payload": {"i": i},
                }
            )
    return t


async def publish(
    settings: Settings,
    messages: Sequence[tuple[str, bytes]],
    *,
    per_second: float | None = None,
    pace_while: Callable[[], bool] | None = None,
    headers: Iterable[tuple[str, bytes]] = (),
    key: bytes | None = None,
) -> list[tuple[str, int, int]]:
    """Publish (entity, value) messages with acks=all, optionally paced to ``per_second``.

    Returns each message's (topic, partition, offset), in order.

    With ``pace_while``, the pacing holds only while it returns true; the rest goes at once.
    """
    placed: list[tuple[str, int, int]] = []
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=10 * 2**20,
        request_timeout_ms=60_000,
    )
    await producer.start()
    try:
        pending = []
        for n, (entity, value) in enumerate(messages):
            pending.append(
                await producer.send(
                    topic_for(entity, settings.topic_prefix),
                    value,
                    key=key,
                    headers=list(headers),
                )
            )
            if per_second and (pace_while is None or pace_while()):
                await asyncio.sleep(1 / per_second)
            if n % 200 == 199:
                placed += _coordinates(await asyncio.gather(*pending))
                pending.clear()
        placed += _coordinates(await asyncio.gather(*pending))
        return placed
    finally:
        await producer.stop()


def _coordinates(sent: Iterable[Any]) -> list[tuple[str, int, int]]:
    return [(m.topic, m.partition, m.offset) for m in sent]


def ids_in(conninfo: str, table: str) -> list[str]:
    """Every id in ``table`` (a name from the contract's fixed list, never from input)."""
    with psycopg.connect(conninfo) as conn:
        return [str(r[0]) for r in conn.execute(f"SELECT id FROM {table}")]


def written_and_duplicated(conninfo: str, traffic: Traffic) -> tuple[int, int]:
    """How many of the records sent are in PostgreSQL, and how many were written more than once
    or never sent.

    Primary keys cannot hold a second row of an id, so rows are not where a duplicate shows:
    a record written twice shows as a second ``agentstream.change_log`` line for its id (the
    sink logs every llm_interactions row it inserts, in the insert's statement, and logs
    nothing for a replay that changes nothing). Rows whose id was never sent count too.
    """
    written = unexpected = 0
    for table, rows in traffic.records.items():
        found = set(ids_in(conninfo, table))
        sent = {str(r["id"]) for r in rows}
        written += len(sent & found)
        unexpected += len(found - sent)
    return written, unexpected + logged_more_than_once(conninfo)


def logged_more_than_once(conninfo: str, entity: str = "llm_interactions") -> int:
    """change_log lines beyond one per id of ``entity``: each is a second write of a record
    (immutable entities are logged once, when inserted)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) - count(DISTINCT id) FROM agentstream.change_log WHERE entity = %s",
            (entity,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def row_count(conninfo: str, tables: Iterable[str], *, inferred: bool = True) -> int:
    """Rows in ``tables``; without ``inferred``, not counting the parents the sink inferred
    for children that arrived first (placeholders, not records anyone sent)."""
    total = 0
    with psycopg.connect(conninfo) as conn:
        for table in tables:
            query = f"SELECT count(*) FROM {table} t"
            if not inferred:
                query += (
                    " WHERE NOT EXISTS (SELECT 1 FROM agentstream.inferred_members m"
                    f" WHERE m.entity = '{table}' AND m.id = t.id)"
                )
            row = conn.execute(query).fetchone()
            total += int(row[0]) if row else 0
    return total
