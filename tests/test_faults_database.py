"""Fault suite: database errors that retrying cannot fix.

Permission denied, a full disk (a tablespace on a 1 MiB tmpfs) and a statement timeout:
the worker must say clearly what is wrong and must not commit a Kafka offset past records
it has not written. Once the cause is fixed, a (re)started worker writes everything, once.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from tests.support.kafka import create_pipeline_topics
from tests.support.reliability import Result, record
from tests.support.traffic import Traffic, ids_in, make_traffic, publish, row_count
from tests.support.worker import WorkerProcess, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def writer_login(database: str) -> Iterator[str]:
    """A login role in agentstream_writer; the worker connects as it, as in production."""
    name = f"as_test_worker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE agentstream_writer").format(sql.Identifier(name))
        )
    yield name
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


async def committed_events_offset(settings: Settings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.worker_group)
    finally:
        await admin.close()
    events = topic_for("events", settings.topic_prefix)
    return sum(max(m.offset, 0) for tp, m in offsets.items() if tp.topic == events)


async def run_fault(
    settings: Settings,
    tmp_path: Path,
    login: str,
    *,
    name: str,
    break_it: Callable[[], None],
    fix_it: Callable[[], None],
    log_words: tuple[str, ...],
    traffic: Traffic,
) -> None:
    await create_pipeline_topics(settings, partitions=2)
    admin_conninfo = settings.database_conninfo()
    as_writer = settings.model_copy(
        update={"database_url": SecretStr(make_conninfo(admin_conninfo, user=login))}
    )
    break_it()
    await publish(settings, traffic.messages(per_message=100))
    worker = WorkerProcess(as_writer, tmp_path / f"{name}-1.log").start()
    try:
        said_it = await asyncio.to_thread(
            wait_for, lambda: any(w in worker.log().lower() for w in log_words), 90
        )
        assert said_it, f"no clear error ({log_words}) in:\n{worker.log()[-3000:]}"
        events_written = row_count(admin_conninfo, ["events"])
        committed = await committed_events_offset(settings)
        # Offsets are message counts; every events message holds 100 records.
        assert committed * 100 <= events_written, (committed, events_written)
        worker.kill()
    finally:
        worker.close()
        fix_it()

    worker = WorkerProcess(as_writer, tmp_path / f"{name}-2.log").start()
    try:
        landed = await asyncio.to_thread(
            wait_for,
            lambda: row_count(admin_conninfo, list(traffic.records)) >= traffic.count(),
            120,
        )
        assert landed, worker.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]
    finally:
        worker.close()
    written = sum(
        len({str(r["id"]) for r in rows} & set(ids_in(admin_conninfo, table)))
        for table, rows in traffic.records.items()
    )
    total = row_count(admin_conninfo, list(traffic.records))
    record(
        Result(
            name,
            traffic.count(),
            written,
            0,
            traffic.count() - written,
            total - written,
            "clear error logged; no offset committed past unwritten rows; fixed, then restarted",
        )
    )
    assert written == total == traffic.count()


async def test_permission_denied(settings: Settings, tmp_path: Path, writer_login: str) -> None:
    conninfo = settings.database_conninfo()

    def execute(statement: str) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(statement.encode())

        return run

    await run_fault(
        settings,
        tmp_path,
        writer_login,
        name="permission denied on events (INSERT revoked from the writer role)",
        break_it=execute("REVOKE INSERT ON events FROM agentstream_writer"),
        fix_it=execute("GRANT INSERT ON events TO agentstream_writer"),
        log_words=("permission denied", "insufficient privilege", "insufficientprivilege"),
        traffic=make_traffic(sessions=20, events_per_session=20, llm_per_session=2, seed=1),
    )


async def test_statement_timeout(settings: Settings, tmp_path: Path, writer_login: str) -> None:
    conninfo = settings.database_conninfo()

    def set_timeout(value: str) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                        sql.Identifier(writer_login), sql.Literal(value)
                    )
                )

        return run

    await run_fault(
        settings,
        tmp_path,
        writer_login,
        name="statement timeout (1 ms for the writer role)",
        break_it=set_timeout("1ms"),
        fix_it=set_timeout("0"),
        log_words=("statement timeout", "querycanceled", "canceling statement"),
        traffic=make_traffic(sessions=20, events_per_session=50, llm_per_session=2, seed=2),
    )


@pytest.fixture
def tiny_tablespace(database: str) -> Iterator[str]:
    """A tablespace on a 1 MiB tmpfs: a disk that fills up."""
    mount = Path(f"/tmp/agentstream-tiny-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    subprocess.run(["chown", "postgres:postgres", str(mount)], check=True)
    name = f"tiny_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(name), sql.Literal(str(mount))
            )
        )
    yield name
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE events SET TABLESPACE pg_default")
        conn.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
    subprocess.run(["umount", str(mount)], check=False)
    mount.rmdir()


async def test_disk_full(
    settings: Settings, tmp_path: Path, writer_login: str, tiny_tablespace: str
) -> None:
    conninfo = settings.database_conninfo()

    def move_events(where: str) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("ALTER TABLE events SET TABLESPACE {}").format(sql.Identifier(where))
                )

        return run

    await run_fault(
        settings,
        tmp_path,
        writer_login,
        name="disk full (events on a 1 MiB tablespace)",
        break_it=move_events(tiny_tablespace),
        fix_it=move_events("pg_default"),
        log_words=("no space left", "disk full", "diskfull", "could not extend"),
        # ~18k events: about 3 MiB of heap, three times what the tablespace holds.
        traffic=make_traffic(sessions=60, events_per_session=300, llm_per_session=1, seed=4),
    )
