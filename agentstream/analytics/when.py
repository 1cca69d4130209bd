"""Parse the times the analytics commands accept: ISO dates/timestamps, ``now``, or ``7d`` ago."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

__all__ = ["parse_date", "parse_when"]

_AGO = re.compile(r"^(?P<n>\d+)(?P<unit>[mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``2026-10-01``, ``2026-10-01T12:00:00+02:00`` (no zone: UTC), ``now``, ``24h``/``7d`` ago."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if value == "now":
        return now
    ago = _AGO.match(value)
    if ago:
        return now - timedelta(**{_UNITS[ago["unit"]]: int(ago["n"])})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use YYYY-MM-DD, an ISO timestamp, now, or 24h/7d/2w ago"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(text: str) -> date:
    """A UTC date for partition ranges; a timestamp is taken at its UTC date."""
    return parse_when(text).astimezone(UTC).date()
