"""Helpers for the analytics tests: insert seed rows directly, logging them as the sink does."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb


def add_session(conn: psycopg.Connection[Any], user: str, at: datetime) -> uuid.UUID:
    sid = uuid.uuid4()
    conn.execute(
        "INSERT INTO sessions (id, user_id, created_at, updated_at, metadata) "
        "VALUES (%s, %s, %s, %s, %s)",
        (sid, user, at, at, Jsonb({"channel": "test"})),
    )
    return sid


def add_agent(
    conn: psycopg.Connection[Any], session: uuid.UUID, kind: str, at: datetime
) -> uuid.UUID:
    aid = uuid.uuid4()
    conn.execute(
        "INSERT INTO agents (id, name, type, configuration, status, session_id, created_at, "
        "updated_at) VALUES (%s, %s, %s, %s, 'active', %s, %s, %s)",
        (aid, f"{kind}-agent", kind, Jsonb({"temperature": 0}), session, at, at),
    )
    return aid


def add_call(
    conn: psycopg.Connection[Any],
    session: uuid.UUID,
    agent: uuid.UUID | None,
    model: str,
    at: datetime,
    *,
    prompt_tokens: int = 100,
    response_tokens: int = 50,
    latency_ms: int = 500,
    success: bool = True,
    prompt: str = "Say hello",
    response: str | None = "hello",
    details: dict[str, Any] | None = None,
) -> uuid.UUID:
    """``details``: the call's agentstream.llm_usage columns, written in the same
    transaction as the sink does (None: no details row)."""
    lid = uuid.uuid4()
    conn.execute(
        "INSERT INTO llm_interactions (id, session_id, agent_id, prompt, response, model, "
        "prompt_tokens, response_tokens, latency_ms, success, error_message, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            lid,
            session,
            agent,
            prompt,
            response,
            model,
            prompt_tokens,
            response_tokens,
            latency_ms,
            success,
            None if success else "upstream error",
            at,
        ),
    )
    if details:
        columns = ["id", *details]
        conn.execute(
            sql.SQL("INSERT INTO agentstream.llm_usage ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            (lid, *details.values()),
        )
    log_change(conn, "llm_interactions", lid)
    return lid


def add_execution(
    conn: psycopg.Connection[Any],
    session: uuid.UUID,
    agent: uuid.UUID,
    at: datetime,
    *,
    status: str = "completed",
    duration_ms: int | None = 1000,
) -> uuid.UUID:
    eid = uuid.uuid4()
    done = at + timedelta(milliseconds=duration_ms) if duration_ms is not None else None
    conn.execute(
        "INSERT INTO agent_executions (id, agent_id, session_id, input_data, output_data, "
        "status, started_at, completed_at, error_message) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (eid, agent, session, Jsonb({"task": "t"}), Jsonb({"ok": True}), status, at, done, None),
    )
    log_change(conn, "agent_executions", eid)
    return eid


def log_change(conn: psycopg.Connection[Any], entity: str, row_id: uuid.UUID) -> None:
    """What the sink does in the same transaction as its write."""
    conn.execute(
        "INSERT INTO agentstream.change_log (entity, id) VALUES (%s, %s)", (entity, row_id)
    )
