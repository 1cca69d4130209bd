"""Reports (totals equal direct SQL on the seed tables, HTML charts) and session timelines."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.types.json import Jsonb

from agentstream.analytics.report import build_report, render_csv, render_json, render_table
from agentstream.analytics.report_html import CHART_IDS, render_html
from agentstream.analytics.timeline import TimelineError, load_timeline, render_text, to_json
from agentstream.cli.main import main
from tests.analytics_data import add_agent, add_call, add_execution, add_session

pytestmark = pytest.mark.integration

T0 = datetime(2025, 11, 3, 8, 0, tzinfo=UTC)


def populate(conninfo: str) -> tuple[uuid.UUID, uuid.UUID]:
    with psycopg.connect(conninfo) as conn:
        s1 = add_session(conn, "alice", T0)
        s2 = add_session(conn, "bob", T0)
        a1 = add_agent(conn, s1, "planner", T0)
        a2 = add_agent(conn, s2, "coder", T0)
        for i in range(30):
            add_call(
                conn,
                s1 if i % 3 else s2,
                a1 if i % 3 else a2,
                ["gpt-4o", "claude-haiku-4-5-20251001", "in-house"][i % 3],
                T0 + timedelta(minutes=7 * i),
                prompt_tokens=1000 + i,
                response_tokens=200 + i,
                latency_ms=100 + 37 * i,
                success=i % 7 != 0,
                # Every other call streamed: a time to first token, which costs nothing.
                details={"time_to_first_token_ms": 40 + 11 * i} if i % 2 else None,
            )
        add_execution(conn, s1, a1, T0 + timedelta(minutes=1), duration_ms=1500)
        conn.execute(
            "INSERT INTO events (id, event_type, trace_id, session_id, user_id, timestamp_ms, "
            "payload, created_at) VALUES (%s, 'tool_call', %s, %s, 'alice', %s, %s, %s)",
            (
                uuid.uuid4(),
                uuid.uuid4(),
                s1,
                int((T0 + timedelta(seconds=90)).timestamp() * 1000),
                Jsonb({"tool": "search"}),
                T0 + timedelta(minutes=5),
            ),
        )
        conn.execute(
            "INSERT INTO documents (id, session_id, agent_id, title, content, created_at) "
            "VALUES (%s, %s, %s, 'Spec', 'The spec text', %s)",
            (uuid.uuid4(), s1, a1, T0 + timedelta(minutes=3)),
        )
    return s1, a1


def test_report_totals_equal_direct_sql_on_seed_tables(database: str) -> None:
    populate(database)
    since, until = T0 + timedelta(minutes=20), T0 + timedelta(hours=2, minutes=10)
    report = build_report(database, since, until, "model")
    assert (report.since, report.until) == (T0, T0 + timedelta(hours=3))  # whole hours
    with psycopg.connect(database) as conn:
        direct = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT success), sum(prompt_tokens), "
            "sum(response_tokens), count(*) FILTER (WHERE model = 'in-house') "
            "FROM llm_interactions WHERE created_at >= %s AND created_at < %s",
            (report.since, report.until),
        ).fetchone()
        latencies = [
            r[0]
            for r in conn.execute(
                "SELECT latency_ms FROM llm_interactions "
                "WHERE created_at >= %s AND created_at < %s",
                (report.since, report.until),
            )
        ]
        # priced by hand: gpt-4o $2.50/$10 per M, claude-haiku-4-5-* $1/$5 per M
        cost = conn.execute(
            "SELECT sum(CASE model WHEN 'gpt-4o' THEN prompt_tokens * 2.5 + response_tokens * 10 "
            "ELSE prompt_tokens * 1 + response_tokens * 5 END) / 1000000 FROM llm_interactions "
            "WHERE model <> 'in-house' AND created_at >= %s AND created_at < %s",
            (report.since, report.until),
        ).fetchone()
    t = report.totals
    assert direct is not None and cost is not None
    assert (t["calls"], t["errors"], t["prompt_tokens"], t["response_tokens"]) == direct[:4]
    assert t["unpriced_calls"] == direct[4] == 8
    assert t["cost"] == cost[0]
    assert sum(r["cost"] for r in report.rows) == t["cost"]
    assert t["latency_p95"] == pytest.approx(np.percentile(latencies, 95), rel=1e-12)
    assert report.unpriced_models == [{"model": "in-house", "calls": 8}]
    assert "UNPRICED" in render_table(report) and "in-house" in render_table(report)
    rows = render_csv(report).splitlines()
    assert rows[0].startswith("key,calls,errors") and rows[-1].startswith("TOTAL,")
    doc = json.loads(render_json(report))
    assert Decimal(doc["totals"]["cost"]) == cost[0]


@pytest.mark.parametrize("by", ["agent", "agent_type", "user", "session", "hour", "day"])
def test_every_grouping_adds_up_to_the_totals(database: str, by: str) -> None:
    populate(database)
    report = build_report(database, T0, T0 + timedelta(days=1), by)
    assert sum(r["calls"] for r in report.rows) == report.totals["calls"] == 30
    assert sum(r["cost"] for r in report.rows) == report.totals["cost"]
    if by in ("agent", "agent_type", "user", "session"):
        assert sum(r["executions"] for r in report.rows) == 1


def test_html_report_is_self_contained_with_every_chart(database: str, tmp_path: Path) -> None:
    populate(database)
    report = build_report(database, T0, T0 + timedelta(hours=6), "model", with_series=True)
    page = render_html(report)
    for cid in CHART_IDS:
        figure = re.search(rf'<figure class="chart" id="{cid}">(.*?)</figure>', page, re.S)
        assert figure is not None, cid
        assert "<svg" in figure.group(1) and "<path" in figure.group(1)
    assert 'id="unpriced-models"' in page
    assert not re.search(r'(src|href)="https?:', page)  # nothing fetched from the network


def test_report_cli_writes_html(
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    populate(database)
    monkeypatch.setenv("AGENTSTREAM_DATABASE_URL", database)
    from agentstream.contract.settings import get_settings

    get_settings.cache_clear()
    out = tmp_path / "r.html"
    try:
        code = main(
            [
                "report",
                "--since",
                "2025-11-03",
                "--until",
                "2025-11-04",
                "--by",
                "agent_type",
                "--format",
                "json",
                "--html",
                str(out),
            ]
        )
    finally:
        get_settings.cache_clear()
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in doc["rows"]} == {"planner", "coder"}
    assert out.read_text().count('class="chart"') == len(CHART_IDS)


def test_session_timeline_in_time_order(database: str) -> None:
    s1, _ = populate(database)
    tl = load_timeline(database, str(s1))
    kinds = [i["type"] for i in tl.items]
    assert kinds[:6] == ["session", "agent", "execution", "event", "document", "llm_call"]
    times = [i["time"] for i in tl.items]
    assert times == sorted(times)
    doc = to_json(tl)
    assert json.loads(json.dumps(doc)) == doc
    calls = [i for i in tl.items if i["type"] == "llm_call"]
    roles = [m["role"] for m in doc["messages"]]
    assert roles.count("user") == len(calls) == 20 and "system" in roles
    assert doc["messages"][0]["content"] == "Document: Spec\nThe spec text"
    assert doc["messages"][1] | {"content": calls[0]["prompt"]} == doc["messages"][1]
    assert doc["messages"][2]["role"] == "assistant"
    text = render_text(tl)
    assert "planner-agent" in text and "tool_call" in text and "Spec" in text


def test_session_timeline_errors(database: str) -> None:
    with pytest.raises(TimelineError, match="not a session id"):
        load_timeline(database, "not-a-uuid")
    with pytest.raises(TimelineError, match="no session"):
        load_timeline(database, str(uuid.uuid4()))


def test_html_charts_are_drawn_in_a_headless_browser(database: str, tmp_path: Path) -> None:
    from tests.support.browser import charts_drawn

    populate(database)

    def drawn(since: datetime, until: datetime) -> tuple[int, int]:
        report = build_report(database, since, until, "agent", with_series=True)
        page = tmp_path / f"report-{since:%H}-{until:%H}.html"
        page.write_text(render_html(report), encoding="utf-8")
        return charts_drawn(page)

    assert drawn(T0, T0 + timedelta(hours=6)) == (len(CHART_IDS), len(CHART_IDS))
    # One hourly bucket (what a one-minute demo gives): one point per series, still drawn.
    assert drawn(T0, T0 + timedelta(hours=1)) == (len(CHART_IDS), len(CHART_IDS))
    # A window without data: axes and "no data" notes, and the probe counts no chart drawn.
    assert drawn(T0 - timedelta(days=2), T0 - timedelta(days=1)) == (len(CHART_IDS), 0)


def test_report_splits_cost_as_billed_with_cache_hit_ratio_and_ttft_by_model(
    database: str, tmp_path: Path
) -> None:
    from agentstream.analytics.prices import load_prices, price_call

    calls: list[tuple[str, datetime, int, int, dict[str, Any]]] = []
    with psycopg.connect(database) as conn:
        sid = add_session(conn, "alice", T0)
        for i in range(24):
            model = ["claude-sonnet-4-5", "gpt-4o"][i % 2]
            details: dict[str, Any] = {
                "cache_read_tokens": 300 + i,
                "cache_write_tokens": 100 if model.startswith("claude") else 0,
                "reasoning_tokens": 50 if model.startswith("claude") else None,
                "time_to_first_token_ms": 100 + 13 * i,
                "service_tier": ["batch", None, "priority", "flex"][i % 4],
            }
            details = {k: v for k, v in details.items() if v is not None}
            at = T0 + timedelta(minutes=9 * i)
            add_call(conn, sid, None, model, at, prompt_tokens=1000 + i, response_tokens=200,
                     details=details)  # fmt: skip
            calls.append((model, at, 1000 + i, 200, details))
    report = build_report(database, T0, T0 + timedelta(days=1), "model", with_series=True)
    prices = load_prices()
    costs = []
    for model, at, prompt, response, d in calls:
        c = price_call(
            prices, model, at, prompt, response, service_tier=d.get("service_tier"),
            cache_read_tokens=d["cache_read_tokens"], cache_write_tokens=d["cache_write_tokens"],
            reasoning_tokens=d.get("reasoning_tokens"),
        )  # fmt: skip
        assert c is not None
        costs.append((model, c, d))
    pico = Decimal(10**12)
    t = report.totals
    assert t["cost"] == sum(c.total_pico for _, c, _ in costs) / pico
    assert (t["input_cost"], t["cached_input_cost"], t["cache_write_cost"]) == (
        sum(c.input_pico for _, c, _ in costs) / pico,
        sum(c.cached_input_pico for _, c, _ in costs) / pico,
        sum(c.cache_write_pico for _, c, _ in costs) / pico,
    )
    assert (t["output_cost"], t["reasoning_cost"]) == (
        sum(c.output_pico for _, c, _ in costs) / pico,
        sum(c.reasoning_pico for _, c, _ in costs) / pico,
    )
    assert t["reasoning_cost"] > 0 and t["cache_write_cost"] > 0
    # gpt-4o has no flex row: priced at its default rates, flagged.
    assert t["tier_fallback_calls"] == sum(c.tier_fallback for _, c, _ in costs) > 0
    reads = sum(d["cache_read_tokens"] for _, _, d in costs)
    assert t["cache_hit_ratio"] == pytest.approx(reads / sum(c[2] for c in calls), rel=1e-12)
    by_model = {r["key"]: r for r in report.rows}
    for model in ("claude-sonnet-4-5", "gpt-4o"):
        ttfts = [d["time_to_first_token_ms"] for m, _, d in costs if m == model]
        got = [by_model[model][f"ttft_p{p}"] for p in (50, 95, 99)]
        assert got == pytest.approx(list(np.percentile(ttfts, [50, 95, 99])), rel=1e-12)
    header = render_csv(report).splitlines()[0].split(",")
    assert {"input_cost", "cached_input_cost", "cache_write_cost", "output_cost"} <= set(header)
    assert {"reasoning_cost", "cache_hit_ratio", "ttft_p50", "ttft_p95", "ttft_p99"} <= set(header)
    assert json.loads(render_json(report))["totals"]["cached_input_cost"] == str(
        t["cached_input_cost"]
    )
    table = render_table(report)
    assert "cached$" in table and "ttft_p95" in table and "service tier with no price" in table
    page = render_html(report)
    assert 'id="price-flags"' in page and 'id="cache-hit-ratio"' in page


def test_html_report_lists_the_alerts_of_its_window(database: str) -> None:
    populate(database)
    inside, outside = T0 + timedelta(hours=1), T0 + timedelta(days=2)
    with psycopg.connect(database) as conn:
        for rule, start in (("spend-in", inside), ("spend-out", outside)):
            conn.execute(
                "INSERT INTO agentstream.alerts (id, rule, metric, group_by, group_key, "
                "window_start, window_end, level, threshold, value, record_count, fired_at) "
                "VALUES (gen_random_uuid(), %s, 'cost_usd', 'user_id', 'u<1>', %s, %s, '0.8', "
                "8, 8.5, 12, %s)",
                (rule, start, start + timedelta(hours=1), start),
            )
    report = build_report(database, T0, T0 + timedelta(hours=6), "model", with_series=True)
    page = render_html(report)
    section = re.search(r'<section id="alerts">(.*?)</section>', page, re.S)
    assert section is not None
    assert "spend-in" in section.group(1) and "user_id=u&lt;1&gt;" in section.group(1)
    assert "spend-out" not in page
