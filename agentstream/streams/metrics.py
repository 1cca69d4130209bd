"""Prometheus metrics of the worker, in a registry of its own (several workers per test process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.records_in = Counter(
            "agentstream_records_in",
            "Records decoded from Kafka (valid or not)",
            ["topic"],
            registry=r,
        )
        self.records_written = Counter(
            "agentstream_records_written",
            "Records accepted by PostgreSQL (written, or already there)",
            ["topic"],
            registry=r,
        )
        self.records_dead_lettered = Counter(
            "agentstream_records_dead_lettered",
            "Records sent to the dead-letter topic",
            ["topic", "kind"],
            registry=r,
        )
        self.batch_records = Histogram(
            "agentstream_batch_records",
            "Records per flush",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000),
            registry=r,
        )
        self.flush_seconds = Histogram(
            "agentstream_flush_seconds",
            "Time to write one flush to PostgreSQL (commit included)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.flush_retries = Counter(
            "agentstream_flush_retries", "Flushes retried after a transient error", registry=r
        )
        self.consumer_lag = Gauge(
            "agentstream_consumer_lag",
            "Messages between the last flushed offset and the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
