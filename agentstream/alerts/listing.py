"""``agentstream alerts list``: the alerts table, oldest first, optionally followed."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from agentstream.contract.settings import Settings

__all__ = ["ListingError", "list_alerts", "parse_since"]


class ListingError(Exception):
    """A bad argument or an unreachable database; the message says what to fix."""


FOLLOW_POLL_S = 1.0
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_COLUMNS = (
    "id",
    "rule",
    "metric",
    "group_by",
    "group_key",
    "window_start",
    "window_end",
    "level",
    "threshold",
    "value",
    "record_count",
    "fired_at",
    "stored_at",
)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``2026-12-04T10:00Z`` or a time ago (``30m``, ``1d``); ValueError otherwise."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    ago = _AGO.match(text)
    if ago:
        return now - timedelta(**{_UNIT[ago.group(2)]: int(ago.group(1))})
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _line(row: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps({k: str(v) if v is not None else None for k, v in row.items()})
    who = "all" if row["group_by"] == "none" else f"{row['group_by']}={row['group_key']}"
    return (
        f"{row['fired_at']:%Y-%m-%d %H:%M:%S}Z {row['rule']} {who} level={row['level']} "
        f"value={row['value']} threshold={row['threshold']} "
        f"window={row['window_start']:%Y-%m-%d %H:%M}..{row['window_end']:%Y-%m-%d %H:%M}"
    )


def list_alerts(settings: Settings, *, since: str | None, follow: bool, as_json: bool) -> int:
    try:
        start = parse_since(since)
    except ValueError:
        raise ListingError(f"--since {since!r}: an ISO 8601 time or a time ago (30m, 1d)") from None
    query = sql.SQL(
        "SELECT {cols} FROM agentstream.alerts WHERE (stored_at, id) > (%s, %s) "
        "AND fired_at >= %s ORDER BY stored_at, id"
    ).format(cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
    try:
        conn = psycopg.connect(settings.database_conninfo(), autocommit=True, row_factory=dict_row)
    except psycopg.OperationalError as exc:
        raise ListingError(
            f"PostgreSQL at {settings.database_url_redacted()} is not reachable: {exc}"
        ) from None
    last: tuple[datetime, Any] = (
        datetime(1, 1, 1, tzinfo=UTC),
        "00000000-0000-0000-0000-000000000000",
    )
    floor = start or datetime(1, 1, 1, tzinfo=UTC)
    with conn:
        while True:
            for row in conn.execute(query, (*last, floor)).fetchall():
                print(_line(row, as_json), flush=True)
                last = (row["stored_at"], row["id"])
            if not follow:
                return 0
            time.sleep(FOLLOW_POLL_S)
