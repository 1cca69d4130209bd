"""What the sink is given and what it gives back: records with their Kafka coordinates.

The sink knows nothing of Kafka clients or faust; it only carries each record's source
coordinates so that a record PostgreSQL refuses can be dead-lettered with them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

import pydantic_core

__all__ = ["MessageSource", "Rejected", "RowSource", "SinkItem", "Source", "WriteResult"]


class RowSource(Protocol):
    """What the sink reads of a record: its columns as attributes (the seed's column names),
    its id and whether it has details. A pydantic record (contract.entities.Record) is one;
    so is a struct of the worker's fast decoder (streams/fastdecode.py), whose jsonb values
    are JSON text passed through to the row."""

    @property
    def id(self) -> uuid.UUID | None: ...

    def has_details(self) -> bool: ...


class MessageSource(Protocol):
    """The Kafka message a record came from: a :class:`Source`, or the worker's
    ``aiokafka.ConsumerRecord`` itself (one object fewer per one-record message)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Source:
    """The Kafka message a record came from; one object shared by all records of a batch."""

    topic: str
    partition: int
    offset: int
    value: bytes


class SinkItem:
    """A record to write, with its message. Not a dataclass: this module is compiled with
    mypyc (pyproject.toml), which compiles an ``__init__`` written out but runs a
    dataclass's generated one as Python, once per record; and not frozen, whose
    ``__init__`` costs ~3x."""

    __slots__ = ("detail_row", "entity", "index", "record", "row", "source")

    def __init__(
        self,
        entity: str,
        record: RowSource,
        source: MessageSource,
        index: int | None,
        row: bytes | None = None,
    ) -> None:
        self.entity = entity
        self.record = record
        self.source = source
        # Position in a batch message; None for a single-record message.
        self.index = index
        # The record as a binary COPY row (copy.RowEncoder), encoded ahead of the flush;
        # the sink encodes the items that come without it.
        self.row = row
        # Its details table's row (Table.details), when the record has details; set by
        # encode_batch.
        self.detail_row: bytes | None = None

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
