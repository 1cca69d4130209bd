"""The facts: one narrow row per seed row (``analytics.llm_facts``, ``analytics.exec_facts``,
indexed by hour), written from the seed tables with the copies the rollups group by (the
agent's type, the session's user) and, for calls, the cost of the price in force at
created_at, split as providers bill it (costs.py).

A full rebuild writes every fact; an incremental run upserts the facts of the rows in the
change log (changes.py) and marks the hours those facts were in before and after dirty.
Rows with NULL created_at (started_at for executions) have no bucket and no fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from agentstream.analytics.prices import PriceRow
from agentstream.analytics.rollup.changes import mark_dirty
from agentstream.analytics.rollup.costs import COST_PARTS, call_counts, cost_sql, price_in_force
from agentstream.analytics.rollup.pricing import resolve_new_models

__all__ = [
    "DIMENSION_COLUMNS",
    "EXEC_FACTS",
    "LLM_FACTS",
    "Facts",
    "fold_calls",
    "fold_executions",
    "rebuild_facts",
]


@dataclass(frozen=True)
class Facts:
    """One fact table and how it is written from its seed table."""

    kind: str  # the rollup kind, in analytics.dirty_hours; the table is analytics.{kind}_facts
    entity: str  # the seed table, as change_log.entity names it
    alias: str  # the seed table's alias in ``insert``
    time_column: str  # the seed column the fact's hour comes from
    # The kind's own parts of ``insert``, the same in every statement that writes its facts.
    fixed: Mapping[str, sql.Composable]
    # INSERT ... {seed} SELECT ... FROM {source} alias (no WHERE), with the placeholders of
    # ``fixed`` and these, filled by ``insert_sql``: ``{seed}`` (a WITH clause, or
    # nothing), ``{source}`` (the seed table, or the WITH's rows), ``{hour}`` (of
    # time_column) and ``{parents}`` (the joins to the agent and session, as ``a`` and ``s``).
    insert: sql.SQL
    columns: tuple[str, ...]  # the seed table's columns that ``insert`` reads
    # The primary key (the upsert's conflict target) and the columns an upsert overwrites.
    primary_key: tuple[str, ...]
    overwritten: tuple[str, ...]
    key_positions: sql.SQL  # the primary key as positions in the insert's select list
    # The other indexes (migrations 0003, 0007, 0009), as ``{table}_{name}`` on a column:
    # dropped with the primary key before a full rebuild loads the facts, and built after.
    # LLM facts are keyed by hour first (0009), which serves the reads by hour.
    indexes: Mapping[str, str]

    @property
    def table(self) -> str:
        return f"{self.kind}_facts"

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier("analytics", self.table)

    def insert_sql(
        self, ids: sql.Composable | None, order: sql.Composable, conflict: sql.Composable
    ) -> sql.Composed:
        """The insert of the facts of every seed row (``ids`` None), or of the rows whose ids
        the query ``ids`` returns. Those rows are taken first, and only their agents and
        sessions are looked up, by key: a hash join would read every agent and session."""
        alias, time = sql.Identifier(self.alias), sql.Identifier(self.time_column)
        table = sql.Identifier(self.entity)
        if ids is None:
            seed: sql.Composable = _EMPTY
            source: sql.Composable = table
            parents = _parents(self.alias, None)
        else:
            rows = sql.Identifier("seed")
            # A row without a time has no bucket, hence no fact.
            seed = sql.SQL(
                "WITH seed AS MATERIALIZED (SELECT {columns} FROM {table}"
                " WHERE {time} IS NOT NULL AND id IN ({ids}))"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, self.columns)),
                table=table,
                time=time,
                ids=ids,
            )
            source = rows
            parents = _parents(self.alias, rows)
        return sql.SQL("{insert} WHERE {alias}.{time} IS NOT NULL {order} {conflict}").format(
            insert=self.insert.format(
                **self.fixed,
                seed=seed,
                source=source,
                hour=_HOUR.format(alias, time),
                parents=parents,
            ),
            alias=alias,
            time=time,
            order=order,
            conflict=conflict,
        )

    def on_conflict(self) -> sql.Composed:
        """The upsert's clause: every overwritten column from the row the insert proposed."""
        return sql.SQL("ON CONFLICT ({}) DO UPDATE SET {}").format(
            sql.SQL(", ").join(map(sql.Identifier, self.primary_key)),
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in self.overwritten
            ),
        )


