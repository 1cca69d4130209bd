"""`agentstream migrate` builds exactly the seed's schema: zero catalog differences.

The seed is vendored in tests/fixtures (the repository's copy, byte for byte); its SQL is
run into one database, the migrations into another, and their catalogs compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from agentstream.contract.topics import ENTITIES
from agentstream.migrations import apply_migrations
from tests.support.services import Services, create_database, drop_database

FIXTURE = Path(__file__).parent / "fixtures" / "seed_000_63eecd942cd08b5b.txt"

CATALOG = {
    "tables": """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')""",
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length,
               numeric_precision, is_nullable, column_default
        FROM information_schema.columns WHERE table_schema = 'public'""",
    "constraints": """
        SELECT rel.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = rel.relnamespace WHERE n.nspname = 'public'""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "types": """
        SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)""",
    "triggers": """
        SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal""",
}


def seed_sql() -> str:
    return FIXTURE.read_text().split("```sql\n", 1)[1].split("```", 1)[0]


def catalog(conninfo: str) -> dict[str, set[tuple[object, ...]]]:
    with psycopg.connect(conninfo) as conn:
        return {name: set(conn.execute(query).fetchall()) for name, query in CATALOG.items()}


@pytest.fixture
def two_databases(services: Services) -> Iterator[tuple[str, str]]:
    names = [create_database(services), create_database(services)]
    yield services.conninfo(names[0]), services.conninfo(names[1])
    for name in names:
        drop_database(services, name)


@pytest.mark.integration
def test_migrated_catalog_equals_the_seed_catalog(two_databases: tuple[str, str]) -> None:
    from_seed, from_migrate = two_databases
    with psycopg.connect(from_seed, autocommit=True) as conn:
        conn.execute(seed_sql().encode())
    apply_migrations(from_migrate)

    expected, actual = catalog(from_seed), catalog(from_migrate)
    assert {t for (t,) in expected["tables"]} == set(ENTITIES)  # one topic per seed table
    assert len(expected["indexes"]) == 7 + 6  # seven declared + six primary keys
    for part in CATALOG:
        missing, extra = expected[part] - actual[part], actual[part] - expected[part]
        assert not missing and not extra, f"{part}: missing {missing}, extra {extra}"


@pytest.mark.integration
def test_migrate_twice_changes_nothing(database: str) -> None:
    before = catalog(database)
    assert apply_migrations(database) == []
    assert catalog(database) == before
