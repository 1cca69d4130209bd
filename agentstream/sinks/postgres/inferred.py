"""Inferred members: parents created from what a child carries, before the real record arrives.

A record whose parent row is missing (an event before its session, an execution before its
agent) is neither lost nor rejected: the sink inserts the parent from the child's fields —
a session with the child's ``user_id`` (or ``'unknown'``) and the child's time, an agent
named ``'unknown'`` of type ``'unknown'`` in the child's session — and lists it in
``agentstream.inferred_members``. When the real record arrives it replaces every field of
the inferred row whatever the timestamps (see upsert.py), and its line is deleted.

Parents are inserted in id order (``ORDER BY``) so that two workers inferring overlapping
parents take their row locks in the same order; a deadlock that happens anyway is retried.
"""

from __future__ import annotations

from psycopg import sql

__all__ = ["inference_statements"]

# Which column of each child carries the time used for its inferred parents.
_CHILD_TIME = {
    "agents": "created_at",
    "agent_executions": "started_at",
    "llm_interactions": "created_at",
    "events": "created_at",
    "documents": "created_at",
}
_CHILDREN_WITH_USER_ID = frozenset({"events"})
_CHILDREN_OF_AGENTS = frozenset({"agent_executions", "llm_interactions", "documents"})


def _record(entity: str, inserted: sql.Composable) -> sql.Composed:
    return sql.SQL(
        "WITH ins AS ({inserted}) INSERT INTO agentstream.inferred_members (entity, id)"
        " SELECT {entity}, id FROM ins ORDER BY id ON CONFLICT DO NOTHING"
    ).format(inserted=inserted, entity=sql.Literal(entity))


def inference_statements(child: str, stage: sql.Identifier) -> list[sql.Composed]:
    """Statements inserting the missing parents of the rows staged in ``stage``, sessions first."""
    if child not in _CHILD_TIME:
        return []
    time = sql.SQL("COALESCE(s.{}, now())").format(sql.Identifier(_CHILD_TIME[child]))
    user = sql.SQL("s.user_id" if child in _CHILDREN_WITH_USER_ID else "'unknown'")
    statements = [
        _record(
            "sessions",
            sql.SQL(
                "INSERT INTO public.sessions (id, user_id, created_at, updated_at, metadata)"
                " SELECT DISTINCT ON (s.session_id) s.session_id, {user}, {time}, {time},"
                " '{{}}'::jsonb FROM {stage} s WHERE NOT EXISTS"
                " (SELECT 1 FROM public.sessions p WHERE p.id = s.session_id)"
                " ORDER BY s.session_id, {time}"
                " ON CONFLICT (id) DO NOTHING RETURNING id"
            ).format(user=user, time=time, stage=stage),
        )
    ]
    if child in _CHILDREN_OF_AGENTS:
        statements.append(
            _record(
                "agents",
                sql.SQL(
                    "INSERT INTO public.agents (id, name, type, configuration, status,"
                    " session_id, created_at, updated_at)"
                    " SELECT DISTINCT ON (s.agent_id) s.agent_id, 'unknown', 'unknown',"
                    " '{{}}'::jsonb, 'inactive', s.session_id, {time}, {time}"
                    " FROM {stage} s WHERE s.agent_id IS NOT NULL AND NOT EXISTS"
                    " (SELECT 1 FROM public.agents p WHERE p.id = s.agent_id)"
                    " ORDER BY s.agent_id, {time}"
                    " ON CONFLICT (id) DO NOTHING RETURNING id"
                ).format(time=time, stage=stage),
            )
        )
    return statements
