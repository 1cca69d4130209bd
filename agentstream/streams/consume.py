"""The consume loop: aiokafka's consumer group, batches sized in records, commits after writes.

The model is Sentry arroyo's: the loop fetches with ``getmany``, decodes each message as it
arrives into the batch being filled (runs of one-record messages at a time, see
``BatchSink.decode_messages``), and hands a full (or old enough) batch to a writer task;
it goes on fetching and decoding the next batch while that one is written. Up to
``WRITES_IN_FLIGHT`` (two) handed-over batches are in flight: one being written, the next
one encoded and queued behind it, so that the database goes from one commit straight to the
next batch (the sink writes them one after the other, in the order handed over:
flusher.py). Once a batch's write has returned (the database commit done and its dead
letters acknowledged) and every batch before it has too, its offsets join the pending ones,
which one committer task commits while the next batch is written: an offset is committed
only for records that are durable in PostgreSQL or in the dead-letter topic, in order, and
the next write does not wait for the Kafka round trip. Nothing is ever skipped and committed.

Parents first: given ``rank`` (the worker ranks a partition by its entity, sessions before
agents before executions before LLM interactions, events and documents), a fetch takes what
aiokafka has buffered for the highest-ranked partitions before anything else, and the rest
only once those have nothing buffered, or at least every ``PARENTS_FIRST_MAX_S``; what one
fetch returns from several partitions is batched in rank order. Draining a
backlog then writes the sessions before the events that point to them: records whose parent
is not there yet make the sink infer the parent, and replace it once the real one comes,
which costs the database several times the work of writing it once (and leaves the replaced
versions for every later foreign-key check to step over). Any order across partitions is
allowed (offsets are per partition); live traffic, with nothing buffered, is not delayed.

Back-pressure: when the batch being filled is full while two are still in flight, the loop
stops fetching until the older one is written; memory stays at about three batches plus what
aiokafka's fetcher buffers (bounded per partition by its fetch size).

Rebalances (``on_partitions_revoked``, which aiokafka awaits before rejoining the group):
the writes in flight and the batch being filled are written, and every pending offset
committed, before the partitions go (a failing write is given up after a budget, see
flusher.py, and the worker then stops without committing). Everything fetched before the
revocation is then durable and committed, so messages a fetch returns after it continue from
there and skip nothing; commits are limited to the partitions still assigned, and the rows
of the others are simply written again by their next owner (every write is idempotent). A
commit refused because the group moved on leaves durable rows behind, which the next owner
writes again. Abandoning the batch being filled instead would be cheaper, but a fetch
already under way could then return the records after the abandoned ones, and committing
those would skip them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

__all__ = ["Batch", "BatchSink", "ConsumeLoop", "GroupConsumer", "LoopStats", "Sized"]

log = logging.getLogger(__name__)

# Upper bound on one getmany's wait when there is nothing to flush: how quickly a stop
# request or a due batch is noticed while the topics are idle (10 wake-ups a second).
IDLE_POLL_S = 0.1
# Messages taken from aiokafka's buffers per getmany: small enough that a due flush is
# not held up by decoding, large enough that the call's cost is spread over many records.
FETCH_MAX_MESSAGES = 2000
# Longest a fetch prefers the higher-ranked partitions (parents first) before it takes from
# every partition again: the lower-ranked ones are never starved by a steady flow of parents.
PARENTS_FIRST_MAX_S = 1.0
# Batches handed over and not yet durable: the one being written and the next one, encoded
# and waiting for it. More would only hold more memory: the database writes one at a time.
WRITES_IN_FLIGHT = 2


class Sized(Protocol):
    """Decoded messages (one, or a run of one partition's): how many records (valid or
    not) they hold."""

    @property
    def size(self) -> int: ...


class GroupConsumer(Protocol):
    """The part of ``aiokafka.AIOKafkaConsumer`` the loop uses (fakes implement it in tests)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...


class BatchSink(Protocol):
    """Decodes messages and writes batches (processor.Processor in production)."""

    def decode_messages(
        self, messages: Sequence[Any], start: int, end: int, room: int
    ) -> tuple[Sized, int]:
        """Decode ``messages[start]`` and maybe more of ``messages[start:end]`` (one
        partition's, in offset order) while they hold fewer than ``room`` records; returns
        what was decoded and the index of the first message left."""
        ...

    async def write_batch(self, batch: Sequence[Any]) -> None: ...


@dataclass(slots=True)
class Batch:
    """Decoded messages waiting to be written, and the offsets to commit once they are."""

    messages: list[Any] = field(default_factory=list)
    records: int = 0
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    opened: float = 0.0


