"""Binary COPY of records into a table: the fastest way PostgreSQL takes rows.

Binary format: uuids, timestamps and integers travel as fixed-width values that the server
does not have to parse, and psycopg's C dumpers produce them without Python string work.
jsonb travels as its text form (the binary jsonb format is a version byte plus the text).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from agentstream.contract.entities import Record
from sinks.postgres.tables import Table

__all__ = ["copy_records", "copy_rows"]


def copy_records(
    cur: psycopg.Cursor[Any], target: sql.Composable, table: Table, records: Iterable[Record]
) -> None:
    """COPY ``records`` (all of ``table``'s columns) into ``target``."""
    row = table.row
    copy_rows(cur, target, table.columns, table.types, (row(r) for r in records))


def copy_rows(
    cur: psycopg.Cursor[Any],
    target: sql.Composable,
    columns: tuple[str, ...],
    types: tuple[str, ...],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        target, sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(stmt) as copy:
        copy.set_types(list(types))
        write = copy.write_row
        for r in rows:
            write(r)
