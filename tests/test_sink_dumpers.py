"""The sink's own dumpers (sinks/postgres/dumpers.py, with copy.py's compiled uuid_bytes)
write what psycopg's would: a uuid's binary form is its 16 bytes, whatever the uuid."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.adapt import AdaptersMap, Transformer
from psycopg.pq import Format

from agentstream.sinks.postgres.compat import format_row_binary
from agentstream.sinks.postgres.copy import sink_adapters, uuid_bytes


def encode(row: tuple[object, ...], types: list[str], adapters: AdaptersMap) -> bytes:
    tx = Transformer(adapters)
    tx.set_dumper_types([adapters.types.get_oid(t) for t in types], Format.BINARY)
    out = bytearray()
    format_row_binary(row, tx, out)
    return bytes(out)


@given(st.uuids())
def test_a_uuid_is_its_16_bytes(u: uuid.UUID) -> None:
    assert uuid_bytes(u) == u.bytes


@pytest.mark.parametrize("n", [0, 1, 2**64, 2**128 - 1])
def test_rows_with_uuids_are_psycopgs(n: int) -> None:
    u = uuid.UUID(int=n)
    row = (u, None, uuid.uuid4())
    types = ["uuid", "uuid", "uuid"]
    assert encode(row, types, sink_adapters()) == encode(row, types, psycopg.adapters)


def test_a_value_that_is_not_a_uuid_is_refused_as_psycopg_refuses_it() -> None:
    for adapters in (psycopg.adapters, sink_adapters()):
        with pytest.raises((TypeError, AttributeError)):
            encode(("12345678-1234-5678-1234-567812345678",), ["uuid"], adapters)
