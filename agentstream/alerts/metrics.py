"""Prometheus metrics of the alerts process, in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

__all__ = ["AlertMetrics"]


@dataclass
class AlertMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records_observed = Counter(
            "agentstream_alerts_records_observed_total",
            "LLM calls and finished executions the observe stage read",
            registry=r,
        )
        self.records_late = Counter(
            "agentstream_alerts_records_late_total",
            "(record, window) pairs past the allowed lateness: left to the rollups",
            registry=r,
        )
        self.context_timeouts = Counter(
            "agentstream_alerts_context_timeouts_total",
            "records counted with an unknown user or agent type after waiting for them",
            registry=r,
        )
        self.replays_skipped = Counter(
            "agentstream_alerts_replays_skipped_total",
            "contributions counted before (a replay after a crash or rebalance)",
            registry=r,
        )
        self.alerts_fired = Counter(
            "agentstream_alerts_fired_total", "alerts published", registry=r
        )
        self.windows_expired = Counter(
            "agentstream_alerts_windows_expired_total", "window states dropped", registry=r
        )
        self.alerts_stored = Counter(
            "agentstream_alerts_stored_total", "alerts inserted into the table", registry=r
        )
        self.alerts_repeated = Counter(
            "agentstream_alerts_repeated_total",
            "alerts read again and absorbed by the table's unique key",
            registry=r,
        )
        self.webhook_sent = Counter(
            "agentstream_alerts_webhook_sent_total", "alerts the webhook accepted", registry=r
        )
        self.webhook_failures = Counter(
            "agentstream_alerts_webhook_failures_total",
            "alerts the webhook refused or did not answer after every retry",
            registry=r,
        )
