"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` beside OTLP/HTTP.

The same intake (mapping, publishing, acknowledgement before the answer) behind gRPC's status
codes, as the OTLP specification maps them: OK with an ExportTraceServiceResponse
(``partial_success`` for refused spans), INVALID_ARGUMENT for a body it cannot decode,
UNAUTHENTICATED without a valid token (``authorization: Bearer …`` metadata),
RESOURCE_EXHAUSTED past the body limit (gRPC's own receive limit), UNAVAILABLE with a
``RetryInfo`` when Kafka does not acknowledge in time (the exporter retries after it).
Compression (gzip) is gRPC's own.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo

from agentstream.otlp.decode import BodyError
from agentstream.otlp.server import Intake, Unavailable
from agentstream.otlp.wire import body_spans

__all__ = ["start_grpc"]

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _handler(intake: Intake) -> grpc.GenericRpcHandler:
    metrics = intake.metrics

    async def refuse(
        context: grpc.aio.ServicerContext[bytes, bytes], code: grpc.StatusCode, text: str
    ) -> NoReturn:
        metrics.requests.labels(f"grpc_{code.name}").inc()
        await context.abort(code, text)
        raise AssertionError("abort() raises")

    async def export(body: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        if not intake.authorized(metadata.get("authorization", "")):
            # Nothing about the token is logged or echoed: it is a secret.
            await refuse(context, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")
        try:
            spans = body_spans(body, json_body=False)
        except BodyError as exc:
            await refuse(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            response = await intake.export(spans, len(body))
        except Unavailable as exc:
            delay = RetryInfo(retry_delay=Duration(seconds=intake.settings.otlp_retry_after_s))
            context.set_trailing_metadata(
                (("google.rpc.retryinfo-bin", delay.SerializeToString()),)
            )
            await refuse(context, grpc.StatusCode.UNAVAILABLE, f"{exc}; retry")
        metrics.requests.labels("grpc_OK").inc()
        answer: bytes = response.SerializeToString()
        return answer

    # No (de)serializers: the body is decoded by the same code as OTLP/HTTP's protobuf.
    return grpc.method_handlers_generic_handler(
        SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(export)}
    )


async def start_grpc(intake: Intake) -> grpc.aio.Server:
    """Listen on ``otlp_host:otlp_grpc_port`` (OSError when the port is taken)."""
    settings = intake.settings
    limit = settings.otlp_max_body_bytes
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.so_reuseport", 0)]
    )
    server.add_generic_rpc_handlers((_handler(intake),))
    address = f"{settings.otlp_host}:{settings.otlp_grpc_port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc's "Failed to bind"
        raise OSError(f"cannot listen for OTLP/gRPC on {address}: {exc}") from None
    await server.start()
    return server
