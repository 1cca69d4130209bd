"""The OpenTelemetry intake: OTLP/HTTP traces into agentstream's records (docs/otel.md)."""
