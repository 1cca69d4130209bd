"""``agentstream otlp`` as a process, fed by the OpenTelemetry SDK's own OTLP exporters
(HTTP protobuf and JSON, and gRPC), through the real worker into PostgreSQL; and its answers
to bad input."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from agentstream.contract.settings import Settings
from tests.support import otlp_traces
from tests.support.otlp import IntakeProcess, exporter, free_port, provider
from tests.support.otlp_traces import CONVENTIONS, Expected
from tests.support.worker import WorkerProcess, wait_for, wait_rows

pytestmark = pytest.mark.integration

PROTOBUF, JSON = "application/x-protobuf", "application/json"
AGENT_SPANS = ("invoke_agent", "writer.agent", "Agent")


def _rows(conninfo: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(query, args).fetchall()


def _check_rows(conninfo: str, e: Expected) -> None:
    """The rows of one trace are what docs/otel.md's table says."""
    sid = otlp_traces.session_uuid(e)
    ((user,),) = _rows(conninfo, "SELECT user_id FROM sessions WHERE id = %s", sid)
    assert user == e.user_id, e.name
    agents = _rows(
        conninfo, "SELECT id, name, configuration FROM agents WHERE session_id = %s", sid
    )
    assert [(a[0], a[1]) for a in agents] == [(otlp_traces.agent_uuid(e), e.agent_name)], e.name
    agent_id = agents[0][0]
    runs = _rows(
        conninfo,
        "SELECT status, started_at, completed_at, input_data FROM agent_executions"
        " WHERE agent_id = %s",
        agent_id,
    )
    assert [r[0] for r in runs] == ["completed"], e.name
    assert runs[0][3]["otel"]["trace_id"] == e.trace_hex
    llm = _rows(
        conninfo,
        "SELECT i.model, i.prompt_tokens, i.response_tokens, i.latency_ms, i.success,"
        " i.error_message, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,"
        " u.time_to_first_token_ms, u.provider, u.finish_reason, i.prompt, i.response,"
        " i.agent_id"
        " FROM llm_interactions i LEFT JOIN agentstream.llm_usage u USING (id)"
        " WHERE i.session_id = %s ORDER BY i.created_at",
        sid,
    )
    assert len(llm) == len(e.llm), e.name
    for row, want in zip(llm, e.llm, strict=True):
        assert row[:12] == (
            want.model, want.prompt_tokens, want.response_tokens, want.latency_ms,
            want.success, want.error_message, want.cache_read_tokens,
            want.cache_write_tokens, want.reasoning_tokens, want.time_to_first_token_ms,
            want.provider, want.finish_reason,
        ), e.name  # fmt: skip
        assert want.prompt_contains in row[12] and want.response_contains in (row[13] or "")
        assert row[14] == agent_id, f"{e.name}: the LLM call carries its agent's id"
    tools = _rows(
        conninfo,
        "SELECT trace_id, user_id, payload FROM events WHERE session_id = %s"
        " AND event_type = 'tool.call' ORDER BY timestamp_ms",
        sid,
    )
    assert len(tools) == len(e.tools), e.name
    for (trace_id, tool_user, payload), want_tool in zip(tools, e.tools, strict=True):
        assert trace_id.hex == e.trace_hex and tool_user == e.user_id
        assert {k: payload[k] for k in want_tool} == want_tool


