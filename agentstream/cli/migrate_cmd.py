"""``agentstream migrate``: create the database if needed and apply pending migrations."""

from __future__ import annotations

import argparse
from typing import Any

from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "migrate",
        help="apply the migrations in agentstream/sql/ (idempotent)",
        description="Create the database named in AGENTSTREAM_DATABASE_URL if it is missing, "
        "then apply the migrations (agentstream/sql/) that have not been applied yet. A second run "
        "changes nothing.",
    )
    p.add_argument("--no-create-db", action="store_true", help="fail if the database is missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import psycopg

    from agentstream.contract.settings import get_settings
    from agentstream.migrations import MigrationError, apply_migrations, ensure_database

    settings = get_settings()
    conninfo = settings.database_conninfo()
    where = settings.database_url_redacted()
    try:
        if not args.no_create_db and ensure_database(conninfo):
            print(f"created database at {where}")
        applied = apply_migrations(conninfo, log=print)
    except MigrationError as exc:
        raise CommandError(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise CommandError(
            f"cannot reach PostgreSQL at {where}: {str(exc).strip()}\n"
            "  start the local services with `make services`, or set AGENTSTREAM_DATABASE_URL"
        ) from None
    print(f"{len(applied)} migration(s) applied; database is up to date")
    return 0