# The UTC hour of a time, by arithmetic: date_trunc('hour', t, 'UTC') goes through the time
# zone's rules for every row, for the same result.
_HOUR = sql.SQL("date_bin('1 hour', {}.{}, '2000-01-01 00:00+00')")


def _parents(alias: str, seed: sql.Identifier | None) -> sql.Composed:
    """The join of ``alias``'s rows to the agent and the session whose type and user the
    facts copy, as ``a`` and ``s``: of the agents and sessions of the rows of ``seed``
    only, by key, when the rows are those few."""
    if seed is None:
        return sql.SQL(
            "LEFT JOIN agents a ON a.id = {alias}.agent_id"
            " LEFT JOIN sessions s ON s.id = {alias}.session_id"
        ).format(alias=sql.Identifier(alias))
    return sql.SQL(
        "LEFT JOIN (SELECT id, type FROM agents WHERE id IN (SELECT agent_id FROM {seed})) a"
        " ON a.id = {alias}.agent_id"
        " LEFT JOIN (SELECT id, user_id FROM sessions"
        " WHERE id IN (SELECT session_id FROM {seed})) s ON s.id = {alias}.session_id"
    ).format(seed=seed, alias=sql.Identifier(alias))


# The columns facts copy from their seed row and its parents, that the rollups group by.
DIMENSION_COLUMNS = ("agent_id", "agent_type", "user_id", "session_id")

_LLM_COSTS = cost_sql(call_counts("l", "u"))
_LLM_INSERT = sql.SQL("""
INSERT INTO analytics.llm_facts
{seed}
SELECT l.id, l.created_at, {hour}, l.model, l.agent_id,
       a.type, s.user_id, l.session_id, coalesce(l.prompt_tokens, 0),
       coalesce(l.response_tokens, 0), coalesce(l.latency_ms, 0), coalesce(l.success, false),
       {total}, u.service_tier, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
       u.time_to_first_token_ms, {split}
FROM {source} l
LEFT JOIN agentstream.llm_usage u ON u.id = l.id
{parents}
{priced}
""")
LLM_FACTS = Facts(
    kind="llm",
    fixed={
        "priced": price_in_force("l", sql.SQL("u.service_tier"), call_counts("l", "u")["prompt"]),
        "total": _LLM_COSTS["total"],
        "split": sql.SQL(", ").join(_LLM_COSTS[c] for c in COST_PARTS),
    },
    insert=_LLM_INSERT,
    columns=(
        "id",
        "created_at",
        "model",
        "agent_id",
        "session_id",
        "prompt_tokens",
        "response_tokens",
        "latency_ms",
        "success",
    ),
    entity="llm_interactions",
    alias="l",
    time_column="created_at",
    primary_key=("hour", "id"),
    overwritten=(
        "created_at",
        "model",
        *DIMENSION_COLUMNS,
        "prompt_tokens",
        "response_tokens",
        "latency_ms",
        "success",
        "cost_pico",
        "service_tier",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "ttft_ms",
        *COST_PARTS,
    ),
    key_positions=sql.SQL("3, 1"),  # hour, id
    indexes={"session": "session_id", "agent": "agent_id"},
)

_EXEC_INSERT = sql.SQL("""
INSERT INTO analytics.exec_facts
{seed}
SELECT e.id, e.started_at, {hour}, e.agent_id, a.type,
       s.user_id, e.session_id, coalesce(e.status, 'pending'),
       extract(epoch FROM e.completed_at - e.started_at) * 1000
FROM {source} e
{parents}
""")
EXEC_FACTS = Facts(
    kind="exec",
    fixed={},
    insert=_EXEC_INSERT,
    columns=("id", "started_at", "agent_id", "session_id", "status", "completed_at"),
    entity="agent_executions",
    alias="e",
    time_column="started_at",
    primary_key=("id",),
    overwritten=(
        "started_at",
        "hour",
        *DIMENSION_COLUMNS,
        "status",
        "duration_ms",
    ),
    key_positions=sql.SQL("1"),  # id
    indexes={"hour": "hour", "session": "session_id", "agent": "agent_id"},
)

