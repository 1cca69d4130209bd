"""Protobuf request bodies read straight from the wire format into :class:`Span` values.

protobuf's upb parser builds a Python object for every message, and reading a span's
attributes back out of them (an object and a lookup per key, value and oneof) cost more
than all the rest of decoding. This module (compiled with mypyc) reads the bytes of an
``ExportTraceServiceRequest`` once and builds the spans' dicts directly.

Compiled, it is 2.5x faster than upb; interpreted, slower, so it is used only compiled
(``COMPILED``). It reads only what instrumented agents send (the fields below, each once
where protobuf allows one); anything else — a field it does not read, a message field
repeated (protobuf would merge them), a second value in one AnyValue, invalid UTF-8, a
truncated length, attribute values nested deeper than ``decode`` keeps, links — makes
:func:`body_spans` decode the body with protobuf instead (``decode.decode_request`` +
``decode.spans_of``). So what it answers is, by construction, what protobuf's decoder
answers: the same spans for a body it reads, and for any other body protobuf's own result
or ``BodyError``.
``tests/test_otlp_wire.py`` compares the two on valid and corrupted bodies.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from agentstream.otlp.decode import Span, SpanEvent, decode_request, spans_of

__all__ = ["body_spans", "read_spans"]

# decode._value keeps attribute values nested this deep (a container deeper reads as None):
# such a body is left to protobuf and decode._value.
_MAX_DEPTH: Final = 32
_REMOTE: Final = 0x300  # decode's _HAS_IS_REMOTE | _IS_REMOTE
_U64: Final = 0xFFFFFFFFFFFFFFFF
_I64_MIN_UNSIGNED: Final = 0x8000000000000000
_INT32_MAX: Final = 0x7FFFFFFF
# The tags below are (field number << 3 | wire type): 0 varint, 1 fixed64, 2 length-
# delimited, 5 fixed32; a field's number on the wire with another type is protobuf's to read.
_unpack_double = struct.Struct("<d").unpack_from


def _is_compiled() -> bool:
    # A function compiled by mypyc is a builtin, without the __code__ of a Python function.
    return not hasattr(_is_compiled, "__code__")


# Interpreted, this reader is slower than upb (15.5 against 9.5 us a span in BENCHMARKS.md):
# without the compiled build (``make compile``, or a wheel built with AGENTSTREAM_MYPYC=1)
# body_spans decodes with protobuf.
COMPILED: Final = _is_compiled()


# Attribute names repeat in every span: each decoded once, and the same str object (its
# hash computed once) then serves every dict that holds it and every lookup by it.
# Bounded: cleared when full.
_KEYS: Final[dict[bytes, str]] = {}
_MAX_KEYS: Final = 4096


class _Unread(Exception):
    """Something this reader does not read: protobuf decodes the body instead."""


def body_spans(body: bytes, *, json_body: bool) -> list[Span]:
    """A request body's spans (``decode.spans_of(decode.decode_request(...))``'s result);
    raises ``decode.BodyError`` for a body that is not an OTLP request."""
    if COMPILED and not json_body:
        spans = read_spans(body)
        if spans is not None:
            return spans
    return spans_of(decode_request(body, json_body=json_body))


def read_spans(body: bytes) -> list[Span] | None:
    """The spans of a protobuf ExportTraceServiceRequest, or None where protobuf decides."""
    spans: list[Span] = []
    try:
        pos = 0
        end = len(body)
        while pos < end:
            tag, pos = _varint(body, pos, end)
            if tag == 0x0A:  # 1 resource_spans
                start, pos = _length(body, pos, end)
                _resource_spans(body, start, pos, spans)
            else:
                raise _Unread
    except (_Unread, UnicodeDecodeError):
        return None
    return spans


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it); a varint of more than 10 bytes is protobuf's to refuse."""
    if pos < end:
        byte = data[pos]
        if byte < 0x80:
            return byte, pos + 1
    result = 0
    shift = 0
    while shift < 70:
        if pos >= end:
            raise _Unread
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            # Only a tenth byte can carry bits past 64 (protobuf drops them); a mask on
            # every varint would be arithmetic on a big int.
            return (result & _U64 if shift == 63 else result), pos
        shift += 7
    raise _Unread


