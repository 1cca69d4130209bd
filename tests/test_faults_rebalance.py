"""Fault suite: workers join and leave (SIGTERM and SIGKILL) while a backlog of one-record
messages drains. Every record must land once, the latest states must win, and the places
where a duplicate could show are counted: change_log lines per id (a second write of a
record would log it again) and dead letters per source coordinate. (Primary keys cannot
hold duplicates, so counting rows there would prove nothing.)
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from agentstream.contract.settings import Settings
from agentstream.streams.dlq_admin import read_dead_letters
from tests.support.kafka import create_pipeline_topics
from tests.support.reliability import Result, record
from tests.support.traffic import (
    logged_more_than_once,
    make_traffic,
    publish,
    row_count,
    written_and_duplicated,
)
from tests.support.worker import WorkerProcess, wait_committed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# (signal, seconds before it) for each member change while the backlog drains.
CHURN = [
    (signal.SIGTERM, 2.0),
    (signal.SIGKILL, 2.0),
    (signal.SIGTERM, 3.0),
    (signal.SIGTERM, 1.0),
    (signal.SIGKILL, 2.0),
]


async def test_workers_join_and_leave_while_one_record_messages_drain(
    settings: Settings, tmp_path: Path
) -> None:
    await create_pipeline_topics(settings, partitions=4)
    traffic = make_traffic(sessions=120, events_per_session=40, llm_per_session=6, seed=16)
    # A later state of every session, sent before the first one half the time: the state
    # with the later updated_at must win whatever the order and the redeliveries.
    finals = []
    for i, s in enumerate(traffic.records["sessions"]):
        later = datetime.fromisoformat(s["updated_at"]) + timedelta(hours=1)
        finals.append({**s, "user_id": f"final-{i}", "updated_at": later.isoformat()})
    rng = random.Random(16)
    messages = [
        (entity, json.dumps(r).encode()) for entity, rows in traffic.records.items() for r in rows
    ]
    for final in finals:
        messages.insert(rng.randrange(len(messages) + 1), ("sessions", json.dumps(final).encode()))
    # A third as a backlog; the rest trickles in while members come and go (each SIGKILL
    # stalls its partitions for the ~20 s session timeout), so that changes land mid-drain.
    backlog = len(messages) // 3
    await publish(settings, messages[:backlog])
    churning = True
    producing = asyncio.create_task(
        publish(settings, messages[backlog:], per_second=60, pace_while=lambda: churning)
    )
    expected = traffic.count()
    tables = list(traffic.records)
    conninfo = settings.database_conninfo()

    args = ("--batch-records", "300")
    workers = [
        WorkerProcess(settings, tmp_path / f"worker-{n}.log", *args).start() for n in range(2)
    ]
    started = 2
    try:
        for sig, after_s in CHURN:
            # This membership writes something before it changes (unless all is in).
            floor = row_count(conninfo, tables)

            def progressed(floor: int = floor) -> bool:
                return producing.done() or row_count(conninfo, tables) > floor

            assert await asyncio.to_thread(wait_for, progressed, 60), "no progress"
            await asyncio.sleep(after_s)
            leaving = workers.pop(0)
            if sig == signal.SIGKILL:
                leaving.kill()
            else:
                assert leaving.terminate(sig) == 0, leaving.log()[-3000:]
            workers.append(
                WorkerProcess(settings, tmp_path / f"worker-{started}.log", *args).start()
            )
            started += 1
        churning = False
        await producing
        landed = await asyncio.to_thread(
            wait_for, lambda: row_count(conninfo, tables) >= expected, 240
        )
        assert landed, f"{row_count(conninfo, tables)} of {expected} rows"
        await wait_committed(settings, timeout_s=120)
    finally:
        producing.cancel()
        codes = [w.terminate() if w.alive else 0 for w in workers]
        for w in workers:
            w.close()
    assert codes == [0] * len(workers), [w.log()[-2000:] for w in workers]

    written, duplicated = written_and_duplicated(conninfo, traffic)
    with psycopg.connect(conninfo) as conn:
        users: dict[str, str] = dict(
            conn.execute("SELECT id::text, user_id FROM sessions").fetchall()
        )
    change_log_duplicates = logged_more_than_once(conninfo)
    letters = await read_dead_letters(settings, unique=False)
    by_source = Counter(d.letter.source_key for d in letters)
    letter_duplicates = sum(n - 1 for n in by_source.values())
    record(
        Result(
            f"{len(CHURN)} member changes ({sum(s == signal.SIGKILL for s, _ in CHURN)} SIGKILL)"
            " while one-record messages drain",
            expected,
            written,
            len(letters),
            expected - written,
            duplicated + letter_duplicates,
            f"{len(messages)} one-record messages, 4 partitions per topic, batches of 300;"
            f" duplicates counted on change_log lines per id ({change_log_duplicates}) and"
            f" dead letters per source coordinate ({letter_duplicates})",
        )
    )
    assert (written, duplicated) == (expected, 0)
    assert letters == []
    assert all(users[f["id"]] == f"final-{i}" for i, f in enumerate(finals))
