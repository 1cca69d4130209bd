"""The observe stage's logic: a record, with its session's user and its agent's type, becomes
contributions to the windows of the rules it matches. No Kafka here (agentstream/alerts/app.py).

Records are read as the sink stores them: ``created_at`` (``started_at`` for executions)
missing means the Kafka record's timestamp (``Record.with_ingest_defaults``); calls are costed
by :class:`agentstream.alerts.costing.Coster`, the rollup's arithmetic. An execution counts
once, by the record that gives its final status (completed, failed or cancelled).

Late records: per source partition the stage keeps the latest event time seen (its
watermark); a record whose window ended ``lateness_s`` or more before the watermark is
*late*: left to the rollups and counted (``late`` in the returned tally), never added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentstream.alerts.costing import Coster
from agentstream.alerts.rules import Rule
from agentstream.alerts.windows import QUANTILES, Contribution
from agentstream.contract.entities import AgentExecution, LLMInteraction, Record

__all__ = ["NO_GROUP", "UNKNOWN", "Context", "Observer", "decode_key", "encode_key"]

NO_GROUP = "*"  # the group key of group_by = "none"
UNKNOWN = "-"  # a group key that is null (no agent) or unknown (session never seen)
_KEYS_KEPT = 100_000
_TERMINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Context:
    user_id: str | None
    agent_type: str | None


def encode_key(rule: str, group: str, window_start: int) -> bytes:
    return json.dumps([rule, group, window_start], separators=(",", ":")).encode()


def decode_key(key: bytes) -> tuple[str, str, int]:
    rule, group, start = json.loads(key)
    return str(rule), str(group), int(start)


@dataclass
class Tally:
    late: int = 0
    contributions: dict[bytes, Contribution] = field(default_factory=dict)


class Observer:
    def __init__(self, rules: Iterable[Rule], coster: Coster, lateness_s: int) -> None:
        self.rules = list(rules)
        self.coster = coster
        self.lateness_s = lateness_s
        self.watermarks: dict[str, int] = {}
        self.needs_user = any(r.group_by == "user_id" for r in self.rules)
        self.needs_type = any(
            r.group_by == "agent_type" or r.agent_types is not None for r in self.rules
        )
        self.sources = {r.source for r in self.rules}
        self._keys: dict[tuple[str, str, int], bytes] = {}

    def _key(self, rule: str, group: str, start: int) -> bytes:
        """encode_key, kept: a window's key is made for each of its records."""
        key = self._keys.get((rule, group, start))
        if key is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            key = self._keys[(rule, group, start)] = encode_key(rule, group, start)
        return key

    def missing_context(self, record: Record, users: Any, types: Any) -> bool:
        """Whether the record waits for its session's user or its agent's type."""
        if self.needs_user and str(record.session_id) not in users:  # type: ignore[attr-defined]
            return True
        agent_id = record.agent_id  # type: ignore[attr-defined]
        return self.needs_type and agent_id is not None and str(agent_id) not in types

    def add(
        self,
        tally: Tally,
        source: str,
        offset: int,
        index: int,
        record: Record,
        context: Context,
        *,
        ingest_time: datetime | None = None,
    ) -> None:
        """Add one record's contributions to ``tally`` (per key, in position order); a
        record without its event time has ``ingest_time`` (the Kafka timestamp)."""
        if isinstance(record, LLMInteraction):
            entity, when = "llm_interactions", record.created_at or ingest_time
        elif isinstance(record, AgentExecution):
            if record.status not in _TERMINAL:
                return
            entity, when = "agent_executions", record.started_at or ingest_time
        else:
            return
        if entity not in self.sources or when is None:
            return
        t = int(when.timestamp())
        mark = max(self.watermarks.get(source, t), t)
        self.watermarks[source] = mark
        for rule in self.rules:
            if rule.source != entity or not self._matches(rule, record, context):
                continue
            group = self._group(rule, record, context)
            for start in rule.window_starts(t):
                if start + rule.window_s + self.lateness_s <= mark:
                    tally.late += 1
                    continue
                key = self._key(rule.name, group, start)
                c = tally.contributions.get(key)
                if c is None:
                    c = tally.contributions[key] = Contribution(source, offset, index)
                c.offset, c.index, c.event_time = offset, index, max(c.event_time, t)
                self._count(rule, record, when, c)

    def _count(self, rule: Rule, record: Record, when: datetime, c: Contribution) -> None:
        c.count += 1
        if isinstance(record, AgentExecution):
            c.num += record.status == "failed"
            return
        assert isinstance(record, LLMInteraction)
        metric = rule.metric
        if metric == "cost_usd":
            cost = self.coster.call_pico(record, when)
            if cost is None:
                c.unpriced += 1
            else:
                c.num += cost
        elif metric == "tokens":
            c.num += record.prompt_tokens + record.response_tokens
        elif metric == "error_rate":
            c.num += not record.success
        elif metric in QUANTILES:
            c.latencies.append(record.latency_ms)

    @staticmethod
    def _matches(rule: Rule, record: Record, context: Context) -> bool:
        if rule.models is not None and getattr(record, "model", None) not in rule.models:
            return False
        return rule.agent_types is None or context.agent_type in rule.agent_types

    @staticmethod
    def _group(rule: Rule, record: Record, context: Context) -> str:
        by = rule.group_by
        if by == "none":
            return NO_GROUP
        if by == "user_id":
            value: object = context.user_id
        elif by == "agent_type":
            value = context.agent_type
        else:  # session_id, agent_id, model: fields of the record
            value = getattr(record, by)
        return UNKNOWN if value is None else str(value)
