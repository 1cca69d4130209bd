"""The alerts' pure logic: sketch accuracy, window state, lateness, costing, the webhook."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import numpy as np
import pytest

from agentstream.alerts.costing import Coster
from agentstream.alerts.metrics import AlertMetrics
from agentstream.alerts.observe import Context, Observer, Tally, decode_key
from agentstream.alerts.rules import parse_rules
from agentstream.alerts.sketch import EXACT_MAX, RELATIVE_ERROR, LatencySketch
from agentstream.alerts.webhook import QUEUE_MAX, Webhook
from agentstream.alerts.windows import Contribution, WindowState
from agentstream.analytics.prices import load_prices, price_call
from agentstream.contract.alerts import Alert, alert_id
from agentstream.contract.entities import AgentExecution, LLMInteraction

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _rules(text: str) -> Any:
    import tomllib

    return parse_rules(tomllib.loads(text))


def _call(minute: float, **kw: Any) -> LLMInteraction:
    fields: dict[str, Any] = {
        "session_id": uuid.uuid4(),
        "prompt": "p",
        "model": "gpt-4o",
        "prompt_tokens": 1000,
        "response_tokens": 100,
        "latency_ms": 900,
        "success": True,
        "created_at": T0 + timedelta(minutes=minute),
    }
    fields.update(kw)
    return LLMInteraction(**fields)


@pytest.mark.parametrize("n", [10, EXACT_MAX, 5000, 50_000])
def test_sketch_within_stated_error_of_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    values = rng.lognormal(7, 1.2, n).astype(int)
    sketch = LatencySketch()
    for x in values:
        sketch.add(int(x))
    sketch = LatencySketch.from_json(json.loads(json.dumps(sketch.to_json())))
    for q in (0.5, 0.95, 0.99):
        got = sketch.quantile(q)
        assert got is not None
        if n <= EXACT_MAX:
            assert got == pytest.approx(float(np.quantile(values, q)), rel=1e-12)
        else:
            at_rank = float(np.quantile(values, q, method="lower"))
            assert abs(got - at_rank) <= RELATIVE_ERROR * at_rank
    if n > EXACT_MAX:  # bounded state: buckets, not values
        assert len(sketch.to_json()["b"]) < 1000


def test_window_counts_each_contribution_once_and_fires_each_level_once() -> None:
    (rule,) = _rules(
        '[[rule]]\nname="b"\nmetric="cost_usd"\ngroup_by="user_id"\nwindow="1h"\n'
        'budget="1"\nlevels=[0.5, 1.0]'
    )
    state = WindowState(partition=0)
    half = 5 * 10**11  # $0.50 in picodollars
    assert state.apply(Contribution("l0", 10, 0, count=1, num=half - 1))
    assert state.newly_reached(rule) == []
    assert state.apply(Contribution("l0", 10, 3, count=1, num=1))
    assert [lv.name for lv, _ in state.newly_reached(rule)] == ["0.5"]
    # a replay (same source, earlier or equal position) is skipped; another source is not
    assert not state.apply(Contribution("l0", 10, 3, count=1, num=half))
    assert not state.apply(Contribution("l0", 9, 99, count=1, num=half))
    assert state.newly_reached(rule) == []
    assert state.apply(Contribution("l1", 2, 0, count=1, num=half))
    state = WindowState.from_json(json.loads(json.dumps(state.to_json())))
    assert [lv.name for lv, _ in state.newly_reached(rule)] == ["1.0"]
    assert state.newly_reached(rule) == []  # more records: nothing again
    assert state.num == 2 * half and state.count == 3


def test_rates_wait_for_min_count() -> None:
    (rule,) = _rules(
        '[[rule]]\nname="e"\nmetric="error_rate"\nwindow="1h"\nthresholds=[0.5]\nmin_count=4'
    )
    state = WindowState(0)
    state.apply(Contribution("l0", 1, 0, count=3, num=3))
    assert state.value(rule) is None and state.newly_reached(rule) == []
    state.apply(Contribution("l0", 2, 0, count=1, num=0))
    assert state.value(rule) == Decimal("0.75")
    assert [lv.name for lv, _ in state.newly_reached(rule)] == ["0.5"]


def test_late_records_are_left_out_and_counted() -> None:
    rules = _rules('[[rule]]\nname="c"\nmetric="calls"\nwindow="5m"\nthresholds=[100]')
    observer = Observer(rules, Coster(), lateness_s=60)
    tally = Tally()
    ctx = Context(None, None)
    observer.add(tally, "l0", 1, 0, _call(12), ctx)  # watermark 10:12
    observer.add(tally, "l0", 2, 0, _call(9), ctx)  # 10:05-10:10, +60 s = 10:11 <= 10:12: late
    observer.add(tally, "l0", 3, 0, _call(11.5), ctx)  # 10:10-10:15: on time
    observer.add(tally, "l1", 4, 0, _call(9), ctx)  # another partition: its own watermark
    assert tally.late == 1
    starts = sorted((decode_key(k)[2], c.count) for k, c in tally.contributions.items())
    t10 = int(T0.timestamp())
    assert starts == [(t10 + 300, 1), (t10 + 600, 2)]
    # exactly at the limit: the window ended lateness_s before the watermark -> late
    observer.add(tally, "l0", 5, 0, _call(16), ctx)  # watermark 10:16; 10:10+5m+60s = 10:16
    observer.add(tally, "l0", 6, 0, _call(14), ctx)
    assert tally.late == 2


def test_groups_filters_and_executions() -> None:
    rules = _rules(
        '[[rule]]\nname="u"\nmetric="tokens"\ngroup_by="user_id"\nwindow="1h"\nthresholds=[1]\n'
        'filter={model=["gpt-4o"], agent_type="coder"}\n'
        '[[rule]]\nname="f"\nmetric="execution_failure_rate"\ngroup_by="agent_type"\n'
        'window="1h"\nthresholds=[0.5]\n'
    )
    observer = Observer(rules, Coster(), lateness_s=3600)
    assert observer.needs_user and observer.needs_type
    tally = Tally()
    observer.add(tally, "l0", 1, 0, _call(1), Context("alice", "coder"))
    observer.add(tally, "l0", 1, 1, _call(2, model="gpt-4o-mini"), Context("alice", "coder"))
    observer.add(tally, "l0", 1, 2, _call(3), Context("bob", "planner"))
    execution = {"agent_id": uuid.uuid4(), "session_id": uuid.uuid4(), "input_data": {}}
    for i, status in enumerate(("running", "failed", "completed")):
        record = AgentExecution(**execution, status=status, started_at=T0)
        observer.add(tally, "e0", 7, i, record, Context(None, None))
    got = {decode_key(k)[:2]: (c.count, c.num) for k, c in tally.contributions.items()}
    assert got == {("u", "alice"): (1, 1100), ("f", "-"): (2, 1)}


def test_cost_is_the_price_tables() -> None:
    prices = load_prices()
    coster = Coster(prices=prices)
    when = datetime(2025, 12, 1, tzinfo=UTC)
    usage: dict[str, Any] = {"cache_read_tokens": 300, "cache_write_tokens": 100}
    for model in ("gpt-4o", "claude-sonnet-4-5-20250929", "gpt-4o-mini-2024-07-18", "o3"):
        for kwargs in ({}, usage, {"reasoning_tokens": 200, "service_tier": "flex"}):
            expected = price_call(prices, model, when, 1234, 567, **kwargs)
            got = coster.cost_pico(model, when, 1234, 567, **kwargs)
            assert expected is not None and got == expected.total_pico
    # past a long-context band's prompt size the whole call is priced at the band
    long_prompt = price_call(prices, "gemini-2.5-pro", when, 300_000, 10)
    assert long_prompt is not None
    assert coster.cost_pico("gemini-2.5-pro", when, 300_000, 10) == long_prompt.total_pico
    assert coster.cost_pico("no-such-model", when, 10, 10) is None
    assert coster.cost_pico("gpt-4o", datetime(2020, 1, 1, tzinfo=UTC), 10, 10) is None


class _Hook(BaseHTTPRequestHandler):
    answers: list[int] = []
    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        self.send_response(type(self).answers.pop(0) if type(self).answers else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _alert() -> Alert:
    return Alert(
        id=alert_id("r", "g", T0, "1.0"),
        rule="r",
        metric="calls",
        group_by="none",
        group_key="*",
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
        level="1.0",
        threshold=Decimal(5),
        value=Decimal(6),
        count=6,
        fired_at=T0,
        text="[r] calls reached 6",
    )


async def test_webhook_retries_then_counts_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentstream.alerts.webhook.BACKOFF_FIRST_S", 0.01)
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    metrics = AlertMetrics()
    try:
        _Hook.answers = [500, 503]  # two failures, then accepted
        hook = Webhook(url, metrics, timeout_s=2, retries=3)
        hook.start()
        hook.submit(_alert())
        for _ in range(200):
            if metrics.webhook_sent._value.get():
                break
            await asyncio.sleep(0.01)
        assert metrics.webhook_sent._value.get() == 1 and len(_Hook.bodies) == 3
        assert _Hook.bodies[-1]["text"] == "[r] calls reached 6"
        _Hook.answers = [500] * 10  # never accepted: given up after 1 + retries tries
        hook.submit(_alert())
        for _ in range(200):
            if metrics.webhook_failures._value.get():
                break
            await asyncio.sleep(0.01)
        assert metrics.webhook_failures._value.get() == 1 and len(_Hook.bodies) == 3 + 4
        await hook.stop()
    finally:
        server.shutdown()
    # A full queue (an endpoint that cannot keep up) drops and counts, never blocks.
    hook = Webhook(url, metrics, timeout_s=0.2, retries=0)
    for _ in range(QUEUE_MAX + 5):
        hook.submit(_alert())  # not started: only queued
    assert metrics.webhook_failures._value.get() == 1 + 5


def test_alert_ids_are_deterministic() -> None:
    assert alert_id("r", "u", T0, "0.8") == alert_id("r", "u", T0, "0.8")
    assert alert_id("r", "u", T0, "0.8") != alert_id("r", "u", T0, "1.0")
