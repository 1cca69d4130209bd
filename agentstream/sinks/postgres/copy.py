"""Binary COPY of records into a table: the fastest way PostgreSQL takes rows.

Binary format: uuids, timestamps and integers travel as fixed-width values that the server
does not have to parse, and psycopg's C formatter produces them without Python string work.
jsonb travels as its text form (the binary jsonb format is a version byte plus the text).

Rows can be encoded ahead of the write (:class:`RowEncoder`): the worker encodes each record
as it decodes its message, on the event-loop thread, joins a flush's rows into one COPY
stream per table there too (:func:`payload`), and the flush thread then only hands ready
bytes to the server (:func:`copy_payload`). Formatting rows inside the flush thread
made it compete for the GIL with decoding: every socket write released the GIL and waiting
to get it back stalled the COPY while the server sat idle.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import pydantic_core
from psycopg import sql
from psycopg.adapt import AdaptersMap, Transformer
from psycopg.pq import Format
from psycopg.types.json import set_json_dumps

from agentstream.sinks.postgres.compat import format_row_binary as _format_row
from agentstream.sinks.postgres.dumpers import (
    JsonbBinaryDumper,
    TextJsonbBinaryDumper,
    uuid_binary_dumper,
)
from agentstream.sinks.postgres.items import RowSource
from agentstream.sinks.postgres.tables import Table

__all__ = [
    "RowEncoder",
    "change_log_rows",
    "copy_payload",
    "payload",
    "sink_adapters",
]

# The binary COPY file header (signature, flags, header extension length) and trailer.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
BINARY_TRAILER = b"\xff\xff"


def uuid_bytes(value: uuid.UUID) -> bytes:
    """A uuid's binary form (its 16 bytes, big-endian: ``UUID.bytes``), without a Python
    call once compiled (the sink's uuid dumper, dumpers.uuid_binary_dumper)."""
    return value.int.to_bytes(16, "big")


def sink_adapters() -> AdaptersMap:
    """The adapters of the row encoders: psycopg's, with json/jsonb serialised by
    pydantic-core (Rust), several times faster than the stdlib json.dumps psycopg uses by
    default. (The sink's connection sends no JSON itself: every row goes through these.)"""
    adapters = AdaptersMap(psycopg.adapters)
    set_json_dumps(pydantic_core.to_json, context=adapters)
    adapters.register_dumper(None, JsonbBinaryDumper)
    # By oid (None), as the encoders look their dumpers up (Transformer.set_dumper_types).
    adapters.register_dumper(None, uuid_binary_dumper(uuid_bytes))
    return adapters


class RowEncoder:
    """Formats one table's records as binary COPY rows (bytes without header or trailer)."""

    def __init__(self, table: Table, adapters: AdaptersMap) -> None:
        self._row = table.row
        oids = [adapters.types.get_oid(t) for t in table.types]
        self._tx = Transformer(adapters)
        self._tx.set_dumper_types(oids, Format.BINARY)
        # rows()'s, for the decoder's structs, whose jsonb values are JSON text.
        text_jsonb = AdaptersMap(adapters)
        text_jsonb.register_dumper(None, TextJsonbBinaryDumper)
        self._text_tx = Transformer(text_jsonb)
        self._text_tx.set_dumper_types(oids, Format.BINARY)

    def __call__(self, record: RowSource) -> bytes:
        out = bytearray()
        _format_row(self._row(record), self._tx, out)
        return bytes(out)

    def rows(self, records: Sequence[RowSource]) -> list[bytes | None]:
        """The rows of ``records`` (one call for many: a Python call fewer per record);
        None for a record whose values cannot be formatted (the sink formats it again
        and rejects it with the reason)."""
        # Formatted one after the other into one buffer, then cut: one allocation a row
        # (its bytes), where a buffer of its own grew several times and was copied out.
        fmt, row, tx = _format_row, self._row, self._text_tx
        out = bytearray()
        ends = [0]
        failed: list[int] = []
        for i, record in enumerate(records):
            try:
                fmt(row(record), tx, out)
            except Exception:
                del out[ends[-1] :]  # what it appended before failing
                failed.append(i)
            ends.append(len(out))
        data = bytes(out)
        rows: list[bytes | None] = [data[ends[i] : ends[i + 1]] for i in range(len(records))]
        for i in failed:
            rows[i] = self.row_or_none(records[i])
        return rows

    def row_or_none(self, record: RowSource) -> bytes | None:
        """The row with the dumpers that take every value (a jsonb value parsed, not
        text); None if it cannot be formatted (the sink formats it again and rejects it
        with the reason)."""
        try:
            return self(record)
        except Exception:
            return None


def _statement(target: sql.Composable, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def payload(rows: Iterable[bytes]) -> bytes:
    """Rows encoded by a :class:`RowEncoder` (or :func:`change_log_rows`) as one binary COPY
    stream, header to trailer: built ahead of the flush, sent by :func:`copy_payload`."""
    return b"".join((BINARY_HEADER, *rows, BINARY_TRAILER))


def change_log_rows(entity: str, ids: Iterable[uuid.UUID]) -> list[bytes]:
    """Binary COPY rows of ``agentstream.change_log (entity, id)``."""
    name = entity.encode()
    prefix = struct.pack("!hi", 2, len(name)) + name + struct.pack("!i", 16)
    return [prefix + i.bytes for i in ids]


def copy_payload(
    cur: psycopg.Cursor[Any], target: sql.Composable, columns: Sequence[str], data: bytes
) -> None:
    """COPY a :func:`payload` into ``target``'s ``columns``. One Python call: the flush thread
    holds the GIL only to hand the bytes to libpq (psycopg sends them in 128 KiB pieces)."""
    with cur.copy(_statement(target, columns)) as copy:
        copy.write(data)
