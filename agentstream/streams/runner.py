"""Start a worker: check the database, make sure the topics exist, wire the pieces, consume.

Topics are created here, before any worker joins the group, with ``topic_partitions``
partitions: workers started together would otherwise race on the broker's auto-creation
(with its default partition count).

The consumer (aiokafka's group consumer, driven by consume.py), and why its settings:

* ``enable_auto_commit=False``: the consume loop commits a batch's offsets after the rows
  are durable; ``auto_offset_reset="earliest"``: a new group reads the topics from the start.
* ``session_timeout_ms`` 20 s: a worker that dies without leaving the group (SIGKILL, OOM)
  holds its partitions until it expires; Kafka's default (45 s) stalls their records longer.
* ``max_poll_interval_ms`` 1000 s: the loop stops fetching while a write is retried (a
  database outage); heartbeats go on in the background, so the worker stays in the group.
* ``rebalance_timeout_ms`` 60 s: a rebalance waits for the writes in flight, each given
  up after flusher.RETRY_BUDGET_DURING_REBALANCE_S (30 s) of failures.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, dlq_topic, topic_for
from agentstream.sinks.postgres import PostgresSink, SinkError
from agentstream.streams.consume import ConsumeLoop
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.flusher import WorkerStopped
from agentstream.streams.health import HealthServer, HealthState
from agentstream.streams.interpreter import event_loop_factory, tune_interpreter
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor
from agentstream.streams.signals import install_graceful_stop
from agentstream.topic_admin import TopicRefused, create_missing_topics

__all__ = ["StartupError", "assigned_highwater", "ensure_topics", "start_worker"]

log = logging.getLogger(__name__)

# How long start-up waits for Kafka per step (connect, create topics, leaders).
STARTUP_TIMEOUT_S = 30.0
# Bytes fetched per partition per request (aiokafka max_partition_fetch_bytes): the
# fetcher's read-ahead, and so the bound on what it buffers per partition.
CONSUMER_MAX_FETCH_BYTES = 4 * 1024 * 1024
SESSION_TIMEOUT_MS = 20_000
MAX_POLL_INTERVAL_MS = 1_000_000
REBALANCE_TIMEOUT_MS = 60_000


class StartupError(Exception):
    """The worker cannot start; the message says what to fix."""


async def ensure_topics(settings: Settings) -> None:
    """Create the six entity topics and the DLQ if missing (existing ones are left alone)."""
    names = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    names.append(dlq_topic(settings.topic_prefix))
    created = await create_missing_topics(settings, names, timeout_s=STARTUP_TIMEOUT_S)
    if created:
        log.info("event=topics_created topics=%s", ",".join(created))


def assigned_highwater(consumer: AIOKafkaConsumer) -> Callable[[TopicPartition], int | None]:
    """``consumer.highwater``, None for a partition no longer assigned (aiokafka asserts
    that it is): after a revocation the loop still writes what it fetched before, and the
    lag gauge of a partition that went is not this worker's to set."""

    def highwater(tp: TopicPartition) -> int | None:
        if tp not in consumer.assignment():
            return None
        high: int | None = consumer.highwater(tp)
        return high

    return highwater


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
    server = None
    if settings.worker_metrics_port:
        server = HealthServer(settings.worker_metrics_port, metrics.registry, health)
        server.start()
        log.info("event=http_listening port=%d paths=/metrics,/healthz", server.port)
    log.info(
        "event=worker_starting group=%s prefix=%s batch_records=%d batch_seconds=%s",
        settings.worker_group,
        settings.topic_prefix,
        settings.worker_batch_records,
        settings.worker_batch_seconds,
    )
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            code = runner.run(_consume(settings, sink, metrics, health))
    finally:
        sink.close()
        if server is not None:
            server.stop()
    log.info("event=worker_stopped exit_code=%d", code)
    return code


async def _consume(
    settings: Settings, sink: PostgresSink, metrics: WorkerMetrics, health: HealthState
) -> int:
    """Consume until a signal (0) or an error the worker cannot get past (1)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.worker_group,
        client_id=f"{settings.worker_group}-sink",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=CONSUMER_MAX_FETCH_BYTES,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
        **settings.kafka_client_options(),
    )
    publisher = DeadLetterPublisher(settings)
    processor = Processor(
        settings,
        sink,
        publisher,
        metrics,
        health,
        highwater=assigned_highwater(consumer),
        rebalancing=lambda: loop.rebalancing,
    )
    # Parents first (consume.py): an entity's rank is its place in ENTITIES.
    rank_of = {topic_for(e, settings.topic_prefix): i for i, e in enumerate(ENTITIES)}
    loop = ConsumeLoop(
        consumer,
        processor,
        max_records=settings.worker_batch_records,
        within_s=settings.worker_batch_seconds,
        rank=lambda tp: rank_of[tp.topic],
    )
    install_graceful_stop(asyncio.get_running_loop(), loop.request_stop)
    health.assigned = lambda: len(consumer.assignment())
    topics = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    collections_before = [0, 0, 0]
    try:
        await consumer.start()
        consumer.subscribe(topics, listener=loop)
        tune_interpreter(settings.worker_batch_records)
        collections_before = [g["collections"] for g in gc.get_stats()]
        await loop.run()
        return 0
    except (SinkError, WorkerStopped) as exc:
        log.critical("event=worker_stopping reason=%r", str(exc))
        return 1
    finally:
        stats = loop.stats
        log.info(
            "event=consume_loop_stopped writes=%d write_s=%.3f waited_for_writes_s=%.3f "
            "gc_collections=%s",
            stats.writes,
            stats.write_s,
            stats.write_wait_s,
            "/".join(
                str(g["collections"] - b)
                for g, b in zip(gc.get_stats(), collections_before, strict=True)
            ),
        )
        processor.close()
        # Leaving the group hands the partitions over at once (their offsets are committed
        # or, after a failure, not: then the next owner reads them again).
        await consumer.stop()
        await publisher.stop()