@pytest.mark.parametrize("encoding", ["protobuf", "json", "grpc"])
async def test_every_convention_lands_as_the_table_says_across_two_intakes(
    settings: Settings, tmp_path: Path, encoding: str
) -> None:
    """Each span exported alone as it ends (children first); agent spans go to a second
    intake process: an LLM call still carries the agent's id."""
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    a = IntakeProcess(settings, tmp_path / "a.log").start()
    b = IntakeProcess(settings, tmp_path / "b.log").start()
    try:
        a.wait_ready(), b.wait_ready()
        ea, eb = a.exporter(encoding), b.exporter(encoding)
        tp = provider(*[(p, eb) for p in AGENT_SPANS], ("", ea))
        tracer = tp.get_tracer("agentstream-tests")
        tag = uuid.uuid4().hex[:8]
        expected = await asyncio.to_thread(lambda: [make(tracer, tag) for make in CONVENTIONS])
        tp.shutdown()
        conninfo = settings.database_conninfo()
        n_llm = sum(len(e.llm) for e in expected)
        assert await wait_rows(conninfo, "llm_interactions", n_llm) == n_llm
        assert await wait_rows(conninfo, "agent_executions", len(expected)) == len(expected)
        n_tools = sum(len(e.tools) for e in expected)
        assert await wait_rows(conninfo, "events", n_tools) == n_tools
        await asyncio.sleep(1.0)  # let the last sessions/agents upserts land too
        for e in expected:
            _check_rows(conninfo, e)
        assert a.metric("otlp_spans_dropped_total", reason="no_genai_meaning") >= 1
        assert a.metric("otlp_spans_pending_total") >= n_llm  # children came before parents
        assert _rows(conninfo, "SELECT count(*) FROM agentstream.inferred_members") == [(0,)]
    finally:
        for p in (a, b):
            assert p.terminate() == 0, p.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]


def _llm_span(trace: bytes, span: bytes, **attrs: Any) -> dict[str, Any]:
    attributes = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]
    for key, value in attrs.items():
        kind = "intValue" if isinstance(value, int) else "stringValue"
        attributes.append({"key": key, "value": {kind: value}})
    return {
        "traceId": trace.hex(),
        "spanId": span.hex(),
        "name": "chat",
        "startTimeUnixNano": str(1_796_000_000_000_000_000),
        "endTimeUnixNano": str(1_796_000_000_100_000_000),
        "attributes": attributes,
    }


