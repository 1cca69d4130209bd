"""What the SDK raises: a small hierarchy whose messages say what failed, where, and what to do.

* :class:`PublishTimeout` — the bounded buffer stayed full for the whole send timeout (Kafka is
  slow or unreachable); nothing was dropped, the record was not accepted.
* :class:`DeliveryError` — records were accepted but Kafka did not acknowledge them; it carries
  every undelivered batch (topic, partition, count, the message bytes, the cause) so a caller
  can log, count or re-send them.
* :class:`RecordTooLarge` — one record exceeds the largest message the broker accepts.
* :class:`BrokerUnavailable` — the client could not connect or fetch metadata within its bound.
* :class:`StreamClosed` — publishing on a stream that is closed or was never started.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AgentStreamError",
    "BrokerUnavailable",
    "DeliveryError",
    "DeliveryFailure",
    "PublishTimeout",
    "RecordTooLarge",
    "StreamClosed",
]


class AgentStreamError(Exception):
    """Base class of every error the producer SDK raises."""


class BrokerUnavailable(AgentStreamError):
    """Kafka could not be reached (connect, metadata) within the configured bound."""


class StreamClosed(AgentStreamError):
    """The stream is not running: start it (or use ``async with``) before publishing."""


class RecordTooLarge(AgentStreamError, ValueError):
    """A single record is larger than the largest message the broker accepts."""


class PublishTimeout(AgentStreamError, TimeoutError):
    """The buffer stayed full for the whole send timeout; the record was not accepted."""

    def __init__(self, message: str, *, topic: str, buffered: int, timeout_s: float) -> None:
        super().__init__(message)
        self.topic = topic
        self.buffered = buffered
        self.timeout_s = timeout_s


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One batch message that Kafka did not acknowledge."""

    topic: str
    partition: int
    records: int
    error: BaseException
    # The message value as it would have been sent: re-publishable as is. Kept out of repr:
    # it can be a megabyte of prompts. In the record shape (AGENTSTREAM_PRODUCER_WIRE=record)
    # it is the same records as one array; ``messages`` holds them as sent, (key, value) each.
    value: bytes = field(repr=False)
    messages: tuple[tuple[bytes | None, bytes], ...] = field(default=(), repr=False)

    def describe(self) -> str:
        cause = f"{type(self.error).__name__}: {self.error}".rstrip(": ")
        return f"{self.records} record(s) to {self.topic}[{self.partition}] ({cause})"


class DeliveryError(AgentStreamError):
    """Some accepted records were not delivered; ``failures`` lists every lost batch."""

    def __init__(self, failures: list[DeliveryFailure], *, bootstrap: str) -> None:
        self.failures = failures
        self.undelivered = sum(f.records for f in failures)
        shown = "; ".join(f.describe() for f in failures[:5])
        more = f"; and {len(failures) - 5} more batch(es)" if len(failures) > 5 else ""
        super().__init__(
            f"{self.undelivered} record(s) in {len(failures)} batch message(s) were not "
            f"delivered to Kafka at {bootstrap}: {shown}{more}. Check that the broker is up "
            "and the topics exist; the failed messages are in .failures (value bytes) and can "
            "be re-published."
        )

    def undelivered_by_topic(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.failures:
            out[f.topic] = out.get(f.topic, 0) + f.records
        return out
