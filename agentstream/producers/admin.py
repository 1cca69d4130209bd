"""Create the entity topics before producing (the load generator and benchmarks do).

Partitions and replication come from ``settings.topic_partitions`` / ``topic_replication``;
topics that already exist are left as they are (agentstream/topic_admin.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.errors import KafkaError

from agentstream.contract.entities import ENTITY_MODELS
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.producers.errors import BrokerUnavailable
from agentstream.topic_admin import TopicRefused, create_missing_topics

__all__ = ["ensure_topics"]


async def ensure_topics(
    settings: Settings,
    entities: Iterable[str] = tuple(ENTITY_MODELS),
    timeout_s: float | None = None,
) -> list[str]:
    """Create the topics of ``entities`` that are missing; return the names that were created.

    Waits at most ``timeout_s`` (default: ``settings.producer_send_timeout_s``) per step.
    """
    if timeout_s is None:
        timeout_s = settings.producer_send_timeout_s
    names = [topic_for(e, settings.topic_prefix) for e in entities]
    try:
        return await create_missing_topics(settings, names, timeout_s)
    except TopicRefused as exc:
        raise BrokerUnavailable(str(exc)) from exc
    except (TimeoutError, KafkaError, OSError) as exc:
        why = f"no answer within {timeout_s:g}s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerUnavailable(
            f"cannot create topics at Kafka {settings.kafka_bootstrap} ({why}); "
            f"{settings.kafka_advice()}"
        ) from exc
