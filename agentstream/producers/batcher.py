"""Per-(topic, partition) accumulators that turn serialized records into batch messages.

Pure logic, no I/O: the client feeds it one record at a time and sends what it seals. A
batch message is docs/design.md's wire format, a JSON array of one topic's records (``[r1,r2]``).
A batch is sealed when the next record would push it past ``max_bytes``, when it holds
``max_records``, or when its first record has waited ``linger_s`` (the client asks
:meth:`Batcher.due` on a timer). A record larger than ``max_bytes`` on its own goes alone.

All records of one partition pass through one accumulator in arrival order, and sealed
batches come out in that order, so a session's records (all on one partition) keep theirs.

With ``wire="record"`` (``AGENTSTREAM_PRODUCER_WIRE``) every record is sealed at once as its
own message, the JSON object itself with its key (Kafka's convention); the Kafka client's
own batching (its linger) then groups such messages into Kafka record batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentstream.contract.settings import ProducerWire

__all__ = ["Batch", "Batcher", "batch_overhead"]

_NO_BATCHES: tuple[Batch, ...] = ()


def batch_overhead(records: int) -> int:
    """Bytes the array syntax adds around ``records`` values: brackets and commas."""
    return 2 + max(records - 1, 0)


@dataclass(slots=True)
class Batch:
    """A sealed message for one (topic, partition): a batch, or one record (``records == 1``)."""

    topic: str
    partition: int
    records: int
    value: bytes
    key: bytes | None = None  # one-record messages only; batch messages have no key


@dataclass(slots=True)
class _Open:
    values: list[bytes] = field(default_factory=list)
    size: int = 2  # "[" and "]"
    opened: float = 0.0

    def seal(self, topic: str, partition: int) -> Batch:
        return Batch(topic, partition, len(self.values), b"[" + b",".join(self.values) + b"]")


class Batcher:
    """Accumulates serialized records per (topic, partition) into bounded batch messages."""

    def __init__(
        self,
        *,
        max_bytes: int,
        max_records: int,
        linger_s: float,
        wire: ProducerWire = "batch",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 3:
            raise ValueError(f"max_bytes must be at least 3 (brackets and a byte), got {max_bytes}")
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.linger_s = linger_s
        self.wire = wire
        self._clock = clock
        self._open: dict[tuple[str, int], _Open] = {}
        self.buffered_records = 0

    def __len__(self) -> int:
        """Number of open (unsealed) accumulators."""
        return len(self._open)

    def add(
        self, topic: str, partition: int, value: bytes, key: bytes | None = None
    ) -> tuple[Batch, ...]:
        """Append one serialized record; return the messages this sealed (usually none in
        batch mode; in record mode the record's own message, carrying ``key``)."""
        if self.wire == "record":
            return (Batch(topic, partition, 1, value, key),)
        slot = (topic, partition)
        acc = self._open.get(slot)
        sealed: tuple[Batch, ...] = _NO_BATCHES
        if acc is not None and acc.size + 1 + len(value) > self.max_bytes:
            # The record does not fit: the batch so far goes out, the record starts the next.
            sealed = (acc.seal(topic, partition),)
            self.buffered_records -= len(acc.values)
            acc = None
        if acc is None:
            acc = _Open(opened=self._clock())
            self._open[slot] = acc
            acc.size += len(value)
        else:
            acc.size += 1 + len(value)
        acc.values.append(value)
        self.buffered_records += 1
        if len(acc.values) >= self.max_records or acc.size >= self.max_bytes:
            del self._open[slot]
            self.buffered_records -= len(acc.values)
            sealed = (*sealed, acc.seal(topic, partition))
        return sealed

    def next_deadline(self) -> float | None:
        """The clock time at which the oldest open batch has lingered long enough."""
        if not self._open:
            return None
        return min(acc.opened for acc in self._open.values()) + self.linger_s

    def due(self) -> list[Batch]:
        """Seal and return every open batch that has lingered ``linger_s`` or longer."""
        now = self._clock()
        ready = [key for key, acc in self._open.items() if now - acc.opened >= self.linger_s]
        return [self._seal(key) for key in ready]

    def drain(self) -> list[Batch]:
        """Seal and return every open batch (flush/close)."""
        return [self._seal(key) for key in list(self._open)]

    def _seal(self, key: tuple[str, int]) -> Batch:
        acc = self._open.pop(key)
        self.buffered_records -= len(acc.values)
        return acc.seal(*key)
