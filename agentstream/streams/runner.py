"""Start a worker: check the database, make sure the topics exist, wire the pieces, run faust.

Topics are created here, before any worker joins the group, with ``topic_partitions``
partitions: workers started together would otherwise race on the broker's auto-creation
(with its default partition count).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.errors import KafkaError

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, dlq_topic, topic_for
from agentstream.sinks.postgres import PostgresSink, SinkError
from agentstream.streams.app import WorkerResources, attach_agent, build_app, run_worker
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.health import HealthServer, HealthState
from agentstream.streams.interpreter import tune_interpreter
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor
from agentstream.topic_admin import TopicRefused, create_missing_topics

__all__ = ["StartupError", "ensure_topics", "start_worker"]

log = logging.getLogger(__name__)

# How long start-up waits for Kafka per step (connect, create topics, leaders).
STARTUP_TIMEOUT_S = 30.0


class StartupError(Exception):
    """The worker cannot start; the message says what to fix."""


async def ensure_topics(settings: Settings) -> None:
    """Create the six entity topics and the DLQ if missing (existing ones are left alone)."""
    names = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    names.append(dlq_topic(settings.topic_prefix))
    created = await create_missing_topics(settings, names, timeout_s=STARTUP_TIMEOUT_S)
    if created:
        log.info("event=topics_created topics=%s", ",".join(created))


def start_worker(settings: Settings, *, loglevel: str = "info") -> int:
    try:
        asyncio.run(ensure_topics(settings))
    except TopicRefused as exc:
        raise StartupError(str(exc)) from None
    except (KafkaError, OSError, TimeoutError) as exc:
        raise StartupError(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc!r}; {settings.kafka_advice()}"
        ) from None
    sink = PostgresSink(settings.database_conninfo())
    try:
        sink.connect()  # fail fast at startup; at run time the same errors are retried
    except SinkError as exc:
        raise StartupError(
            f"PostgreSQL at {settings.database_url_redacted()} is not usable: {exc}"
        ) from None

    metrics = WorkerMetrics()
    health = HealthState()
    publisher = DeadLetterPublisher(settings)
    app = build_app(settings)
    processor = Processor(
        settings,
        sink,
        publisher,
        metrics,
        health,
        highwater=lambda tp: app.consumer.highwater(tp),
        rebalancing=lambda: bool(app.rebalancing),
    )

    def assigned() -> int:
        try:
            return len(app.consumer.assignment())
        except Exception:  # consumer not started yet
            return 0

    health.assigned = assigned
    attach_agent(app, settings, processor)
    server = None
    if settings.worker_metrics_port:
        server = HealthServer(settings.worker_metrics_port, metrics.registry, health)
        server.start()
        log.info("event=http_listening port=%d paths=/metrics,/healthz", server.port)

    async def close() -> None:
        await publisher.stop()
        sink.close()

    log.info(
        "event=worker_starting group=%s prefix=%s batch_records=%d batch_seconds=%s",
        settings.worker_group,
        settings.topic_prefix,
        settings.worker_batch_records,
        settings.worker_batch_seconds,
    )
    tune_interpreter()
    try:
        code = run_worker(app, processor, WorkerResources(close), loglevel=loglevel)
    finally:
        if server is not None:
            server.stop()
    log.info("event=worker_stopped exit_code=%d", code)
    return code
