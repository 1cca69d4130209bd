"""Publishing dead letters: acks=all, and the caller waits for delivery before acking sources.

DESIGN.md: an offset is committed only once its dead letters are acknowledged by Kafka, so
``publish`` returns only when every letter is durably in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from agentstream.contract.codec import MAX_MESSAGE_BYTES
from agentstream.contract.deadletter import DeadLetter
from agentstream.contract.settings import Settings
from agentstream.contract.topics import dlq_topic

__all__ = ["DeadLetterPublisher"]

log = logging.getLogger(__name__)

# A whole-message dead letter can be as large as the largest message we accept, plus headers.
_MAX_REQUEST_BYTES = MAX_MESSAGE_BYTES + 256 * 1024
_ATTEMPTS = 5


class DeadLetterPublisher:
    def __init__(self, settings: Settings) -> None:
        self._topic = dlq_topic(settings.topic_prefix)
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> AIOKafkaProducer:
        """Start the producer on the running loop (aiokafka binds it at construction)."""
        if self._producer is None:
            s = self._settings
            producer = AIOKafkaProducer(
                bootstrap_servers=s.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
                max_request_size=_MAX_REQUEST_BYTES,
                client_id=f"{s.worker_group}-dlq",
                **s.kafka_client_options(),
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Send every letter and wait until Kafka has them all (retrying a few times)."""
        if not letters:
            return
        producer = await self.start()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                futures = [
                    await producer.send(self._topic, value=d.value, headers=d.headers())
                    for d in letters
                ]
                await asyncio.gather(*futures)
                return
            except Exception as exc:  # aiokafka raises KafkaError subclasses and timeouts
                if attempt == _ATTEMPTS:
                    raise
                log.warning(
                    "event=dlq_publish_retry attempt=%d letters=%d error=%r",
                    attempt,
                    len(letters),
                    exc,
                )
                await asyncio.sleep(0.5 * 2**attempt)
