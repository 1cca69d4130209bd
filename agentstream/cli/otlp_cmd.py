"""``agentstream otlp``: the OpenTelemetry intake (OTLP/HTTP on 127.0.0.1:4318 by default)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from agentstream.cli.argtypes import port
from agentstream.cli.main import CommandError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "otlp",
        help="accept OpenTelemetry traces (OTLP/HTTP) and publish them as records",
        description="Serve OTLP/HTTP (POST /v1/traces, protobuf or JSON, optionally gzip) and "
        "publish the GenAI spans as agentstream records to Kafka (docs/otel.md has the "
        "mapping). Answers 200 only once Kafka acknowledged every record of the request. "
        "/healthz and /metrics on the same port. With AGENTSTREAM_OTLP_TOKENS set, every "
        "export needs `Authorization: Bearer <token>`. SIGTERM/SIGINT finish the requests "
        "in flight and exit 0. With --grpc-port, OTLP/gRPC too (the same answers as gRPC "
        "status codes).",
    )
    p.add_argument("--host", help="address to listen on (otlp_host, default 127.0.0.1)")
    p.add_argument("--port", type=port, help="port to listen on (otlp_port, default 4318)")
    p.add_argument(
        "--grpc-port",
        type=port,
        help="also serve OTLP/gRPC on this port, e.g. 4317 (otlp_grpc_port; default 0: off)",
    )
    p.add_argument(
        "--keep-other-spans",
        action="store_true",
        default=None,
        help="keep spans with no GenAI meaning as events of type otel.span "
        "(otlp_keep_other_spans; default: counted and dropped)",
    )
    p.set_defaults(func=run)


_SPANS_IN_FLIGHT = 16 * 512


def run(args: argparse.Namespace) -> int:
    from agentstream.contract.settings import get_settings
    from agentstream.otlp.server import serve
    from agentstream.streams.interpreter import tune_interpreter
    from agentstream.topic_admin import TopicRefused

    overrides = {
        "otlp_host": args.host,
        "otlp_port": args.port,
        "otlp_grpc_port": args.grpc_port,
        "otlp_keep_other_spans": args.keep_other_spans,
    }
    settings = get_settings().model_copy(
        update={k: v for k, v in overrides.items() if v is not None}
    )
    if (
        settings.otlp_host not in ("127.0.0.1", "::1", "localhost")
        and not settings.otlp_token_list()
    ):
        raise CommandError(
            f"listening on {settings.otlp_host} beyond loopback needs tokens: set "
            "AGENTSTREAM_OTLP_TOKENS (comma-separated) and send `Authorization: Bearer <token>`"
        )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Mapping allocates a dozen containers per span, nearly none in a cycle: CPython's
    # default collector thresholds would scan them over and over for nothing (BENCHMARKS.md).
    # The requests in flight hold their spans until Kafka acknowledges them: the threshold
    # is set above the spans of 16 exporters' 512-span requests (BatchSpanProcessor's batch).
    tune_interpreter(batch_records=_SPANS_IN_FLIGHT)
    try:
        return asyncio.run(serve(settings))
    except TopicRefused as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        grpc = f" (gRPC {settings.otlp_grpc_port})" if settings.otlp_grpc_port else ""
        raise CommandError(
            f"cannot serve on {settings.otlp_host}:{settings.otlp_port}{grpc} or reach Kafka: "
            f"{exc}; "
            f"{settings.kafka_advice()}"
        ) from None
