"""Set-based writes from a staging table: latest-state-wins upserts and first-write-wins inserts.

The rules (docs/design.md), each written so that a replay changes nothing (strict comparisons):

* sessions, agents: the incoming row wins if its ``updated_at`` is strictly later, or if the
  stored row is an inferred member (then it wins whatever the timestamps, and the row leaves
  ``agentstream.inferred_members``);
* agent_executions: the incoming row wins if its status ranks strictly higher
  (``EXECUTION_STATUS_RANK``: pending < running < completed | failed | cancelled); at equal
  rank the first write stays;
* events, llm_interactions, documents: immutable, the first write wins (``DO NOTHING``).

Rows written to llm_interactions and agent_executions are appended to ``agentstream.change_log``
in the same statement, so analytics recomputes exactly the touched buckets; so are sessions
and agents this path inserts or replaces (an inferred parent made real, a new state), whose
fields analytics copies into the facts of their children. (New sessions and agents written
by the COPY fast path are not logged: nothing refers to them yet.)
Within one flush the caller has already kept one record per id (see :func:`dedupe`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, TypeVar

from psycopg import sql

from agentstream.contract.entities import EXECUTION_STATUS_RANK
from agentstream.sinks.postgres.items import RowSource
from agentstream.sinks.postgres.tables import Table

__all__ = ["CHANGE_LOGGED", "MUTABLE", "dedupe", "write_statement"]

T = TypeVar("T")

MUTABLE = frozenset({"sessions", "agents", "agent_executions"})
CHANGE_LOGGED = frozenset({"llm_interactions", "agent_executions"})
_BY_UPDATED_AT = frozenset({"sessions", "agents"})
_ID_INT = operator.attrgetter("id.int")


def _wins(entity: str, new: RowSource, old: RowSource) -> bool:
    """Whether ``new`` replaces ``old`` (same id, both in one flush, ``old`` arrived first)."""
    if entity in _BY_UPDATED_AT:
        new_t: Any = getattr(new, "updated_at", None)
        old_t: Any = getattr(old, "updated_at", None)
        return new_t is not None and (old_t is None or new_t > old_t)
    if entity == "agent_executions":
        rank = EXECUTION_STATUS_RANK
        return rank[getattr(new, "status")] > rank[getattr(old, "status")]  # noqa: B009
    return False  # immutable: the first write wins


def dedupe(entity: str, items: Sequence[T], record_of: Any) -> list[T]:
    """One item per record id, chosen by the entity's rule; Kafka order breaks ties (first)."""
    try:  # the usual case, every id distinct, found with C-level calls only
        ids = list(map(_ID_INT, map(record_of, items)))
    except AttributeError:  # a record without an id: the loop below
        ids = []
    if ids and len(set(ids)) == len(ids):
        return list(items)
    kept: dict[Any, T] = {}
    for item in items:
        rec: RowSource = record_of(item)
        # Keyed by the id's integer: uuid.UUID's __hash__ is a Python call, an int's is not.
        key = rec.id.int if rec.id is not None else None
        old = kept.get(key)
        if old is None or _wins(entity, rec, record_of(old)):
            kept[key] = item
    if len(kept) == len(items):
        return list(items)
    return list(kept.values())


def _rank_sql(column: sql.Composable) -> sql.Composed:
    whens = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(status), sql.Literal(rank))
        for status, rank in EXECUTION_STATUS_RANK.items()
    )
    return sql.SQL("(CASE {} {} ELSE -1 END)").format(column, whens)


def write_statement(
    table: Table, stage: sql.Identifier, details_stage: sql.Identifier | None = None
) -> sql.Composed:
    """The one statement moving ``stage``'s rows into ``table`` by the entity's rule.

    With ``details_stage`` (the staged rows of ``table.details``), the details of exactly
    the records this statement inserted are written too: a replayed interaction, whose first
    write won, leaves the first write's details (or their absence) as they were.
    """
    entity = table.entity
    cols = sql.SQL(", ").join(map(sql.Identifier, table.columns))
    insert = sql.SQL(
        "INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {stage} ORDER BY id"
    ).format(target=sql.Identifier("public", entity), cols=cols, stage=stage)
    lit = sql.Literal(entity)
    if entity in MUTABLE:
        assignments = sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
            for c in table.columns
            if c != "id"
        )
        if entity in _BY_UPDATED_AT:
            condition = sql.SQL(
                "t.updated_at IS NULL OR t.updated_at < EXCLUDED.updated_at OR EXISTS"
                " (SELECT 1 FROM agentstream.inferred_members m"
                " WHERE m.entity = {lit} AND m.id = t.id)"
            ).format(lit=lit)
        else:
            condition = sql.SQL("{} > {}").format(
                _rank_sql(sql.SQL("EXCLUDED.status")), _rank_sql(sql.SQL("t.status"))
            )
        upsert = sql.SQL(
            "{insert} ON CONFLICT (id) DO UPDATE SET {a} WHERE {cond} RETURNING t.id"
        ).format(insert=insert, a=assignments, cond=condition)
    else:
        upsert = sql.SQL("{insert} ON CONFLICT (id) DO NOTHING RETURNING t.id").format(
            insert=insert
        )
    if entity in _BY_UPDATED_AT:
        # A session's user and an agent's type are copied into analytics facts: logging the
        # replaced parent lets rollup recompute its children (analytics/rollup/facts.py).
        return sql.SQL(
            "WITH up AS ({upsert}), real AS (DELETE FROM agentstream.inferred_members m"
            " USING up WHERE m.entity = {lit} AND m.id = up.id)"
            " INSERT INTO agentstream.change_log (entity, id) SELECT {lit}, id FROM up ORDER BY id"
        ).format(upsert=upsert, lit=lit)
    details: sql.Composable = sql.SQL("")
    if details_stage is not None and table.details is not None:
        # Immutable, change-logged entities only (llm_interactions): RETURNING lists the
        # inserted ids, and the statement below is the change log's.
        assert entity not in MUTABLE and entity in CHANGE_LOGGED
        dcols = sql.SQL(", ").join(map(sql.Identifier, table.details.columns))
        details = sql.SQL(
            ", details AS (INSERT INTO {target} ({dcols}) SELECT {dcols} FROM {dstage}"
            " WHERE id IN (SELECT id FROM up) ORDER BY id)"
        ).format(
            target=sql.Identifier("agentstream", table.details.entity),
            dcols=dcols,
            dstage=details_stage,
        )
    if entity in CHANGE_LOGGED:
        return sql.SQL(
            "WITH up AS ({upsert}){details} INSERT INTO agentstream.change_log (entity, id)"
            " SELECT {lit}, id FROM up ORDER BY id"
        ).format(upsert=upsert, details=details, lit=lit)
    return upsert
