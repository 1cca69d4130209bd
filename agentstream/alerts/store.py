"""The alerts table's writer: reads ``{prefix}alerts`` and inserts each alert once.

A consumer of its own (group ``{alert_group}-store``) inside the alerts process, because
the sink worker only knows the six entity topics. It commits its offsets after the
database commit, so an alert is never lost; one read twice (a crash between the two, or an
alert the evaluate stage published again after its own crash) hits the unique key
(rule, group key, window start, level) and is absorbed - counted as repeated, not stored
nor sent to the webhook again. Newly stored alerts go to the webhook, if one is set.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mode
import psycopg
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from agentstream.alerts.metrics import AlertMetrics
from agentstream.alerts.webhook import Webhook
from agentstream.contract.alerts import Alert
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alerts_topic

__all__ = ["INSERT_ALERT", "AlertStore", "insert_alerts"]

log = logging.getLogger(__name__)

INSERT_ALERT = """INSERT INTO agentstream.alerts (id, rule, metric, group_by, group_key,
    window_start, window_end, level, threshold, value, record_count, fired_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING id"""
_RETRY_S = 2.0


async def insert_alerts(conn: psycopg.AsyncConnection[Any], alerts: list[Alert]) -> list[Alert]:
    """Insert in one transaction; return the alerts that were new."""
    new = []
    async with conn.transaction(), conn.cursor() as cur:
        for a in alerts:
            await cur.execute(
                INSERT_ALERT,
                (
                    a.id,
                    a.rule,
                    a.metric,
                    a.group_by,
                    a.group_key,
                    a.window_start,
                    a.window_end,
                    a.level,
                    a.threshold,
                    a.value,
                    a.count,
                    a.fired_at,
                ),
            )
            if await cur.fetchone() is not None:
                new.append(a)
    return new


class AlertStore(mode.Service):
    def __init__(self, settings: Settings, metrics: AlertMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._metrics = metrics
        self._webhook: Webhook | None = None
        if settings.alert_webhook_url is not None:
            self._webhook = Webhook(
                settings.alert_webhook_url.get_secret_value(),
                metrics,
                timeout_s=settings.alert_webhook_timeout_s,
                retries=settings.alert_webhook_retries,
            )

    async def on_start(self) -> None:
        if self._webhook is not None:
            self._webhook.start()

    async def on_stop(self) -> None:
        if self._webhook is not None:
            await self._webhook.stop()

    @mode.Service.task
    async def _store(self) -> None:
        s = self._settings
        consumer = AIOKafkaConsumer(
            alerts_topic(s.topic_prefix),
            bootstrap_servers=s.kafka_bootstrap,
            group_id=f"{s.alert_group}-store",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            **s.kafka_client_options(),
        )
        await consumer.start()
        conn: psycopg.AsyncConnection[Any] | None = None
        try:
            while not self.should_stop:
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                alerts = []
                for messages in batches.values():
                    for m in messages:
                        try:
                            alerts.append(Alert.model_validate_json(m.value or b""))
                        except ValidationError as exc:
                            log.error("event=alert_invalid offset=%d error=%s", m.offset, exc)
                if not batches:
                    continue
                while True:
                    try:
                        if conn is None or conn.closed:
                            conn = await psycopg.AsyncConnection.connect(s.database_conninfo())
                        new = await insert_alerts(conn, alerts)
                        break
                    except psycopg.OperationalError as exc:
                        log.warning("event=alert_store_retry error=%r", exc)
                        conn = None
                        await asyncio.sleep(_RETRY_S)
                await consumer.commit()
                self._metrics.alerts_stored.inc(len(new))
                self._metrics.alerts_repeated.inc(len(alerts) - len(new))
                if self._webhook is not None:
                    for alert in new:
                        self._webhook.submit(alert)
        finally:
            await consumer.stop()
            if conn is not None:
                await conn.close()
