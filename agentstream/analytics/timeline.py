"""A session's timeline: its agents, executions, LLM calls, events and documents in time order.

Two views of the same items: ``render_text`` for a person, ``to_json`` for a program that
rebuilds an LLM's context (it carries full prompts, responses and document contents, and a
chat-style ``messages`` list: each LLM call as a user message and an assistant reply, each
document as a system message, in time order).

An agent's own ``type`` column is given as ``agent_type`` (``type`` is the item's kind).
Item times: agents ``created_at``; executions ``started_at``; LLM calls and documents
``created_at``; events ``timestamp_ms`` (when the producer says it happened; ``created_at``
is kept as ``written_at``). Ties keep the order session, agent, execution, event, LLM call,
document, then id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = ["Timeline", "TimelineError", "load_timeline", "render_text", "to_json"]

_ORDER = {"session": 0, "agent": 1, "execution": 2, "event": 3, "llm_call": 4, "document": 5}


class TimelineError(LookupError):
    """The session id is malformed or unknown; the message says which."""


@dataclass(frozen=True)
class Timeline:
    session: dict[str, Any]
    items: list[dict[str, Any]]


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in row.items()}


def load_timeline(conninfo: str, session_id: str) -> Timeline:
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        raise TimelineError(
            f"{session_id!r} is not a session id: expected a UUID such as "
            "123e4567-e89b-12d3-a456-426614174000"
        ) from None
    with psycopg.connect(conninfo) as conn, conn.cursor(row_factory=dict_row) as cur:
        session = cur.execute("SELECT * FROM sessions WHERE id = %s", (sid,)).fetchone()
        if session is None:
            raise TimelineError(f"no session {sid} in the database (check the id)")
        items: list[dict[str, Any]] = [
            {"type": "session", "time": session["created_at"], **session}
        ]
        names: dict[Any, str] = {}
        for row in cur.execute("SELECT * FROM agents WHERE session_id = %s", (sid,)):
            names[row["id"]] = row["name"]
            row["agent_type"] = row.pop("type")  # "type" is the item's kind
            items.append({"type": "agent", "time": row["created_at"], **row})
        for row in cur.execute(
            "SELECT *, extract(epoch FROM completed_at - started_at) * 1000 AS duration_ms "
            "FROM agent_executions WHERE session_id = %s",
            (sid,),
        ):
            row["duration_ms"] = float(row["duration_ms"]) if row["duration_ms"] else None
            items.append({"type": "execution", "time": row["started_at"], **row})
        for row in cur.execute("SELECT * FROM events WHERE session_id = %s", (sid,)):
            when = datetime.fromtimestamp(row["timestamp_ms"] / 1000, tz=UTC)
            row["written_at"] = row.pop("created_at")
            items.append({"type": "event", "time": when, **row})
        for row in cur.execute("SELECT * FROM llm_interactions WHERE session_id = %s", (sid,)):
            items.append({"type": "llm_call", "time": row["created_at"], **row})
        for row in cur.execute("SELECT * FROM documents WHERE session_id = %s", (sid,)):
            items.append({"type": "document", "time": row["created_at"], **row})
    for item in items:
        if item.get("agent_id") in names:
            item["agent_name"] = names[item["agent_id"]]
    epoch = datetime.min.replace(tzinfo=UTC)
    items.sort(key=lambda i: (i["time"] or epoch, _ORDER[i["type"]], str(i["id"])))
    return Timeline(session=_clean(session), items=[_clean(i) for i in items])


def messages(timeline: Timeline) -> list[dict[str, Any]]:
    """The LLM context as chat messages, in time order."""
    out: list[dict[str, Any]] = []
    for item in timeline.items:
        if item["type"] == "llm_call":
            meta = {
                "time": item["time"],
                "model": item["model"],
                "call_id": item["id"],
                "agent": item.get("agent_name"),
            }
            out.append({"role": "user", "content": item["prompt"], **meta})
            if item["response"] is not None:
                out.append({"role": "assistant", "content": item["response"], **meta})
        elif item["type"] == "document":
            source = f" ({item['source_url']})" if item.get("source_url") else ""
            out.append(
                {
                    "role": "system",
                    "content": f"Document: {item['title']}{source}\n{item['content']}",
                    "time": item["time"],
                    "document_id": item["id"],
                }
            )
    return out


def to_json(timeline: Timeline) -> dict[str, Any]:
    return {"session": timeline.session, "items": timeline.items, "messages": messages(timeline)}


def _short(text: Any, width: int = 70) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_text(timeline: Timeline) -> str:
    s = timeline.session
    lines = [f"session {s['id']}  user {s['user_id']}  created {s['created_at']}"]
    for item in timeline.items:
        kind, when = item["type"], item["time"] or "?"
        who = f" [{item['agent_name']}]" if item.get("agent_name") else ""
        if kind == "session":
            continue
        if kind == "agent":
            text = f"{item['name']} type={item['agent_type']} status={item['status']}"
        elif kind == "execution":
            dur = f" {item['duration_ms']:.0f} ms" if item.get("duration_ms") else ""
            err = f" error: {_short(item['error_message'], 50)}" if item["error_message"] else ""
            text = f"{item['status']}{dur}{err}"
        elif kind == "event":
            text = f"{item['event_type']} trace={item['trace_id']} {_short(item['payload'], 50)}"
        elif kind == "llm_call":
            ok = "ok" if item["success"] else f"FAILED {_short(item['error_message'], 30)}"
            text = (
                f"{item['model']} {item['prompt_tokens']}+{item['response_tokens']} tok "
                f"{item['latency_ms']} ms {ok}\n      > {_short(item['prompt'])}\n"
                f"      < {_short(item['response'])}"
            )
        else:
            text = f"{item['title']} ({item['content_type']}) {_short(item['content'], 50)}"
        lines.append(f"{when}  {kind:<9}{who} {text}")
    return "\n".join(lines)
