"""The producer SDK against the real broker: helpers, order, delivery, failure modes.

Records are read back with a plain consumer and decoded with the contract's decoder, the way
the worker sees them.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import murmur2

from agentstream.contract import (
    Agent,
    AgentExecution,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
    decode,
    topic_for,
)
from agentstream.contract.settings import Settings
from agentstream.producers import (
    AgentStream,
    BrokerUnavailable,
    DeliveryError,
    DeliveryFailure,
    RecordTooLarge,
    SyncAgentStream,
    ensure_topics,
    uuid7,
)
from tests.sink_records import sdk_event
from tests.support.services import Services

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka_settings(services: Services, topic_prefix: str) -> Settings:
    """Kafka only (no database needed here), with topics unique to the test."""
    return Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        topic_prefix=topic_prefix,
        producer_send_timeout_s=15,
    )


async def read_records(
    settings: Settings, entity: str, expected: int, wait_s: float = 30.0
) -> list[tuple[int, int, Record]]:
    """(partition, offset, record) of ``entity``'s topic until ``expected`` records arrived."""
    consumer = AIOKafkaConsumer(
        topic_for(entity, settings.topic_prefix),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[tuple[int, int, Record]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while len(out) < expected and loop.time() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    decoded = decode(entity, m.value)
                    assert decoded.invalid == [], decoded.invalid
                    assert decoded.is_batch  # the SDK always sends batch messages
                    out.extend((m.partition, m.offset, r) for _, r in decoded.records)
    finally:
        await consumer.stop()
    return out


async def test_helpers_publish_valid_records_of_every_entity(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings)
    async with AgentStream(kafka_settings) as stream:
        session = await stream.start_session(user_id="user-1", metadata={"plan": "pro"})
        agent = await session.register_agent(
            name="planner", type="react", configuration={"model": "gpt-4o"}
        )
        await agent.set_status("busy")
        async with agent.execute(input_data={"task": "sum"}) as run:
            async with run.llm_call(model="gpt-4o", prompt="add 2 and 2") as call:
                call.record("4", prompt_tokens=7, response_tokens=1)
            await run.event("tool.call", payload={"tool": "calculator"})
            await run.document(title="Notes", content="2+2=4", content_type="text/markdown")
            run.set_output({"answer": 4})
        with pytest.raises(RuntimeError, match="tool crashed"):
            async with (
                agent.execute(input_data={"task": "boom"}) as failing,
                failing.llm_call(model="claude-haiku-4-5", prompt="?"),
            ):
                raise RuntimeError("tool crashed")
        await session.event("session.note", payload={"ok": True})
        await agent.set_status("idle")
        await session.update({"ended": True})

    got = {
        entity: [r for _, _, r in await read_records(kafka_settings, entity, n)]
        for entity, n in [
            ("sessions", 2),
            ("agents", 3),
            ("agent_executions", 6),
            ("llm_interactions", 2),
            ("events", 2),
            ("documents", 1),
        ]
    }
    sessions = got["sessions"]
    assert all(isinstance(s, Session) and s.id == session.id for s in sessions)
    assert sessions[-1].metadata == {"plan": "pro", "ended": True}  # type: ignore[attr-defined]
    agents = got["agents"]
    assert [a.status for a in agents] == ["active", "busy", "idle"]  # type: ignore[attr-defined]
    stamps = [a.updated_at for a in agents]  # type: ignore[attr-defined]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    assert all(isinstance(a, Agent) and a.session_id == session.id for a in agents)

    executions = got["agent_executions"]
    assert all(isinstance(e, AgentExecution) for e in executions)
    by_id: dict[uuid.UUID | None, list[AgentExecution]] = defaultdict(list)
    for e in executions:
        by_id[e.id].append(e)  # type: ignore[arg-type]
    ok, bad = by_id[run.id], by_id[failing.id]
    assert [e.status for e in ok] == ["pending", "running", "completed"]
    assert ok[-1].output_data == {"answer": 4}
    assert ok[-1].completed_at is not None and ok[-1].started_at is not None
    assert ok[-1].completed_at >= ok[-1].started_at
    assert [e.status for e in bad] == ["pending", "running", "failed"]
    assert bad[-1].error_message == "RuntimeError: tool crashed"

    calls = {c.id: c for c in got["llm_interactions"]}
    good = calls[call.interaction.id]  # type: ignore[union-attr]
    assert isinstance(good, LLMInteraction)
    assert (good.model, good.success, good.prompt_tokens, good.response_tokens) == (
        "gpt-4o",
        True,
        7,
        1,
    )
    assert good.agent_id == agent.id and good.latency_ms >= 0
    failed_calls = [c for c in calls.values() if not c.success]  # type: ignore[attr-defined]
    assert [c.error_message for c in failed_calls] == ["RuntimeError: tool crashed"]  # type: ignore[attr-defined]

    events = {e.event_type: e for e in got["events"]}  # type: ignore[attr-defined]
    tool = events["tool.call"]
    assert isinstance(tool, Event) and tool.trace_id == run.trace_id  # carried from the run
    assert events["session.note"].trace_id != run.trace_id  # type: ignore[attr-defined]
    [doc] = got["documents"]
    assert isinstance(doc, Document) and (doc.title, doc.agent_id) == ("Notes", agent.id)
    all_ids = [r.id for records in got.values() for r in records]
    assert all(i is not None and i.version == 7 for i in all_ids)


def test_sync_facade_mirrors_the_helpers(kafka_settings: Settings) -> None:
    asyncio.run(ensure_topics(kafka_settings))
    with SyncAgentStream(kafka_settings) as stream:
        session = stream.start_session(user_id="user-sync")
        agent = session.register_agent(name="coder", type="tool-use")
        with agent.execute(input_data={"task": "t"}) as run:
            with run.llm_call(model="gpt-4o-mini", prompt="p") as call:
                call.record("r", prompt_tokens=1, response_tokens=2)
            run.event("agent.step", payload={"n": 1})
            run.set_output("done")
        with pytest.raises(ZeroDivisionError), agent.execute() as failing:
            _ = 1 / 0
        assert stream.stats.published["agent_executions"] == 6
    assert not any(t.name == "agentstream-producer" for t in threading.enumerate())

    async def check() -> None:
        executions = [r for _, _, r in await read_records(kafka_settings, "agent_executions", 6)]
        statuses = {(e.id, e.status): e for e in executions}  # type: ignore[attr-defined]
        assert statuses[(run.id, "completed")].output_data == "done"  # type: ignore[attr-defined]
        failed = statuses[(failing.id, "failed")]
        assert failed.error_message == "ZeroDivisionError: division by zero"  # type: ignore[attr-defined]
        [event] = [r for _, _, r in await read_records(kafka_settings, "events", 1)]
        assert event.trace_id == run.trace_id  # type: ignore[attr-defined]
        [llm] = [r for _, _, r in await read_records(kafka_settings, "llm_interactions", 1)]
        assert llm.id == call.interaction.id and llm.success  # type: ignore[union-attr, attr-defined]

    asyncio.run(check())


async def test_a_sessions_records_arrive_in_publish_order(kafka_settings: Settings) -> None:
    # Small batches, no linger: many messages per partition, so order is really exercised.
    settings = kafka_settings.model_copy(
        update={"producer_batch_bytes": 2048, "producer_linger_ms": 0, "topic_partitions": 4}
    )
    await ensure_topics(settings, ["events"])
    sessions = [uuid7() for _ in range(8)]
    per_session = 250
    async with AgentStream(settings) as stream:
        for seq in range(per_session):
            for sid in sessions:
                await stream.publish(sdk_event(sid, seq, event_type="step", payload={"seq": seq}))
    assert stream.stats.delivered_batches > 20
    got = await read_records(settings, "events", len(sessions) * per_session)
    assert len(got) == len(sessions) * per_session
    seen: dict[uuid.UUID, list[int]] = defaultdict(list)
    partitions: dict[uuid.UUID, set[int]] = defaultdict(set)
    for partition, _offset, record in sorted(got, key=lambda x: (x[0], x[1])):
        assert isinstance(record, Event)
        seen[record.session_id].append(record.timestamp_ms)
        partitions[record.session_id].add(partition)
    for sid in sessions:
        assert seen[sid] == list(range(per_session)), "a session's records were reordered"
        # One partition per session: the one Kafka's default partitioner picks for that key.
        assert partitions[sid] == {(murmur2(str(sid).encode()) & 0x7FFFFFFF) % 4}


async def test_close_delivers_everything_still_lingering(kafka_settings: Settings) -> None:
    # A linger far longer than the test: only close() can have sent these.
    settings = kafka_settings.model_copy(update={"producer_linger_ms": 600_000})
    await ensure_topics(settings, ["documents"])
    stream = AgentStream(settings)
    await stream.start()
    sid = uuid7()
    ids = [
        await stream.publish(Document(session_id=sid, title=f"doc {i}", content="x" * (i % 300)))
        for i in range(1500)
    ]
    assert stream.buffered == 1500  # accepted, lingering, not yet sent
    report = await stream.close()
    assert (report.delivered_records, report.undelivered_records) == (1500, 0)
    got = await read_records(settings, "documents", 1500)
    assert [r.id for _, _, r in sorted(got, key=lambda x: x[1])] == ids


async def test_flush_waits_for_acknowledgement(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings, ["sessions"])
    async with AgentStream(kafka_settings) as stream:
        for i in range(300):
            await stream.publish(Session(user_id=f"u{i}"))
        await stream.flush()
        assert stream.buffered == 0
        assert stream.stats.delivered_records == 300
        assert len(await read_records(kafka_settings, "sessions", 300)) == 300


async def test_unreachable_broker_fails_clearly_within_the_bound(services: Services) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", producer_send_timeout_s=2)
    # wait_for only guards against a hang; the SDK's own bound is what must fire.
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1 within 2s"):
        await asyncio.wait_for(AgentStream(settings).start(), 30)
    with pytest.raises(BrokerUnavailable, match="make services"):
        SyncAgentStream(settings).start()
    assert not any(t.name == "agentstream-producer" for t in threading.enumerate())


async def test_silent_broker_fails_within_the_bound(services: Services) -> None:
    # A listener that accepts and never answers: the start-up must not wait forever.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", producer_send_timeout_s=1.5)
    try:
        with pytest.raises(BrokerUnavailable, match=r"within 1\.5s"):
            await asyncio.wait_for(AgentStream(settings).start(), 30)
    finally:
        silent.close()


async def test_delivery_failures_surface_in_callback_flush_and_close(
    kafka_settings: Settings,
) -> None:
    # The broker refuses every batch: the topic only takes messages of 1000 bytes or less.
    topic = topic_for("events", kafka_settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={"max.message.bytes": "1000"})]
        )
    finally:
        await admin.close()
    seen: list[DeliveryFailure] = []
    stream = AgentStream(kafka_settings, compression=None, on_delivery_error=seen.append)
    await stream.start()
    sid = uuid7()
    for i in range(40):
        await stream.publish(sdk_event(sid, i))
    with pytest.raises(DeliveryError, match="40 record") as info:
        await stream.flush()
    assert info.value.undelivered == 40 and info.value.undelivered_by_topic() == {topic: 40}
    assert sum(f.records for f in seen) == 40
    assert decode("events", info.value.failures[0].value).invalid == []  # re-publishable bytes
    # More of the same, never flushed: close() reports them.
    for i in range(5):
        await stream.publish(sdk_event(sid, i))
    with pytest.raises(DeliveryError, match="5 record"):
        await stream.close()
    assert stream.stats.failed_records == 45 and stream.stats.delivered_records == 0


