"""The change log and the watermark: which seed rows changed since the last run, and which
hours of facts those changes made dirty.

The sink logs every row it inserts or updates in ``agentstream.change_log``; a run reads the
lines after its watermark, folds them into the facts (facts.py) and deletes them. The
watermark advances to the last seq before the first *young* gap: an identity value is taken
before its transaction commits, so a missing seq may be a transaction still in flight. A gap
older than ``GAP_GRACE`` is taken as a rollback. Lines past a young gap are read again next
time; the facts' upserts make that harmless.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

__all__ = ["GAP_GRACE", "mark_dirty", "new_watermark", "prune_change_log", "read_changes"]

# How long a hole in change_log.seq is waited for before it is taken as a rolled-back
# transaction: longer than any sink transaction runs.
GAP_GRACE = "5 minutes"


def read_changes(cur: psycopg.Cursor[Any], watermark: int) -> int:
    """The (entity, id) of the lines after ``watermark`` into the temp table ``changed``
    (kept past a commit: the run's first part spans two transactions; the second drops
    it); returns how many."""
    cur.execute(
        """CREATE TEMP TABLE changed AS
           SELECT DISTINCT entity, id FROM agentstream.change_log WHERE seq > %s""",
        (watermark,),
    )
    count = cur.rowcount
    # Temp tables have no statistics: plans need them. A sample of 3,000 lines (not the
    # default 30,000) finds the few entities and that ids are unique as well, in a third
    # of the time.
    cur.execute(
        "SET LOCAL default_statistics_target = 10; ANALYZE changed; RESET default_statistics_target"
    )
    return count


def new_watermark(cur: psycopg.Cursor[Any], watermark: int) -> int:
    """The last seq after ``watermark`` before the first gap younger than GAP_GRACE."""
    cur.execute(
        """
        WITH c AS (
            SELECT seq, logged_at, coalesce(lag(seq) OVER (ORDER BY seq), %(wm)s) AS prev
            FROM agentstream.change_log WHERE seq > %(wm)s)
        SELECT coalesce(
            min(prev) FILTER (WHERE seq - prev > 1
                              AND logged_at > now() - %(grace)s::interval),
            max(seq), %(wm)s)
        FROM c""",
        {"wm": watermark, "grace": GAP_GRACE},
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def prune_change_log(cur: psycopg.Cursor[Any], after: int, upto: int) -> None:
    """Delete the lines folded in: after ``after`` (an incremental run's old watermark; 0 for
    a full rebuild, which deletes every folded line) up to ``upto`` (the new watermark: never
    one past a young gap). The lower bound starts the primary key's scan past the lines
    earlier runs deleted: with ``seq <= upto`` alone PostgreSQL walks the dead ones too until
    a vacuum."""
    cur.execute("DELETE FROM agentstream.change_log WHERE seq > %s AND seq <= %s", (after, upto))


def mark_dirty(kind: str, hours: sql.Composable) -> sql.Composed:
    """The statement marking dirty, for the rollup ``kind``, the ``hour`` column of the query
    (or CTE name) ``hours``: its buckets are rebuilt by the run's last transaction."""
    return sql.SQL(
        """INSERT INTO analytics.dirty_hours (kind, hour)
                SELECT DISTINCT {kind}, hour FROM {hours} ON CONFLICT DO NOTHING"""
    ).format(kind=sql.Literal(kind), hours=hours)