_ALL_FACTS = (LLM_FACTS, EXEC_FACTS)
_EMPTY = sql.SQL("")


def rebuild_facts(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """Every fact, from the seed tables (the buckets are rebuilt after the commit)."""
    cur.execute("TRUNCATE analytics.llm_facts, analytics.exec_facts")
    resolve_new_models(
        cur,
        prices,
        sql.SQL(
            "SELECT l.model, u.service_tier FROM llm_interactions l"
            " LEFT JOIN agentstream.llm_usage u ON u.id = l.id"
        ),
    )
    # Loading without the indexes and building them after is much faster than maintaining
    # them row by row (BENCHMARKS.md).
    for facts in _ALL_FACTS:
        _drop_indexes(cur, facts)
    # In time order, so that the facts of an hour sit in few pages: an incremental run
    # reads whole days of them back.
    for facts in _ALL_FACTS:
        order = sql.SQL("ORDER BY {}.{}").format(
            sql.Identifier(facts.alias), sql.Identifier(facts.time_column)
        )
        cur.execute(facts.insert_sql(None, order, _EMPTY))
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for facts in _ALL_FACTS:
        _build_indexes(cur, facts)
    cur.execute("ANALYZE analytics.llm_facts")
    cur.execute("ANALYZE analytics.exec_facts")


def _index_name(facts: Facts, name: str) -> str:
    return f"{facts.table}_{name}"


def _drop_indexes(cur: psycopg.Cursor[Any], facts: Facts) -> None:
    cur.execute(
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            facts.identifier, sql.Identifier(_index_name(facts, "pkey"))
        )
    )
    for name in facts.indexes:
        cur.execute(
            sql.SQL("DROP INDEX {}").format(sql.Identifier("analytics", _index_name(facts, name)))
        )


def _build_indexes(cur: psycopg.Cursor[Any], facts: Facts) -> None:
    cur.execute(
        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
            facts.identifier, sql.SQL(", ").join(map(sql.Identifier, facts.primary_key))
        )
    )
    for name, column in facts.indexes.items():
        cur.execute(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(_index_name(facts, name)), facts.identifier, sql.Identifier(column)
            )
        )


def _upsert(facts: Facts, ids: sql.Composable) -> sql.Composed:
    """The upsert of the facts of the seed rows whose ids the query ``ids`` returns, in key
    order: the inserts then walk the primary key's leaves left to right."""
    return facts.insert_sql(
        ids, sql.SQL("ORDER BY {}").format(facts.key_positions), facts.on_conflict()
    )


def _changed_ids(facts: Facts) -> sql.Composed:
    return sql.SQL("SELECT id FROM changed WHERE entity = {}").format(sql.Literal(facts.entity))