def _json_request(spans: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


async def test_bad_input_gets_its_documented_answer_and_the_intake_survives(
    settings: Settings, tmp_path: Path
) -> None:
    token = "tok-" + uuid.uuid4().hex
    intake = IntakeProcess(
        settings, tmp_path / "intake.log", AGENTSTREAM_OTLP_TOKENS=f"{token},second"
    ).start()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    auth = {"Authorization": f"Bearer {token}"}
    try:
        intake.wait_ready()
        good = _json_request([_llm_span(uuid.uuid4().bytes, b"\x01" * 8)])
        # 401 without or with a wrong token; nothing read, nothing written.
        assert (await asyncio.to_thread(intake.post, good, JSON))[0] == 401
        code, body, headers = await asyncio.to_thread(
            intake.post, good, JSON, {"Authorization": "Bearer nope"}
        )
        assert code == 401 and headers.get("WWW-Authenticate") == "Bearer"
        assert intake.metric("otlp_spans_received_total") == 0
        # 415: other content types and encodings.
        assert (await asyncio.to_thread(intake.post, good, "text/plain", auth))[0] == 415
        br = {**auth, "Content-Encoding": "br"}
        assert (await asyncio.to_thread(intake.post, good, JSON, br))[0] == 415
        # 400 with a google.rpc.Status, in the request's content type.
        code, body, _ = await asyncio.to_thread(
            intake.post, b"\x0a\xff\xff\xff\x0f", PROTOBUF, auth
        )
        assert code == 400 and Status.FromString(body).code == 3
        code, body, _ = await asyncio.to_thread(intake.post, b'{"resourceSpans": 7}', JSON, auth)
        assert code == 400 and "resourceSpans" in json.loads(body)["message"]
        # 413 past 16 MiB, plain or inflated from gzip.
        big = b"\x00" * (16 * 1024 * 1024 + 1)
        assert (await asyncio.to_thread(intake.post, big, PROTOBUF, auth))[0] == 413
        bomb = {**auth, "Content-Encoding": "gzip"}
        assert (await asyncio.to_thread(intake.post, gzip.compress(big), PROTOBUF, bomb))[0] == 413
        # Partial success: bad ids, bad counts refused with their reasons; the rest kept,
        # long values truncated with a marker.
        trace = uuid.uuid4().bytes
        spans = [
            {**_llm_span(trace, b"\x02" * 8), "spanId": "abcdef"},  # 3 bytes
            {**_llm_span(trace, b"\x03" * 8), "traceId": "zz" * 16},  # not hex
            _llm_span(trace, b"\x04" * 8, **{"gen_ai.usage.input_tokens": -1}),
            _llm_span(trace, b"\x05" * 8, **{"gen_ai.usage.output_tokens": "lots"}),
            _llm_span(trace, b"\x06" * 8, **{"gen_ai.request.model": "x" * 500}),
        ]
        code, body, _ = await asyncio.to_thread(
            intake.post, gzip.compress(_json_request(spans)), JSON, bomb
        )
        assert code == 200, body
        partial = json.loads(body)["partialSuccess"]
        assert partial["rejectedSpans"] == "4"
        for reason in ("span id must be 8 bytes", "trace id must be 16 bytes", "out of range",
                       "not a number"):  # fmt: skip
            assert reason in partial["errorMessage"]
        conninfo = settings.database_conninfo()
        assert await wait_rows(conninfo, "llm_interactions", 1) == 1
        assert _rows(conninfo, "SELECT model FROM llm_interactions") == [("x" * 99 + "…",)]
        # 10,000 spans in one request (protobuf): all acknowledged, all stored.
        request = ExportTraceServiceRequest()
        scope = request.resource_spans.add().scope_spans.add()
        for i in range(10_000):
            s = scope.spans.add()
            s.trace_id, s.span_id, s.name = uuid.uuid4().bytes, (i + 1).to_bytes(8, "big"), "chat"
            s.start_time_unix_nano, s.end_time_unix_nano = (
                1_796_000_000 * 10**9,
                1_796_000_001 * 10**9,
            )
            for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "m")):
                attr = s.attributes.add()
                attr.key, attr.value.string_value = key, value
        started = time.monotonic()
        code, body, _ = await asyncio.to_thread(
            intake.post, request.SerializeToString(), PROTOBUF, auth
        )
        took = time.monotonic() - started
        assert code == 200 and not ExportTraceServiceResponse.FromString(body).HasField(
            "partial_success"
        ), body
        assert await wait_rows(conninfo, "llm_interactions", 10_001, timeout_s=120) == 10_001
        print(f"10,000 spans in one request answered in {took:.2f}s")
        assert intake.get("/healthz")[0] == 200
        assert intake.metric("otlp_spans_rejected_total", reason="invalid_ids") == 2
        assert intake.metric("otlp_spans_rejected_total", reason="invalid_values") == 2
        assert intake.metric("otlp_requests_total", code="401") == 2
        assert intake.alive
    finally:
        assert intake.terminate() == 0, intake.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]
    assert token not in intake.log(), "tokens are secrets: never logged"


def _pb_request(*spans: tuple[bytes, bytes]) -> bytes:
    """(trace id, span id) -> chat spans in one protobuf ExportTraceServiceRequest."""
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for trace_id, span_id in spans:
        s = scope.spans.add()
        s.trace_id, s.span_id, s.name = trace_id, span_id, "chat"
        s.start_time_unix_nano, s.end_time_unix_nano = 1_796_000_000 * 10**9, 1_796_000_001 * 10**9
        attr = s.attributes.add()
        attr.key, attr.value.string_value = "gen_ai.operation.name", "chat"
    body: bytes = request.SerializeToString()
    return body


