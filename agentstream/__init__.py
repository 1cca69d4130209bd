"""agentstream: agent telemetry from SDK to Kafka to PostgreSQL to analytics."""

__version__ = "0.1.0"