async def test_oversized_record_is_refused_at_publish(kafka_settings: Settings) -> None:
    await ensure_topics(kafka_settings, ["documents"])
    async with AgentStream(kafka_settings, max_message_bytes=64 * 1024) as stream:
        with pytest.raises(RecordTooLarge, match="max_message_bytes"):
            await stream.publish(Document(session_id=uuid7(), title="big", content="x" * 70_000))
        # A record bigger than a batch but within the message limit goes alone, fine.
        await stream.publish(Document(session_id=uuid7(), title="ok", content="y" * 40_000))
    assert stream.stats.delivered_records == 1


async def test_publish_mapping_validates(kafka_settings: Settings) -> None:
    from pydantic import ValidationError

    await ensure_topics(kafka_settings, ["sessions"])
    async with AgentStream(kafka_settings) as stream:
        with pytest.raises(ValidationError, match="user_id"):
            await stream.publish_mapping("sessions", {"user_id": "x" * 300})
        sid = await stream.publish_mapping("sessions", {"user_id": "ok"})
    [(_, _, record)] = await read_records(kafka_settings, "sessions", 1)
    assert record.id == sid and sid.version == 7


def test_produce_command_publishes_what_its_summary_says(
    kafka_settings: Settings, tmp_path: object
) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "AGENTSTREAM_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "AGENTSTREAM_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }
    argv = [sys.executable, "-m", "agentstream", "produce", "--sessions", "6"]
    done = subprocess.run(
        [*argv, "--seed", "5", "--json", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sessions"] == 6 and summary["undelivered"] == 0 and summary["seed"] == 5
    assert len(summary["topics_created"]) == 6
    counts = summary["records"]
    assert counts["sessions"] == 12  # opened, then closed with a newer updated_at

    async def check() -> None:
        for entity, expected in counts.items():
            got = await read_records(kafka_settings, entity, expected)
            assert len(got) == expected, entity

    asyncio.run(check())
