"""The intake's mapping, span by span, without services: traces made by the real
OpenTelemetry SDK, encoded by its OTLP encoder, decoded and mapped as the intake does."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentstream.contract.codec import decode
from agentstream.contract.entities import Agent, AgentExecution, Event, LLMInteraction, Record
from agentstream.otlp.decode import BodyError, Span, decode_request, spans_of
from agentstream.otlp.mapping import OTEL_NAMESPACE, _time, read, records_of, resolve
from agentstream.otlp.pipeline import Mapped, map_spans, span_from_json
from agentstream.otlp.resolver import Resolver, _Partition
from agentstream.otlp.rows import Row
from tests.support import otlp_traces
from tests.support.otlp_traces import CONVENTIONS, Expected


def _spans(make: Callable[..., Expected]) -> tuple[list[ReadableSpan], Expected]:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    expected = make(tp.get_tracer("test"), "t1")
    return list(memory.get_finished_spans()), expected


def _request(spans: list[ReadableSpan]) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def _models(rows: list[Row]) -> list[Record]:
    """Every record as the sink validates it: the mapper builds records without their
    models (rows.py), so each must validate, and validation must change nothing."""
    out = []
    for r in rows:
        model = r.model()
        assert model.model_dump(mode="json", exclude_unset=True) == json.loads(r.value), r
        out.append(model)
    return out


def _map_each_alone(spans: list[ReadableSpan]) -> list[Record]:
    """Each span in a request of its own, in the order they ended (children first), then the
    waiting ones resolved from every span's facts, as the resolver does."""
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    waiting: list[dict[str, Any]] = []
    for span in spans:
        mapped = map_spans(
            spans_of(decode_request(_request([span]), json_body=False)), keep_other=False
        )
        assert not mapped.rejected
        rows.extend(mapped.all_records())
        for _, item in json.loads(json.dumps(mapped.span_items)):  # as the topic carries them
            facts.update(item.get("f", {}))
            if "w" in item:
                waiting.append(item)
    out = Mapped()
    for item in waiting:
        waiting_span = span_from_json(item["body"])
        ctx = resolve(waiting_span.trace_hex, waiting_span.span_hex, facts.get)
        assert ctx is not None, f"span {waiting_span.name} unresolved with every span seen"
        out.add(waiting_span, item["k"], ctx, records_of(waiting_span, item["k"], ctx))
    return _models(rows + out.all_records())


@pytest.mark.parametrize("make", CONVENTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("batching", ["one_request", "span_per_request"])
def test_convention_maps_as_the_table_says(make: Callable[..., Expected], batching: str) -> None:
    spans, e = _spans(make)
    if batching == "one_request":
        mapped = map_spans(
            spans_of(decode_request(_request(spans), json_body=False)), keep_other=False
        )
        assert not mapped.rejected and mapped.pending == 0
        records = _models(mapped.all_records())
    else:
        records = _map_each_alone(spans)
    session_id = otlp_traces.session_uuid(e)
    agents = {r.id: r for r in records if isinstance(r, Agent)}
    assert {a.name for a in agents.values()} == {e.agent_name}
    (agent_id,) = agents
    assert agent_id == otlp_traces.agent_uuid(e)
    assert all(a.session_id == session_id for a in agents.values())
    executions = [r for r in records if isinstance(r, AgentExecution)]
    assert executions and all(
        x.agent_id == agent_id and x.status == "completed" for x in executions
    )
    llms = sorted(
        {r.id: r for r in records if isinstance(r, LLMInteraction)}.values(),
        key=lambda r: r.created_at,  # type: ignore[arg-type,return-value]
    )
    assert len(llms) == len(e.llm)
    for row, want in zip(llms, e.llm, strict=True):
        assert row.agent_id == agent_id, "an LLM call inside an agent carries its agent_id"
        assert row.session_id == session_id
        for column in dataclasses.fields(want):
            if not column.name.endswith("_contains"):
                assert getattr(row, column.name) == getattr(want, column.name), column.name
        assert want.prompt_contains in row.prompt
        assert want.response_contains in (row.response or "")
    events = [r for r in records if isinstance(r, Event)]
    assert [ev.event_type for ev in events] == ["tool.call"] * len(e.tools)
    for ev, want_tool in zip(events, e.tools, strict=True):
        assert ev.trace_id.hex == e.trace_hex
        assert ev.user_id == e.user_id and ev.session_id == session_id
        payload = ev.payload
        assert isinstance(payload, dict)
        for key, value in want_tool.items():
            assert payload[key] == value, key
        assert payload["otel"]["trace_id"] == e.trace_hex  # type: ignore[index,call-overload]


def test_ids_are_deterministic_across_requests() -> None:
    spans, _ = _spans(otlp_traces.genai_current)
    first = _map_each_alone(spans)
    again = _map_each_alone(spans)
    assert [r.id for r in first] == [r.id for r in again]


def test_child_without_its_ancestors_waits_then_falls_back() -> None:
    spans, e = _spans(otlp_traces.genai_current)
    chat = next(s for s in spans if s.name == "chat gpt-4o")
    mapped = map_spans(
        spans_of(decode_request(_request([chat]), json_body=False)), keep_other=False
    )
    assert mapped.pending == 1 and not mapped.records
    (item,) = [i for _, i in mapped.span_items if "body" in i]
    ((_, facts_item),) = [i for i in mapped.span_items if "f" in i[1]]
    facts = facts_item["f"]
    assert list(facts) == [item["w"]]
    span = span_from_json(item["body"])
    assert resolve(span.trace_hex, span.span_hex, facts.get) is None
    ctx = resolve(span.trace_hex, span.span_hex, facts.get, final=True)
    assert ctx is not None and ctx.agent_id is None and ctx.user_id == "unknown"
    assert ctx.session_key == f"trace:{e.trace_hex}"


def test_spans_without_genai_meaning_are_dropped_or_kept() -> None:
    spans, _ = _spans(otlp_traces.genai_current)
    body = _request(spans)
    dropped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    assert dropped.dropped["no_genai_meaning"] == 1
    kept = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=True)
    kept_events = [r for r in _models(kept.records) if isinstance(r, Event)]
    assert [r.event_type for r in kept_events].count("otel.span") == 1