def _length(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of the length-delimited field whose length is at ``pos``."""
    n, pos = _varint(data, pos, end)
    if n > end - pos:
        raise _Unread
    return pos, pos + n


def _fixed64(data: bytes, pos: int, end: int) -> int:
    if pos + 8 > end:
        raise _Unread
    return int.from_bytes(data[pos : pos + 8], "little")


def _text(data: bytes, start: int, stop: int) -> str:
    # Invalid UTF-8 raises UnicodeDecodeError: protobuf refuses the body (or decides).
    return data[start:stop].decode("utf-8")


def _skip_varint(data: bytes, pos: int, end: int) -> int:
    _, pos = _varint(data, pos, end)
    return pos


def _resource_spans(data: bytes, pos: int, end: int, spans: list[Span]) -> None:
    # The resource may follow its spans on the wire: they share this dict, filled when read.
    resource: dict[str, Any] = {}
    has_resource = False
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x12:  # 2 scope_spans
            start, pos = _length(data, pos, end)
            _scope_spans(data, start, pos, resource, spans)
        elif tag == 0x0A:  # 1 resource
            if has_resource:
                raise _Unread
            has_resource = True
            start, pos = _length(data, pos, end)
            _resource(data, start, pos, resource)
        elif tag == 0x1A:  # 3 schema_url
            start, pos = _length(data, pos, end)
            _text(data, start, pos)
        else:
            raise _Unread


def _resource(data: bytes, pos: int, end: int, attributes: dict[str, Any]) -> None:
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x0A:  # 1 attributes
            start, pos = _length(data, pos, end)
            _key_value(data, start, pos, attributes)
        elif tag == 0x10:  # 2 dropped_attributes_count
            pos = _skip_varint(data, pos, end)
        else:
            raise _Unread


def _scope_spans(
    data: bytes, pos: int, end: int, resource: dict[str, Any], spans: list[Span]
) -> None:
    has_scope = False
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x12:  # 2 spans
            start, pos = _length(data, pos, end)
            spans.append(_span(data, start, pos, resource))
        elif tag == 0x0A:  # 1 scope: read for protobuf's checks, not kept
            if has_scope:
                raise _Unread
            has_scope = True
            start, pos = _length(data, pos, end)
            _scope(data, start, pos)
        elif tag == 0x1A:  # 3 schema_url
            start, pos = _length(data, pos, end)
            _text(data, start, pos)
        else:
            raise _Unread


def _scope(data: bytes, pos: int, end: int) -> None:
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x0A or tag == 0x12:  # 1 name, 2 version
            start, pos = _length(data, pos, end)
            _text(data, start, pos)
        elif tag == 0x1A:  # 3 attributes
            start, pos = _length(data, pos, end)
            _key_value(data, start, pos, {})
        elif tag == 0x20:  # 4 dropped_attributes_count
            pos = _skip_varint(data, pos, end)
        else:
            raise _Unread


def _span(data: bytes, pos: int, end: int, resource: dict[str, Any]) -> Span:
    trace_id = span_id = parent_span_id = b""
    name = status_message = ""
    start_ns = end_ns = status_code = flags = 0
    attributes: dict[str, Any] = {}
    events: list[SpanEvent] = []
    has_status = False
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x4A:  # 9 attributes
            start, pos = _length(data, pos, end)
            _key_value(data, start, pos, attributes)
        elif tag == 0x0A:  # 1 trace_id
            start, pos = _length(data, pos, end)
            trace_id = data[start:pos]
        elif tag == 0x12:  # 2 span_id
            start, pos = _length(data, pos, end)
            span_id = data[start:pos]
        elif tag == 0x22:  # 4 parent_span_id
            start, pos = _length(data, pos, end)
            parent_span_id = data[start:pos]
        elif tag == 0x2A:  # 5 name
            start, pos = _length(data, pos, end)
            name = _text(data, start, pos)
        elif tag == 0x39:  # 7 start_time_unix_nano
            start_ns = _fixed64(data, pos, end)
            pos += 8
        elif tag == 0x41:  # 8 end_time_unix_nano
            end_ns = _fixed64(data, pos, end)
            pos += 8
        elif tag == 0x5A:  # 11 events
            start, pos = _length(data, pos, end)
            events.append(_event(data, start, pos))
        elif tag == 0x7A:  # 15 status
            if has_status:
                raise _Unread
            has_status = True
            start, pos = _length(data, pos, end)
            status_code, status_message = _status(data, start, pos)
        elif tag == 0x85:  # 16 flags (fixed32)
            if pos + 4 > end:
                raise _Unread
            flags = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif tag == 0x1A:  # 3 trace_state
            start, pos = _length(data, pos, end)
            _text(data, start, pos)
        elif tag == 0x30 or tag == 0x50 or tag == 0x60 or tag == 0x70:
            # 6 kind, 10/12/14 dropped attributes/events/links counts: not kept
            pos = _skip_varint(data, pos, end)
        else:
            raise _Unread  # links (13) and anything else
    return Span(
        trace_id,
        span_id,
        parent_span_id,
        name,
        start_ns,
        end_ns,
        status_code,
        status_message,
        attributes,
        resource,
        events,
        flags & _REMOTE == _REMOTE,
    )


def _status(data: bytes, pos: int, end: int) -> tuple[int, str]:
    code = 0
    message = ""
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x12:  # 2 message
            start, pos = _length(data, pos, end)
            message = _text(data, start, pos)
        elif tag == 0x18:  # 3 code (an enum: an int32 on the wire)
            code, pos = _varint(data, pos, end)
            if code > _INT32_MAX:
                raise _Unread  # negative or truncated to 32 bits: protobuf's rules
        else:
            raise _Unread
    return code, message


def _event(data: bytes, pos: int, end: int) -> SpanEvent:
    time_ns = 0
    name = ""
    attributes: dict[str, Any] = {}
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x1A:  # 3 attributes
            start, pos = _length(data, pos, end)
            _key_value(data, start, pos, attributes)
        elif tag == 0x09:  # 1 time_unix_nano
            time_ns = _fixed64(data, pos, end)
            pos += 8
        elif tag == 0x12:  # 2 name
            start, pos = _length(data, pos, end)
            name = _text(data, start, pos)
        elif tag == 0x20:  # 4 dropped_attributes_count
            pos = _skip_varint(data, pos, end)
        else:
            raise _Unread
    return SpanEvent(name, time_ns, attributes)


def _key_value(data: bytes, pos: int, end: int, into: dict[str, Any], depth: int = 0) -> None:
    """One KeyValue into ``into`` (a later one of the same key wins, as in decode)."""
    key = ""
    value: Any = None
    has_value = False
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag == 0x0A:  # 1 key
            start, pos = _length(data, pos, end)
            raw = data[start:pos]
            cached = _KEYS.get(raw)
            if cached is None:
                cached = raw.decode("utf-8")
                if len(_KEYS) >= _MAX_KEYS:
                    _KEYS.clear()
                _KEYS[raw] = cached
            key = cached
        elif tag == 0x12:  # 2 value
            if has_value:
                raise _Unread
            has_value = True
            start, pos = _length(data, pos, end)
            value = _any_value(data, start, pos, depth)
        else:
            raise _Unread
    into[key] = value


def _any_value(data: bytes, pos: int, end: int, depth: int) -> Any:
    """decode._value's result for an AnyValue ``depth`` containers deep."""
    if pos == end:
        return None
    tag, pos = _varint(data, pos, end)
    value: Any
    if tag == 0x0A:  # 1 string_value
        start, pos = _length(data, pos, end)
        value = _text(data, start, pos)
    elif tag == 0x18:  # 3 int_value
        value, pos = _varint(data, pos, end)
        if value >= _I64_MIN_UNSIGNED:
            value -= 1 << 64
    elif tag == 0x10:  # 2 bool_value
        flag, pos = _varint(data, pos, end)
        value = flag != 0
    elif tag == 0x21:  # 4 double_value
        if pos + 8 > end:
            raise _Unread
        value = _unpack_double(data, pos)[0]
        pos += 8
    elif tag == 0x2A or tag == 0x32:  # 5 array_value, 6 kvlist_value
        if depth >= _MAX_DEPTH:
            raise _Unread
        start, pos = _length(data, pos, end)
        if tag == 0x2A:
            value = _array(data, start, pos, depth + 1)
        else:
            kvlist: dict[str, Any] = {}
            _kvlist(data, start, pos, kvlist, depth + 1)
            value = kvlist
    elif tag == 0x3A:  # 7 bytes_value
        start, pos = _length(data, pos, end)
        value = data[start:pos].hex()
    else:
        raise _Unread
    if pos != end:
        raise _Unread  # a second value (protobuf's oneof rules) or an unknown field
    return value


def _array(data: bytes, pos: int, end: int, depth: int) -> list[Any]:
    values: list[Any] = []
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag != 0x0A:  # 1 values
            raise _Unread
        start, pos = _length(data, pos, end)
        values.append(_any_value(data, start, pos, depth))
    return values


def _kvlist(data: bytes, pos: int, end: int, into: dict[str, Any], depth: int) -> None:
    while pos < end:
        tag, pos = _varint(data, pos, end)
        if tag != 0x0A:  # 1 values
            raise _Unread
        start, pos = _length(data, pos, end)
        _key_value(data, start, pos, into, depth)
