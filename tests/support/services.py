"""Where the tests find Kafka and PostgreSQL.

With a Docker engine, testcontainers start both (unless AGENTSTREAM_TEST_LOCAL=1). Without
one, the tests use the local services that ``make services`` starts at the addresses in
the settings. Either way the services are real; nothing here is a mock.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from agentstream.contract.settings import Settings


@dataclass(frozen=True)
class Services:
    kafka_bootstrap: str
    admin_conninfo: str  # a superuser connection to the maintenance database

    def conninfo(self, dbname: str) -> str:
        return make_conninfo(self.admin_conninfo, dbname=dbname)


def docker_engine_answers() -> bool:
    if os.environ.get("AGENTSTREAM_TEST_LOCAL") == "1" or not shutil.which("docker"):
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _port_open(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def real_services() -> Iterator[Services]:
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with (
            KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka,
            PostgresContainer(
                "postgres:15", username="postgres", password="postgres", dbname="postgres"
            ) as pg,
        ):
            url = pg.get_connection_url().replace("postgresql+psycopg2://", "postgresql://")
            yield Services(kafka.get_bootstrap_server(), url)
        return
    settings = Settings()
    admin = make_conninfo(settings.database_conninfo(), dbname="postgres")
    problems = []
    if not _port_open(settings.kafka_bootstrap):
        problems.append(f"no Kafka broker at {settings.kafka_bootstrap}")
    try:
        with psycopg.connect(admin, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        problems.append(f"no PostgreSQL at {settings.database_url_redacted()}: {exc}")
    if problems:
        raise RuntimeError(
            "; ".join(problems) + ". The integration tests need the real services: run "
            "`make services` (or `make test`, which starts them)."
        )
    yield Services(settings.kafka_bootstrap, admin)


def create_database(services: Services, template: str | None = None) -> str:
    name = f"as_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(services.admin_conninfo, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        conn.execute(query)
    return name


def drop_database(services: Services, name: str) -> None:
    with psycopg.connect(services.admin_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
