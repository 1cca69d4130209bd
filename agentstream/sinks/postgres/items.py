"""What the sink is given and what it gives back: records with their Kafka coordinates.

The sink knows nothing of Kafka clients or faust; it only carries each record's source
coordinates so that a record PostgreSQL refuses can be dead-lettered with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pydantic_core

from agentstream.contract.entities import Record

__all__ = ["Rejected", "SinkItem", "Source", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka message a record came from; one object shared by all records of a batch."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x, per record
class SinkItem:
    entity: str
    record: Record
    source: Source
    index: int | None  # position in a batch message; None for a single-record message
    # The record as a binary COPY row (copy.RowEncoder), encoded ahead of the flush; the
    # sink encodes the items that come without it.
    row: bytes | None = None
    # Its details table's row (Table.details), when the record has details; set by encode_batch.
    detail_row: bytes | None = None

    def original_bytes(self) -> bytes:
        """The record as it arrived: the message, or its batch item re-serialised as JSON."""
        if self.index is None:
            return self.source.value
        # Only for the rare refused record: parse the message again to cut out the item.
        items = pydantic_core.from_json(self.source.value)
        return pydantic_core.to_json(items[self.index])


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record PostgreSQL refused (a data error), with the SQLSTATE and message as reason."""

    item: SinkItem
    reason: str


@dataclass(slots=True)
class WriteResult:
    """Per entity: records accepted (written, or already there); and the refused ones."""

    accepted: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
