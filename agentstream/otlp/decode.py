"""OTLP/HTTP request bodies (protobuf or OTLP JSON) into flat :class:`Span` values.

OTLP JSON is protobuf's JSON mapping with three differences the OTLP specification makes:
trace and span ids are hex (not base64), enums are integers, and unknown fields are ignored.
The JSON is rewritten into the proto3 mapping (ids to base64) and parsed by protobuf itself,
so both content types go through one decoder and one set of rules.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

__all__ = ["BodyError", "Span", "SpanEvent", "decode_request", "gunzip", "spans_of"]

STATUS_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
# Span.flags: bit 8 says whether bit 9 (the parent is in another process) is known.
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
# A span id is 8 bytes, a trace id 16 (OTLP); any other length is refused span by span.
TRACE_ID_BYTES, SPAN_ID_BYTES = 16, 8
# JSON keys holding ids, in both spellings protobuf's JSON parser accepts.
_ID_KEYS = frozenset({"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"})
# An id that is not hex cannot be a valid id: it becomes one byte, refused by the length check
# (span by span, with a reason) rather than failing the whole request.
_NOT_HEX = base64.b64encode(b"\xff").decode()


class BodyError(ValueError):
    """A body that cannot be decoded at all: answered 400 with a google.rpc.Status."""


# Plain classes with their own __init__, not dataclasses: compiled by mypyc they are native
# classes, where a dataclass's generated __init__ would run as interpreted code (one per span
# and event).
class SpanEvent:
    __slots__ = ("attributes", "name", "time_ns")

    def __init__(self, name: str, time_ns: int, attributes: dict[str, Any]) -> None:
        self.name = name
        self.time_ns = time_ns
        self.attributes = attributes

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanEvent):
            return NotImplemented
        return (self.name, self.time_ns, self.attributes) == (
            other.name,
            other.time_ns,
            other.attributes,
        )

    def __repr__(self) -> str:
        return f"SpanEvent({self.name!r}, {self.time_ns!r}, {self.attributes!r})"


_SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "attributes",
    "resource",
    "events",
    "parent_remote",
)


class Span:
    """One span with its resource's attributes beside its own (the span's win in ``get``)."""

    __slots__ = (*_SPAN_FIELDS, "parent_hex", "span_hex", "trace_hex")

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        name: str,
        start_ns: int,
        end_ns: int,
        status_code: int,
        status_message: str,
        attributes: dict[str, Any],
        resource: dict[str, Any],
        events: list[SpanEvent] | None = None,
        parent_remote: bool = False,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.status_code = status_code
        self.status_message = status_message
        self.attributes = attributes
        self.resource = resource
        self.events: list[SpanEvent] = [] if events is None else events
        # The parent is another process's span (a remote caller's): this span is its
        # process's root, so its ancestors' spans need not be waited for (they go to another
        # backend).
        self.parent_remote = parent_remote
        # The ids in hex, as every record and the spans topic spell them: formatted once.
        self.trace_hex = trace_id.hex()
        self.span_hex = span_id.hex()
        self.parent_hex: str | None = parent_span_id.hex() if parent_span_id else None

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _SPAN_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={v!r}" for n, v in zip(_SPAN_FIELDS, self._fields(), strict=True))
        return f"Span({fields})"

    def id_problem(self) -> str | None:
        if len(self.trace_id) != TRACE_ID_BYTES or not any(self.trace_id):
            return f"trace id must be {TRACE_ID_BYTES} bytes, not all zero"
        if len(self.span_id) != SPAN_ID_BYTES or not any(self.span_id):
            return f"span id must be {SPAN_ID_BYTES} bytes, not all zero"
        if self.parent_span_id and len(self.parent_span_id) != SPAN_ID_BYTES:
            return f"parent span id must be empty or {SPAN_ID_BYTES} bytes"
        return None


def gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing (BodyTooLarge) one that inflates past ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(f"Content-Encoding gzip, but the body is not gzip: {exc}") from None
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not inflater.eof:
        raise BodyError("Content-Encoding gzip, but the gzip stream is truncated")
    return out


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def decode_request(body: bytes, *, json_body: bool) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if not json_body:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BodyError(f"not an OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
        return request
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BodyError(f"not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise BodyError("OTLP JSON must be an object with resourceSpans")
    try:
        json_format.ParseDict(_hex_ids_to_base64(parsed), request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, TypeError, ValueError) as exc:
        raise BodyError(f"not an OTLP ExportTraceServiceRequest (JSON): {exc}") from None
    return request


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str):
                try:
                    out[key] = base64.b64encode(bytes.fromhex(item)).decode()
                except ValueError:
                    out[key] = _NOT_HEX
            else:
                out[key] = _hex_ids_to_base64(item)
        return out
    if isinstance(value, list):
        return [_hex_ids_to_base64(v) for v in value]
    return value


def _value(v: AnyValue, depth: int = 0) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(v, kind)
    if kind == "bytes_value":
        return binascii.hexlify(v.bytes_value).decode()
    if depth > 32:  # deeper than any attribute means anything; keep the span, not the depth
        return None
    if kind == "array_value":
        return [_value(x, depth + 1) for x in v.array_value.values]
    return {kv.key: _value(kv.value, depth + 1) for kv in v.kvlist_value.values}


_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def _attributes(kvs: Any) -> dict[str, Any]:
    # Scalars (nearly every attribute) are read inline: a call per attribute cost more than
    # reading it (measured under bench/otlp.py; BENCHMARKS.md).
    return {
        kv.key: getattr(v, kind) if (kind := (v := kv.value).WhichOneof("value")) in _SCALARS
        else _value(v)
        for kv in kvs
    }  # fmt: skip


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    spans: list[Span] = []
    remote = _HAS_IS_REMOTE | _IS_REMOTE
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                status = s.status
                events = s.events
                spans.append(
                    Span(
                        s.trace_id,
                        s.span_id,
                        s.parent_span_id,
                        s.name,
                        s.start_time_unix_nano,
                        s.end_time_unix_nano,
                        status.code,
                        status.message,
                        _attributes(s.attributes),
                        resource,
                        [
                            SpanEvent(e.name, e.time_unix_nano, _attributes(e.attributes))
                            for e in events
                        ]
                        if events
                        else [],
                        s.flags & remote == remote,
                    )
                )
    return spans
