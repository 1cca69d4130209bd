"""Publishing dead letters: acks=all, and the caller waits for delivery before acking sources.

docs/design.md: an offset is committed only once its dead letters are acknowledged by Kafka, so
``publish`` returns only when every letter is durably in the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from agentstream.contract.codec import MAX_MESSAGE_BYTES
from agentstream.contract.deadletter import DeadLetter
from agentstream.contract.settings import Settings
from agentstream.contract.topics import dlq_topic

__all__ = ["DeadLetterPublisher", "fit_for_topic"]

log = logging.getLogger(__name__)

# The brokers' message.max.bytes (scripts/kafka.sh, docker-compose.yml): 10 MiB. A dead
# letter's value is the original message, which can be larger than what the codec accepts
# (MAX_MESSAGE_BYTES) - that is why it is a dead letter. One that would not fit is cut to fit,
# and its reason says so: the letter (reason, coordinates, the start of the value) is kept.
_MAX_REQUEST_BYTES = 10 * 1024 * 1024
# Room left for the record batch framing and the producer's own overhead.
_FRAMING_BYTES = 16 * 1024
assert MAX_MESSAGE_BYTES < _MAX_REQUEST_BYTES - _FRAMING_BYTES


def fit_for_topic(letter: DeadLetter) -> DeadLetter:
    """The letter, with its value cut (and the cut stated in the reason) if it is too large."""
    header_bytes = sum(len(k) + len(v) for k, v in letter.headers()) + 256
    room = _MAX_REQUEST_BYTES - _FRAMING_BYTES - header_bytes
    if len(letter.value) <= room:
        return letter
    note = (
        f" [dead-letter value cut to its first {room} of {len(letter.value)} bytes:"
        " the whole message is larger than the dead-letter topic accepts]"
    )
    return dataclasses.replace(letter, value=letter.value[:room], reason=letter.reason + note)


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
        """Send every letter and wait until Kafka has them all (retrying a few times).

        A retry sends again only the letters Kafka has not acknowledged: an acknowledged
        letter sent twice would be a duplicate in the dead-letter topic.
        """
        if not letters:
            return
        producer = await self.start()
        pending = [fit_for_topic(d) for d in letters]
        for attempt in range(1, _ATTEMPTS + 1):
            futures = []
            error: BaseException | None = None
            for letter in pending:
                try:
                    futures.append(
                        await producer.send(
                            self._topic, value=letter.value, headers=letter.headers()
                        )
                    )
                except Exception as exc:  # aiokafka raises KafkaError subclasses and timeouts
                    error = exc
                    break
            results = await asyncio.gather(*futures, return_exceptions=True)
            acknowledged = {i for i, r in enumerate(results) if not isinstance(r, BaseException)}
            error = error or next((r for r in results if isinstance(r, BaseException)), None)
            pending = [d for i, d in enumerate(pending) if i not in acknowledged]
            if not pending:
                return
            if attempt == _ATTEMPTS:
                assert error is not None
                raise error
            log.warning(
                "event=dlq_publish_retry attempt=%d letters=%d error=%r",
                attempt,
                len(pending),
                error,
            )
            await asyncio.sleep(0.5 * 2**attempt)