def _fold_llm(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """An LLM interaction is immutable and logged only when the sink inserts it: its fact is
    new, or the same after a full rebuild read it first. Its hour never changes, so the hours
    it is in after are all there is to mark. Models not priced yet are found among the
    upserted facts (looking up every changed row's model beforehand costs as much as the rest
    of the statement's joins); when there are any, they are resolved and the statement runs
    once more to cost them."""
    cur.execute("CREATE TEMP TABLE new_models (model text, service_tier text) ON COMMIT DROP")
    fold = sql.SQL("""WITH new AS ({upsert} RETURNING hour, model, service_tier),
        models AS (
            INSERT INTO new_models SELECT DISTINCT n.model, n.service_tier FROM new n
            WHERE NOT EXISTS
            (SELECT 1 FROM analytics.resolved_models r WHERE r.model = n.model
             AND r.service_tier = coalesce(n.service_tier, 'default')))
        {dirty}""").format(
        upsert=_upsert(LLM_FACTS, _changed_ids(LLM_FACTS)),
        dirty=mark_dirty(LLM_FACTS.kind, sql.Identifier("new")),
    )
    cur.execute(fold)
    if cur.execute("SELECT count(*) FROM new_models").fetchone() != (0,):
        resolve_new_models(cur, prices, sql.SQL("SELECT model, service_tier FROM new_models"))
        cur.execute(fold)


def _fold_executions(cur: psycopg.Cursor[Any]) -> None:
    """An execution is updated as it runs, so its fact may move: one statement (one pass over
    the changed ids) marks the hours the rows were in before and the hours they are in after.
    Every part sees the same snapshot, so ``old`` reads the facts as they were before the
    upsert. A changed id the upsert did not write (gone from the seed table, or no longer
    bucketed) has its fact deleted: ``gone`` and ``new`` touch disjoint rows."""
    # Keyed, for the lookups of `old` and `gone`.
    cur.execute(
        sql.SQL("""CREATE TEMP TABLE changed_exec (id uuid PRIMARY KEY) ON COMMIT DROP;
            INSERT INTO changed_exec {}""").format(_changed_ids(EXEC_FACTS))
    )
    cur.execute("ANALYZE changed_exec")
    cur.execute(
        sql.SQL("""WITH old AS (
                SELECT f.hour FROM {facts} f JOIN changed_exec c ON c.id = f.id),
            new AS ({upsert} RETURNING *),
            gone AS (
                DELETE FROM {facts} f USING changed_exec c WHERE f.id = c.id
                AND NOT EXISTS (SELECT 1 FROM new WHERE new.id = c.id))
            {dirty}""").format(
            facts=EXEC_FACTS.identifier,
            upsert=_upsert(EXEC_FACTS, sql.SQL("SELECT id FROM changed_exec")),
            dirty=mark_dirty(
                EXEC_FACTS.kind, sql.SQL("(SELECT hour FROM old UNION SELECT hour FROM new) h")
            ),
        )
    )


# Facts copy a session's user (sessions.user_id) and an agent's type (agents.type): per
# parent table, the facts' column holding the parent's id, the copy, and the parent's column.
_PARENT_COPIES = (
    ("sessions", "session_id", "user_id", "user_id"),
    ("agents", "agent_id", "agent_type", "type"),
)


def _refresh_parent_copies(cur: psycopg.Cursor[Any], facts: Facts) -> None:
    """The sink logs every session and agent it writes, nearly always with the same user and
    type: only the facts whose copy differs from the logged parent's current value are
    updated, in place (found by the facts' session and agent indexes, not a scan), and
    their hours marked dirty."""
    for entity, parent, copy, source in _PARENT_COPIES:
        cur.execute(
            sql.SQL("""WITH refreshed AS (
                    UPDATE {facts} f SET {copy} = p.{source}
                    FROM changed c LEFT JOIN {entity} p ON p.id = c.id
                    WHERE c.entity = {entity_name} AND f.{parent} = c.id
                      AND f.{copy} IS DISTINCT FROM p.{source}
                    RETURNING f.hour)
                {dirty}""").format(
                facts=facts.identifier,
                copy=sql.Identifier(copy),
                source=sql.Identifier(source),
                entity=sql.Identifier(entity),
                entity_name=sql.Literal(entity),
                parent=sql.Identifier(parent),
                dirty=mark_dirty(facts.kind, sql.Identifier("refreshed")),
            )
        )


def fold_calls(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """Refresh the facts' copies of the sessions and agents in ``changed``
    (changes.read_changes), then upsert the facts of its LLM calls; mark the hours facts
    left or entered in analytics.dirty_hours. (Its executions: ``fold_executions``.)"""
    parents = cur.execute(
        "SELECT count(*) FROM changed WHERE entity IN ('sessions', 'agents')"
    ).fetchone()
    # The copies are refreshed before the upserts: the facts upserted copy the parents'
    # current values anyway (the same snapshot), and a new session's or agent's facts,
    # which the refresh would otherwise find by index and read, one by one, only to leave
    # them as they are, are not there yet.
    if parents and parents[0]:
        _refresh_parent_copies(cur, LLM_FACTS)
        _refresh_parent_copies(cur, EXEC_FACTS)
    _fold_llm(cur, prices)


def fold_executions(cur: psycopg.Cursor[Any]) -> None:
    """Upsert the facts of the executions in ``changed``, after ``fold_calls`` (which
    refreshed their copies of the parents); mark the hours they left or entered dirty."""
    _fold_executions(cur)
