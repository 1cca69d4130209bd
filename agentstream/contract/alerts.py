"""The records of the ``{prefix}alerts`` topic: one per (rule, group key, window, level).

Written by ``agentstream alerts run`` (agentstream/alerts/), read by its table writer and
by anyone who subscribes. ``id`` is derived from (rule, group key, window start, level), so
that a repeat after a crash is the same alert, absorbed by the table's unique key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict

__all__ = ["ALERT_ID_NAMESPACE", "Alert", "alert_id"]

ALERT_ID_NAMESPACE = uuid.UUID("3f0d2a6c-8b1e-5d47-a2c9-1e7f40b9d6a3")


def alert_id(rule: str, group_key: str, window_start: datetime, level: str) -> uuid.UUID:
    return uuid.uuid5(
        ALERT_ID_NAMESPACE, "\x1f".join((rule, group_key, window_start.isoformat(), level))
    )


class Alert(BaseModel):
    """A rule's level reached by a group in a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    rule: str
    metric: str
    group_by: str  # user_id, session_id, agent_id, agent_type, model or none
    group_key: str  # the group's value ("*" for none, "-" when unknown)
    window_start: AwareDatetime
    window_end: AwareDatetime
    level: str  # a fraction of the budget ("0.8") or the absolute threshold
    threshold: Decimal  # in the metric's unit (USD for cost_usd, ms, a fraction...)
    value: Decimal  # the window's value when the level was reached
    count: int  # records counted in the window at that point
    fired_at: AwareDatetime  # wall-clock time of the alerts process
    text: str  # a human-readable line (the webhook's Slack-compatible text)