def test_bad_input_over_grpc_gets_its_status_code_and_the_intake_survives(
    settings: Settings, tmp_path: Path
) -> None:
    """OTLP/gRPC answers with gRPC status codes what OTLP/HTTP answers with 4xx/5xx."""
    token = "tok-" + uuid.uuid4().hex
    intake = IntakeProcess(settings, tmp_path / "intake.log", AGENTSTREAM_OTLP_TOKENS=token)
    intake.start()
    auth = (("authorization", f"Bearer {token}"),)
    good = _pb_request((uuid.uuid4().bytes, b"\x01" * 8))
    try:
        intake.wait_ready()
        with grpc.insecure_channel(
            intake.grpc_target, options=[("grpc.max_send_message_length", -1)]
        ) as channel:
            # No serializers: raw request bytes in, raw response bytes out.
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            )

            def code(body: bytes, metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
                try:
                    export(body, metadata=metadata, timeout=60)
                except grpc.RpcError as exc:
                    status: grpc.StatusCode = exc.code()
                    return status
                return grpc.StatusCode.OK

            assert code(good) == grpc.StatusCode.UNAUTHENTICATED
            assert code(good, (("authorization", "Bearer nope"),)) == (
                grpc.StatusCode.UNAUTHENTICATED
            )
            assert intake.metric("otlp_spans_received_total") == 0
            assert code(b"\x0a\xff\xff\xff\x0f", auth) == grpc.StatusCode.INVALID_ARGUMENT
            big = b"\x00" * (16 * 1024 * 1024 + 1)
            assert code(big, auth) == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Partial success: a span id of 3 bytes refused with its reason; gzip is gRPC's own.
            trace = uuid.uuid4().bytes
            answer = ExportTraceServiceResponse.FromString(
                export(
                    _pb_request((trace, b"abc"), (trace, b"\x02" * 8)),
                    metadata=auth,
                    timeout=60,
                    compression=grpc.Compression.Gzip,
                )
            )
            assert answer.partial_success.rejected_spans == 1
            assert "span id must be 8 bytes" in answer.partial_success.error_message
        assert intake.metric("otlp_requests_total", code="grpc_UNAUTHENTICATED") == 2
        assert intake.metric("otlp_requests_total", code="grpc_INVALID_ARGUMENT") == 1
        assert intake.metric("otlp_requests_total", code="grpc_OK") == 1
        assert intake.alive and intake.get("/healthz")[0] == 200
    finally:
        assert intake.terminate() == 0, intake.log()[-3000:]
    assert token not in intake.log(), "tokens are secrets: never logged"


@pytest.mark.parametrize("encoding", ["protobuf", "grpc"])
async def test_the_exporters_retry_after_a_503_loses_nothing(
    settings: Settings, tmp_path: Path, encoding: str
) -> None:
    """The intake cannot reach Kafka: it answers 503 + Retry-After (gRPC: UNAVAILABLE with a
    RetryInfo); the exporter retries on its own; meanwhile the intake is replaced by one that
    can reach Kafka (the shared broker is never stopped): every span lands, once."""
    port, grpc_port = free_port(), free_port()
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    cut_off = IntakeProcess(
        settings.model_copy(update={"kafka_bootstrap": nowhere}),
        tmp_path / "cut_off.log",
        port=port,
        grpc_port=grpc_port,
        AGENTSTREAM_OTLP_RETRY_AFTER_S="1",
    ).start()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    replacement: IntakeProcess | None = None
    try:
        assert wait_for(lambda: cut_off.get("/healthz")[0] == 503, 30)
        refused = "grpc_UNAVAILABLE" if encoding == "grpc" else "503"
        tp = provider(("", cut_off.exporter(encoding, timeout=60)))
        tracer = tp.get_tracer("t")
        tag = uuid.uuid4().hex[:8]
        export = asyncio.create_task(
            asyncio.to_thread(lambda: [make(tracer, tag) for make in CONVENTIONS])
        )
        assert await asyncio.to_thread(
            wait_for, lambda: cut_off.metric("otlp_requests_total", code=refused) >= 2, 30
        )
        assert cut_off.terminate() == 0
        replacement = IntakeProcess(
            settings, tmp_path / "replacement.log", port=port, grpc_port=grpc_port
        ).start()
        expected = await export  # RouteByName asserts every export ended in SUCCESS
        tp.shutdown()
        conninfo = settings.database_conninfo()
        n_llm = sum(len(e.llm) for e in expected)
        assert await wait_rows(conninfo, "llm_interactions", n_llm) == n_llm
        n_tools = sum(len(e.tools) for e in expected)
        assert await wait_rows(conninfo, "events", n_tools) == n_tools
        await asyncio.sleep(1.0)
        for e in expected:
            _check_rows(conninfo, e)
    finally:
        cut_off.kill()
        if replacement is not None:
            assert replacement.terminate() == 0, replacement.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]