def test_otlp_json_hex_ids_and_string_int64() -> None:
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "chat m",
                                "kind": 3,
                                "unknownField": {"x": 1},
                                "startTimeUnixNano": "1796000000000000000",
                                "endTimeUnixNano": 1796000000500000000,
                                "status": {"code": 2, "message": "boom"},
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": {"stringValue": "chat"},
                                    },
                                    {"key": "gen_ai.request.model", "value": {"stringValue": "m"}},
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "12"},
                                    },
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    mapped = map_spans(
        spans_of(decode_request(json.dumps(body).encode(), json_body=True)), keep_other=False
    )
    (llm,) = [r for r in _models(mapped.records) if isinstance(r, LLMInteraction)]
    assert llm.prompt_tokens == 12 and llm.latency_ms == 500
    assert llm.success is False and llm.error_message == "boom"


@pytest.mark.parametrize(
    ("body", "json_body"),
    [
        (b"\x0a\xff\xff\xff", False),
        (b"not json", True),
        (b"[1, 2]", True),
        (b'{"resourceSpans": "nope"}', True),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "x"}]}]}]}', True),
    ],
)
def test_undecodable_bodies_raise_body_error(body: bytes, json_body: bool) -> None:
    with pytest.raises(BodyError):
        decode_request(body, json_body=json_body)


def _one_llm_span(**attrs: Any) -> bytes:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    span = tp.get_tracer("t").start_span(
        "chat", attributes={"gen_ai.operation.name": "chat", **attrs}
    )
    span.end()
    return _request(list(memory.get_finished_spans()))


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"gen_ai.usage.input_tokens": -5}, "out of range"),
        ({"gen_ai.usage.output_tokens": "many"}, "not a number"),
        ({"gen_ai.usage.input_tokens": 3.5}, "not an integer"),
        (
            {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 20},
            "exceed prompt_tokens",
        ),
    ],
)
def test_bad_token_counts_refuse_the_span(attrs: dict[str, Any], reason: str) -> None:
    mapped = map_spans(
        spans_of(decode_request(_one_llm_span(**attrs), json_body=False)), keep_other=False
    )
    assert len(mapped.rejected) == 1 and reason in mapped.rejected[0][1]
    assert not mapped.records


def test_values_past_varchar_limits_are_truncated_with_a_marker() -> None:
    body = _one_llm_span(**{"gen_ai.request.model": "m" * 300, "gen_ai.provider.name": "p" * 300})
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    (llm,) = [r for r in _models(mapped.records) if isinstance(r, LLMInteraction)]
    assert llm.model == "m" * 99 + "…" and llm.provider == "p" * 99 + "…"


