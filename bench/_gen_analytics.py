"""Synthetic data for bench/analytics.py, generated server-side with generate_series.

Sessions (rows/100, starting over the 30 days before a fixed end time), two agents per
session, LLM interactions and agent executions (rows/10) within the hour after their
session's start, with a change_log line per row as the sink writes it. Session starts are
a hash of the session number, so runs produce the same shape. Half the LLM interactions
(by a hash of the id) have usage details (agentstream.llm_usage), consistent as the sink
requires: cache reads on two thirds of them, cache writes on some Claude calls, reasoning
tokens for the reasoning models, a time to first token, and batch/flex/priority tiers.
"""

from __future__ import annotations

import psycopg

END = "2026-11-01 00:00:00+00"
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "mistral-large-latest",
    "in-house-llm-7b",  # no price: counted as unpriced
)
AGENT_TYPES = ("planner", "researcher", "coder", "reviewer", "retriever", "writer")


def _session_start(expr: str, recent: bool) -> str:
    """SQL for session ``expr``'s start: hashed over 30 days, or the last hour (``recent``)."""
    span = 3600 if recent else 30 * 86400 - 3600
    offset = 0 if recent else 3600
    return (
        f"timestamptz '{END}' - interval '1 second' * "
        f"({offset} + abs(hashtext('s' || ({expr}))) % {span})"
    )


def _uuid7(t: str, seed: str) -> str:
    """SQL for a version 7 id (RFC 9562) at time ``t``: 48 bits of Unix milliseconds, then
    random-looking bits from md5(``seed``): what the SDK gives a record (producers/ids.py)."""
    digits = (
        f"lpad(to_hex((extract(epoch FROM {t}) * 1000)::bigint), 12, '0') || '7'"
        f" || substr(md5({seed}), 1, 3) || '8' || substr(md5({seed}), 4, 15)"
    )
    return f"({digits})::uuid"


def _logged(entity: str, insert: str, returning: str = "id", also: str = "") -> str:
    """``insert`` (an INSERT … SELECT into ``entity``) with a change_log line per row, in
    the same statement: what the sink writes. ``also``: more CTEs over ``ins``."""
    return (
        f"WITH ins AS ({insert} RETURNING {returning}){also} "
        f"INSERT INTO agentstream.change_log (entity, id) SELECT '{entity}', id FROM ins"
    )


# The usage details of half the inserted calls (``ins``), each count within its bound.
_DETAILS = """, details AS (
    INSERT INTO agentstream.llm_usage (id, cache_read_tokens, cache_write_tokens,
        reasoning_tokens, time_to_first_token_ms, provider, service_tier)
    SELECT id,
           CASE WHEN h % 3 > 0 THEN prompt_tokens * (h % 90) / 100 ELSE 0 END,
           CASE WHEN model LIKE 'claude%' AND h % 7 = 0 THEN prompt_tokens / 10 END,
           CASE WHEN model IN ('claude-sonnet-4-5', 'gemini-2.5-pro')
                THEN response_tokens * (h % 80) / 100 END,
           latency_ms * (5 + h % 50) / 100,
           split_part(model, '-', 1),
           CASE h % 25 WHEN 0 THEN 'batch' WHEN 1 THEN 'flex' WHEN 2 THEN 'priority'
                ELSE 'default' END
    FROM (SELECT *, abs(hashtext(id::text)::bigint) AS h FROM ins) x WHERE h % 2 = 0)"""


