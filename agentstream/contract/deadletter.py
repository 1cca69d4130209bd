"""Dead letters: the record as it arrived, plus headers saying what was wrong and where.

A dead letter's value is the original message value for a whole-message failure, or the
batch item's JSON for one bad item in a batch. Headers carry the reason and the source
coordinates, so ``agentstream dlq`` can group, inspect and replay without guessing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["HEADER_PREFIX", "DeadLetter", "ErrorKind"]

HEADER_PREFIX = "agentstream."


class ErrorKind(StrEnum):
    """Why a record was dead-lettered: the first word of the story.

    Set where the problem is found (the codec, the sink), never guessed from a reason's text.
    """

    DECODE = "decode"  # not JSON, wrong top-level type, too large, empty
    VALIDATION = "validation"  # JSON that breaks the entity contract
    DATABASE = "database"  # valid by the contract but refused by PostgreSQL (a data error)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    kind: str
    reason: str
    entity: str
    source_topic: str
    partition: int
    offset: int
    index: int | None
    value: bytes
    source_headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def source_key(self) -> tuple[str, int, int, int | None]:
        """What identifies the letter: where its record was in the source topic."""
        return (self.source_topic, self.partition, self.offset, self.index)

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers: ours first, then the source message's own, kept as they were."""
        ours = [
            ("error.kind", self.kind),
            ("error.reason", self.reason[:4000]),
            ("entity", self.entity),
            ("source.topic", self.source_topic),
            ("source.partition", str(self.partition)),
            ("source.offset", str(self.offset)),
            ("source.index", "" if self.index is None else str(self.index)),
        ]
        return [(HEADER_PREFIX + k, v.encode()) for k, v in ours] + list(self.source_headers)

    @classmethod
    def from_message(cls, value: bytes, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
        """Rebuild a dead letter read back from the DLQ topic."""
        ours: dict[str, str] = {}
        others: list[tuple[str, bytes]] = []
        for key, raw in headers:
            if key.startswith(HEADER_PREFIX):
                ours[key[len(HEADER_PREFIX) :]] = raw.decode("utf-8", "replace")
            else:
                others.append((key, raw))
        index = ours.get("source.index", "")
        return cls(
            kind=ours.get("error.kind", "unknown"),
            reason=ours.get("error.reason", ""),
            entity=ours.get("entity", ""),
            source_topic=ours.get("source.topic", ""),
            partition=int(ours.get("source.partition", "-1") or -1),
            offset=int(ours.get("source.offset", "-1") or -1),
            index=int(index) if index else None,
            value=value,
            source_headers=tuple(others),
        )
