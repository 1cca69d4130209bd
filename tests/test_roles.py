"""Least privilege: the writer writes and cannot delete or alter; the analyst only reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

pytestmark = pytest.mark.integration

Connect = Callable[[str], "psycopg.Connection[tuple[Any, ...]]"]


@pytest.fixture
def login_as(database: str) -> Iterator[Connect]:
    """Connect to the test database as a new login role that is a member of a group role."""
    created: list[str] = []

    def connect(group: str) -> psycopg.Connection[tuple[Any, ...]]:
        name = f"as_test_{group.split('_')[-1]}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(name), sql.Identifier(group)
                )
            )
        created.append(name)
        return psycopg.connect(make_conninfo(database, user=name), autocommit=True)

    yield connect
    with psycopg.connect(database, autocommit=True) as admin:
        for name in created:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def assert_refused(conn: psycopg.Connection[Any], *statements: str) -> None:
    """Each statement fails for want of a privilege (autocommit: one failure aborts nothing)."""
    for statement in statements:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement.encode())


def test_writer_inserts_and_upserts_but_cannot_delete_or_alter(login_as: Connect) -> None:
    with login_as("agentstream_writer") as conn:
        sid = uuid.uuid4()
        conn.execute("INSERT INTO sessions (id, user_id) VALUES (%s, 'w')", (sid,))
        conn.execute(
            "INSERT INTO sessions (id, user_id) VALUES (%s, 'w2') "
            "ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id",
            (sid,),
        )
        conn.execute(
            "INSERT INTO agentstream.change_log (entity, id) VALUES ('sessions', %s)", (sid,)
        )
        conn.execute("CREATE TEMP TABLE staging (LIKE events)")
        assert_refused(
            conn,
            "DELETE FROM sessions",
            "TRUNCATE events",
            "ALTER TABLE sessions ADD COLUMN x int",
            "SELECT * FROM analytics.prices",
        )


def test_analyst_reads_and_cannot_write(login_as: Connect) -> None:
    with login_as("agentstream_analyst") as conn:
        conn.execute("SELECT count(*) FROM llm_interactions").fetchone()
        conn.execute("SELECT count(*) FROM analytics.prices").fetchone()
        conn.execute("SELECT count(*) FROM analytics.llm_facts").fetchone()  # owned by rollup
        assert_refused(
            conn,
            "INSERT INTO sessions (user_id) VALUES ('a')",
            "UPDATE sessions SET user_id = 'x'",
            "DELETE FROM analytics.prices",
        )


def test_rollup_role_rebuilds_and_folds_and_cannot_write_the_seed(
    database: str, login_as: Connect
) -> None:
    from datetime import UTC, datetime

    from agentstream.analytics.rollup import run_rollup
    from tests.analytics_data import add_call, add_session

    at = datetime(2024, 10, 1, 12, tzinfo=UTC)
    with psycopg.connect(database) as admin:
        s = add_session(admin, "lea", at)
        add_call(admin, s, None, "gpt-4o", at)
    with login_as("agentstream_rollup") as conn:
        user = conn.info.user
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("UPDATE sessions SET user_id = 'x'")
    as_rollup = make_conninfo(database, user=user)
    first = run_rollup(as_rollup)  # a full rebuild: drops and rebuilds the facts' indexes
    assert first.full and first.hours == 1
    with psycopg.connect(database) as admin:
        add_call(admin, s, None, "gpt-4o", at)
    second = run_rollup(as_rollup)  # folds the change log and prunes what it consumed
    assert (second.full, second.changes) == (False, 1)
    with psycopg.connect(database) as admin:
        calls = admin.execute(
            "SELECT calls FROM analytics.llm_rollup WHERE granularity = 'day' AND dimension = 'all'"
        ).fetchone()
    assert calls == (2,)


def test_rollup_cli_under_a_role_without_the_rollup_group_says_what_to_grant(
    database: str,
    login_as: Connect,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from agentstream.cli.main import main
    from agentstream.contract.settings import get_settings

    with login_as("agentstream_analyst") as conn:
        user = conn.info.user
    monkeypatch.setenv("AGENTSTREAM_DATABASE_URL", make_conninfo(database, user=user))
    get_settings.cache_clear()
    try:
        code = main(["rollup"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 2
    assert "permission denied" in err and "GRANT agentstream_rollup TO" in err
