"""The consume loop with fakes (no services): batching, back-pressure, write-then-commit order,
rebalances, stopping, and failures that must not commit (arroyo's strategy-test style)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaTimeoutError

from agentstream.contract.deadletter import DeadLetter, ErrorKind
from agentstream.contract.settings import Settings
from agentstream.sinks.postgres import TransientSinkError
from agentstream.streams import consume
from agentstream.streams import flusher as flusher_module
from agentstream.streams.consume import ConsumeLoop
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.flusher import WorkerStopped
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor
from agentstream.streams.runner import assigned_highwater

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    size: int = 1


@dataclass
class Decoded:
    """A run of one partition's messages, decoded together (as Processor.decode_messages
    decodes runs of one-record messages)."""

    messages: list[Message]

    @property
    def size(self) -> int:
        return sum(m.size for m in self.messages)


@dataclass
class FakeConsumer:
    """Partitions as lists of messages; what was taken, committed, and in which order."""

    journal: list[tuple[str, Any]]
    log: dict[TopicPartition, list[Message]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    assigned: set[TopicPartition] = field(default_factory=set)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    refuse_commits: bool = False
    fail_commits_with: BaseException | None = None
    commit_gate: asyncio.Event = field(default_factory=asyncio.Event)
    getmany_calls: int = 0
    # A partition that has one more message whenever it is fetched (a steady flow).
    refill: TopicPartition | None = None

    def __post_init__(self) -> None:
        self.commit_gate.set()

    def produce(self, tp: TopicPartition, n: int, size: int = 1) -> None:
        msgs = self.log.setdefault(tp, [])
        start = len(msgs)
        msgs.extend(Message(tp.topic, tp.partition, start + i, size) for i in range(n))
        self.assigned.add(tp)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Message]]:
        self.getmany_calls += 1
        if self.refill is not None:
            self.produce(self.refill, 1)
        out: dict[TopicPartition, list[Message]] = {}
        budget = max_records or 10**9
        for tp in sorted(self.assigned):
            if partitions and tp not in partitions:
                continue
            pos = self.positions.get(tp, self.committed.get(tp, 0))
            take = self.log.get(tp, [])[pos : pos + budget]
            if take:
                out[tp] = take
                self.positions[tp] = pos + len(take)
                budget -= len(take)
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        else:
            await asyncio.sleep(0)
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.journal.append(("commit", dict(offsets)))
        await self.commit_gate.wait()  # Kafka's round trip
        if self.refuse_commits:
            raise CommitFailedError("rebalanced")
        if self.fail_commits_with is not None:
            raise self.fail_commits_with
        self.committed.update(offsets)
        self.journal.append(("committed", dict(offsets)))

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)


@dataclass
class FakeSink:
    journal: list[tuple[str, Any]]
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail_with: BaseException | None = None
    written: list[list[tuple[str, int, int]]] = field(default_factory=list)
    # Per call (0 = the first write): a gate of its own, and a failure of its own.
    call_gates: dict[int, asyncio.Event] = field(default_factory=dict)
    call_failures: dict[int, BaseException] = field(default_factory=dict)
    calls: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    def decode_messages(
        self, messages: Sequence[Message], start: int, end: int, room: int
    ) -> tuple[Decoded, int]:
        # At least one message, then more while the run holds fewer than ``room`` records.
        run, i = [messages[start]], start + 1
        while i < end and sum(m.size for m in run) < room:
            run.append(messages[i])
            i += 1
        return Decoded(run), i

    async def write_batch(self, batch: Sequence[Decoded]) -> None:
        coords = [(m.topic, m.partition, m.offset) for d in batch for m in d.messages]
        self.journal.append(("write_started", coords))
        call, self.calls = self.calls, self.calls + 1
        await self.gate.wait()
        if call in self.call_gates:
            await self.call_gates[call].wait()
        if call in self.call_failures:
            raise self.call_failures[call]
        if self.fail_with is not None:
            raise self.fail_with
        self.written.append(coords)
        self.journal.append(("written", coords))


def make(
    *, max_records: int = 10, within_s: float = 0.05, rank: Any = None
) -> tuple[FakeConsumer, FakeSink, ConsumeLoop, list[tuple[str, Any]]]:
    journal: list[tuple[str, Any]] = []
    consumer = FakeConsumer(journal)
    sink = FakeSink(journal)
    loop = ConsumeLoop(consumer, sink, max_records=max_records, within_s=within_s, rank=rank)
    return consumer, sink, loop, journal


async def wait_until(predicate: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls a fake's state
            await asyncio.sleep(0.005)


async def test_batches_are_sized_in_records_and_committed_after_they_are_written() -> None:
    consumer, sink, loop, journal = make(max_records=10, within_s=60)
    consumer.produce(T0, 25)
    consumer.produce(T1, 5, size=4)  # 5 messages of 4 records: 20 records
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: len(sink.written) >= 3)
    loop.request_stop()
    await runner
    for i, (kind, payload) in enumerate(journal):
        if kind == "commit":
            # Every committed offset belongs to a batch written before the commit.
            written = {(t, p, o) for k, c in journal[:i] if k == "written" for t, p, o in c}
            for tp, next_offset in payload.items():
                assert all((tp.topic, tp.partition, o) in written for o in range(next_offset))
    assert consumer.committed == {T0: 25, T1: 5}
    # Size-based flushes: none far above max_records (a batch closes at the first
    # message that reaches it), written in offset order per partition.
    assert all(sum(4 if p == 1 else 1 for _, p, _ in b) < 10 + 4 for b in sink.written)
    offsets = [o for b in sink.written for t, p, o in b if p == 0]
    assert offsets == list(range(25))


PARENT = TopicPartition("parents", 0)
CHILD = TopicPartition("children", 0)


def parents_first(tp: TopicPartition) -> int:
    return 0 if tp.topic == "parents" else 1


async def test_a_backlog_is_drained_parents_first() -> None:
    consumer, sink, loop, _ = make(max_records=4, within_s=60, rank=parents_first)
    consumer.produce(CHILD, 10)  # sorted first by the fake: fetched first without a rank
    consumer.produce(PARENT, 10)
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.committed == {PARENT: 10, CHILD: 10})
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    topics = [t for b in sink.written for t, _, _ in b]
    assert topics == ["parents"] * 10 + ["children"] * 10


async def test_parents_first_does_not_starve_the_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consume, "PARENTS_FIRST_MAX_S", 0.05)
    consumer, _sink, loop, _ = make(max_records=4, within_s=60, rank=parents_first)
    consumer.produce(CHILD, 1)
    consumer.produce(PARENT, 1)
    consumer.refill = PARENT  # a parent is buffered whenever the loop fetches
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.positions.get(CHILD) == 1, timeout_s=2)
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    assert consumer.committed[CHILD] == 1


async def test_a_small_batch_is_written_after_within_s() -> None:
    consumer, sink, loop, _ = make(max_records=1000, within_s=0.05)
    consumer.produce(T0, 3)
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.committed.get(T0) == 3, timeout_s=2)
    loop.request_stop()
    await runner
    assert sink.written == [[("t", 0, 0), ("t", 0, 1), ("t", 0, 2)]]


async def test_back_pressure_stops_fetching_while_a_full_batch_waits_on_the_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consume, "FETCH_MAX_MESSAGES", 5)
    consumer, sink, loop, _ = make(max_records=10, within_s=60)
    consumer.produce(T0, 1000)
    sink.gate.clear()  # the database is slow: the first write does not finish
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: sink.written == [] and consumer.positions.get(T0, 0) >= 30)
    await asyncio.sleep(0.1)
    # Two batches in flight (one being written, the next queued behind it), one full batch
    # waiting for a place: nothing more was taken.
    assert consumer.positions[T0] == 10 * (consume.WRITES_IN_FLIGHT + 1)
    assert consumer.committed == {}
    sink.gate.set()
    await wait_until(lambda: consumer.committed.get(T0) == 1000)
    loop.request_stop()
    await runner


async def test_two_writes_are_in_flight_and_their_offsets_are_committed_in_order() -> None:
    consumer, sink, loop, journal = make(max_records=2, within_s=60)
    consumer.produce(T0, 4)
    first = sink.call_gates[0] = asyncio.Event()  # the first write is slow
    runner = asyncio.create_task(loop.run())
    # The second batch is handed over while the first is still being written...
    await wait_until(lambda: sink.written == [[("t", 0, 2), ("t", 0, 3)]])
    await asyncio.sleep(0.05)
    # ...and, written first, it commits nothing: its offsets would cover the first batch's.
    assert consumer.committed == {}
    assert not any(k == "commit" for k, _ in journal)
    first.set()
    await wait_until(lambda: consumer.committed.get(T0) == 4)
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    for i, (kind, payload) in enumerate(journal):
        if kind == "commit":
            written = {o for k, c in journal[:i] if k == "written" for _, _, o in c}
            assert set(range(payload[T0])) <= written


async def test_a_failed_write_commits_nothing_written_after_it() -> None:
    consumer, sink, loop, _ = make(max_records=2, within_s=60)
    consumer.produce(T0, 4)
    first = sink.call_gates[0] = asyncio.Event()
    sink.call_failures[0] = RuntimeError("terminal: the first batch failed")
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: sink.written == [[("t", 0, 2), ("t", 0, 3)]])
    first.set()
    with pytest.raises(RuntimeError, match="first batch failed"):
        await asyncio.wait_for(runner, 5)
    assert consumer.committed == {}


async def test_a_failed_write_stops_the_loop_and_commits_nothing() -> None:
    consumer, sink, loop, _ = make(max_records=5, within_s=0.01)
    consumer.produce(T0, 5)
    sink.fail_with = RuntimeError("terminal: run `agentstream migrate`")
    with pytest.raises(RuntimeError, match="agentstream migrate"):
        await asyncio.wait_for(loop.run(), 5)
    assert consumer.committed == {}


async def test_stop_writes_and_commits_what_was_decoded_then_returns() -> None:
    consumer, sink, loop, journal = make(max_records=1000, within_s=60)
    consumer.produce(T0, 7)
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.positions.get(T0) == 7)
    assert sink.written == []  # neither full nor old enough yet
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    assert consumer.committed == {T0: 7}
    assert [k for k, _ in journal] == ["write_started", "written", "commit", "committed"]


async def test_the_next_write_does_not_wait_for_the_previous_commit() -> None:
    consumer, sink, loop, journal = make(max_records=2, within_s=60)
    consumer.produce(T0, 6)
    consumer.commit_gate.clear()  # Kafka is slow to answer commits
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: len(sink.written) == 3)
    # All three batches written while the first commit is still unanswered; nothing more
    # was committed meanwhile, and what is pending waits for that commit (one at a time).
    assert [k for k, _ in journal if k.startswith("commit")] == ["commit"]
    assert consumer.committed == {}
    consumer.commit_gate.set()
    await wait_until(lambda: consumer.committed.get(T0) == 6)
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    commits = [c for k, c in journal if k == "commit"]
    # In order, each after the write of every batch it covers; the pending ones coalesced.
    assert commits == [{T0: 2}, {T0: 6}]
    for i, (kind, payload) in enumerate(journal):
        if kind == "commit":
            written = {o for k, c in journal[:i] if k == "written" for _, _, o in c}
            assert set(range(payload[T0])) <= written


async def test_stop_returns_only_once_the_pending_commit_is_answered() -> None:
    consumer, _sink, loop, journal = make(max_records=1000, within_s=60)
    consumer.produce(T0, 3)
    consumer.commit_gate.clear()
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: consumer.positions.get(T0) == 3)
    loop.request_stop()
    await wait_until(lambda: any(k == "commit" for k, _ in journal))
    await asyncio.sleep(0.05)
    assert not runner.done()
    consumer.commit_gate.set()
    await asyncio.wait_for(runner, 5)
    assert consumer.committed == {T0: 3} and loop.committed == {T0: 3}


async def test_a_failing_commit_stops_the_loop() -> None:
    consumer, _sink, loop, _ = make(max_records=2, within_s=60)
    consumer.produce(T0, 2)
    consumer.fail_commits_with = KafkaTimeoutError("no answer from the coordinator")
    with pytest.raises(KafkaTimeoutError):
        await asyncio.wait_for(loop.run(), 5)
    assert consumer.committed == {}


async def test_revocation_waits_for_the_commit_in_flight() -> None:
    consumer, _sink, loop, journal = make(max_records=2, within_s=60)
    consumer.produce(T0, 2)
    consumer.commit_gate.clear()
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: any(k == "commit" for k, _ in journal))
    revoke = asyncio.create_task(loop.on_partitions_revoked({T0}))
    await asyncio.sleep(0.05)
    assert not revoke.done()  # the partitions go only once their offsets are committed
    consumer.commit_gate.set()
    await asyncio.wait_for(revoke, 5)
    assert consumer.committed == {T0: 2}
    loop.request_stop()
    await asyncio.wait_for(runner, 5)


async def test_revocation_finishes_the_write_in_flight_and_the_filling_batch_first() -> None:
    consumer, sink, loop, journal = make(max_records=4, within_s=60)
    consumer.produce(T0, 6)
    consumer.produce(T1, 1)
    sink.gate.clear()
    runner = asyncio.create_task(loop.run())
    # One batch of 4 is being written; the other 3 messages fill the next one.
    await wait_until(lambda: consumer.positions.get(T1) == 1 and consumer.positions.get(T0) == 6)
    revoke = asyncio.create_task(loop.on_partitions_revoked({T0, T1}))
    await asyncio.sleep(0.05)
    assert not revoke.done()  # the rebalance waits for the write in flight
    assert loop.rebalancing
    sink.gate.set()
    await asyncio.wait_for(revoke, 5)
    # Before the partitions went: every fetched message written, and its offset committed.
    assert consumer.committed == {T0: 6, T1: 1}
    assert sorted(o for b in sink.written for _, _, o in b) == [0, 0, 1, 2, 3, 4, 5]
    # T1 goes to another worker; the loop commits only what it still owns.
    consumer.assigned = {T0}
    await loop.on_partitions_assigned({T0})
    assert not loop.rebalancing
    consumer.produce(T0, 2)
    consumer.assigned = {T0}
    await wait_until(lambda: consumer.positions.get(T0) == 8)
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    assert consumer.committed == {T0: 8, T1: 1}
    assert T1 not in journal[-1][1]


async def test_a_write_failing_during_a_rebalance_stops_the_loop_without_committing() -> None:
    consumer, sink, loop, _ = make(max_records=2, within_s=60)
    consumer.produce(T0, 2)
    sink.gate.clear()
    sink.fail_with = RuntimeError("given up during the rebalance")
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: len(sink.written) == 0 and consumer.positions.get(T0) == 2)
    revoke = asyncio.create_task(loop.on_partitions_revoked({T0}))
    sink.gate.set()
    await asyncio.wait_for(revoke, 5)  # the listener itself does not raise (aiokafka would log)
    with pytest.raises(RuntimeError, match="rebalance"):
        await asyncio.wait_for(runner, 5)
    assert consumer.committed == {}


async def test_a_refused_commit_is_not_fatal_and_the_rows_stay_written() -> None:
    consumer, sink, loop, journal = make(max_records=3, within_s=0.01)
    consumer.refuse_commits = True
    consumer.produce(T0, 3)
    runner = asyncio.create_task(loop.run())
    await wait_until(lambda: any(k == "commit" for k, _ in journal))
    loop.request_stop()
    await asyncio.wait_for(runner, 5)
    assert sink.written == [[("t", 0, 0), ("t", 0, 1), ("t", 0, 2)]]
    assert consumer.committed == {}
    assert loop.committed == {}


class FailingSink:
    """A PostgresSink whose every write fails as if the database were unreachable."""

    def __init__(self) -> None:
        self.attempts = 0

    def encode_batch(self, items: Sequence[Any], *, distinct: Any = ()) -> Any:
        return SimpleNamespace(groups=[])

    def write_encoded(self, encoded: Any) -> Any:
        self.attempts += 1
        raise TransientSinkError("connection refused")


async def test_the_retry_budget_applies_only_while_a_rebalance_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flusher_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(flusher_module, "RETRY_CAP_S", 0.01)
    monkeypatch.setattr(flusher_module, "RETRY_BUDGET_DURING_REBALANCE_S", 0.1)
    rebalancing = False
    sink = FailingSink()
    processor = Processor(
        Settings(),
        sink,  # type: ignore[arg-type]
        DeadLetterPublisher(Settings()),
        WorkerMetrics(),
        HealthState(),
        rebalancing=lambda: rebalancing,
    )
    writing = asyncio.create_task(processor.write_batch([]))
    await asyncio.sleep(0.3)
    assert not writing.done()  # no rebalance: retried for as long as it takes
    rebalancing = True
    with pytest.raises(WorkerStopped, match="rebalance waits"):
        await asyncio.wait_for(writing, 5)
    assert sink.attempts > 10


class FlakyProducer:
    """Acknowledges every letter except the ones named, once each."""

    def __init__(self, fail_once: set[bytes]) -> None:
        self.fail_once = set(fail_once)
        self.sent: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, headers: Any) -> asyncio.Future[None]:
        self.sent.append(value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.fail_once:
            self.fail_once.discard(value)
            future.set_exception(KafkaTimeoutError("not acknowledged"))
        else:
            future.set_result(None)
        return future


async def test_the_dead_letter_publisher_retries_only_the_unacknowledged_letters() -> None:
    publisher = DeadLetterPublisher(Settings())
    producer = FlakyProducer({b"b"})
    publisher._producer = producer
    letters = [
        DeadLetter(ErrorKind.VALIDATION, "bad", "events", "t", 0, i, None, v)
        for i, v in enumerate([b"a", b"b", b"c"])
    ]
    await publisher.publish(letters)
    assert sorted(producer.sent) == [b"a", b"b", b"b", b"c"]


class AssertingConsumer:
    """aiokafka's highwater: asserts that the partition is assigned."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, tp: TopicPartition) -> int:
        assert tp in self.assigned, "Partition is not assigned"
        return 42


def test_the_lag_of_a_revoked_partition_is_not_asked_of_aiokafka() -> None:
    # After a revocation the loop still writes what it fetched before; counting that batch
    # must not ask aiokafka about the partitions that went (it asserts).
    consumer = AssertingConsumer({T0, T1})
    highwater = assigned_highwater(consumer)
    assert highwater(T1) == 42
    consumer.assigned = {T0}
    assert highwater(T1) is None
    assert highwater(T0) == 42
