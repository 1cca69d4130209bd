"""AGENTSTREAM_PRODUCER_WIRE=record end to end: the SDK sends one JSON object per Kafka message,
keyed by session id, and the real worker writes them into PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from aiokafka.partitioner import murmur2

from agentstream.contract.codec import decode
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.producers import AgentStream, DeliveryError, ensure_topics, uuid7
from tests.sink_records import sdk_event
from tests.support.kafka import create_topics, read_all
from tests.support.services import Services
from tests.support.worker import WorkerProcess, wait_committed, wait_rows

pytestmark = pytest.mark.integration

# What the session below publishes, per topic: messages (= records, one per message).
EXPECTED = {
    "sessions": 1,
    "agents": 1,
    "agent_executions": 3,  # pending, running, completed
    "llm_interactions": 3,
}


async def test_one_record_messages_from_the_sdk_land_through_the_worker(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"producer_wire": "record"})
    await ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        async with AgentStream(settings) as stream:
            session = await stream.start_session(user_id="wire-user", metadata={"team": "x"})
            agent = await session.register_agent(name="planner", type="react")
            async with agent.execute(input_data={"task": "sum"}) as run:
                for i in range(3):
                    async with run.llm_call(model="gpt-4o", prompt=f"add {i} and 2") as call:
                        call.record(str(i + 2), prompt_tokens=7 + i, response_tokens=1)
                run.set_output({"answer": 4})
        assert stream.stats.delivered_records == sum(EXPECTED.values())

        assert await wait_rows(settings.database_conninfo(), "llm_interactions", 3) == 3
        await wait_committed(settings)
        with psycopg.connect(settings.database_conninfo()) as conn:
            calls = conn.execute(
                "SELECT session_id, agent_id, model, prompt, response, prompt_tokens, success"
                " FROM llm_interactions ORDER BY prompt_tokens"
            ).fetchall()
            execution = conn.execute(
                "SELECT id, status, output_data FROM agent_executions"
            ).fetchall()
            sessions = conn.execute("SELECT id, user_id, metadata FROM sessions").fetchall()
        assert calls == [
            (session.id, agent.id, "gpt-4o", f"add {i} and 2", str(i + 2), 7 + i, True)
            for i in range(3)
        ]
        assert execution == [(run.id, "completed", {"answer": 4})]
        assert sessions == [(session.id, "wire-user", {"team": "x"})]
    finally:
        assert worker.terminate() == 0, worker.log()[-3000:]

    key = str(session.id).encode()
    for entity, count in EXPECTED.items():
        topic = topic_for(entity, settings.topic_prefix)
        # As many messages as records: every record went out as its own message.
        messages = await read_all(settings.kafka_bootstrap, topic, count, wait_s=15)
        assert len(messages) == count, (entity, len(messages))
        for m in messages:
            assert isinstance(json.loads(m.value), dict), (entity, m.value[:80])
            assert m.key == key  # keyed as Kafka's default partitioner expects...
            # ... and on the partition that partitioner would pick for that key.
            assert m.partition == (murmur2(key) & 0x7FFFFFFF) % settings.topic_partitions


async def test_a_refused_record_shape_batch_reports_its_messages(
    services: Services, topic_prefix: str
) -> None:
    settings = Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        topic_prefix=topic_prefix,
        producer_send_timeout_s=15,
        producer_wire="record",
    )
    # The broker refuses every Kafka batch over 1000 bytes: 20 events make a larger one.
    topic = topic_for("events", topic_prefix)
    await create_topics(services.kafka_bootstrap, [topic], 1, {"max.message.bytes": "1000"})
    stream = AgentStream(settings, compression=None)
    await stream.start()
    sid = uuid7()
    for i in range(20):
        await stream.publish(sdk_event(sid, i))
    with pytest.raises(DeliveryError, match="20 record") as info:
        await stream.close()
    failures = info.value.failures
    messages = [m for f in failures for m in f.messages]
    # As they were to be sent: one keyed JSON object per message, in order...
    assert [k for k, _ in messages] == [str(sid).encode()] * 20
    assert [json.loads(v)["timestamp_ms"] for _, v in messages] == list(range(20))
    # ... and, as the value, the same records as one batch message, re-publishable as is.
    for f in failures:
        decoded = decode("events", f.value)
        assert decoded.invalid == [] and len(decoded.records) == f.records == len(f.messages)
