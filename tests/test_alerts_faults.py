"""Once, exactly: three SIGKILLs of the alerts process mid-window, and a rebalance between
two processes, lose no alert and repeat none, and count every record once."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentstream.alerts.costing import Coster
from agentstream.alerts.rules import PICO_PER_USD
from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, alerts_topic, topic_for
from tests.support.alerts import (
    AlertsProcess,
    Traffic,
    alert_settings,
    cost_of,
    hour,
    make_traffic,
    publish,
    stored_alerts,
    window_states,
)
from tests.support.kafka import create_topics
from tests.support.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
BUDGET_USD = 2
KILLS = 3
LEVELS = ("0.25", "0.5", "1.0")
RULES = f"""
[[rule]]
name = "spend-hourly"
metric = "cost_usd"
group_by = "user_id"
window = "1h"
budget = {BUDGET_USD}
levels = [{", ".join(LEVELS)}]

[[rule]]
name = "calls-all"
metric = "calls"
window = "1d"
thresholds = [100, 1000, 2000]
"""


def _expected(traffic: Traffic) -> tuple[dict[tuple[str, int], int], set[tuple[str, str, str]]]:
    """Spend per (user, hour) in picodollars, and the alerts it must raise."""
    coster = Coster()
    spend: dict[tuple[str, int], int] = defaultdict(int)
    for user, call in traffic.calls:
        assert call.created_at is not None
        cost = cost_of(coster, call)
        spend[(user, int(hour(call.created_at).timestamp()))] += cost or 0
    alerts = {
        ("spend-hourly", user, level)
        for (user, _), pico in spend.items()
        for level in LEVELS
        if pico >= int(float(level) * BUDGET_USD * PICO_PER_USD)
    }
    return spend, alerts


async def _publish_paced(
    settings: Settings, traffic: Traffic, seconds: float, while_: Callable[[], bool] = lambda: True
) -> None:
    """In 40 chunks, ``seconds`` apart in all while ``while_()`` holds, then at once."""
    chunks = 40
    size = -(-len(traffic.records) // chunks)
    for i in range(chunks):
        await publish(settings, traffic.records[i * size : (i + 1) * size])
        if while_():
            await asyncio.sleep(seconds / chunks)


def _counted(settings: Settings) -> int:
    states = asyncio.run(window_states(settings))
    return sum(int(s["n"]) for (r, _, _), s in states.items() if r == "calls-all")


async def _check(settings: Settings, traffic: Traffic, procs: Sequence[WorkerProcess]) -> None:
    spend, expected = _expected(traffic)
    calls = len(traffic.calls)

    def counted() -> bool:
        return _counted(settings) >= calls

    assert await asyncio.to_thread(wait_for, counted, 180, 1.0), [p.log()[-2000:] for p in procs]
    states = await window_states(settings)
    stream = {(g, start): int(s["v"]) for (r, g, start), s in states.items() if r == "spend-hourly"}
    assert stream == dict(spend)  # every record counted once, through every crash
    total = sum(int(s["n"]) for (r, _, _), s in states.items() if r == "calls-all")
    assert total == calls

    conninfo = settings.database_conninfo()
    want = {(r, g, lv) for r, g, lv in expected} | {
        ("calls-all", "*", str(n)) for n in (100, 1000, 2000) if calls >= n
    }

    def stored() -> set[tuple[str, str, str]]:
        return {(r, g, lv) for r, g, _, lv, _ in stored_alerts(conninfo)}

    await asyncio.to_thread(wait_for, lambda: stored() >= want, 60)
    rows = stored_alerts(conninfo)
    # Hourly windows: the (user, level) pairs may repeat across hours; key on the window.
    keys = [r[:4] for r in rows]
    assert len(keys) == len(set(keys))
    assert stored() == want


async def _setup(settings: Settings, tmp_path: Path) -> tuple[Settings, Path, Traffic]:
    settings = alert_settings(settings)
    prefix = settings.topic_prefix
    await create_topics(
        settings.kafka_bootstrap,
        [topic_for(e, prefix) for e in ENTITIES] + [alerts_topic(prefix)],
        partitions=4,
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    # One hour of traffic: each user's spend crosses its levels one after the other.
    traffic = make_traffic(sessions=50, calls_per_session=50, start=START, spread_s=3000, seed=4)
    return settings, rules, traffic


async def test_three_sigkills_mid_window(settings: Settings, tmp_path: Path) -> None:
    settings, rules, traffic = await _setup(settings, tmp_path)
    procs = [AlertsProcess(settings, tmp_path / "alerts-0.log", rules).start()]
    rng = random.Random(15)
    kills = 0
    publishing = asyncio.ensure_future(
        _publish_paced(settings, traffic, seconds=160, while_=lambda: kills < KILLS)
    )
    try:
        for n in range(1, KILLS + 1):
            # Kill only once this incarnation has counted something: a kill mid-window,
            # with its windows' state partly in the changelog and offsets not committed.
            floor = await asyncio.to_thread(_counted, settings)

            def progressed(floor: int = floor) -> bool:
                return _counted(settings) > floor

            ok = await asyncio.to_thread(wait_for, progressed, 120, 0.5)
            assert ok, procs[-1].log()[-2000:]
            await asyncio.sleep(rng.uniform(0, 1.5))
            procs[-1].kill()
            kills = n
            procs.append(AlertsProcess(settings, tmp_path / f"alerts-{n}.log", rules).start())
        await publishing
        await _check(settings, traffic, procs)
    finally:
        publishing.cancel()
        for p in procs:
            p.close()
    assert kills == KILLS


async def test_rebalance_between_two_processes(settings: Settings, tmp_path: Path) -> None:
    settings, rules, traffic = await _setup(settings, tmp_path)
    first = AlertsProcess(settings, tmp_path / "alerts-a.log", rules).start()
    second = AlertsProcess(settings, tmp_path / "alerts-b.log", rules)
    try:
        half = len(traffic.records) // 2
        await _publish_paced(settings, Traffic(traffic.records[:half]), seconds=8)
        second.start()  # joins: the partitions are shared
        await _publish_paced(settings, Traffic(traffic.records[half:]), seconds=8)
        assert first.terminate() == 0  # leaves: the second takes everything over
        await _check(settings, traffic, [first, second])
    finally:
        first.close()
        second.close()
