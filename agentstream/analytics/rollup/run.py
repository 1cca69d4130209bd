"""A rollup run: fold new rows into the fact tables and recompute only the touched buckets.

Under an advisory lock, so that runs serialize. An incremental run takes three transactions:

1. The calls' facts. Prices (pricing.py): the shipped table merged with the user's file is
   synced into ``analytics.prices`` when its fingerprint differs from the one the facts were
   costed with, and the facts of the models whose price periods changed are re-costed.
   Changes (changes.py): the ``agentstream.change_log`` lines after the watermark name the
   llm_interactions / agent_executions rows the sink inserted or updated, and the sessions
   / agents whose user or type the facts copy. The facts' copies of those parents are
   refreshed and the calls' facts upserted (facts.py); the hours those facts were in before
   and after become dirty (``analytics.dirty_hours``).
2. The executions' facts, upserted the same way; the watermark advances and the lines
   folded in are deleted. This runs on a thread while this process reads the calls'
   committed facts of their dirty hours (reader.py, a second connection) and groups them
   in DuckDB (grouping.py): the server and the client work at the same time. If it fails,
   the watermark stays, and the next run folds the same lines again (upserts: the same
   facts) and marks their hours again.
3. The buckets (buckets.py): the rollup rows of the dirty hours and of their days are
   deleted and rebuilt from the facts, the calls' from the rows grouped during (2), the
   executions' read and grouped while the calls' are copied in; a day row's sums are its
   hour rows' (days.py); the dirty hours are cleared. The columns a day's percentiles need,
   and the day's hour rows, are read early, while (1) runs, for the days of a sample of
   the changed calls (only the clean hours' facts and rows of those reads are used). A
   run that dies before this point leaves its hours dirty; the next run rebuilds them.

``full=True`` (and the first run) rebuilds every fact from the seed tables in one first
transaction, which also catches rows written by anything other than the sink, advances the
watermark and marks the buckets stale (``rollup_state.buckets_stale``); the second rebuilds
every bucket. A run that dies in between leaves them stale, and the next run rebuilds them
all. Until then readers see the old rollup rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from agentstream.analytics.prices import PriceRow, fingerprint, load_prices
from agentstream.analytics.rollup.buckets import Behind, Grouped, early_read, group_calls, recompute
from agentstream.analytics.rollup.changes import new_watermark, prune_change_log, read_changes
from agentstream.analytics.rollup.facts import fold_calls, fold_executions, rebuild_facts
from agentstream.analytics.rollup.pricing import recost, sync_prices
from agentstream.analytics.rollup.reader import _CommittedReader

__all__ = ["RollupResult", "run_rollup"]

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every agentstream process.
_LOCK_KEY = 0x616E616C79746963


@dataclass(frozen=True)
class RollupResult:
    full: bool
    reason: str
    changes: int
    llm_facts: int  # estimated rows in the fact tables (pg_class.reltuples)
    exec_facts: int
    hours: int
    days: int
    watermark: int
    unpriced_models: list[str]
    seconds: float


@dataclass(frozen=True)
class _Folded:
    """What the first transaction did (and, for an incremental run, left to the next)."""

    full: bool
    reason: str
    changes: int
    watermark: int  # the new one
    after: int  # the old one
    digest: str
    stale: bool  # buckets_stale when the run began
    # An incremental run's dirty hours of calls (epoch seconds, sorted) after the calls'
    # facts were folded in.
    call_hours: list[int]


def _configure(cur: psycopg.Cursor[Any]) -> None:
    """Session settings for a run, then the lock (held across its transactions, released
    when the connection closes)."""
    # One round trip (statements without parameters may share one), then the lock.
    cur.execute(
        "SET TIME ZONE 'UTC'; SET work_mem = '64MB';"
        # The facts a run touches are found by index from a few thousand ids; with the
        # default page cost the planner prefers scanning all facts.
        " SET random_page_cost = 1.1;"
        # Everything a run writes is derived from the seed tables and the change log, and
        # each transaction is atomic either way: a commit lost in a crash of the server is
        # undone whole (facts and their dirty hours, watermark and change-log lines, or
        # dirty hours and rollup rows together) and the next run does it again. No wait
        # for the WAL flush.
        " SET synchronous_commit = off"
    )
    cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))


# Stale without a full rebuild in this run: one stopped before its buckets, or a migration
# (0013) asked for them all.
STALE_BUCKETS_REASON = (
    "every bucket: they were marked stale (by a full rebuild that stopped before them, "
    "or by a migration)"
)

_SAVE_STATE = sql.SQL(
    "UPDATE analytics.rollup_state SET watermark = %s, prices_fingerprint = %s,"
    " updated_at = now(){full}"
)


def _fold(
    cur: psycopg.Cursor[Any],
    reader: _CommittedReader,
    prices: list[PriceRow],
    digest: str,
    full: bool,
) -> _Folded:
    """The first transaction: prices, then the facts (all of them, and the watermark; or
    the calls' facts of the changes: ``_finish_fold`` does the rest)."""
    row = cur.execute(
        "SELECT watermark, prices_fingerprint, full_rebuild_at, buckets_stale"
        " FROM analytics.rollup_state FOR UPDATE"
    ).fetchone()
    if row is None:
        raise RuntimeError("analytics.rollup_state is empty: run `agentstream migrate`")
    watermark, old_digest, rebuilt_at, stale = row
    reason = "requested" if full else ""
    if not full and (rebuilt_at is None or not old_digest):
        reason, full = "first run", True
    # Reads the facts of the changed calls' days while the facts are folded in.
    reader.read_early(None if full else early_read(watermark))
    if old_digest != digest and full:
        sync_prices(cur, prices)  # every fact is costed again below
    elif old_digest != digest:
        reason = f"prices changed: {recost(cur, prices)} model(s) re-costed"
    # The change log holds the lines not folded yet, so the planner expects `seq >
    # watermark` to match all of them and scans the table, whose pages after a long backlog
    # are mostly empty; the primary key finds them directly.
    cur.execute("SET LOCAL enable_seqscan = off")
    upto = new_watermark(cur, watermark)
    changes = 0 if full else read_changes(cur, watermark)
    cur.execute("SET LOCAL enable_seqscan = on")
    folded = _Folded(full, reason, changes, upto, watermark, digest, bool(stale), [])
    if full:
        rebuild_facts(cur, prices)
        _save_state(cur, folded)
        return folded
    if changes:
        fold_calls(cur, prices)
    cur.execute(
        "SELECT extract(epoch FROM hour)::bigint FROM analytics.dirty_hours"
        " WHERE kind = 'llm' ORDER BY 1"
    )
    return replace(folded, call_hours=[r[0] for r in cur.fetchall()])


def _save_state(cur: psycopg.Cursor[Any], folded: _Folded) -> None:
    """The change log's folded lines deleted, the watermark and the prices' fingerprint
    saved (a full rebuild also marks the buckets stale)."""
    prune_change_log(cur, 0 if folded.full else folded.after, folded.watermark)
    stale = sql.SQL(", full_rebuild_at = now(), buckets_stale = true" if folded.full else "")
    cur.execute(_SAVE_STATE.format(full=stale), (folded.watermark, folded.digest))


def _finish_fold(cur: psycopg.Cursor[Any], folded: _Folded) -> None:
    """An incremental run's second transaction of facts: the executions' facts, then the
    watermark. Its calls' facts are committed already; if this one fails, the next run
    folds the same lines again (upserts: the same facts) and marks their hours again."""
    if folded.changes:
        fold_executions(cur)
    _save_state(cur, folded)
    cur.execute("DROP TABLE changed")


def _finish_and_group(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    reader: _CommittedReader,
    folded: _Folded,
) -> Grouped | None:
    """``_finish_fold`` in its transaction, on a thread, while this one reads the calls'
    committed facts of their dirty hours and groups them: the server folds the executions
    while DuckDB groups the calls. Returns those rows (None: nothing grouped early)."""

    def finish() -> None:
        with conn.transaction():
            _finish_fold(cur, folded)

    if folded.stale or not folded.call_hours:
        finish()
        return None
    behind = Behind(finish, "rollup-finish")
    try:
        calls = group_calls(reader, folded.call_hours)
    except BaseException:
        behind.join(quiet=True)  # its own error, if any, is not this one's cause
        raise
    behind.join()
    return calls


def _rebuild_buckets(
    cur: psycopg.Cursor[Any], reader: _CommittedReader, folded: _Folded, calls: Grouped | None
) -> tuple[int, int, str]:
    """The last transaction: the buckets, rebuilt from the facts committed before (so
    that a second connection can read them). All of them after a full rebuild of the facts,
    or when one died before this point. Returns the hours and days rebuilt, and the run's
    reason."""
    row = cur.execute("SELECT buckets_stale FROM analytics.rollup_state FOR UPDATE").fetchone()
    stale = bool(row and row[0])
    hours, days = recompute(cur, reader, all_buckets=stale, calls=calls)
    reason = folded.reason
    if stale:
        cur.execute("UPDATE analytics.rollup_state SET buckets_stale = false")
        if not folded.full:
            reason = STALE_BUCKETS_REASON
    return hours, days, reason


def _unpriced_models(cur: psycopg.Cursor[Any]) -> list[str]:
    cur.execute(
        """SELECT DISTINCT r.model FROM analytics.resolved_models r
           WHERE EXISTS (SELECT 1 FROM analytics.llm_rollup u WHERE u.granularity = 'day'
             AND u.dimension = 'model' AND u.key = r.model AND u.unpriced_calls > 0)
           ORDER BY 1"""
    )
    return [row[0] for row in cur.fetchall()]


def _estimated_rows(cur: psycopg.Cursor[Any], table: str) -> int:
    """Kept by ANALYZE and autovacuum: an exact count scans the table."""
    row = cur.execute(
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
        (f"analytics.{table}",),
    ).fetchone()
    return int(row[0]) if row else 0


def run_rollup(
    conninfo: str, *, full: bool = False, prices_file: Path | None = None
) -> RollupResult:
    """Bring facts and rollups up to date; see the module docstring for what is recomputed."""
    started = time.perf_counter()
    prices = load_prices(prices_file)
    digest = fingerprint(prices)
    reader = _CommittedReader(conninfo)
    reader.start()  # connects while this thread does
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
            _configure(cur)
            with conn.transaction():
                folded = _fold(cur, reader, prices, digest, full)
            calls = None if folded.full else _finish_and_group(conn, cur, reader, folded)
            with conn.transaction():
                hours, days, reason = _rebuild_buckets(cur, reader, folded, calls)
            unpriced = _unpriced_models(cur)
            llm_n = _estimated_rows(cur, "llm_facts")
            exec_n = _estimated_rows(cur, "exec_facts")
    finally:
        reader.close()
    result = RollupResult(
        full=folded.full,
        reason=reason,
        changes=folded.changes,
        llm_facts=llm_n,
        exec_facts=exec_n,
        hours=hours,
        days=days,
        watermark=folded.watermark,
        unpriced_models=unpriced,
        seconds=time.perf_counter() - started,
    )
    log.debug("rollup done: %s", result)
    return result