def test_a_span_whose_parent_is_remote_waits_for_no_ancestor() -> None:
    """A server span continuing a caller's trace (its parent is in another process, which
    exports elsewhere): the GenAI spans under it are mapped at once, not after the wait."""
    from opentelemetry import trace as api
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("t")
    caller = SpanContext(
        trace_id=0x5B8EFFF798038103D269B633813FC60C, span_id=0xEEE19B7EC3C1B174,
        is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )  # fmt: skip
    with (
        tracer.start_as_current_span(
            "POST /chat", context=api.set_span_in_context(NonRecordingSpan(caller))
        ),
        tracer.start_as_current_span(
            "invoke_agent a", attributes={"gen_ai.operation.name": "invoke_agent"}
        ),
        tracer.start_as_current_span("chat m", attributes={"gen_ai.operation.name": "chat"}),
    ):
        pass
    mapped = map_spans(
        spans_of(decode_request(_request(list(memory.get_finished_spans())), json_body=False)),
        keep_other=False,
    )
    assert mapped.pending == 0
    (llm,) = [r for r in _models(mapped.records) if isinstance(r, LLMInteraction)]
    assert llm.agent_id is not None


def test_a_span_too_large_for_a_kafka_message_is_refused_not_retried() -> None:
    body = _one_llm_span(**{"gen_ai.input.messages": "x" * (2 * 1024 * 1024)})
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    assert [label for label, _ in mapped.rejected] == ["too_large"]
    assert not mapped.records and not mapped.span_items


def _one_span(name: str, **attrs: Any) -> bytes:
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tp.get_tracer("t").start_span(name, attributes=attrs).end()
    return _request(list(memory.get_finished_spans()))


def _tool_arguments(arguments: str) -> bytes:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": arguments}
    return _one_span("t", **attrs)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_tool_arguments('{"q": "a\\u0000b"}'), "NUL character"),
        (_tool_arguments('{"q": "\\ud800"}'), "lone surrogate"),
        # Within the model's 200 levels, but past what the sink's parser reads in a batch.
        (_tool_arguments("[" * 199 + "]" * 199), "cannot be read back in a batch message"),
        (_one_span("x", v=float("nan")), "non-finite number"),
    ],
    ids=["nul", "surrogate", "too_deep", "nan"],
)
def test_a_record_the_sink_would_refuse_refuses_its_span(body: bytes, reason: str) -> None:
    """What the mapper cannot guarantee by construction (rows.py) is checked on the bytes."""
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=True)
    assert len(mapped.rejected) == 1 and reason in mapped.rejected[0][1], mapped.rejected
    assert mapped.rejected[0][0] == "invalid_values" and not mapped.records


@pytest.mark.parametrize(
    "body",
    [
        _tool_arguments("[" * 100 + "]" * 100),
        _one_span("chat", **{"gen_ai.operation.name": "chat", "gen_ai.input.messages": "NaN"}),
        _one_span("x", v=[1.5, 2.5], w="Infinity"),
        # JSON nested past Python's parser: kept as the text it is (it raised before)
        _tool_arguments("[" * 100_000),
        _one_span(
            "invoke_agent a",
            **{
                "gen_ai.operation.name": "invoke_agent",
                "input.value": "[" * 100_000,
                "output.value": "{" * 100_000,
            },
        ),
        _one_span(
            "chat",
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": "[" * 100_000,
                "gen_ai.system_instructions": "[" * 100_000,
            },
        ),
    ],
    ids=[
        "deep_but_readable",
        "word_nan",
        "other_span",
        "tool_too_deep_to_parse",
        "agent_too_deep_to_parse",
        "chat_too_deep_to_parse",
    ],
)
def test_records_past_the_cheap_checks_validate(body: bytes) -> None:
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=True)
    assert not mapped.rejected
    rows = mapped.all_records()
    # the session and the span's record (an agent's: the agent and its execution)
    assert len(_models(rows)) == len(rows) == 2 + ("agents" in {r.entity for r in rows})
    for r in rows:  # as the publisher sends them: a batch message of one entity
        decoded = decode(r.entity, b"[" + r.value + b"]")
        assert not decoded.invalid and len(decoded.records) == 1


