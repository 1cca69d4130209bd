"""Fixtures shared by the whole suite.

``services``: the real Kafka broker and PostgreSQL server (see tests/support/services.py).
``database``: a fresh, migrated database per test (cloned from a migrated template: fast).
``topic_prefix``: a prefix no other test uses, so tests never read each other's messages.
``settings``: agentstream Settings pointing at all three.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentstream.contract.settings import Settings
from agentstream.migrations import apply_migrations
from agentstream.topic_admin import delete_topics
from tests.support.services import (
    Services,
    create_database,
    drop_database,
    real_services,
)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Render docs/reliability.md from the fault suite's results, when all of it ran and passed.

    Every fault test records one result; a run of some of them (or one where some were
    skipped) leaves the document as it was.
    """
    from tests.support import reliability

    here = Path(__file__).parent
    fault_items = [i for i in session.items if i.path.name.startswith("test_faults_")]
    modules_run = {i.path.name for i in fault_items}
    modules_all = {p.name for p in here.glob("test_faults_*.py")}
    complete = modules_run == modules_all and len(reliability.results()) == len(fault_items)
    if exitstatus == 0 and fault_items and complete:
        reliability.render()


_TOPIC_PREFIXES: list[str] = []


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    with real_services() as found:
        yield found
        # Leave the broker as we found it: a developer's broker that kept every test's
        # topics (thousands after a few runs) starts and elects leaders slowly.
        prefixes, broker = tuple(_TOPIC_PREFIXES), Settings(kafka_bootstrap=found.kafka_bootstrap)
        try:
            asyncio.run(delete_topics(broker, lambda t: t.startswith(prefixes)))
        except Exception as exc:  # the services may be down after a failed run
            warnings.warn(f"test topics not deleted: {exc!r}", stacklevel=1)


@pytest.fixture(scope="session")
def migrated_template(services: Services) -> Iterator[str]:
    name = create_database(services)
    apply_migrations(services.conninfo(name))
    yield name
    drop_database(services, name)


@pytest.fixture
def database(services: Services, migrated_template: str) -> Iterator[str]:
    """Connection string of a fresh database with every migration applied."""
    name = create_database(services, template=migrated_template)
    yield services.conninfo(name)
    drop_database(services, name)


@pytest.fixture
def topic_prefix() -> str:
    prefix = f"test.{uuid.uuid4().hex[:10]}."
    _TOPIC_PREFIXES.append(prefix)
    return prefix


@pytest.fixture
def settings(services: Services, database: str, topic_prefix: str, tmp_path: object) -> Settings:
    return Settings(
        kafka_bootstrap=services.kafka_bootstrap,
        database_url=database,
        topic_prefix=topic_prefix,
        worker_metrics_port=0,
        worker_group=f"{topic_prefix}sink",
        worker_data_dir=f"{tmp_path}/worker",
        worker_batch_seconds=0.2,  # tests wait for rows: flush partial batches sooner
    )
