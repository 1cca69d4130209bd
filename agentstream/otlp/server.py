"""The OTLP/HTTP endpoint: ``POST /v1/traces``, ``/healthz``, ``/metrics``.

Answers as the OTLP specification says: 200 with an ExportTraceServiceResponse in the
request's content type (``partial_success`` for refused spans), 400 with a google.rpc.Status
for a body it cannot decode, 401 without a valid token, 413 past the body limit, 415 for
other content types or encodings, 503 with Retry-After when Kafka does not acknowledge in
time (the exporter retries; ids are deterministic, so a retry duplicates nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time

from aiohttp import web
from aiokafka.errors import KafkaError
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, otlp_spans_topic, topic_for
from agentstream.otlp.decode import (
    BodyError,
    BodyTooLarge,
    Span,
    gunzip,
)
from agentstream.otlp.pipeline import map_spans
from agentstream.otlp.publisher import KafkaNotAcknowledged, Publisher
from agentstream.otlp.resolver import Resolver
from agentstream.otlp.wire import body_spans
from agentstream.topic_admin import create_missing_topics

__all__ = ["Intake", "Metrics", "Unavailable", "serve"]

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# google.rpc.Code values used in Status bodies.
_INVALID_ARGUMENT, _UNAUTHENTICATED, _UNAVAILABLE, _RESOURCE_EXHAUSTED = 3, 16, 14, 8
# Connecting (topics, metadata) is not bounded by the per-request ack timeout.
_CONNECT_TIMEOUT_S = 30.0
# At most this many refusal reasons are spelled out in one partial_success.error_message.
_REASONS_SHOWN = 5


class Unavailable(Exception):
    """Not connected to Kafka, or Kafka did not acknowledge in time: the client retries."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("otlp_spans_received", "spans received", registry=r)
        self.mapped = Counter("otlp_spans_mapped", "spans mapped to records", ["kind"], registry=r)
        self.rejected = Counter(
            "otlp_spans_rejected", "spans refused (partial_success)", ["reason"], registry=r
        )
        self.dropped = Counter(
            "otlp_spans_dropped", "spans counted and dropped", ["reason"], registry=r
        )
        self.pending = Counter(
            "otlp_spans_pending",
            "spans handed to the resolver (ancestors not seen yet)",
            registry=r,
        )
        self.requests = Counter(
            "otlp_requests", "export requests by HTTP status", ["code"], registry=r
        )
        self.request_seconds = Histogram(
            "otlp_request_seconds", "export request handling, until Kafka acknowledged", registry=r
        )


