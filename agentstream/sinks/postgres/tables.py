"""The seed tables as the sink writes them: columns from the entity models, types from the catalog.

Column names are the models' field names (the contract says they are the seed's column
names); the PostgreSQL types used for binary COPY are read from the live catalog once per
connection, so the schema stays the one home of the types.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from agentstream.contract.entities import ENTITY_MODELS
from agentstream.sinks.postgres.items import RowSource

__all__ = ["DETAIL_TABLES", "Table", "load_tables"]

# Entities whose records carry fields that are not seed columns (Record.DETAIL_FIELDS), and
# the table in the ``agentstream`` schema those go to, keyed by the record's id.
DETAIL_TABLES: dict[str, str] = {"llm_interactions": "llm_usage"}


@dataclass(frozen=True, slots=True)
class Table:
    entity: str
    columns: tuple[str, ...]
    types: tuple[str, ...]  # format_type() of each column, for copy.set_types
    row: Callable[[RowSource], tuple[Any, ...]]
    # The entity's details table (DETAIL_TABLES): its columns are ``id`` and the model's
    # DETAIL_FIELDS; a record writes a row there only if it has details.
    details: Table | None = None

    @property
    def column_list(self) -> str:
        return ", ".join(self.columns)


def _row_getter(columns: Sequence[str]) -> Callable[[RowSource], tuple[Any, ...]]:
    # One C call for the whole tuple, for a pydantic record and a decoder's struct alike.
    return operator.attrgetter(*columns)


def _describe(
    conn: psycopg.Connection[Any], entity: str, qualified: str, columns: tuple[str, ...]
) -> Table:
    found = dict(
        conn.execute(
            "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (qualified,),
        ).fetchall()
    )
    missing = [c for c in columns if c not in found]
    if missing:
        raise psycopg.errors.UndefinedColumn(
            f"table {qualified} lacks column(s) {', '.join(missing)}"
        )
    types = tuple(str(found[c]) for c in columns)
    return Table(entity, columns, types, _row_getter(columns))


def load_tables(conn: psycopg.Connection[Any]) -> dict[str, Table]:
    """Describe every entity table; raises UndefinedTable (42P01) if the schema is missing."""
    tables: dict[str, Table] = {}
    for entity, model in ENTITY_MODELS.items():
        table = _describe(conn, entity, f"public.{entity}", model.columns())
        if entity in DETAIL_TABLES:
            name = DETAIL_TABLES[entity]
            details = _describe(conn, name, f"agentstream.{name}", ("id", *model.DETAIL_FIELDS))
            table = Table(table.entity, table.columns, table.types, table.row, details)
        tables[entity] = table
    return tables
