"""One window of one rule for one group: its running value, the levels it fired, and which
contributions it has already counted. Pure logic, JSON-serializable (a faust table value).

Contributions come from the observe stage, one per (source message, key), each with its
*position*: the source partition and (offset, index) of the last record it covers. A
source partition's contributions reach a key in position order (one producer, one key, one
partition), so a contribution at or before the last position counted from its source is a
replay after a crash or a rebalance, and is skipped: every record counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agentstream.alerts.rules import COUNTED_METRICS, PICO_PER_USD, Level, Rule
from agentstream.alerts.sketch import LatencySketch

__all__ = ["QUANTILES", "Contribution", "WindowState", "display_value"]

QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "latency_p99_ms": 0.99}


@dataclass
class Contribution:
    """What some records add to a window: ``count`` records, ``num`` (the metric's sum:
    picodollars, tokens, errors or failures), unpriced calls and latencies."""

    source: str  # e.g. "l2": llm_interactions partition 2 ("e" for agent_executions)
    offset: int
    index: int
    count: int = 0
    num: int = 0
    unpriced: int = 0
    latencies: list[int] = field(default_factory=list)
    event_time: int = 0  # the latest created_at covered (epoch seconds)

    def to_json(self) -> list[Any]:
        """A list, in the fields' order: the observations topic carries thousands a second."""
        return [
            self.source,
            self.offset,
            self.index,
            self.count,
            self.num,
            self.unpriced,
            self.latencies,
            self.event_time,
        ]

    @classmethod
    def from_json(cls, d: list[Any] | dict[str, Any]) -> Contribution:
        if isinstance(d, list):
            s, o, i, n, v, u, lat, t = d
            return cls(s, o, i, n, v, u, list(lat), t)
        # the keyed form, as versions before the list wrote it
        return cls(d["s"], d["o"], d["i"], d["n"], d["v"], d["u"], list(d["l"]), d["t"])


@dataclass
class WindowState:
    partition: int  # of the observations topic: where the key's changelog lives
    count: int = 0
    num: int = 0
    unpriced: int = 0
    sketch: LatencySketch = field(default_factory=LatencySketch)
    # level -> (value, count, fired_at) when it fired: enough to publish the very same
    # alert again (app.py re-publishes them after a restart or a rebalance)
    fired: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    applied: dict[str, tuple[int, int]] = field(default_factory=dict)

    def apply(self, c: Contribution) -> bool:
        """Count ``c`` unless it was counted before; True when it was new."""
        position = (c.offset, c.index)
        last = self.applied.get(c.source)
        if last is not None and position <= last:
            return False
        self.applied[c.source] = position
        self.count += c.count
        self.num += c.num
        self.unpriced += c.unpriced
        for x in c.latencies:
            self.sketch.add(x)
        return True

    def value(self, rule: Rule) -> Decimal | None:
        """The window's value in the unit of the rule's thresholds, or None while the rule
        waits for min_count records (rates, percentiles)."""
        if rule.metric in COUNTED_METRICS and self.count < rule.min_count:
            return None
        if self.count == 0:
            return None
        if rule.metric in ("cost_usd", "tokens"):
            return Decimal(self.num)
        if rule.metric == "calls":
            return Decimal(self.count)
        if rule.metric in QUANTILES:
            q = self.sketch.quantile(QUANTILES[rule.metric])
            return None if q is None else Decimal(repr(q))
        return Decimal(self.num) / Decimal(self.count)  # error and failure rates

    def newly_reached(self, rule: Rule, fired_at: str = "") -> list[tuple[Level, Decimal]]:
        """The levels reached now and never fired in this window; marks them fired."""
        value = self.value(rule)
        if value is None:
            return []
        reached = [
            (level, value)
            for level in rule.levels
            if value >= level.threshold and level.name not in self.fired
        ]
        for level, _ in reached:
            self.fired[level.name] = (str(value), self.count, fired_at)
        return reached

    def to_json(self) -> dict[str, Any]:
        return {
            "p": self.partition,
            "n": self.count,
            "v": self.num,
            "u": self.unpriced,
            "k": self.sketch.to_json(),
            "f": {name: list(f) for name, f in self.fired.items()},
            "a": {s: list(pos) for s, pos in self.applied.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WindowState:
        return cls(
            partition=d["p"],
            count=d["n"],
            num=d["v"],
            unpriced=d["u"],
            sketch=LatencySketch.from_json(d["k"]),
            fired={name: (f[0], f[1], f[2]) for name, f in d["f"].items()},
            applied={s: (pos[0], pos[1]) for s, pos in d["a"].items()},
        )


def display_value(rule: Rule, value: Decimal) -> Decimal:
    """A value in the metric's display unit (USD for cost, which is kept in picodollars;
    percentiles to the hundredth of a millisecond, not a float's last digits)."""
    if rule.metric == "cost_usd":
        return value / PICO_PER_USD
    if rule.metric in QUANTILES:
        return value.quantize(Decimal("0.01"))
    return value