class Intake:
    def __init__(self, settings: Settings, publisher: Publisher, metrics: Metrics) -> None:
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self._tokens = [t.encode() for t in settings.otlp_token_list()]
        self.ready = False

    # ------------------------------------------------------------------ helpers

    def authorized(self, header: str) -> bool:
        """``header``: the Authorization header (HTTP) or metadata value (gRPC)."""
        if not self._tokens:
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode()
        # Compared in constant time, against every token (no early exit on a match).
        return sum(hmac.compare_digest(given, t) for t in self._tokens) > 0

    def _answer(
        self, status: int, message: Message, json_body: bool, **headers: str
    ) -> web.Response:
        self.metrics.requests.labels(str(status)).inc()
        if json_body:
            body = json_format.MessageToJson(message, indent=None).encode()
            ctype = JSON
        else:
            body = message.SerializeToString()
            ctype = PROTOBUF
        return web.Response(status=status, body=body, content_type=ctype, headers=headers)

    def _status(
        self, status: int, code: int, text: str, json_body: bool, **headers: str
    ) -> web.Response:
        return self._answer(status, Status(code=code, message=text), json_body, **headers)

    def _unavailable(self, why: str, json_body: bool) -> web.Response:
        retry = str(self.settings.otlp_retry_after_s)
        return self._status(503, _UNAVAILABLE, f"{why}; retry", json_body, **{"Retry-After": retry})

    # ------------------------------------------------------------------ handlers

    async def traces(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        ctype = request.content_type
        json_body = ctype == JSON
        if not self.authorized(request.headers.get("Authorization", "")):
            # Nothing about the token is logged or echoed: it is a secret.
            return self._status(
                401,
                _UNAUTHENTICATED,
                "missing or invalid bearer token",
                json_body,
                **{"WWW-Authenticate": "Bearer"},
            )
        if ctype not in (PROTOBUF, JSON):
            self.metrics.requests.labels("415").inc()
            return web.Response(
                status=415,
                text=f"unsupported content type {ctype!r}: send {PROTOBUF} or {JSON}",
            )
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            self.metrics.requests.labels("415").inc()
            return web.Response(status=415, text=f"unsupported Content-Encoding {encoding!r}")
        limit = self.settings.otlp_max_body_bytes
        try:
            if (request.content_length or 0) > limit:
                raise BodyTooLarge(limit)
            body = await request.read()
            if len(body) > limit:
                raise BodyTooLarge(limit)
            if encoding == "gzip":
                body = gunzip(body, limit)
            spans = body_spans(body, json_body=json_body)
            body_bytes = len(body)
        except (web.HTTPRequestEntityTooLarge, BodyTooLarge):
            return self._status(
                413, _RESOURCE_EXHAUSTED, f"request body larger than {limit} bytes", json_body
            )
        except BodyError as exc:
            return self._status(400, _INVALID_ARGUMENT, str(exc), json_body)
        try:
            response = await self.export(spans, body_bytes)
        except Unavailable as exc:
            return self._unavailable(str(exc), json_body)
        self.metrics.request_seconds.observe(time.perf_counter() - started)
        return self._answer(200, response, json_body)

    async def export(self, spans: list[Span], body_bytes: int) -> ExportTraceServiceResponse:
        """Map and publish decoded spans; the response once Kafka acknowledged every record.

        Raises Unavailable (the client retries) when not connected or Kafka did not ack in time.
        """
        m = self.metrics
        m.received.inc(len(spans))
        if not self.ready:
            raise Unavailable("not connected to Kafka yet")
        mapped = map_spans(
            spans, keep_other=self.settings.otlp_keep_other_spans, body_bytes=body_bytes
        )
        try:
            await self.publisher.publish(mapped.all_records(), mapped.span_items)
        except KafkaNotAcknowledged as exc:
            log.warning("answering 503: %s", exc)
            m.dropped.labels("kafka_unavailable_retry").inc(0)
            raise Unavailable(f"Kafka did not take the records in time ({exc})") from exc
        for kind, n in mapped.mapped.items():
            m.mapped.labels(kind).inc(n)
        for reason, n in mapped.dropped.items():
            m.dropped.labels(reason).inc(n)
        for label, _ in mapped.rejected:
            m.rejected.labels(label).inc()
        m.pending.inc(mapped.pending)
        response = ExportTraceServiceResponse()
        if mapped.rejected:
            reasons = [reason for _, reason in mapped.rejected]
            more = len(reasons) - _REASONS_SHOWN
            response.partial_success.rejected_spans = len(reasons)
            response.partial_success.error_message = "; ".join(reasons[:_REASONS_SHOWN]) + (
                f"; and {more} more" if more > 0 else ""
            )
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503, text="starting or stopping\n")
        return web.Response(text="ok\n")

    async def metrics_page(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def app(self) -> web.Application:
        # aiohttp refuses a body past client_max_size while reading it (a chunked one has no
        # Content-Length to check first); the handler answers that with 413.
        app = web.Application(client_max_size=self.settings.otlp_max_body_bytes)
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        return app


async def _connect(settings: Settings, intake: Intake, registry: CollectorRegistry) -> Resolver:
    """Create the topics, start the producer and the resolver; retried while Kafka is away.

    Until this succeeds the intake is up but not ready: /healthz and exports answer 503, and
    exporters retry, so an intake started before Kafka loses nothing.
    """
    names = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    names.append(otlp_spans_topic(settings.topic_prefix))
    delay = 0.5
    while True:
        try:
            await create_missing_topics(settings, names, timeout_s=_CONNECT_TIMEOUT_S)
            await intake.publisher.start()
            resolver = Resolver(settings, intake.publisher, registry)
            await resolver.start()
            return resolver
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning(
                "Kafka at %s not reachable (%r), retrying in %.1f s; %s",
                settings.kafka_bootstrap,
                exc,
                delay,
                settings.kafka_advice(),
            )
            with contextlib.suppress(Exception):
                await intake.publisher.stop()
            intake.publisher = Publisher(settings)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def serve(settings: Settings) -> int:
    """Serve until SIGTERM/SIGINT, then finish the requests in flight and exit 0."""
    metrics = Metrics()
    intake = Intake(settings, Publisher(settings), metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Not decompressed by aiohttp: gunzip() bounds what a gzip body inflates to.
    runner = web.AppRunner(
        intake.app(), access_log=None, shutdown_timeout=30.0, auto_decompress=False
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.otlp_host, settings.otlp_port)
    await site.start()
    log.info(
        "OTLP/HTTP intake listening on http://%s:%d/v1/traces",
        settings.otlp_host,
        settings.otlp_port,
    )
    grpc_server = None
    if settings.otlp_grpc_port:
        from agentstream.otlp.grpc_server import start_grpc  # grpcio: only when asked for

        try:
            grpc_server = await start_grpc(intake)
        except OSError:
            await runner.cleanup()
            raise
        log.info("OTLP/gRPC on %s:%d", settings.otlp_host, settings.otlp_grpc_port)
    connecting = asyncio.create_task(_connect(settings, intake, metrics.registry))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    resolver: Resolver | None = None
    if connecting.done():
        resolver = connecting.result()
        intake.ready = True
        log.info("connected to Kafka at %s: ready", settings.kafka_bootstrap)
        await stopping
    else:
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
    log.info("stopping: finishing the requests in flight")
    intake.ready = False
    # Both stop accepting and wait for what is in flight, side by side (30 s at most each).
    closing = [runner.cleanup()]
    if grpc_server is not None:
        closing.append(grpc_server.stop(grace=30.0))
    await asyncio.gather(*closing)
    log.info("requests finished; stopping the resolver")
    if resolver is not None:
        await resolver.stop()
    log.info("stopping the Kafka producer")
    with contextlib.suppress(Exception):
        await intake.publisher.stop()
    log.info("stopped")
    return 0
