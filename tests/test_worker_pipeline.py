"""`agentstream worker` end to end on the real broker and database (plain aiokafka publishes)."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentstream.contract.codec import encode_batch, encode_record
from agentstream.contract.deadletter import DeadLetter
from agentstream.contract.settings import Settings
from agentstream.contract.topics import dlq_topic
from agentstream.streams.dlq_admin import read_dead_letters
from tests.sink_records import agent, document, event, execution, llm, session
from tests.support.kafka import read_all
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, wait_committed, wait_rows

pytestmark = pytest.mark.integration

TABLES = ("sessions", "agents", "agent_executions", "llm_interactions", "events", "documents")


def dump(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(conninfo) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return str(response.read().decode())


def adversarial_messages() -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """All six entities, children before parents, states out of order, singles and batches."""
    sids = [uuid.uuid4() for _ in range(5)]
    aids = [uuid.uuid4() for _ in range(5)]
    xids = [uuid.uuid4() for _ in range(5)]
    evs = [event(uuid.uuid4(), sids[i % 5]) for i in range(200)]
    lls = [llm(uuid.uuid4(), sids[i % 5], aids[i % 5]) for i in range(100)]
    docs = [document(uuid.uuid4(), sids[i % 5], aids[i % 5]) for i in range(10)]
    msgs: list[tuple[str, bytes]] = [
        ("events", encode_batch(evs[:100])),
        ("documents", encode_batch(docs)),
        ("llm_interactions", encode_batch(lls)),
    ]
    msgs += [
        ("agent_executions", encode_record(execution(x, aids[i], sids[i], "completed")))
        for i, x in enumerate(xids)
    ]
    msgs += [
        ("agent_executions", encode_record(execution(x, aids[i], sids[i], "pending")))
        for i, x in enumerate(xids)
    ]
    msgs += [
        ("agents", encode_record(agent(a, sids[i], updated=9, name=f"final-{i}")))
        for i, a in enumerate(aids)
    ]
    msgs += [
        ("agents", encode_record(agent(a, sids[i], updated=1, name="old")))
        for i, a in enumerate(aids)
    ]
    msgs += [
        (
            "sessions",
            encode_batch([session(s, updated=7, user=f"user-{i}") for i, s in enumerate(sids)]),
        )
    ]
    msgs += [("sessions", encode_batch([session(s, updated=2, user="stale") for s in sids]))]
    msgs += [("events", encode_record(e)) for e in evs[100:]]
    expected = {
        "sessions": sorted((s, f"user-{i}") for i, s in enumerate(sids)),
        "agents": sorted((a, f"final-{i}") for i, a in enumerate(aids)),
        "executions": sorted((x, "completed") for x in xids),
        "events": sorted(e.id for e in evs if e.id),
        "llm": sorted(i.id for i in lls if i.id),
        "docs": sorted(d.id for d in docs if d.id),
    }
    return msgs, expected


async def test_adversarial_order_lands_exactly_once_and_a_replay_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    msgs, expected = adversarial_messages()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await publish(settings, msgs)
        await wait_committed(settings)
        state = dump(settings.database_conninfo())
        assert sorted(r[:2] for r in state["sessions"]) == expected["sessions"]
        assert sorted((r[0], r[1]) for r in state["agents"]) == expected["agents"]
        assert sorted((r[0], r[5]) for r in state["agent_executions"]) == expected["executions"]
        assert [r[0] for r in state["events"]] == expected["events"]
        assert [r[0] for r in state["llm_interactions"]] == expected["llm"]
        assert [r[0] for r in state["documents"]] == expected["docs"]
        assert state["events"][0][6] == {"k": [1, 2]}  # the values sent, not just the ids

        await publish(settings, msgs)  # the same messages again: a replay
        await wait_committed(settings)
        assert dump(settings.database_conninfo()) == state
    finally:
        assert worker.terminate() == 0, worker.log()[-3000:]


async def test_mixed_batch_writes_the_valid_and_dead_letters_the_invalid(
    settings: Settings, tmp_path: Path
) -> None:
    sid = uuid.uuid4()
    good = [event(uuid.uuid4(), sid).model_dump(mode="json") for _ in range(20)]
    items: list[Any] = list(good)
    items.insert(3, {"event_type": "x"})  # missing required fields
    items.insert(10, {**good[0], "id": str(uuid.uuid4()), "timestamp_ms": "soon"})
    # Valid by the contract but refused by a rule only the database knows (SQLSTATE 23514).
    items.insert(15, {**good[0], "id": str(uuid.uuid4()), "event_type": "poison"})
    with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (event_type <> 'poison')")
    batch = json.dumps(items).encode()
    port = free_port()
    worker = WorkerProcess(
        settings, tmp_path / "worker.log", AGENTSTREAM_WORKER_METRICS_PORT=str(port)
    ).start()
    try:
        await publish(settings, [("sessions", encode_record(session(sid))), ("events", batch)])
        await publish(settings, [("events", b"{not json")])
        await wait_committed(settings)
        assert await wait_rows(settings.database_conninfo(), "events", 20) == 20
        letters = await read_all(settings.kafka_bootstrap, dlq_topic(settings.topic_prefix), 4)
        health = json.loads(http_get(port, "/healthz"))
        assert health["ok"] is True and health["assigned_partitions"] > 0
        metrics = http_get(port, "/metrics")
        events_topic = f"{settings.topic_prefix}events"
        assert f'agentstream_records_written_total{{topic="{events_topic}"}} 20.0' in metrics
        # 23 items in the array (one refused by the database) and one undecodable message.
        assert f'agentstream_records_in_total{{topic="{events_topic}"}} 24.0' in metrics
        assert (
            f'agentstream_records_dead_lettered_total{{kind="validation",topic="{events_topic}"}}'
            " 2.0" in metrics
        )
        assert "agentstream_flush_seconds_bucket" in metrics
    finally:
        assert worker.terminate() == 0, worker.log()[-3000:]
    dead = sorted(
        (DeadLetter.from_message(m.value or b"", m.headers) for m in letters),
        key=lambda d: (d.offset, d.index if d.index is not None else -1),
    )
    assert len(dead) == 4
    by_index = {d.index: d for d in dead}
    assert by_index[3].kind == "validation" and "trace_id" in by_index[3].reason
    assert json.loads(by_index[3].value) == {"event_type": "x"}
    assert by_index[10].kind == "validation" and "timestamp_ms" in by_index[10].reason
    assert by_index[3].source_topic == f"{settings.topic_prefix}events"
    assert by_index[3].offset == by_index[10].offset
    refused = by_index[15]
    assert refused.kind == "database" and refused.reason.startswith("23514:")
    assert json.loads(refused.value)["event_type"] == "poison"
    whole = by_index[None]
    assert whole.kind == "decode" and whole.value == b"{not json"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
async def test_two_workers_one_stopped_mid_stream_lose_and_duplicate_nothing(
    settings: Settings, tmp_path: Path, how: signal.Signals
) -> None:
    conninfo = settings.database_conninfo()
    sids = [uuid.uuid4() for _ in range(40)]
    sessions_msgs = [("sessions", encode_batch([session(s) for s in sids]))]
    waves = [
        [
            (
                "events",
                encode_batch([event(uuid.uuid4(), sids[(w * 7 + i) % 40]) for i in range(50)]),
            )
            for _ in range(8)
        ]
        for w in range(6)
    ]
    first = WorkerProcess(settings, tmp_path / "w1.log", "--batch-records", "200").start()
    second = WorkerProcess(settings, tmp_path / "w2.log", "--batch-records", "200").start()
    try:
        await publish(settings, sessions_msgs + waves[0] + waves[1])
        await wait_rows(conninfo, "events", 400)
        await publish(settings, waves[2])
        if how == signal.SIGKILL:
            first.kill()
        else:
            assert first.terminate(how) == 0, first.log()[-3000:]
        for wave in waves[3:]:
            await publish(settings, wave)
        await wait_committed(settings)
        assert await wait_rows(conninfo, "events", 2400) == 2400
    finally:
        first.kill()
        assert second.terminate() == 0, second.log()[-3000:]
    # Rows cannot show a duplicate (events' primary key); what can is a second dead letter of
    # a record, or a record lost: none of the 2,400 events may be missing or dead-lettered.
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        assert row == (2400,)
    assert await read_dead_letters(settings, unique=False) == []


async def test_sigterm_finishes_the_batch_commits_and_exits_zero(
    settings: Settings, tmp_path: Path
) -> None:
    sid = uuid.uuid4()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    await publish(
        settings,
        [("sessions", encode_record(session(sid)))]
        + [("events", encode_batch([event(uuid.uuid4(), sid) for _ in range(100)]))] * 1,
    )
    await wait_rows(settings.database_conninfo(), "events", 100)
    code = worker.terminate(signal.SIGTERM, wait_s=45)
    assert code == 0, worker.log()[-3000:]
    await wait_committed(settings, timeout_s=5)  # offsets were committed before exiting


@pytest.mark.parametrize("after_s", [0.3, 1.5])
def test_a_stop_signal_during_start_up_exits_zero(
    settings: Settings, tmp_path: Path, after_s: float
) -> None:
    # Before faust's handlers are in place nothing has been consumed: an orchestrator's
    # SIGTERM then must end the process cleanly, not kill it (exit status -15).
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    time.sleep(after_s)
    code = worker.terminate(signal.SIGTERM, wait_s=30)
    assert code == 0, worker.log()[-3000:]


async def test_a_terminal_database_error_stops_the_worker_loudly(
    settings: Settings, tmp_path: Path
) -> None:
    sid = uuid.uuid4()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await publish(settings, [("sessions", encode_record(session(sid)))])
        await wait_committed(settings)
        with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
            conn.execute("DROP TABLE documents")  # as if the schema had never been migrated
        await publish(settings, [("documents", encode_record(document(uuid.uuid4(), sid)))])
        code = worker.wait_exit(60)
    finally:
        worker.kill()
    assert code != 0
    assert "agentstream migrate" in worker.log()
    with psycopg.connect(settings.database_conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (1,)


def test_the_worker_refuses_to_start_on_an_unmigrated_database(
    settings: Settings, tmp_path: Path
) -> None:
    with psycopg.connect(settings.database_conninfo(), autocommit=True) as conn:
        conn.execute("DROP TABLE events")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    code = worker.wait_exit(60)
    worker.kill()
    assert code == 2
    assert "run `agentstream migrate`" in worker.log()


async def test_a_lost_database_connection_is_retried_and_nothing_is_lost(
    settings: Settings, tmp_path: Path
) -> None:
    conninfo = settings.database_conninfo()
    sid = uuid.uuid4()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await publish(
            settings,
            [
                ("sessions", encode_record(session(sid))),
                ("events", encode_batch([event(uuid.uuid4(), sid) for _ in range(100)])),
            ],
        )
        assert await wait_rows(conninfo, "events", 100) == 100
        with psycopg.connect(conninfo, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'agentstream-worker' AND datname = current_database()"
            ).fetchone()
        assert killed == (1,)
        await publish(
            settings, [("events", encode_batch([event(uuid.uuid4(), sid) for _ in range(100)]))]
        )
        await wait_committed(settings)
        assert await wait_rows(conninfo, "events", 200) == 200
    finally:
        assert worker.terminate() == 0, worker.log()[-3000:]
    assert "event=flush_retry" in worker.log()