def test_sigterm_with_nothing_in_flight_exits_0(settings: Settings, tmp_path: Path) -> None:
    intake = IntakeProcess(settings, tmp_path / "intake.log").start().wait_ready()
    assert intake.terminate(signal.SIGTERM) == 0
    assert SpanExportResult.SUCCESS  # the SDK is importable in the test env


async def test_a_waiting_call_survives_the_intake_that_took_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The call's span reaches intake A, the only one running, which is killed (SIGKILL: no
    drain) while the call waits for its agent; the agent's span reaches intake B, started
    after. B's resolver takes the partitions over, reads the waiting call and the facts
    again from Kafka, and the call lands with its agent's id."""
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    a = IntakeProcess(settings, tmp_path / "a.log").start()
    b = IntakeProcess(settings, tmp_path / "b.log")
    try:
        a.wait_ready()
        await asyncio.sleep(2)  # A's resolver owns every partition of the spans topic
        tp = provider(
            *[(p, exporter(b.url, "protobuf")) for p in AGENT_SPANS],
            ("", exporter(a.url, "protobuf")),
        )
        tracer = tp.get_tracer("t")
        tag = uuid.uuid4().hex[:8]
        attrs = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}
        attrs["gen_ai.conversation.id"] = f"conv-{tag}"
        agent_span = otlp_traces.start(tracer, "invoke_agent planner", None, 0, attrs)
        chat = otlp_traces.start(
            tracer, "chat m", agent_span, 1,
            {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
        )  # fmt: skip
        await asyncio.to_thread(otlp_traces.end, chat, 2)  # exported to A: it waits there
        assert a.metric("otlp_spans_pending_total") == 1
        a.kill()
        b.start().wait_ready()
        await asyncio.to_thread(otlp_traces.end, agent_span, 3)  # exported to B
        tp.shutdown()
        conninfo = settings.database_conninfo()
        assert await wait_rows(conninfo, "llm_interactions", 1, timeout_s=90) == 1
        e = Expected("killed", f"conv-{tag}", "unknown", "planner", agent_key="")
        assert _rows(conninfo, "SELECT agent_id FROM llm_interactions") == [
            (otlp_traces.agent_uuid(e),)
        ]
        assert _rows(conninfo, "SELECT name FROM agents") == [("planner",)]
    finally:
        a.kill()
        if b.proc is not None:
            assert b.terminate() == 0, b.log()[-3000:]
        assert worker.terminate() == 0, worker.log()[-3000:]


def test_beyond_loopback_without_tokens_is_refused(settings: Settings, tmp_path: Path) -> None:
    intake = IntakeProcess(settings, tmp_path / "intake.log", "--host", "0.0.0.0").start()
    assert intake.wait_exit(60) == 2
    assert "AGENTSTREAM_OTLP_TOKENS" in intake.log()


async def test_kafka_slower_than_the_ack_timeout_gets_503_with_retry_after(
    settings: Settings, tmp_path: Path
) -> None:
    """No broker acknowledges within a microsecond: the request is answered 503 with
    Retry-After and a google.rpc.Status (UNAVAILABLE), never 200, and the intake lives on."""
    intake = IntakeProcess(
        settings, tmp_path / "intake.log",
        AGENTSTREAM_OTLP_KAFKA_TIMEOUT_S="0.000001", AGENTSTREAM_OTLP_RETRY_AFTER_S="7",
    ).start()  # fmt: skip
    try:
        intake.wait_ready()
        body = _json_request([_llm_span(uuid.uuid4().bytes, b"\x07" * 8)])
        for _ in range(3):
            code, answer, headers = await asyncio.to_thread(intake.post, body, JSON)
            assert code == 503 and headers.get("Retry-After") == "7"
            assert json.loads(answer)["code"] == 14
        assert intake.alive and intake.get("/healthz")[0] == 200
    finally:
        assert intake.terminate() == 0, intake.log()[-3000:]