def _agent_span(**attrs: Any) -> bytes:
    return _one_span("invoke_agent a", **{"gen_ai.operation.name": "invoke_agent", **attrs})


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_agent_span(**{"gen_ai.agent.description": "a\x00b"}), "NUL character"),
        (_agent_span(**{"gen_ai.agent.version": float("nan")}), "non-finite number"),
        (_agent_span(**{"input.value": '{"q": "a\\u0000b"}'}), "NUL character"),
    ],
    ids=["nul_in_configuration", "nan_in_configuration", "nul_in_parsed_input"],
)
def test_agent_values_the_mapper_cannot_vouch_for_are_checked(body: bytes, reason: str) -> None:
    """Agent records skip the scans only when their jsonb values are plain (rows.row)."""
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    assert len(mapped.rejected) == 1 and reason in mapped.rejected[0][1], mapped.rejected


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ('{"q": NaN}', "non-finite number"),
        ('{"q": 1e999}', "non-finite number"),
        ('{"q": ' + "9" * 400 + ".0}", "non-finite number"),
        ('{"q": "a\\u0000b"}', "NUL character"),
    ],
    ids=["nan_literal", "overflowing_exponent", "overflowing_digits", "nul_escape"],
)
def test_parsed_tool_arguments_that_are_not_plain_are_checked(arguments: str, reason: str) -> None:
    """Parsed JSON skips the scans only when its text cannot hold what they find."""
    body = _tool_arguments(arguments)
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    assert len(mapped.rejected) == 1 and reason in mapped.rejected[0][1], mapped.rejected


def test_an_integer_past_64_bits_in_plain_arguments_is_written_as_before() -> None:
    big = 10**30
    body = _tool_arguments(json.dumps({"q": big}))
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    (event,) = [r for r in mapped.all_records() if r.entity == "events"]
    assert not mapped.rejected and isinstance(event.model(), Event)
    assert json.loads(event.value)["payload"]["arguments"] == {"q": big}


def test_records_written_without_the_scans_are_what_pydantic_core_writes() -> None:
    """msgspec writes the LLM calls and the plain records: byte for byte as pydantic-core."""
    chat = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3, "user.id": "é\u2028"}
    arguments = '{"q": "x", "n": [1, 2.5, -0.5, true, null], "d": {"k": "é"}}'
    for body in (_agent_span(**{"gen_ai.agent.version": 2, "input.value": "hi"}),
                 _agent_span(**{"input.value": arguments, "output.value": "[1, 2]"}),
                 _tool_arguments(arguments), _one_span("chat m", **chat)):  # fmt: skip
        mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
        rows = mapped.all_records()
        assert {r.entity for r in rows} - {"sessions"} and not mapped.rejected
        for r in rows:
            assert r.value == pydantic_core.to_json(json.loads(r.value)), r.entity


def test_record_ids_are_the_uuid5_the_table_documents() -> None:
    spans, _ = _spans(otlp_traces.genai_current)
    decoded = spans_of(decode_request(_request(spans), json_body=False))
    mapped = map_spans(decoded, keep_other=False)
    span_ids = {
        uuid.uuid5(OTEL_NAMESPACE, f"span\x1f{s.trace_hex}\x1f{s.span_hex}") for s in decoded
    }
    ids = {r.id for r in _models(mapped.records) if not isinstance(r, Agent)}
    assert len(ids) == len(decoded) - 1 and ids <= span_ids  # all but the dropped span


def test_the_resolver_reads_the_first_spans_topic_items_too() -> None:
    """Items written by an intake of the first version (one span each) still resolve."""
    spans, e = _spans(otlp_traces.genai_current)
    chat = next(
        s for s in spans_of(decode_request(_request(spans), json_body=False)) if "chat" in s.name
    )
    mapped = map_spans([chat], keep_other=False)
    (waiting,) = [i for _, i in mapped.span_items if "w" in i]
    (facts,) = [i for _, i in mapped.span_items if "f" in i]
    p, s, u, a = facts["f"][chat.span_hex]
    first = {"t": chat.trace_hex, "span": chat.span_hex, "f": {"p": p, "s": s, "u": u, "a": a}}
    old = _Partition()
    Resolver._take_item(old, 1, {**first, "k": waiting["k"], "body": waiting["body"]}, 0.0)
    new = _Partition()
    for item in json.loads(json.dumps([facts, waiting])):
        Resolver._take_item(new, 1, item, 0.0)
    for part in (old, new):
        trace = part.traces[chat.trace_hex]
        assert list(trace.waiting) == [chat.span_hex] and list(part.waiting) == [chat.trace_hex]
        ctx = resolve(chat.trace_hex, chat.span_hex, trace.facts.get, final=True)
        assert ctx is not None and ctx.session_key == f"trace:{e.trace_hex}"


