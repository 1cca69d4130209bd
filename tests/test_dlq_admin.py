"""`agentstream dlq`: letters are listed by reason and replayed with their original identity."""

from __future__ import annotations

import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from agentstream.contract import DeadLetter, ErrorKind, decode, dlq_topic, topic_for
from agentstream.contract.settings import Settings
from agentstream.streams.dlq_admin import Selection, group_by_reason, read_dead_letters, replay
from tests.support.kafka import create_topics, read_all

pytestmark = pytest.mark.integration


def letter(value: bytes, reason: str, offset: int, index: int | None = None) -> DeadLetter:
    return DeadLetter(
        kind=ErrorKind.VALIDATION,
        reason=reason,
        entity="sessions",
        source_topic="",  # set per test
        partition=0,
        offset=offset,
        index=index,
        value=value,
    )


async def publish_letters(settings: Settings, letters: list[DeadLetter]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for item in letters:
            await producer.send_and_wait(
                dlq_topic(settings.topic_prefix), item.value, headers=item.headers()
            )
    finally:
        await producer.stop()


async def test_list_group_and_replay(settings: Settings) -> None:
    source = topic_for("sessions", settings.topic_prefix)
    await create_topics(settings.kafka_bootstrap, [dlq_topic(settings.topic_prefix), source], 1)
    still_bad = b'{"user_id": 42}'
    now_good = json.dumps({"user_id": "u-7"}).encode()  # no id: gets its original one
    letters = [
        letter(still_bad, "invalid record: user_id: Input should be a valid string", 10),
        letter(still_bad, "invalid record: user_id: Input should be a valid string", 11),
        letter(now_good, "invalid record: user_id: too long (old rule)", 12, index=3),
    ]
    letters = [
        DeadLetter(**{**{s: getattr(x, s) for s in DeadLetter.__slots__}, "source_topic": source})
        for x in letters
    ]
    # The last letter twice, as after a worker crash between publishing and committing.
    await publish_letters(settings, [*letters, letters[-1]])

    assert len(await read_dead_letters(settings, unique=False)) == 4
    found = await read_dead_letters(settings)
    assert [(i.letter.offset, i.letter.index) for i in found] == [(10, None), (11, None), (12, 3)]
    groups = group_by_reason(found)
    assert groups[0][1] == 2 and groups[1][1] == 1

    everything = await replay(settings, found)
    assert [i.letter.offset for i in everything.replayed] == [12]
    assert [i.letter.offset for i, _ in everything.still_invalid] == [10, 11]
    assert "user_id" in everything.still_invalid[0][1]

    # Replaying the same letter again carries the same id: the sink writes it once.
    again = await replay(
        settings, [i for i in found if Selection(reason_contains="old").matches(i)]
    )
    assert len(again.replayed) == 1
    messages = await read_all(settings.kafka_bootstrap, source, expected=2)
    ids = [decode("sessions", m.value).records[0][1].id for m in messages if m.value]
    assert len(ids) == 2 and ids[0] == ids[1]
    expected = uuid.uuid5(uuid.UUID("6d1c8f0e-2b7a-5c3e-9f41-a9e0b7c4d2f1"), f"{source}/0/12/3")
    assert ids[0] == expected
    assert dict(messages[0].headers)["agentstream.replay.of"].endswith(b":0:2")
    assert dict(messages[1].headers)["agentstream.replay.of"].endswith(b":0:2")


async def test_empty_or_missing_dlq_reads_as_nothing(settings: Settings) -> None:
    assert await read_dead_letters(settings, wait_s=10) == []
