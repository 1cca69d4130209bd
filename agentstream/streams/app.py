"""The faust application: one agent on the six entity topics, writing through the sink.

One faust topic object names all six topics, so one flush can hold every entity and the
sink writes parents before children in one transaction. Choices, and why:

* ``value_serializer='raw'``: the codec (agentstream.contract) decodes; faust passes bytes.
* ``concurrency=1`` and acks after the database commit (take.py, processor.py): faust
  commits only offsets of records that are durable in PostgreSQL.
* ``CrashingSupervisor``: faust's default supervisor restarts a failed agent, which would
  skip the batch it held; a failure here stops the worker with a non-zero exit instead.
* ``stream_wait_empty=True``: on a rebalance faust waits for the in-flight batch to be
  written and acked before it hands partitions over - nothing is lost or written twice.
* in-memory store and no faust web server (our own /metrics and /healthz, see health.py).
* ``broker_max_poll_interval`` stays at faust's 1000 s: heartbeats run in the background,
  so a slow flush or a database outage does not get the worker kicked out of the group;
  processor.py bounds how long a failing flush may hold up a rebalance.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import faust
import mode

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, topic_for
from agentstream.sinks.postgres import SinkError
from agentstream.streams import transport
from agentstream.streams.processor import Processor, WorkerStopped
from agentstream.streams.signals import install_graceful_stop
from agentstream.streams.take import take_batches

__all__ = ["WorkerResources", "attach_agent", "broker_credentials", "build_app", "run_worker"]

log = logging.getLogger(__name__)

# faust's consumer buffers up to this many messages per partition ahead of the agent.
# Messages here are batches of up to a few hundred records: 64 x 500 records is ample
# read-ahead, and bounds memory while draining a large backlog.
STREAM_BUFFER_MAXSIZE = 64
# Bytes fetched per partition per request (aiokafka max_partition_fetch_bytes).
CONSUMER_MAX_FETCH_BYTES = 4 * 1024 * 1024


def broker_credentials(settings: Settings) -> Any:
    """The Kafka security settings as faust credentials (faust does not take aiokafka kwargs)."""
    opts = settings.kafka_client_options()
    protocol = opts["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(opts["ssl_context"])
    return faust.SASLCredentials(
        username=opts["sasl_plain_username"],
        password=opts["sasl_plain_password"],
        mechanism=opts["sasl_mechanism"],
        ssl_context=opts.get("ssl_context"),
    )


def build_app(settings: Settings) -> faust.App:
    hosts = ";".join(settings.kafka_bootstrap.split(","))
    return faust.App(
        settings.worker_group,
        # faust's aiokafka transport with a shorter idle fetch wait (streams/transport.py).
        broker=f"{transport.SCHEME}://{hosts}",
        broker_credentials=broker_credentials(settings),
        store="memory://",
        datadir=str(settings.worker_data_dir),
        web_enabled=False,
        autodiscover=False,
        value_serializer="raw",
        key_serializer="raw",
        stream_wait_empty=True,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=STREAM_BUFFER_MAXSIZE,
        consumer_max_fetch_size=CONSUMER_MAX_FETCH_BYTES,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=False,
        producer_acks=-1,
        # A worker that dies without leaving the group (SIGKILL, OOM) holds its partitions
        # until this expires; faust's default of 60 s stalls their records for a minute.
        broker_session_timeout=20.0,
    )


def attach_agent(app: faust.App, settings: Settings, processor: Processor) -> None:
    names = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    topic = app.topic(*names, value_serializer="raw", key_serializer="raw")

    async def sink_agent(stream: Any) -> None:
        try:
            async for batch in take_batches(
                stream,
                max_records=settings.worker_batch_records,
                within=settings.worker_batch_seconds,
                prepare=processor.prepare,
            ):
                await processor.handle(batch, stream.ack)
        except (SinkError, WorkerStopped) as exc:
            log.critical("event=worker_stopping reason=%r", str(exc))
            raise

    app.agent(
        topic,
        name="agentstream.sink",
        concurrency=1,
        supervisor_strategy=mode.CrashingSupervisor,
    )(sink_agent)


class _Worker(faust.Worker):
    """faust's worker with our signal handling (finish the batch, commit, then stop)."""

    processor: Processor | None = None

    def install_signal_handlers(self) -> None:
        super().install_signal_handlers()
        if self.processor is None:
            return

        async def commit() -> object:
            return await self.app.consumer.commit()

        install_graceful_stop(self.loop, self.processor, commit, self._graceful_shutdown)

    def _graceful_shutdown(self, sig: signal.Signals) -> None:
        self._schedule_shutdown(sig)


def run_worker(
    app: faust.App, processor: Processor, *services: mode.Service, loglevel: str = "info"
) -> int:
    """Run until a signal (exit 0) or a crash (non-zero exit code)."""
    worker = _Worker(app, *services, loglevel=loglevel, quiet=True, override_logging=False)
    worker.processor = processor
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class WorkerResources(mode.Service):
    """Closes what the worker opened beside faust (DLQ producer, database connection)."""

    def __init__(self, processor_close: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._close = processor_close

    async def on_stop(self) -> None:
        await self._close()
