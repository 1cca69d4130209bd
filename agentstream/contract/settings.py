"""Settings from the environment (and ``.env``), prefix ``AGENTSTREAM_``: one object for all layers.

Credentials are ``SecretStr`` and URLs are shown redacted, so that a settings object can be
logged or printed in an error without leaking a password.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ProducerWire", "Settings", "get_settings", "redact_url"]

_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^:/@]+:)[^@]*(?P<tail>@)")
# libpq's keyword form and URL query parameters: password=secret, password = 'a b', ?password=x
_PASSWORD_PARAM = re.compile(r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s&]+)")


# The SDK's message shape: "batch" sends a JSON array of a partition's records per message
# (fewer, larger messages: cheaper for the broker and the producer); "record" sends one JSON
# object per message, keyed by session id, Kafka's convention, for teams whose other
# consumers expect it. The worker reads both (docs/design.md, Wire format).
ProducerWire = Literal["record", "batch"]


def redact_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``; likewise
    ``password=secret`` in libpq's keyword form or in the URL's query."""
    url = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", url)
    return _PASSWORD_PARAM.sub(r"\g<head>***", url)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENTSTREAM_", env_file=".env", extra="ignore", frozen=True
    )

    # --- where things are (docs/design.md, Settings) ---
    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/agentstream")
    topic_prefix: str = "agentstream."

    # --- Kafka security, passed through to every client (producer, worker, admin, dlq) ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None

    # --- topics ---
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)

    # --- worker (streams/ and sinks/) ---
    worker_group: str = "agentstream-sink"
    worker_batch_records: int = Field(default=5000, ge=1)
    worker_batch_seconds: float = Field(default=0.5, gt=0)
    worker_metrics_port: int = Field(default=9464, ge=0)  # 0 disables the HTTP endpoint
    worker_data_dir: Path = Path(".services/worker")

    # --- producer SDK ---
    producer_linger_ms: int = Field(default=20, ge=0)
    producer_batch_bytes: int = Field(default=512 * 1024, ge=1024)
    producer_buffer_records: int = Field(default=100_000, ge=1)
    producer_send_timeout_s: float = Field(default=30.0, gt=0)
    producer_validate: bool = True
    producer_wire: ProducerWire = "batch"

    # --- alerts (agentstream/alerts/, docs/alerts.md) ---
    alert_rules: Path | None = None  # the rules file (TOML)
    alert_group: str = "agentstream-alerts"  # consumer group, apart from the sink's
    alert_lateness_s: int = Field(default=300, ge=0)  # allowed lateness of records
    alert_webhook_url: SecretStr | None = None  # may carry a token (Slack's do)
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0)
    alert_webhook_retries: int = Field(default=3, ge=0)
    alert_commit_interval_s: float = Field(default=0.5, gt=0)
    alert_data_dir: Path = Path(".services/alerts")

    # --- OpenTelemetry intake (`agentstream otlp`, docs/otel.md) ---
    otlp_host: str = "127.0.0.1"
    otlp_port: int = Field(default=4318, ge=0, le=65535)
    # OTLP/gRPC beside OTLP/HTTP, on this port (4317 is OTLP's); 0 leaves it off, so that
    # several intakes on one host do not contend for one port unless asked to.
    otlp_grpc_port: int = Field(default=0, ge=0, le=65535)
    # Bearer tokens, comma-separated; required on every request when set. Secrets: never logged.
    otlp_tokens: SecretStr | None = None
    otlp_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # How long a request waits for Kafka's acknowledgements before answering 503.
    otlp_kafka_timeout_s: float = Field(default=10.0, gt=0)
    otlp_retry_after_s: int = Field(default=5, ge=1)
    # Keep spans with no GenAI meaning as events (event_type otel.span) instead of dropping them.
    otlp_keep_other_spans: bool = False
    # The resolver (spans waiting for an ancestor): its consumer group, and how long a span
    # waits for its ancestors before it is mapped with what is known.
    otlp_resolver_group: str = "agentstream-otlp-resolver"
    otlp_resolve_wait_s: float = Field(default=60.0, gt=0)

    # --- analytics ---
    prices_file: Path | None = None  # user price overrides, merged over the shipped table
    output_dir: Path = Path("out")

    def kafka_advice(self) -> str:
        """What to check when Kafka cannot be reached: one wording for every command."""
        advice = "is the broker up (`make services`)? Check AGENTSTREAM_KAFKA_BOOTSTRAP"
        if self.kafka_security_protocol != "PLAINTEXT":
            advice += (
                f" and, for {self.kafka_security_protocol}, the credentials"
                " (AGENTSTREAM_KAFKA_SASL_MECHANISM, ..._USERNAME, ..._PASSWORD) and TLS files"
                " (AGENTSTREAM_KAFKA_SSL_*); an authentication failure is logged above"
            )
        return advice

    def otlp_token_list(self) -> frozenset[str]:
        if self.otlp_tokens is None:
            return frozenset()
        return frozenset(
            t.strip() for t in self.otlp_tokens.get_secret_value().split(",") if t.strip()
        )

    def database_conninfo(self) -> str:
        return self.database_url.get_secret_value()

    def database_url_redacted(self) -> str:
        return redact_url(self.database_conninfo())

    def kafka_client_options(self) -> dict[str, Any]:
        """Security keyword arguments common to aiokafka's producer, consumer and admin."""
        opts: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            import ssl

            ctx = ssl.create_default_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
            if self.kafka_ssl_certfile:
                ctx.load_cert_chain(
                    str(self.kafka_ssl_certfile),
                    str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None,
                )
            opts["ssl_context"] = ctx
        if self.kafka_security_protocol.startswith("SASL"):
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return opts


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
