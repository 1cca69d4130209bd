"""Per-(topic, partition) accumulators that turn serialized records into batch messages.

Pure logic, no I/O: the client feeds it one record at a time and sends what it seals. A
batch message is docs/design.md's wire format, a JSON array of one topic's records (``[r1,r2]``).
A batch is sealed when the next record would push it past ``max_bytes``, when it holds
``max_records``, or when its first record has waited ``linger_s`` (the client asks
:meth:`Batcher.due` on a timer). A record larger than ``max_bytes`` on its own goes alone.

All records of one partition pass through one accumulator in arrival order, and sealed
batches come out in that order, so a session's records (all on one partition) keep theirs.

With ``wire="record"`` (``AGENTSTREAM_PRODUCER_WIRE``) the records are grouped under the same
bounds, but a sealed batch holds them as one-record messages, each the JSON object itself
with its key (Kafka's convention), that the client hands to Kafka as one record batch: the
per-message cost of a Kafka client's ``send`` (~18 µs in aiokafka) is not paid per record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agentstream.contract.settings import ProducerWire

__all__ = ["RECORD_FRAMING_BYTES", "Batch", "Batcher", "batch_overhead"]

_NO_BATCHES: tuple[Batch, ...] = ()
# A record's framing in a Kafka v2 record batch, at most: its length, attributes, timestamp
# and offset deltas, key and value lengths (varints) and header count. Counted per record in
# the record shape so that a sealed batch fits the Kafka batch the client builds from it.
RECORD_FRAMING_BYTES = 32


def batch_overhead(records: int) -> int:
    """Bytes the array syntax adds around ``records`` values: brackets and commas."""
    return 2 + max(records - 1, 0)


@dataclass(slots=True)
class Batch:
    """A sealed batch for one (topic, partition), in one of the two shapes.

    Batch shape: ``value`` is the one message to send, a JSON array of the records, without
    a key. Record shape: ``messages`` are the records as one-record messages, (key, JSON
    object) each in order, to send as one Kafka record batch; ``value`` is empty.
    """

    topic: str
    partition: int
    records: int
    value: bytes
    messages: tuple[tuple[bytes | None, bytes], ...] = ()
    size: int = 0  # bytes of the records' JSON: the array's, or the objects' together

    def as_array(self) -> bytes:
        """The records as one batch message, whichever the shape (re-publishable as is)."""
        if not self.messages:
            return self.value
        return b"[" + b",".join(value for _, value in self.messages) + b"]"


@dataclass(slots=True)
class _Open:
    values: list[bytes] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)  # record shape only
    size: int = 0
    opened: float = 0.0

    def seal(self, topic: str, partition: int, one_per_message: bool) -> Batch:
        if one_per_message:
            messages = tuple(zip(self.keys, self.values, strict=True))
            size = sum(len(v) for v in self.values)
            return Batch(topic, partition, len(self.values), b"", messages, size)
        value = b"[" + b",".join(self.values) + b"]"
        return Batch(topic, partition, len(self.values), value, (), len(value))


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
        self._one_per_message = wire == "record"
        # What the shape adds to the records' bytes: the array's brackets and commas, or each
        # message's key and framing (see RECORD_FRAMING_BYTES).
        self._empty_size = 0 if self._one_per_message else 2
        self._separator = 0 if self._one_per_message else 1
        self._clock = clock
        self._open: dict[tuple[str, int], _Open] = {}
        self.buffered_records = 0

    def __len__(self) -> int:
        """Number of open (unsealed) accumulators."""
        return len(self._open)

    def add(
        self, topic: str, partition: int, value: bytes, key: bytes | None = None
    ) -> tuple[Batch, ...]:
        """Append one serialized record; return the batches this sealed (usually none).

        ``key`` is the record's Kafka key, sent in the record shape only (batch messages
        have none)."""
        slot = (topic, partition)
        acc = self._open.get(slot)
        sealed: tuple[Batch, ...] = _NO_BATCHES
        cost = len(value)
        if self._one_per_message:
            cost += RECORD_FRAMING_BYTES + (len(key) if key is not None else 0)
        if acc is not None and acc.size + self._separator + cost > self.max_bytes:
            # The record does not fit: the batch so far goes out, the record starts the next.
            sealed = (acc.seal(topic, partition, self._one_per_message),)
            self.buffered_records -= len(acc.values)
            acc = None
        if acc is None:
            acc = _Open(size=self._empty_size, opened=self._clock())
            self._open[slot] = acc
            acc.size += cost
        else:
            acc.size += self._separator + cost
        acc.values.append(value)
        if self._one_per_message:
            acc.keys.append(key)
        self.buffered_records += 1
        if len(acc.values) >= self.max_records or acc.size >= self.max_bytes:
            del self._open[slot]
            self.buffered_records -= len(acc.values)
            sealed = (*sealed, acc.seal(topic, partition, self._one_per_message))
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
        return acc.seal(*key, self._one_per_message)
