"""PostgreSQL sink: COPY-based, idempotent batch writes into the seed schema (no faust here)."""

from agentstream.sinks.postgres.errors import (
    SinkError,
    TerminalSinkError,
    TransientSinkError,
    classify,
)
from agentstream.sinks.postgres.items import Rejected, RowSource, SinkItem, Source, WriteResult
from agentstream.sinks.postgres.writer import EncodedBatch, PostgresSink

__all__ = [
    "EncodedBatch",
    "PostgresSink",
    "Rejected",
    "RowSource",
    "SinkError",
    "SinkItem",
    "Source",
    "TerminalSinkError",
    "TransientSinkError",
    "WriteResult",
    "classify",
]
