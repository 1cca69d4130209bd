"""Apply the SQL migrations in ``agentstream/sql/`` in order, once each, and record them.

Migrations are files ``agentstream/sql/NNNN_name.sql``, shipped inside the package and read
through ``importlib.resources`` so that an installed wheel migrates as a checkout does. Each
runs in its own transaction together with the row that records it, under an advisory lock so
that two ``agentstream migrate`` runs (two workers starting at once) never apply the same file
twice. A file edited after it was applied is refused: migrations are history, a change needs
a new file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "SQL_DIR",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "ensure_database",
    "load_migrations",
]

SQL_DIR: Traversable = files("agentstream") / "sql"
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
# A file's checksum -> the checksums of its earlier wordings, whose statements were the same,
# so that a database migrated with an earlier wording is not refused. Only comment edits
# belong here (tests/test_migrations.py checks the statements are unchanged); keyed by the
# current checksum, so any further edit of such a file is refused like any other.
# 0001: its header named the seed's path outside the repository.
_EARLIER_CHECKSUMS: dict[str, frozenset[str]] = {
    "501e5588add282c3ede32800d80a5acbe3bf78df685d06db1501505f73519921": frozenset(
        {"7d55041154e5eb629e3416be5ec20ae8d20f8d9f9d342e8eaf7ebf9535ca4016"}
    ),
}
# Any constant works; it only has to be the same for every agentstream process.
_LOCK_KEY = 0x61676E7473747265

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS agentstream;
CREATE TABLE IF NOT EXISTS agentstream.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """A migration cannot be applied; the message says which and what to do."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Traversable

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def load_migrations(directory: Traversable = SQL_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} not found")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".sql"):
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(
                f"{path.name} and {found[version].path.name} share version {version}"
            )
        found[version] = Migration(version, match["name"], path)
    return [found[v] for v in sorted(found)]


def ensure_database(conninfo: str) -> bool:
    """Create the database named in ``conninfo`` if it does not exist. True if created."""
    params = conninfo_to_dict(conninfo)
    dbname = str(params.get("dbname") or "postgres")
    admin = make_conninfo(conninfo, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return True


def apply_migrations(
    conninfo: str,
    directory: Traversable = SQL_DIR,
    *,
    log: Callable[[str], None] = lambda _msg: None,
) -> list[Migration]:
    """Apply pending migrations; return those applied (empty when up to date)."""
    migrations = load_migrations(directory)
    applied_now: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_BOOTSTRAP)
            done = {
                row[0]: row[1]
                for row in conn.execute(
                    "SELECT version, checksum FROM agentstream.schema_migrations"
                )
            }
            for migration in migrations:
                if migration.version in done:
                    stored = done[migration.version]
                    earlier = _EARLIER_CHECKSUMS.get(migration.checksum, frozenset())
                    if stored != migration.checksum and stored not in earlier:
                        raise MigrationError(
                            f"{migration.path.name} changed after it was applied; migrations are "
                            "history: restore the file and add a new migration for the change"
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO agentstream.schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                log(f"applied {migration.path.name}")
                applied_now.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
