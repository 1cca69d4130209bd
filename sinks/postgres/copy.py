"""Binary COPY of records into a table: the fastest way PostgreSQL takes rows.

Binary format: uuids, timestamps and integers travel as fixed-width values that the server
does not have to parse, and psycopg's C formatter produces them without Python string work.
jsonb travels as its text form (the binary jsonb format is a version byte plus the text).

Rows can be encoded ahead of the write (:class:`RowEncoder`): the worker encodes each record
as it decodes its message, on the event-loop thread, and the flush thread then only streams
ready bytes to the server (:func:`copy_encoded`). Formatting rows inside the flush thread
made it compete for the GIL with decoding: every socket write released the GIL and waiting
to get it back stalled the COPY while the server sat idle.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import pydantic_core
from psycopg import sql
from psycopg._copy_base import format_row_binary
from psycopg.adapt import AdaptersMap, Dumper, Transformer
from psycopg.pq import Format
from psycopg.types.json import set_json_dumps

from agentstream.contract.entities import Record
from sinks.postgres.tables import Table

__all__ = ["RowEncoder", "copy_encoded", "copy_rows", "sink_adapters"]

# The binary COPY file header (signature, flags, header extension length) and trailer.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
BINARY_TRAILER = b"\xff\xff"
# Rows are sent in pieces of about this size: bounded extra memory, few socket writes.
CHUNK_BYTES = 1 << 20


class _JsonbBinaryDumper(Dumper):
    """jsonb in binary (a version byte, then the text) serialised by pydantic-core, in one
    Python call per value: psycopg's own goes through three."""

    format = Format.BINARY
    oid = psycopg.adapters.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + pydantic_core.to_json(obj)


def sink_adapters() -> AdaptersMap:
    """The adapters of the row encoders: psycopg's, with json/jsonb serialised by
    pydantic-core (Rust), several times faster than the stdlib json.dumps psycopg uses by
    default. (The sink's connection sends no JSON itself: every row goes through these.)"""
    adapters = AdaptersMap(psycopg.adapters)
    set_json_dumps(pydantic_core.to_json, context=adapters)
    adapters.register_dumper(None, _JsonbBinaryDumper)
    return adapters


class RowEncoder:
    """Formats one table's records as binary COPY rows (bytes without header or trailer)."""

    def __init__(self, table: Table, adapters: AdaptersMap) -> None:
        self._row = table.row
        self._tx = Transformer(adapters)
        self._tx.set_dumper_types([adapters.types.get_oid(t) for t in table.types], Format.BINARY)

    def __call__(self, record: Record) -> bytes:
        out = bytearray()
        format_row_binary(self._row(record), self._tx, out)
        return bytes(out)


def _statement(target: sql.Composable, columns: Sequence[str]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def copy_encoded(
    cur: psycopg.Cursor[Any], target: sql.Composable, columns: Sequence[str], rows: Sequence[bytes]
) -> None:
    """COPY rows encoded by a :class:`RowEncoder` for ``columns`` into ``target``."""
    with cur.copy(_statement(target, columns)) as copy:
        chunk = [BINARY_HEADER]
        size = 0
        for row in rows:
            chunk.append(row)
            size += len(row)
            if size >= CHUNK_BYTES:
                copy.write(b"".join(chunk))
                chunk.clear()
                size = 0
        chunk.append(BINARY_TRAILER)
        copy.write(b"".join(chunk))


def copy_rows(
    cur: psycopg.Cursor[Any],
    target: sql.Composable,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    """COPY tuples of Python values (formatted here, by psycopg) into ``target``."""
    with cur.copy(_statement(target, columns)) as copy:
        copy.set_types(list(types))
        write = copy.write_row
        for r in rows:
            write(r)
