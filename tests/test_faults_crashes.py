"""Fault suite: the worker is SIGKILLed at random moments during ingest, four times.

Nothing may be lost (offsets are committed only after the rows are) and nothing may be
duplicated (writes are idempotent, so re-delivered messages change nothing): duplicates are
counted where they could show, as change_log lines beyond one per call (primary keys cannot
hold a second row).
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from agentstream.contract.settings import Settings
from tests.support.kafka import create_pipeline_topics
from tests.support.reliability import Result, record
from tests.support.traffic import make_traffic, publish, row_count, written_and_duplicated
from tests.support.worker import WorkerProcess, drain_and_stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 4


async def test_sigkill_four_times_during_ingest(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"worker_batch_records": 2000})
    await create_pipeline_topics(settings, partitions=4)
    traffic = make_traffic(sessions=300, events_per_session=60, llm_per_session=8, seed=7)
    expected = traffic.count()
    tables = list(traffic.records)
    conninfo = settings.database_conninfo()
    rng = random.Random(20261126)

    kills = 0
    # Messages trickle in until the last kill, so every kill lands mid-ingest (a successor
    # waits out the dead member's session timeout, ~20 s, before it gets partitions).
    producing = asyncio.create_task(
        publish(
            settings,
            traffic.messages(per_message=50),
            per_second=4,
            pace_while=lambda: kills < KILLS,
        )
    )
    worker = WorkerProcess(settings, tmp_path / "worker-0.log").start()
    try:
        for n in range(1, KILLS + 1):
            before = row_count(conninfo, tables)

            # Kill only once this incarnation has written something: a kill mid-ingest.
            def wrote_more(floor: int = before) -> bool:
                return row_count(conninfo, tables) > floor

            progressed = await asyncio.to_thread(wait_for, wrote_more, 60)
            assert progressed, f"worker made no progress before kill {n}:\n{worker.log()[-3000:]}"
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            worker.kill()
            kills += 1
            worker = WorkerProcess(settings, tmp_path / f"worker-{n}.log").start()
        await producing
        await drain_and_stop(worker, conninfo, tables, expected)
    finally:
        worker.close()
        producing.cancel()

    written, duplicated = written_and_duplicated(conninfo, traffic)
    lost = expected - written
    record(
        Result(
            f"worker SIGKILLed {kills} times at random moments during ingest",
            expected,
            written,
            0,
            lost,
            duplicated,
            "4 partitions per topic, batches of 50 records per message",
        )
    )
    assert kills == KILLS
    assert (lost, duplicated) == (0, 0)
