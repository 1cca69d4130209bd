"""Start the alerts process: topics, price table, the faust app and the table writer."""

from __future__ import annotations

import asyncio
import logging

import faust
from aiokafka.errors import KafkaError
from prometheus_client import start_http_server

from agentstream.alerts.app import AlertsApp
from agentstream.alerts.costing import Coster
from agentstream.alerts.metrics import AlertMetrics
from agentstream.alerts.rules import Rule
from agentstream.alerts.store import AlertStore
from agentstream.analytics.prices import PriceError
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alert_observations_topic, alerts_topic, topic_for
from agentstream.topic_admin import TopicRefused, create_missing_topics

__all__ = ["AlertsStartupError", "start_alerts"]

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0
_INPUTS = ("sessions", "agents", "llm_interactions", "agent_executions")


class AlertsStartupError(Exception):
    """The alerts process cannot start; the message says what to fix."""


async def ensure_alert_topics(settings: Settings) -> None:
    prefix = settings.topic_prefix
    names = [topic_for(e, prefix) for e in _INPUTS]
    names += [alert_observations_topic(prefix), alerts_topic(prefix)]
    created = await create_missing_topics(settings, names, timeout_s=STARTUP_TIMEOUT_S)
    if created:
        log.info("event=topics_created topics=%s", ",".join(created))


def start_alerts(settings: Settings, rules: list[Rule], *, metrics_port: int = 0) -> int:
    try:
        asyncio.run(ensure_alert_topics(settings))
    except TopicRefused as exc:
        raise AlertsStartupError(str(exc)) from None
    except (KafkaError, OSError, TimeoutError) as exc:
        raise AlertsStartupError(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc!r}; {settings.kafka_advice()}"
        ) from None
    try:
        coster = Coster(settings.prices_file)
    except PriceError as exc:
        raise AlertsStartupError(f"the price table is not usable: {exc}") from None
    metrics = AlertMetrics()
    if metrics_port:
        start_http_server(metrics_port, registry=metrics.registry)
    alerts = AlertsApp(settings, rules, coster, metrics)
    store = AlertStore(settings, metrics)
    log.info(
        "event=alerts_starting group=%s prefix=%s rules=%s lateness_s=%d",
        settings.alert_group,
        settings.topic_prefix,
        ",".join(r.name for r in rules),
        settings.alert_lateness_s,
    )
    worker = faust.Worker(alerts.app, store, loglevel="info", quiet=True, override_logging=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
