"""Topic names: one per entity plus the dead-letter topic, all under a configurable prefix."""

from __future__ import annotations

from agentstream.contract.entities import ENTITY_MODELS

__all__ = [
    "DLQ_SUFFIX",
    "ENTITIES",
    "dlq_topic",
    "entity_of_topic",
    "otlp_spans_topic",
    "topic_for",
]

# Parents before children (sessions first): the order a flush writes tables in.
ENTITIES: tuple[str, ...] = tuple(ENTITY_MODELS)
DLQ_SUFFIX = "dlq"


def topic_for(entity: str, prefix: str) -> str:
    """The topic that carries ``entity`` records, e.g. ``agentstream.events``."""
    if entity not in ENTITY_MODELS:
        raise KeyError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")
    return f"{prefix}{entity}"


def dlq_topic(prefix: str) -> str:
    return f"{prefix}{DLQ_SUFFIX}"


def entity_of_topic(topic: str, prefix: str) -> str | None:
    """The entity a topic carries, or None for a topic that is not one of ours."""
    if not topic.startswith(prefix):
        return None
    name = topic[len(prefix) :]
    return name if name in ENTITY_MODELS else None


def otlp_spans_topic(prefix: str) -> str:
    """The OpenTelemetry intake's spans, keyed by trace: facts and spans awaiting ancestors."""
    return f"{prefix}otlp.spans"
