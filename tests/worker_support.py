"""Helpers for the worker tests: run `agentstream worker` as a subprocess, publish, wait."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, topic_for

AGENTSTREAM = str(Path(sys.executable).with_name("agentstream"))


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AGENTSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        AGENTSTREAM_DATABASE_URL=settings.database_conninfo(),
        AGENTSTREAM_TOPIC_PREFIX=settings.topic_prefix,
        AGENTSTREAM_WORKER_GROUP=settings.worker_group,
        AGENTSTREAM_WORKER_METRICS_PORT="0",
        AGENTSTREAM_WORKER_DATA_DIR=str(settings.worker_data_dir),
        AGENTSTREAM_WORKER_BATCH_SECONDS="0.2",
    )
    env.update(extra)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, log_path: Path, *args: str, **env: str) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [AGENTSTREAM, "worker", *args],
            env=worker_env(settings, **env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def stop(self, sig: signal.Signals = signal.SIGTERM, wait_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(wait_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


async def publish(
    settings: Settings, messages: Sequence[tuple[str, bytes]], *, key: bytes | None = None
) -> None:
    """Send (entity, value) messages in order, acks=all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_request_size=8 * 2**20
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic_for(entity, settings.topic_prefix), value, key=key)
            for entity, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_committed(settings: Settings, timeout_s: float = 90) -> None:
    """Wait until the worker group has committed every entity topic up to its end offset."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic_for(e, settings.topic_prefix), p)
            for e in ENTITIES
            for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while True:
            committed = await admin.list_consumer_group_offsets(settings.worker_group)
            behind = {
                tp: end
                for tp, end in ends.items()
                if end > 0 and (tp not in committed or committed[tp].offset < end)
            }
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"worker group still behind on {len(behind)} partitions")
            await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()


async def wait_rows(conninfo: str, table: str, count: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    n = -1
    while time.monotonic() < deadline:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            n = int(row[0]) if row else 0
        if n >= count:
            return n
        await asyncio.sleep(0.5)
    return n