@dataclass(slots=True)
class LoopStats:
    """Where the time goes: writing (from a batch's hand-over to its rows durable and its dead
    letters acknowledged, the wait behind the batch before it included; not the offset
    commit), and the loop waiting for a write to finish before it can hand over the next
    batch (the database is the limit). A loop that never waits keeps the database idle
    between writes (decoding is the limit)."""

    writes: int = 0
    write_s: float = 0.0
    write_wait_s: float = 0.0


class ConsumeLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """Fetch, decode, batch, write, commit; also the consumer's rebalance listener."""

    def __init__(
        self,
        consumer: GroupConsumer,
        sink: BatchSink,
        *,
        max_records: int,
        within_s: float,
        rank: Callable[[TopicPartition], int] | None = None,
    ) -> None:
        """``rank``: a partition's priority (lower first); None fetches from all alike."""
        self._consumer = consumer
        self._rank = rank
        self._fetched_all_at = time.monotonic()  # the last fetch from every partition
        # _higher_tiers() of the current assignment; None until asked after a rebalance.
        self._tiers: list[list[TopicPartition]] | None = None
        self._sink = sink
        self._max_records = max_records
        self._within_s = within_s
        self._filling = Batch()
        # The writes in flight, oldest first (at most WRITES_IN_FLIGHT).
        self._writing: deque[asyncio.Task[None]] = deque()
        # Held while writes in flight are awaited and the next one started: the loop and
        # the rebalance listener both do that, never at the same time.
        self._handover = asyncio.Lock()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        # Offsets of written batches not yet committed, and the task committing them.
        self._pending: dict[TopicPartition, int] = {}
        self._committer: asyncio.Task[None] | None = None
        self.rebalancing = False
        self.committed: dict[TopicPartition, int] = {}
        self.stats = LoopStats()

    # --- control ------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop fetching; the batches already decoded are written and committed first."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Until ``request_stop``: then write what was decoded, commit, and return."""
        while not self._stop.is_set():
            self._raise_failure()
            await self._reap_finished()  # raises what a write or a commit raised, at once
            await self._fetch_once()
            if self._due():  # by age: a full batch was handed over as it filled
                await self._hand_over()
        await self._hand_over()
        await self._finish_writing()
        self._raise_failure()

    # --- fetching and batching ----------------------------------------------------------

    def _due(self) -> bool:
        batch = self._filling
        if not batch.messages:
            return False
        return (
            batch.records >= self._max_records or time.monotonic() - batch.opened >= self._within_s
        )

    def _wait_s(self) -> float:
        if not self._filling.messages:
            return IDLE_POLL_S
        left = self._within_s - (time.monotonic() - self._filling.opened)
        return max(0.0, min(IDLE_POLL_S, left))

    async def _fetch(self) -> dict[TopicPartition, list[Any]]:
        """What aiokafka has buffered: the highest-ranked partitions' first (see the module
        docstring), else every partition's, waiting up to ``_wait_s``."""
        now = time.monotonic()
        if self._rank is not None and now - self._fetched_all_at < PARENTS_FIRST_MAX_S:
            for tier in self._higher_tiers():
                fetched = await self._consumer.getmany(
                    *tier, timeout_ms=0, max_records=FETCH_MAX_MESSAGES
                )
                if fetched:
                    return fetched
        self._fetched_all_at = now
        return await self._consumer.getmany(
            timeout_ms=int(self._wait_s() * 1000), max_records=FETCH_MAX_MESSAGES
        )

    def _higher_tiers(self) -> list[list[TopicPartition]]:
        """The assigned partitions by rank, highest first, without the lowest rank (a fetch
        from every partition takes those). Grouped once per assignment: only a rebalance
        changes it (the listener's callbacks forget the grouping)."""
        if self._tiers is None:
            rank = self._rank
            assert rank is not None
            tiers: dict[int, list[TopicPartition]] = {}
            for tp in self._consumer.assignment():
                tiers.setdefault(rank(tp), []).append(tp)
            self._tiers = [tiers[r] for r in sorted(tiers)[:-1]]
        return self._tiers

    async def _fetch_once(self) -> None:
        fetched = await self._fetch()
        decode = self._sink.decode_messages
        max_records = self._max_records
        parts: Iterable[tuple[TopicPartition, list[Any]]] = fetched.items()
        if self._rank is not None and len(fetched) > 1:
            # A fetch from every partition returns them in the fetcher's order: parents
            # first here too, so that they fill the earlier batch.
            rank = self._rank
            parts = sorted(parts, key=lambda part: rank(part[0]))
        for tp, messages in parts:
            start, end = 0, len(messages)
            while start < end:
                # Decode into the batch being filled until it is full; the rest of this
                # fetch goes into the next one. (A batch is handed over as it fills, so the
                # one being filled always has room.)
                batch = self._filling
                if not batch.messages:
                    batch.opened = time.monotonic()
                decoded = batch.messages
                records = batch.records
                i = start
                while i < end and records < max_records:
                    run, i = decode(messages, i, end, max_records - records)
                    decoded.append(run)
                    records += run.size
                batch.records = records
                batch.next_offsets[tp] = messages[i - 1].offset + 1
                start = i
                if records >= max_records:
                    await self._hand_over()

    # --- writing and committing ---------------------------------------------------------

    async def _hand_over(self) -> None:
        """Wait for a free place among the writes in flight (back-pressure), then start
        writing the filled batch."""
        async with self._handover:
            writing = self._writing
            if len(writing) >= WRITES_IN_FLIGHT:
                busy = not writing[0].done()
                waited = time.monotonic()
                while len(writing) >= WRITES_IN_FLIGHT:
                    await self._finish_oldest_write()
                if busy:
                    self.stats.write_wait_s += time.monotonic() - waited
            batch, self._filling = self._filling, Batch()
            if batch.messages:
                before = writing[-1] if writing else None
                writing.append(asyncio.create_task(self._write_and_commit(batch, before)))
        # Let the write start now: it encodes on the loop, then queues the COPY for the
        # flush thread, which runs while this loop decodes the next batch. Decoding a fetch
        # never yields, so without this the write would begin only once the next batch was
        # decoded: the two would take turns instead of overlapping.
        await asyncio.sleep(0)

    async def _reap_finished(self) -> None:
        if self._writing and self._writing[0].done():
            async with self._handover:
                writing = self._writing
                while writing and writing[0].done():
                    await self._finish_oldest_write()
        if self._committer is not None and self._committer.done():
            await self._finish_committing()

    async def _finish_writing(self) -> None:
        """The writes in flight done, and every offset they made committable committed."""
        async with self._handover:
            await self._finish_writing_locked()
            await self._finish_committing()

    async def _finish_writing_locked(self) -> None:
        while self._writing:
            await self._finish_oldest_write()

    async def _finish_oldest_write(self) -> None:
        """Await the oldest write in flight; if it failed, raise that and drop the later
        ones (none of them commits anything after a failure before it)."""
        task = self._writing.popleft()
        try:
            await task
        except BaseException:
            for later in self._writing:
                later.cancel()
            self._writing.clear()
            raise

    async def _write_and_commit(self, batch: Batch, before: asyncio.Task[None] | None) -> None:
        started = time.monotonic()
        await self._sink.write_batch(batch.messages)
        if before is not None:
            # Offsets are committed in order: this batch's only after the one before it is
            # durable. If that one failed, so did the worker: its failure is raised where it
            # is awaited, and nothing after it is committed.
            await asyncio.wait([before])
            if before.cancelled() or before.exception() is not None:
                return
        self.stats.writes += 1
        self.stats.write_s += time.monotonic() - started
        self._commit_later(batch.next_offsets)

    # The commit is not on the next write's path: once a batch is durable its offsets join
    # the pending ones, and one committer task commits them while the next batch is written.
    # Commits stay in order (one at a time, each with the latest offsets of every
    # partition), and only offsets of durable batches are ever pending.

    def _commit_later(self, offsets: dict[TopicPartition, int]) -> None:
        self._pending.update(offsets)
        committer = self._committer
        if committer is None or committer.done():
            if committer is not None and not committer.cancelled():
                failure = committer.exception()
                if failure is not None:
                    raise failure
            self._committer = asyncio.create_task(self._commit_pending())

    async def _finish_committing(self) -> None:
        committer, self._committer = self._committer, None
        if committer is not None:
            await committer

    async def _commit_pending(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, {}
            assigned = self._consumer.assignment()
            offsets = {tp: o for tp, o in pending.items() if tp in assigned}
            if not offsets:
                continue
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on: the rows are durable, and the partitions' next owner
                # writes them again from the last committed offset (idempotently).
                log.warning("event=commit_refused partitions=%d error=%r", len(offsets), exc)
                continue
            self.committed.update(offsets)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # --- rebalance listener (aiokafka awaits these around a rebalance) ------------------

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalancing = True
        self._tiers = None
        messages = len(self._filling.messages)
        try:
            await self._hand_over()
            await self._finish_writing()
        except BaseException as exc:  # aiokafka would only log it: the loop re-raises it
            self._failure = exc
            self._stop.set()
        log.info(
            "event=partitions_revoked partitions=%d written_messages=%d", len(revoked), messages
        )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.rebalancing = False
        self._tiers = None
        log.info("event=partitions_assigned partitions=%d", len(assigned))
