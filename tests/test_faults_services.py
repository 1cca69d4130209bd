"""Fault suite: PostgreSQL and the Kafka broker restarted under load.

PostgreSQL stopped mid-ingest: the worker retries (no crash loop) and, killed while the
database is down, has committed no offset past what it wrote. The broker restarted while
the SDK publishes and the worker consumes: both recover and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES
from tests.support import control
from tests.support.kafka import create_pipeline_topics
from tests.support.reliability import Result, record
from tests.support.services import docker_engine_answers
from tests.support.traffic import (
    logged_more_than_once,
    make_traffic,
    publish,
    row_count,
    written_and_duplicated,
)
from tests.support.worker import WorkerProcess, drain_and_stop, wait_for, worker_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        docker_engine_answers(),
        reason="restarts the local services; with Docker they are containers",
    ),
]


@pytest.fixture(autouse=True)
def local_services_only() -> None:
    if not control.owns_local_services():
        pytest.skip("the running services were not started by this checkout's scripts")


async def _topics(settings: Settings) -> None:
    await create_pipeline_topics(settings, partitions=4)


async def test_postgres_stopped_and_started_mid_ingest(settings: Settings, tmp_path: Path) -> None:
    await _topics(settings)
    traffic = make_traffic(sessions=200, events_per_session=50, llm_per_session=5, seed=3)
    expected = traffic.count()
    tables = list(traffic.records)
    conninfo = settings.database_conninfo()
    producing = asyncio.create_task(
        publish(settings, traffic.messages(per_message=100), per_second=12)
    )
    worker = WorkerProcess(settings, tmp_path / "worker-a.log").start()
    try:
        assert await asyncio.to_thread(wait_for, lambda: row_count(conninfo, tables) > 0, 60)
        # Outage 1: the worker must ride it out, retrying, without exiting.
        control.stop_postgres()
        await asyncio.sleep(6)
        assert worker.alive, "worker exited while PostgreSQL was down:\n" + worker.log()[-3000:]
        control.start_postgres()
        before = row_count(conninfo, tables)
        assert await asyncio.to_thread(
            wait_for, lambda: row_count(conninfo, tables) > before, 90
        ), worker.log()[-3000:]
        # Outage 2: the worker dies while the database is down; its successor must find
        # every unwritten record still uncommitted in Kafka.
        control.stop_postgres()
        await asyncio.sleep(3)
        worker.kill()
        control.start_postgres()
        worker = WorkerProcess(settings, tmp_path / "worker-b.log").start()
        await producing
        await drain_and_stop(worker, conninfo, tables, expected)
    finally:
        worker.close()
        producing.cancel()
        control.start_postgres()  # whatever happened, leave it running

    written, duplicated = written_and_duplicated(conninfo, traffic)
    record(
        Result(
            "PostgreSQL stopped twice mid-ingest (6 s, then 3 s with the worker SIGKILLed)",
            expected,
            written,
            0,
            expected - written,
            duplicated,
            "worker stayed up through the first outage",
        )
    )
    assert (expected - written, duplicated) == (0, 0)


async def test_kafka_restarted_mid_produce_and_mid_consume(
    settings: Settings, tmp_path: Path
) -> None:
    await _topics(settings)
    conninfo = settings.database_conninfo()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    produce = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block
        [
            sys.executable,
            "-m",
            "agentstream",
            "produce",
            "--duration",
            "20",
            "--rate",
            "1500",
            "--seed",
            "5",
            "--json",
            "--no-progress",
        ],
        env={**worker_env(settings), "AGENTSTREAM_PRODUCER_SEND_TIMEOUT_S": "90"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert await asyncio.to_thread(
            wait_for, lambda: row_count(conninfo, list(ENTITIES)) > 0, 60
        ), worker.log()[-3000:]
        await asyncio.sleep(2)
        restarted_at = time.monotonic()
        control.stop_kafka()
        await asyncio.sleep(3)
        control.start_kafka()
        restart_s = time.monotonic() - restarted_at
        out, err = await asyncio.to_thread(produce.communicate, timeout=240)
        assert produce.returncode == 0, err[-3000:]
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["undelivered"] == 0

        immutable = ("llm_interactions", "events", "documents")

        def drained() -> bool:
            with psycopg.connect(conninfo) as conn:
                counts = {
                    t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                    for t in immutable
                }
            return all(counts[t] >= summary["records"][t] for t in immutable)

        landed = await asyncio.to_thread(wait_for, drained, 180)
        assert landed, worker.log()[-3000:]
        assert worker.alive, worker.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        worker.close()
        if produce.poll() is None:
            produce.kill()
        control.start_kafka()

    with psycopg.connect(conninfo) as conn:
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
            for t in ENTITIES
        }
        open_runs = conn.execute(
            "SELECT count(*) FROM agent_executions WHERE status IN ('pending', 'running')"
        ).fetchone()[0]  # type: ignore[index]
    sent = sum(summary["records"][t] for t in immutable)
    written = sum(counts[t] for t in immutable)
    # Rows cannot show a duplicate (primary keys); a second write of a call would log it again.
    duplicated = logged_more_than_once(conninfo)
    record(
        Result(
            f"Kafka broker restarted mid-produce and mid-consume (down {restart_s:.0f} s)",
            sent,
            written,
            0,
            sent - written if sent >= written else 0,
            duplicated + (written - sent if written > sent else 0),
            "SDK via `agentstream produce`; counts of the immutable entities",
        )
    )
    assert counts["sessions"] == summary["sessions"]
    assert written == sent
    assert duplicated == 0
    assert open_runs == 0, "every execution should end in its latest (terminal) state"
