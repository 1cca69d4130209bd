"""psycopg's private row formatter (sinks/postgres/compat.py) still writes PostgreSQL's
documented binary COPY row format: an upgrade that changes it fails here, not in production."""

from __future__ import annotations

import struct
import uuid

import psycopg
from psycopg.adapt import Transformer
from psycopg.pq import Format

from agentstream.sinks.postgres.compat import format_row_binary


def encode(row: tuple[object, ...], types: list[str]) -> bytes:
    tx = Transformer(psycopg.adapters)
    tx.set_dumper_types([psycopg.adapters.types.get_oid(t) for t in types], Format.BINARY)
    out = bytearray()
    format_row_binary(row, tx, out)
    return bytes(out)


def test_a_row_is_the_field_count_then_each_length_and_value() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    got = encode((7, "ab", u, None), ["int4", "text", "uuid", "text"])
    want = (
        struct.pack("!h", 4)
        + struct.pack("!ii", 4, 7)
        + struct.pack("!i", 2)
        + b"ab"
        + struct.pack("!i", 16)
        + u.bytes
        + struct.pack("!i", -1)  # NULL
    )
    assert got == want


def test_rows_are_appended_to_the_buffer() -> None:
    tx = Transformer(psycopg.adapters)
    tx.set_dumper_types([psycopg.adapters.types.get_oid("int8")], Format.BINARY)
    out = bytearray(b"head")
    format_row_binary((1,), tx, out)
    format_row_binary((2,), tx, out)
    row = struct.pack("!h", 1) + struct.pack("!iq", 8, 1)
    assert bytes(out) == b"head" + row + struct.pack("!h", 1) + struct.pack("!iq", 8, 2)