def generate(
    conninfo: str,
    rows: int,
    *,
    sessions: int | None = None,
    start: int = 0,
    ids: str = "random",
) -> None:
    """Insert ``rows`` LLM interactions numbered from ``start``, with their parents.

    A later batch (``start`` > 0) gets new sessions in the last hour before END: the shape
    of an incremental load. ``ids``: "random" (md5, like uuid4) or "uuid7" (time-ordered,
    the SDK's default) for the LLM interactions and executions.
    """
    if ids not in ("random", "uuid7"):
        raise ValueError(f"ids must be 'random' or 'uuid7', not {ids!r}")
    recent = start > 0
    n_sessions = sessions or max(rows // 100, 10)
    s0 = start // 100
    models = "ARRAY[" + ",".join(f"'{m}'" for m in MODELS) + "]"
    types = "ARRAY[" + ",".join(f"'{t}'" for t in AGENT_TYPES) + "]"
    # The time of each call is drawn after its other random columns, as it always was,
    # unless the id is built from it (uuid7): then first, in a subquery.
    numbered = (
        f"(SELECT i, {s0} + i % {n_sessions} AS s"
        f" FROM generate_series({start}, {start + rows - 1}) AS i) q"
    )
    at = f"{_session_start('s', recent)} + random() * interval '59 minutes'"
    llm_id, llm_at, llm_source = "md5('l' || i)::uuid", at, numbered
    exec_id = "md5('e' || i)::uuid"
    if ids == "uuid7":
        llm_id, llm_at = _uuid7("t", "'l' || i"), "t"
        llm_source = f"(SELECT i, s, {at} AS t FROM {numbered}) g"
        exec_id = _uuid7("t", "'e' || i")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            _logged(
                "sessions",
                f"""INSERT INTO sessions (id, user_id, created_at, updated_at, metadata)
              SELECT md5('s' || i)::uuid, 'user-' || (i % 2000), {_session_start("i", recent)},
                     timestamptz '{END}', jsonb_build_object('n', i)
              FROM generate_series({s0}, {s0 + n_sessions - 1}) AS i""",
            )
        )
        conn.execute(
            _logged(
                "agents",
                f"""INSERT INTO agents (id, name, type, configuration, status, session_id,
                                  created_at, updated_at)
              SELECT md5('a' || i)::uuid, 'agent-' || i, ({types})[1 + i % 6],
                     '{{"temperature": 0.2}}', 'active', md5('s' || (i / 2))::uuid,
                     {_session_start("i / 2", recent)}, timestamptz '{END}'
              FROM generate_series({2 * s0}, {2 * (s0 + n_sessions) - 1}) AS i""",
            )
        )
        conn.execute(
            _logged(
                "agent_executions",
                f"""INSERT INTO agent_executions (id, agent_id, session_id, input_data,
                     output_data, status, started_at, completed_at, error_message)
              SELECT {exec_id}, md5('a' || (2 * s + i % 2))::uuid,
                     md5('s' || s)::uuid, '{{"q": "x"}}', '{{"a": 1}}',
                     CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'completed' END, t,
                     t + (random() * 30000)::int * interval '1 ms',
                     CASE WHEN i % 20 = 0 THEN 'tool error' END
              FROM (SELECT i, s, {_session_start("s", recent)}
                               + random() * interval '50 minutes' AS t
                    FROM (SELECT i, {s0} + i % {n_sessions} AS s
                          FROM generate_series({start // 10}, {(start + rows) // 10 - 1}) i) q
                   ) g""",
            )
        )
        conn.execute(
            _logged(
                "llm_interactions",
                f"""INSERT INTO llm_interactions (id, session_id, agent_id, prompt, response,
                     model, prompt_tokens, response_tokens, latency_ms, success, error_message,
                     created_at)
              SELECT {llm_id}, md5('s' || s)::uuid,
                     CASE WHEN i % 10 = 0 THEN NULL ELSE md5('a' || (2 * s + i % 2))::uuid END,
                     'You are a helpful agent. ' || repeat(md5(i::text), 6),
                     repeat(md5((i + 1)::text), 8), ({models})[1 + (i::bigint * 7919) % 8],
                     (50 + random() * 4000)::int, (10 + random() * 1000)::int,
                     (100 + exp(random() * 8))::int, i % 33 <> 0,
                     CASE WHEN i % 33 = 0 THEN 'rate limited' END,
                     {llm_at}
              FROM {llm_source}""",
                "id, model, prompt_tokens, response_tokens, latency_ms",
                _DETAILS,
            )
        )
        conn.execute("ANALYZE")
