"""Alert rules: the TOML format, and errors that name the rule, the field and what is allowed."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from agentstream.alerts.rules import (
    PICO_PER_USD,
    RulesInvalid,
    load_rules,
    parse_duration,
    parse_rules,
)
from agentstream.cli.main import main

GOOD = """
[[rule]]
name = "user-daily-budget"
metric = "cost_usd"
group_by = "user_id"
window = "1d"
budget = "10.00"
levels = [0.8, 1.0]

[[rule]]
name = "gpt4o-p95"
metric = "latency_p95_ms"
group_by = "model"
window = "1h"
hop = "5m"
thresholds = [8000]
min_count = 20
filter = { model = ["gpt-4o"] }

[[rule]]
name = "agent-failures"
metric = "execution_failure_rate"
group_by = "agent_type"
window = "15m"
thresholds = [0.3]
min_count = 10
"""


def _errors(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(RulesInvalid) as caught:
        parse_rules(tomllib.loads(text))
    return [(e.rule, e.field, e.message) for e in caught.value.errors]


def test_a_good_file_parses_with_exact_thresholds() -> None:
    budget, p95, failures = parse_rules(tomllib.loads(GOOD))
    assert budget.group_by == "user_id" and budget.window_s == budget.hop_s == 86400
    # 80% of $10 in picodollars, exactly
    assert [lv.threshold for lv in budget.levels] == [8 * PICO_PER_USD, 10 * PICO_PER_USD]
    assert [lv.name for lv in budget.levels] == ["0.8", "1.0"]
    assert (p95.window_s, p95.hop_s, p95.min_count) == (3600, 300, 20)
    assert p95.models == frozenset({"gpt-4o"}) and p95.agent_types is None
    assert failures.levels[0].threshold == Decimal("0.3") and failures.source == "agent_executions"


def test_windows_are_aligned_to_utc_and_hop() -> None:
    (rule,) = parse_rules(
        tomllib.loads('[[rule]]\nname="r"\nmetric="calls"\nwindow="1h"\nhop="20m"\nthresholds=[1]')
    )
    t = 1_700_000_000  # 2023-11-14 22:13:20 UTC
    starts = rule.window_starts(t)
    assert starts == [t - t % 1200, t - t % 1200 - 1200, t - t % 1200 - 2400]
    assert all(s <= t < s + 3600 for s in starts)


@pytest.mark.parametrize(
    ("text", "rule", "field", "allowed"),
    [
        ('metric="spend"', "#1 (r)", "metric", "cost_usd"),
        ('metric="calls"\ngroup_by="team"', "#1 (r)", "group_by", "agent_type"),
        ('metric="calls"\nwindow="5 minutes"', "#1 (r)", "window", '"5m"'),
        ('metric="calls"\nwindow="1h"\nhop="7m"', "#1 (r)", "hop", "divide"),
        ('metric="calls"\nwindow="7m"', "#1 (r)", "window", "UTC days"),
        ('metric="calls"\nwindow="1h"', "#1 (r)", "budget/thresholds", "either"),
        (
            'metric="calls"\nwindow="1h"\nthresholds=[1]\nmin_count=5',
            "#1 (r)",
            "min_count",
            "rates",
        ),
        ('metric="error_rate"\nwindow="1h"\nthresholds=[30]', "#1 (r)", "thresholds", "0 to 1"),
        ('metric="cost_usd"\nwindow="1h"\nbudget=5\nlevels=[0]', "#1 (r)", "levels", "above 0"),
        ('metric="cost_usd"\nwindow="1h"\nbudget="x"', "#1 (r)", "budget", "not a number"),
        (
            'metric="calls"\nwindow="1h"\nthresholds=[1]\nfilter={team="a"}',
            "#1 (r)",
            "filter",
            "model",
        ),
        (
            'metric="execution_failure_rate"\nwindow="1h"\nthresholds=[0.5]\ngroup_by="model"',
            "#1 (r)",
            "group_by",
            "no model",
        ),
        ('metric="calls"\nwindow="1h"\nthresholds=[1]\nlimit=3', "#1 (r)", "limit", "allowed:"),
    ],
)
def test_each_mistake_names_rule_field_and_what_is_allowed(
    text: str, rule: str, field: str, allowed: str
) -> None:
    ((got_rule, got_field, message),) = _errors(f'[[rule]]\nname="r"\n{text}')
    assert (got_rule, got_field) == (rule, field)
    assert allowed in message


def test_every_mistake_is_reported_at_once() -> None:
    text = (
        '[[rule]]\nname="a"\nmetric="calls"\nwindow="1h"\nthresholds=[1]\n'
        '[[rule]]\nname="a"\nmetric="calls"\nwindow="1h"\nthresholds=[1]\n'
        '[[rule]]\nmetric="calls"\n'
    )
    errors = _errors(text)
    assert [(r, f) for r, f, _ in errors] == [("#3", "name"), ("a", "name")]


def test_durations() -> None:
    assert [parse_duration(d) for d in ("30s", "5m", "2h", "1d")] == [30, 300, 7200, 86400]
    for bad in ("0m", "5", "1w", 5, "1.5h"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert main(["alerts", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "user-daily-budget: cost_usd by user_id over 86400s; levels 8, 10" in out
    assert len(load_rules(good)) == 3

    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname="r"\nmetric="calls"\nwindow="1h"\nthresholds=[1]\nhop="2h"\n')
    assert main(["alerts", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rule #1 (r): hop: must divide the window" in err

    broken = tmp_path / "broken.toml"
    broken.write_text("[[rule]\n")
    assert main(["alerts", "check", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["alerts", "check", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read rules file" in capsys.readouterr().err
