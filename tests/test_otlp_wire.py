"""wire.py reads protobuf bodies as protobuf does: the same spans, or it leaves the body to it.

Every body is decoded both ways: ``read_spans`` must give ``spans_of(decode_request(...))``'s
spans exactly, or None (then ``body_spans`` decodes with protobuf); a body protobuf refuses
must never be read. Corrupted bodies (bytes flipped, cut, inserted) check the last part.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentstream.otlp.decode import BodyError, Span, decode_request, spans_of
from agentstream.otlp.wire import body_spans, read_spans
from tests.support.otlp_traces import CONVENTIONS


def _by_protobuf(body: bytes) -> list[Span] | None:
    try:
        return spans_of(decode_request(body, json_body=False))
    except BodyError:
        return None


def _same(body: bytes) -> bool:
    """Asserts the two decoders agree on ``body``; True when wire.py read it itself."""
    expected = _by_protobuf(body)
    got = read_spans(body)
    if got is None:
        return False
    assert expected is not None, "wire.py read a body protobuf refuses"
    # repr: NaN attribute values compare unequal to themselves
    assert repr(got) == repr(expected)
    return True


def _set(value: AnyValue, v: Any) -> None:
    if isinstance(v, bool):
        value.bool_value = v
    elif isinstance(v, int):
        value.int_value = v
    elif isinstance(v, float):
        value.double_value = v
    elif isinstance(v, str):
        value.string_value = v
    elif isinstance(v, bytes):
        value.bytes_value = v
    elif isinstance(v, list):
        value.array_value.SetInParent()
        for item in v:
            _set(value.array_value.values.add(), item)
    elif isinstance(v, dict):
        value.kvlist_value.SetInParent()
        for k, item in v.items():
            kv = value.kvlist_value.values.add()
            kv.key = k
            _set(kv.value, item)
    # None: the value left unset


def _attributes(into: Any, attributes: dict[str, Any]) -> None:
    for key, v in attributes.items():
        kv: KeyValue = into.add()
        kv.key = key
        _set(kv.value, v)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 3 else 7)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.choice([0, 1, -1, 2**31, -(2**63), 2**63 - 1, rng.randrange(-(10**12), 10**12)])
    if choice == 3:
        return rng.choice([0.0, -2.5, 1e300, float("nan"), float("inf"), rng.random()])
    if choice == 4:
        return rng.choice(["", "é\u2028", "x\x00y", "😀", "a" * rng.randrange(300)])
    if choice == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
    if choice == 6:
        return f"v{rng.randrange(100)}"
    if choice in (7, 8):
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}


def _random_request(rng: random.Random) -> bytes:
    request = ExportTraceServiceRequest()
    for _ in range(rng.randrange(1, 3)):
        rs = request.resource_spans.add()
        _attributes(rs.resource.attributes, {"service.name": "svc", "n": rng.randrange(9)})
        if rng.random() < 0.3:
            rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        for _ in range(rng.randrange(1, 3)):
            ss = rs.scope_spans.add()
            ss.scope.name = "scope"
            if rng.random() < 0.5:
                ss.scope.version = "1.0"
                _attributes(ss.scope.attributes, {"a": 1})
            for _ in range(rng.randrange(4)):
                s = ss.spans.add()
                s.trace_id = rng.randbytes(rng.choice([16, 16, 16, 0, 3]))
                s.span_id = rng.randbytes(rng.choice([8, 8, 8, 0]))
                if rng.random() < 0.7:
                    s.parent_span_id = rng.randbytes(8)
                s.name = rng.choice(["chat m", "invoke_agent a", "", "é"])
                s.kind = rng.randrange(6)
                s.start_time_unix_nano = rng.randrange(2**64)
                s.end_time_unix_nano = rng.randrange(2**64)
                s.flags = rng.choice([0, 0x100, 0x300, 0x200, 0x301])
                if rng.random() < 0.3:
                    s.trace_state = "k=v"
                if rng.random() < 0.5:
                    s.status.code = rng.randrange(3)
                    s.status.message = rng.choice(["", "boom"])
                attrs = {f"k{i}": _random_value(rng) for i in range(rng.randrange(8))}
                attrs["gen_ai.operation.name"] = "chat"
                _attributes(s.attributes, attrs)
                s.dropped_attributes_count = rng.randrange(3)
                for _ in range(rng.randrange(3)):
                    e = s.events.add()
                    e.name = "gen_ai.user.message"
                    e.time_unix_nano = rng.randrange(2**64)
                    _attributes(e.attributes, {"content": _random_value(rng)})
    return bytes(request.SerializeToString())


@pytest.mark.parametrize("make", CONVENTIONS)
def test_the_conventions_traces_are_read_as_protobuf_reads_them(make: Any) -> None:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    make(tp.get_tracer("test"), "t1")
    body = bytes(encode_spans(list(memory.get_finished_spans())).SerializeToString())
    assert _same(body)


def test_random_requests_are_read_as_protobuf_reads_them() -> None:
    rng = random.Random(18)
    read = sum(_same(_random_request(rng)) for _ in range(300))
    assert read == 300  # every field they set is one wire.py reads


def test_corrupted_bodies_are_never_read_differently() -> None:
    """Bytes flipped, cut off or inserted: read the same, or left to protobuf (which refuses
    most of them); never a body protobuf refuses, never an exception."""
    rng = random.Random(5)
    read = refused = 0
    for _ in range(1000):
        body = bytearray(_random_request(rng))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(body))
            how = rng.randrange(3)
            if how == 0:
                body[at] = rng.randrange(256)
            elif how == 1:
                del body[at:]
                if not body:
                    body.append(0x0A)
            else:
                body.insert(at, rng.randrange(256))
        read += _same(bytes(body))
        refused += _by_protobuf(bytes(body)) is None
    assert read >= 20 and refused >= 200  # both kinds were exercised


def _tag(field: int, wire_type: int) -> bytes:
    return (
        bytes([field << 3 | wire_type])
        if field < 16
        else bytes([0x80 | (field << 3 | wire_type) & 0x7F, field >> 4])
    )


def _len(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return _tag(field, 2) + bytes([len(payload)]) + payload


def _request_of_span(span: bytes, resource_after: bool = False) -> bytes:
    resource = _len(1, _len(1, _len(1, b"service.name") + _len(2, _len(1, b"svc"))))
    scope_spans = _len(2, _len(2, span))
    inner = scope_spans + resource if resource_after else resource + scope_spans
    return _len(1, inner)


_IDS = _len(1, bytes(range(1, 17))) + _len(2, bytes(range(1, 9)))


@pytest.mark.parametrize(
    ("span", "reads"),
    [
        (_IDS + _len(5, b"chat"), True),
        # a field number wire.py does not read (99, a varint): protobuf skips it
        (_IDS + _tag(99, 0) + b"\x01", False),
        # a link: left to protobuf
        (_IDS + _len(13, _len(1, bytes(16)) + _len(2, bytes(8))), False),
        # status twice: protobuf merges the two messages
        (_IDS + _len(15, b"\x18\x02") + _len(15, _len(2, b"x")), False),
        # an AnyValue with two values (oneof: the last wins in protobuf)
        (_IDS + _len(9, _len(1, b"k") + _len(2, _len(1, b"a") + b"\x18\x05")), False),
        # name twice: the last wins, in both
        (_IDS + _len(5, b"a") + _len(5, b"b"), True),
        # the start time as a varint (wire type 0, not fixed64): left to protobuf
        (_IDS + _tag(7, 0) + b"\x05", False),
        # invalid UTF-8 in the name: protobuf refuses the body
        (_IDS + _len(5, b"\xff"), False),
        # a negative status code (an int32 enum, 10 bytes on the wire)
        (_IDS + _len(15, b"\x18" + b"\xff" * 9 + b"\x01"), False),
        # a double and a negative int, an empty value, a missing key, bytes
        (
            _IDS
            + _len(9, _len(1, b"d") + _len(2, _tag(4, 1) + struct.pack("<d", -0.5)))
            + _len(9, _len(1, b"i") + _len(2, b"\x18" + b"\xff" * 9 + b"\x01"))
            + _len(9, _len(1, b"e") + _len(2, b""))
            + _len(9, _len(2, _len(1, b"no key")))
            + _len(9, _len(1, b"b") + _len(2, _len(7, b"\x00\xff"))),
            True,
        ),
    ],
)
def test_hand_written_bodies(span: bytes, reads: bool) -> None:
    for resource_after in (False, True):
        body = _request_of_span(span, resource_after)
        assert _same(body) is reads
        expected = _by_protobuf(body)
        if expected is None:
            with pytest.raises(BodyError):
                body_spans(body, json_body=False)
        else:
            assert repr(body_spans(body, json_body=False)) == repr(expected)


def _nested(depth: int) -> Any:
    return "leaf" if depth == 0 else [_nested(depth - 1)]


@pytest.mark.parametrize("depth", [1, 31, 32, 33, 40])
def test_deep_attribute_values(depth: int) -> None:
    """decode keeps values 32 containers deep (deeper ones read as None): wire.py reads
    what it is sure of and leaves the deepest to protobuf and decode."""
    request = ExportTraceServiceRequest()
    s = request.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id, s.span_id = bytes(range(1, 17)), bytes(range(1, 9))
    _attributes(s.attributes, {"deep": _nested(depth)})
    body = bytes(request.SerializeToString())
    assert _same(body) is (depth <= 32)
    assert repr(body_spans(body, json_body=False)) == repr(_by_protobuf(body))


def test_empty_body_has_no_spans() -> None:
    assert read_spans(b"") == [] == _by_protobuf(b"")


def test_the_reader_is_used_only_compiled() -> None:
    """Interpreted it is slower than upb: COMPILED says whether body_spans uses it."""
    from agentstream.otlp import wire

    from_extension = not str(wire.__file__).endswith(".py")
    assert wire.COMPILED is from_extension
