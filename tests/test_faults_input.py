"""Fault suite: a corpus of 50 kinds of malformed and hostile messages mixed into valid traffic.

Every invalid record must be in the dead-letter topic with a reason and its coordinates,
every valid one written, and the worker must keep running throughout.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES
from agentstream.streams.dlq_admin import read_dead_letters
from tests.support.corpus import build_corpus
from tests.support.kafka import create_pipeline_topics
from tests.support.reliability import CaseResult, Result, record, record_case
from tests.support.traffic import ids_in, make_traffic, publish, row_count
from tests.support.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_hostile_corpus_mixed_into_valid_traffic(settings: Settings, tmp_path: Path) -> None:
    await create_pipeline_topics(settings, partitions=2)
    corpus = build_corpus()
    traffic = make_traffic(sessions=40, events_per_session=25, llm_per_session=5, seed=11)
    valid_messages = traffic.messages(per_message=50)
    conninfo = settings.database_conninfo()

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        # Interleave: a slice of valid traffic, one hostile case, and so on.
        step = max(1, len(valid_messages) // len(corpus))
        placed: list[tuple[str, int, int]] = []  # each case's message: topic, partition, offset
        for n, case in enumerate(corpus):
            await publish(settings, valid_messages[n * step : (n + 1) * step])
            placed += await publish(settings, [(case.entity, case.value)], headers=case.headers)
        await publish(settings, valid_messages[len(corpus) * step :])

        expected_rows = traffic.count() + sum(c.valid for c in corpus)
        tables = list(ENTITIES)

        def real_rows() -> int:
            return row_count(conninfo, tables, inferred=False)

        landed = await asyncio.to_thread(wait_for, lambda: real_rows() >= expected_rows, 120)
        assert landed, f"{real_rows()} of {expected_rows}:\n{worker.log()[-4000:]}"
        expected_letters = sum(c.invalid for c in corpus)

        async def letters_arrived() -> int:
            return len(await read_dead_letters(settings))

        for _ in range(60):
            if await letters_arrived() >= expected_letters:
                break
            await asyncio.sleep(1)
        assert worker.alive, worker.log()[-4000:]
        assert worker.terminate() == 0, worker.log()[-4000:]
    finally:
        worker.close()

    letters = await read_dead_letters(settings)
    assert all(item.letter.reason for item in letters)
    assert all(item.letter.offset >= 0 and item.letter.source_topic for item in letters)
    raw_letters = await read_dead_letters(settings, unique=False)
    by_value = Counter(item.letter.value[:200] for item in letters)
    for case in corpus:
        for record_id in case.valid_ids:
            assert record_id in ids_in(conninfo, case.entity), case.name
    by_source: dict[tuple[str, int, int], list[str]] = {}
    for item in letters:
        src = (item.letter.source_topic, item.letter.partition, item.letter.offset)
        by_source.setdefault(src, []).append(item.letter.reason)
    for case, coordinates in zip(corpus, placed, strict=True):
        reasons = by_source.get(coordinates, [])
        found = set(ids_in(conninfo, case.entity)) if case.valid_ids else set()
        assert len(case.valid_ids) == case.valid, case.name  # every valid record is findable
        record_case(
            CaseResult(
                case.name,
                case.entity,
                case.valid,
                len(found & set(case.valid_ids)),
                case.invalid,
                len(reasons),
                reasons[0] if reasons else "",
            )
        )
        assert len(reasons) == case.invalid, (case.name, reasons)
    dead_lettered = len(letters)
    sent_records = traffic.count() + sum(c.valid + c.invalid for c in corpus)
    written = row_count(conninfo, list(ENTITIES), inferred=False)
    record(
        Result(
            f"{len(corpus)} kinds of malformed or hostile messages mixed into valid traffic",
            sent_records,
            written,
            dead_lettered,
            sent_records - written - dead_lettered,
            len(raw_letters) - len(letters),
            "whole-message failures count as one record; see tests/support/corpus.py",
        )
    )
    assert dead_lettered == sum(c.invalid for c in corpus), by_value.most_common(5)
    assert written == traffic.count() + sum(c.valid for c in corpus)