@pytest.mark.parametrize(
    "ns", [0, 999, 1_796_000_000_000_000_000, 1_796_000_000_123_456_789, 253_402_214_399 * 10**9]
)
def test_span_times_are_spelled_as_pydantic_spells_them(ns: int) -> None:
    exact = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    assert _time(ns) == json.loads(pydantic_core.to_json(exact))


def test_a_meaning_is_read_from_the_span_before_its_resource_first_name_first() -> None:
    """docs/otel.md: the first attribute set wins; a span's own attributes win over its
    resource's (all of them: a later name on the span beats an earlier one on the resource)."""
    resource = {"gen_ai.provider.name": "from-resource", "user.id": "u-resource"}
    own = {"gen_ai.system": "older-name", "llm.provider": "later", "llm.model_name": "m2"}
    span = Span(b"\1" * 16, b"\2" * 8, b"", "chat", 0, 1, 0, "", own, resource)
    said = read(span)
    assert said["provider"] == "older-name" and said["user"] == "u-resource"
    assert said["model"] == said["request_model"] == "m2" and "session" not in said
    own["gen_ai.response.model"] = "m1"
    assert read(span)["model"] == "m1" and read(span)["request_model"] == "m2"


def test_nul_in_every_attribute_still_makes_valid_records() -> None:
    """Text columns are cleaned by the mapper, not checked on the bytes (rows.py): a span
    with NUL in every string it reads still maps to records that validate."""
    nul = "a\x00b"
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": nul,
        "gen_ai.response.model": nul,
        "gen_ai.provider.name": nul,
        "openai.response.service_tier": nul,
        "gen_ai.response.finish_reasons": (nul, nul),
        "gen_ai.input.messages": nul,
        "gen_ai.output.messages": nul,
        "gen_ai.system_instructions": nul,
        "gen_ai.conversation.id": nul,
        "user.id": nul,
        "error.type": nul,
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.cache_read.input_tokens": 5,
    }
    mapped = map_spans(
        spans_of(decode_request(_one_span(nul, **attrs), json_body=False)), keep_other=False
    )
    assert not mapped.rejected
    (llm,) = [r for r in _models(mapped.all_records()) if isinstance(r, LLMInteraction)]
    assert llm.model == llm.provider == llm.service_tier == "a\ufffdb"
    assert llm.error_message == "a\ufffdb" and "\x00" not in llm.prompt + (llm.response or "")


def test_a_large_trace_is_published_in_bounded_facts_items() -> None:
    from agentstream.otlp.pipeline import FACTS_PER_ITEM

    memory = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("t")
    with tracer.start_as_current_span("root"):
        for _ in range(FACTS_PER_ITEM + 10):
            tracer.start_span("step").end()
    body = _request(list(memory.get_finished_spans()))
    spans = spans_of(decode_request(body, json_body=False))
    mapped = map_spans(spans, keep_other=False)
    items = [item["f"] for _, item in mapped.span_items]
    assert [len(f) for f in items] == [FACTS_PER_ITEM, 11]
    assert {s for f in items for s in f} == {s.span_hex for s in spans}


def test_publisher_batch_messages_are_json_arrays_within_the_limit() -> None:
    from agentstream.otlp.publisher import MAX_BATCH_BYTES, _batches

    small = [b'{"a":%d}' % i for i in range(100)]
    assert list(_batches(small)) == [pydantic_core.to_json([{"a": i} for i in range(100)])]
    big = [b'"' + b"x" * (MAX_BATCH_BYTES // 3) + b'"' for _ in range(7)]
    messages = list(_batches(big))
    assert len(messages) > 1 and all(len(m) <= MAX_BATCH_BYTES for m in messages)
    assert [v for m in messages for v in json.loads(m)] == [json.loads(v) for v in big]


def test_spans_topic_items_are_written_as_pydantic_core_writes_them() -> None:
    """Facts items go through msgspec (publisher._items_json); a waiting span's body keeps
    a NaN attribute NaN, for the resolver to map the span as the intake would have."""
    from agentstream.otlp.publisher import _items_json

    body = _one_span("chat m", **{"gen_ai.operation.name": "chat", "é": "x\u2028"})
    mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
    items = [item for _, item in mapped.span_items]
    assert items and _items_json(items) == pydantic_core.to_json(items)
    waiting = {"t": "t", "w": "s", "k": "llm", "body": {"a": {"v": float("nan")}}}
    assert b"NaN" in _items_json([*items, waiting])
