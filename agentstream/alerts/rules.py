"""Alert rules: parsed from a TOML file into checked, immutable values.

A file holds ``[[rule]]`` tables (docs/alerts.md has the format and an example). Every
mistake is reported as a :class:`RuleError` naming the rule, the field and what is
allowed, so that ``agentstream alerts check`` can print all of them at once.

Thresholds are kept exact: money in picodollars (the unit the rollups store), other metrics
as ``Decimal``; a level fires when the window's value is at or above its threshold.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "GROUPINGS",
    "METRICS",
    "PICO_PER_USD",
    "Level",
    "Rule",
    "RuleError",
    "RulesInvalid",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

PICO_PER_USD = 10**12

Source = Literal["llm_interactions", "agent_executions"]

# metric -> the topic its records come from
METRICS: dict[str, Source] = {
    "cost_usd": "llm_interactions",
    "tokens": "llm_interactions",
    "calls": "llm_interactions",
    "error_rate": "llm_interactions",
    "latency_p50_ms": "llm_interactions",
    "latency_p95_ms": "llm_interactions",
    "latency_p99_ms": "llm_interactions",
    "execution_failure_rate": "agent_executions",
}
# Rates and percentiles are noise over a handful of records: they wait for min_count.
COUNTED_METRICS = frozenset(
    {"error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "execution_failure_rate"}
)
RATE_METRICS = frozenset({"error_rate", "execution_failure_rate"})
GROUPINGS = ("none", "user_id", "session_id", "agent_id", "agent_type", "model")
FILTERS = ("model", "agent_type")
_RULE_FIELDS = frozenset(
    {"name", "metric", "group_by", "window", "hop", "budget", "levels", "thresholds"}
    | {"min_count", "filter"}
)
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class RuleError(ValueError):
    """One mistake in a rules file: where it is and what is allowed."""

    def __init__(self, rule: str, field: str, message: str) -> None:
        super().__init__(f"rule {rule}: {field}: {message}")
        self.rule, self.field, self.message = rule, field, message


class RulesInvalid(ValueError):
    """A rules file with one or more mistakes; ``errors`` lists them all."""

    def __init__(self, source: str, errors: list[RuleError]) -> None:
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{source}: {len(errors)} problem(s):\n{lines}")
        self.errors = errors


@dataclass(frozen=True)
class Level:
    """One level of a rule: fires once per group and window when the value reaches it."""

    name: str  # how the level is shown and keyed: "0.8" (of a budget) or the threshold
    threshold: Decimal  # in the metric's unit (picodollars for cost_usd)


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    group_by: str
    window_s: int
    hop_s: int  # == window_s for a tumbling window
    levels: tuple[Level, ...]
    min_count: int
    models: frozenset[str] | None
    agent_types: frozenset[str] | None
    budget: Decimal | None  # as written (USD for cost_usd)

    @property
    def source(self) -> Source:
        return METRICS[self.metric]

    def window_starts(self, t: int) -> list[int]:
        """The starts (epoch seconds, UTC-aligned) of the windows holding time ``t``."""
        last = t - t % self.hop_s
        starts = []
        start = last
        while start > t - self.window_s:
            starts.append(start)
            start -= self.hop_s
        return starts


def parse_duration(value: Any) -> int:
    """``"90s"``, ``"5m"``, ``"1h"``, ``"1d"`` -> seconds; ValueError otherwise."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"{value!r} is not a duration: a positive whole number and a unit s, m, h or d "
            '(e.g. "5m", "1d")'
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _number(value: Any, rule: str, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RuleError(rule, field, f"{value!r} is not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RuleError(rule, field, f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise RuleError(rule, field, f"{value!r} must be a non-negative number")
    return number


def _string_list(value: Any, rule: str, field: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise RuleError(rule, field, "expected a string or a non-empty list of strings")
    return frozenset(value)


def _levels(
    raw: dict[str, Any], rule: str, metric: str
) -> tuple[tuple[Level, ...], Decimal | None]:
    has_budget, has_thresholds = "budget" in raw, "thresholds" in raw
    if has_budget == has_thresholds:
        raise RuleError(
            rule,
            "budget/thresholds",
            "give either budget (with levels, fractions of it) or thresholds (absolute values)",
        )
    scale = PICO_PER_USD if metric == "cost_usd" else 1
    if has_budget:
        budget = _number(raw["budget"], rule, "budget")
        fractions = raw.get("levels", [1.0])
        if not isinstance(fractions, list) or not fractions:
            raise RuleError(
                rule, "levels", "expected a non-empty list of fractions, e.g. [0.8, 1.0]"
            )
        values = [_number(f, rule, "levels") for f in fractions]
        if any(v == 0 for v in values):
            raise RuleError(rule, "levels", "fractions must be above 0 (1.0 is the whole budget)")
        named = [(str(v), budget * v * scale) for v in values]
    else:
        if "levels" in raw:
            raise RuleError(
                rule, "levels", "levels are fractions of a budget; with thresholds, omit them"
            )
        budget = None
        raw_thresholds = raw["thresholds"]
        if not isinstance(raw_thresholds, list) or not raw_thresholds:
            raise RuleError(
                rule, "thresholds", "expected a non-empty list of numbers, e.g. [5000, 8000]"
            )
        values = [_number(t, rule, "thresholds") for t in raw_thresholds]
        if metric in RATE_METRICS and any(v > 1 for v in values):
            raise RuleError(
                rule, "thresholds", f"{metric} is a fraction: thresholds go from 0 to 1"
            )
        named = [(str(v), v * scale) for v in values]
    if len({n for n, _ in named}) != len(named):
        raise RuleError(rule, "levels" if has_budget else "thresholds", "a value is listed twice")
    levels = tuple(Level(n, t) for n, t in sorted(named, key=lambda item: item[1]))
    return levels, budget


def _rule(raw: Any, index: int) -> Rule:
    label = f"#{index + 1}"
    if not isinstance(raw, dict):
        raise RuleError(label, "-", "each [[rule]] must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(label, "name", "required: 1-100 characters, letters, digits, '_', '.', '-'")
    label = f"{label} ({name})"
    unknown = set(raw) - _RULE_FIELDS
    if unknown:
        raise RuleError(
            label,
            ", ".join(sorted(unknown)),
            f"unknown field; allowed: {', '.join(sorted(_RULE_FIELDS))}",
        )
    metric = raw.get("metric")
    if metric not in METRICS:
        raise RuleError(label, "metric", f"{metric!r}: allowed: {', '.join(METRICS)}")
    group_by = raw.get("group_by", "none")
    if group_by not in GROUPINGS:
        raise RuleError(label, "group_by", f"{group_by!r}: allowed: {', '.join(GROUPINGS)}")
    if metric == "execution_failure_rate" and group_by == "model":
        raise RuleError(
            label,
            "group_by",
            "executions have no model; allowed: " + ", ".join(g for g in GROUPINGS if g != "model"),
        )
    try:
        window_s = parse_duration(raw.get("window"))
    except ValueError as exc:
        raise RuleError(label, "window", str(exc)) from None
    hop_s = window_s
    if "hop" in raw:
        try:
            hop_s = parse_duration(raw["hop"])
        except ValueError as exc:
            raise RuleError(label, "hop", str(exc)) from None
        if hop_s > window_s or window_s % hop_s:
            raise RuleError(label, "hop", "must divide the window (e.g. window 1h, hop 5m)")
    if 86400 % hop_s and hop_s % 86400:
        raise RuleError(
            label,
            "hop" if "hop" in raw else "window",
            "windows are aligned to UTC days: use a divisor of 1d (1m, 5m, 1h, ...) or whole days",
        )
    levels, budget = _levels(raw, label, metric)
    min_count = raw.get("min_count", 1)
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise RuleError(label, "min_count", f"{min_count!r}: a whole number, 1 or more")
    if "min_count" in raw and metric not in COUNTED_METRICS:
        raise RuleError(label, "min_count", f"applies to rates and percentiles only, not {metric}")
    filters = raw.get("filter", {})
    if not isinstance(filters, dict):
        raise RuleError(label, "filter", "expected a table, e.g. filter = { model = ['gpt-4o'] }")
    bad = set(filters) - set(FILTERS)
    if bad:
        raise RuleError(label, "filter", f"{', '.join(sorted(bad))}: allowed: {', '.join(FILTERS)}")
    if "model" in filters and metric == "execution_failure_rate":
        raise RuleError(label, "filter.model", "executions have no model; allowed: agent_type")
    models = _string_list(filters["model"], label, "filter.model") if "model" in filters else None
    types = (
        _string_list(filters["agent_type"], label, "filter.agent_type")
        if "agent_type" in filters
        else None
    )
    return Rule(name, metric, group_by, window_s, hop_s, levels, min_count, models, types, budget)


def parse_rules(doc: dict[str, Any], source: str = "rules") -> list[Rule]:
    """The rules of a parsed TOML document; RulesInvalid lists every mistake."""
    errors: list[RuleError] = []
    unknown = set(doc) - {"rule"}
    if unknown:
        errors.append(
            RuleError(
                "-", ", ".join(sorted(unknown)), "unknown top-level key; rules are [[rule]] tables"
            )
        )
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        errors.append(RuleError("-", "rule", "no rules: add at least one [[rule]] table"))
        raw_rules = []
    rules: list[Rule] = []
    for i, raw in enumerate(raw_rules):
        try:
            rules.append(_rule(raw, i))
        except RuleError as exc:
            errors.append(exc)
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            errors.append(
                RuleError(rule.name, "name", "two rules have this name; names key alerts")
            )
        seen.add(rule.name)
    if errors:
        raise RulesInvalid(source, errors)
    return rules


def load_rules(path: Path) -> list[Rule]:
    """Read and check a rules file; RulesInvalid (a ValueError) says what is wrong where."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RulesInvalid(str(path), [RuleError("-", "-", f"not valid TOML: {exc}")]) from None
    return parse_rules(doc, str(path))
