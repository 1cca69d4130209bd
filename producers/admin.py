"""Create the entity topics before producing (the load generator and benchmarks do).

Partitions and replication come from ``settings.topic_partitions`` / ``topic_replication``;
topics that already exist are left as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from agentstream.contract.entities import ENTITY_MODELS
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from producers.errors import BrokerUnavailable

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
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **settings.kafka_client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [n for n in names if n not in existing]
        if not missing:
            # Perhaps just created by someone else (a worker starting): producing before the
            # partitions have leaders only earns retries and NotLeaderForPartition warnings.
            await asyncio.wait_for(_leaders_elected(admin, names), timeout_s)
            return []
        new_topics = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication,
            )
            for name in missing
        ]
        response = await asyncio.wait_for(admin.create_topics(new_topics), timeout_s)
        created: list[str] = []
        for name, code, message in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:  # created meanwhile: fine
                raise BrokerUnavailable(
                    f"Kafka at {settings.kafka_bootstrap} refused to create topic {name!r}: "
                    f"error {code} ({message}); check topic_partitions/topic_replication"
                )
        await asyncio.wait_for(_leaders_elected(admin, names), timeout_s)
        return created
    except (TimeoutError, KafkaError, OSError) as exc:
        why = f"no answer within {timeout_s:g}s" if isinstance(exc, TimeoutError) else str(exc)
        raise BrokerUnavailable(
            f"cannot create topics at Kafka {settings.kafka_bootstrap} ({why}); "
            f"{settings.kafka_advice()}"
        ) from exc
    finally:
        await admin.close()


async def _leaders_elected(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    while True:
        described = await admin.describe_topics(topics)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.1)
