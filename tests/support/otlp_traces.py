"""Traces shaped like each convention an instrumented agent emits, and the rows they must
become (docs/otel.md's table). Attribute names come from the conventions' own packages
where they ship constants (opentelemetry-semantic-conventions' gen_ai attributes,
openinference-semantic-conventions); OpenLLMetry's ``traceloop.*`` names are spelled here
(its constants package is not a dependency).

Every span has explicit start and end times so that latency and timestamps are exact, and
is ended (so exported) child first, as real instrumentation does."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues as OIKind
from openinference.semconv.trace import SpanAttributes as OI
from opentelemetry import trace
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import Status, StatusCode, Tracer

T0 = 1_796_000_000_000_000_000  # 2026-11-29, in ns


@dataclass
class LLMRow:
    model: str
    prompt_tokens: int
    response_tokens: int
    latency_ms: int
    success: bool = True
    error_message: str | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    time_to_first_token_ms: int | None = None
    provider: str | None = None
    finish_reason: str | None = None
    prompt_contains: str = ""
    response_contains: str = ""


@dataclass
class Expected:
    """What one trace must become."""

    name: str
    session_key: str | None  # None: the trace is the session
    user_id: str
    agent_name: str
    agent_key: str  # gen_ai.agent.id, or "" when the id comes from name and session
    llm: list[LLMRow] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    trace_hex: str = ""
    agent_failed: bool = False


def start(
    tracer: Tracer, name: str, parent: SdkSpan | None, start_ms: int, attrs: dict[str, Any]
) -> SdkSpan:
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    span = tracer.start_span(
        name, context=ctx, start_time=T0 + start_ms * 1_000_000, attributes=attrs
    )
    assert isinstance(span, SdkSpan)
    return span


def end(span: SdkSpan, end_ms: int) -> None:
    span.end(end_time=T0 + end_ms * 1_000_000)


def genai_current(tracer: Tracer, tag: str) -> Expected:
    """The current GenAI conventions: invoke_agent > chat + execute_tool; a chain span
    (no GenAI meaning) between the agent and the second chat."""
    conv = f"conv-{tag}"
    agent = start(
        tracer,
        "invoke_agent planner",
        None,
        0,
        {
            GA.GEN_AI_OPERATION_NAME: "invoke_agent",
            GA.GEN_AI_PROVIDER_NAME: "openai",
            GA.GEN_AI_AGENT_NAME: "planner",
            GA.GEN_AI_AGENT_ID: f"asst-{tag}",
            GA.GEN_AI_CONVERSATION_ID: conv,
            "user.id": f"user-{tag}",
        },
    )
    chat = start(
        tracer,
        "chat gpt-4o",
        agent,
        10,
        {
            GA.GEN_AI_OPERATION_NAME: "chat",
            GA.GEN_AI_PROVIDER_NAME: "openai",
            GA.GEN_AI_REQUEST_MODEL: "gpt-4o",
            GA.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            GA.GEN_AI_USAGE_INPUT_TOKENS: 1200,
            GA.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
            GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
            GA.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 100,
            GA.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 120,
            GA.GEN_AI_RESPONSE_FINISH_REASONS: ("tool_calls",),
            GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25,
            GA.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "be brief"}]),
            GA.GEN_AI_INPUT_MESSAGES: json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "plan a trip"}]}]
            ),
            GA.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "call the weather tool"}],
                    }
                ]
            ),
        },
    )
    end(chat, 1010)
    tool = start(
        tracer,
        "execute_tool get_weather",
        agent,
        1020,
        {
            GA.GEN_AI_OPERATION_NAME: "execute_tool",
            GA.GEN_AI_TOOL_NAME: "get_weather",
            GA.GEN_AI_TOOL_CALL_ID: "call-1",
            GA.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"city": "Paris"}),
            GA.GEN_AI_TOOL_CALL_RESULT: json.dumps({"temp_c": 21}),
        },
    )
    end(tool, 1070)
    chain = start(tracer, "summarise", agent, 1100, {"app.step": "summarise"})
    failed = start(
        tracer,
        "chat gpt-4o",
        chain,
        1110,
        {
            GA.GEN_AI_OPERATION_NAME: "chat",
            GA.GEN_AI_PROVIDER_NAME: "openai",
            GA.GEN_AI_REQUEST_MODEL: "gpt-4o",
            error_attributes.ERROR_TYPE: "RateLimitError",
            GA.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": []}]),
        },
    )
    failed.set_status(Status(StatusCode.ERROR, "429 rate limited"))
    end(failed, 1150)
    end(chain, 1160)
    end(agent, 1200)
    return Expected(
        name="genai_current",
        session_key=conv,
        user_id=f"user-{tag}",
        agent_name="planner",
        agent_key=f"asst-{tag}",
        trace_hex=format(agent.get_span_context().trace_id, "032x"),
        llm=[
            LLMRow(
                model="gpt-4o-2024-08-06",
                prompt_tokens=1200,
                response_tokens=300,
                latency_ms=1000,
                cache_read_tokens=1000,
                cache_write_tokens=100,
                reasoning_tokens=120,
                time_to_first_token_ms=250,
                provider="openai",
                finish_reason="tool_calls",
                prompt_contains="be brief",
                response_contains="call the weather tool",
            ),
            LLMRow(
                model="gpt-4o",
                prompt_tokens=0,
                response_tokens=0,
                latency_ms=40,
                success=False,
                error_message="429 rate limited",
                provider="openai",
            ),
        ],
        tools=[{"tool": "get_weather", "arguments": {"city": "Paris"}, "result": {"temp_c": 21}}],
    )


def genai_older(tracer: Tracer, tag: str) -> Expected:
    """Older GenAI names: gen_ai.system, gen_ai.prompt.N.* / completion.N.*, prompt and
    completion tokens; an agent span without gen_ai.agent.id (id from name and session)."""
    agent = start(
        tracer,
        "invoke_agent researcher",
        None,
        0,
        {
            GA.GEN_AI_OPERATION_NAME: "invoke_agent",
            GA.GEN_AI_AGENT_NAME: "researcher",
            GA.GEN_AI_SYSTEM: "anthropic",
        },
    )
    chat = start(
        tracer,
        "chat claude",
        agent,
        5,
        {
            GA.GEN_AI_SYSTEM: "anthropic",
            GA.GEN_AI_REQUEST_MODEL: "claude-sonnet-4",
            GA.GEN_AI_USAGE_PROMPT_TOKENS: 50,
            GA.GEN_AI_USAGE_COMPLETION_TOKENS: 20,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "what is OTLP?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "a protocol",
        },
    )
    end(chat, 405)
    end(agent, 500)
    return Expected(
        name="genai_older",
        session_key=None,
        user_id="unknown",
        agent_name="researcher",
        agent_key="",
        trace_hex=format(agent.get_span_context().trace_id, "032x"),
        llm=[
            LLMRow(
                model="claude-sonnet-4",
                prompt_tokens=50,
                response_tokens=20,
                latency_ms=400,
                provider="anthropic",
                prompt_contains="what is OTLP?",
                response_contains="a protocol",
            )
        ],
    )


def openllmetry(tracer: Tracer, tag: str) -> Expected:
    """OpenLLMetry (Traceloop): traceloop.span.kind, association properties, total tokens."""
    props = {
        "traceloop.association.properties.session_id": f"tl-session-{tag}",
        "traceloop.association.properties.user_id": f"tl-user-{tag}",
    }
    agent = start(
        tracer,
        "writer.agent",
        None,
        0,
        {
            "traceloop.span.kind": "agent",
            "traceloop.entity.name": "writer",
            **props,
        },
    )
    task = start(tracer, "draft.task", agent, 2, {"traceloop.span.kind": "task", **props})
    chat = start(
        tracer,
        "openai.chat",
        task,
        3,
        {
            "llm.request.type": "chat",
            GA.GEN_AI_SYSTEM: "openai",
            GA.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            "llm.usage.total_tokens": 77,
            **props,
        },
    )
    end(chat, 103)
    tool = start(
        tracer,
        "search.tool",
        task,
        110,
        {
            "traceloop.span.kind": "tool",
            "traceloop.entity.name": "search",
            "traceloop.entity.input": "{}",
            **props,
        },
    )
    end(tool, 120)
    end(task, 130)
    end(agent, 140)
    return Expected(
        name="openllmetry",
        session_key=f"tl-session-{tag}",
        user_id=f"tl-user-{tag}",
        agent_name="writer",
        agent_key="",
        trace_hex=format(agent.get_span_context().trace_id, "032x"),
        llm=[
            LLMRow(
                model="gpt-4o-mini",
                prompt_tokens=77,
                response_tokens=0,
                latency_ms=100,
                provider="openai",
            )
        ],
        tools=[{"tool": "search", "arguments": None, "result": None}],
    )


def openinference(tracer: Tracer, tag: str) -> Expected:
    """OpenInference (Arize Phoenix): AGENT > LLM (+ cache read) and TOOL; session and user."""
    common = {OI.SESSION_ID: f"oi-session-{tag}", OI.USER_ID: f"oi-user-{tag}"}
    agent = start(
        tracer,
        "Agent",
        None,
        0,
        {
            OI.OPENINFERENCE_SPAN_KIND: OIKind.AGENT.value,
            OI.AGENT_NAME: "support",
            OI.INPUT_VALUE: "help me",
            OI.OUTPUT_VALUE: "done",
            **common,
        },
    )
    llm = start(
        tracer,
        "ChatCompletion",
        agent,
        1,
        {
            OI.OPENINFERENCE_SPAN_KIND: OIKind.LLM.value,
            OI.LLM_MODEL_NAME: "gemini-2.5-pro",
            OI.LLM_PROVIDER: "google",
            OI.LLM_TOKEN_COUNT_PROMPT: 900,
            OI.LLM_TOKEN_COUNT_COMPLETION: 90,
            OI.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ: 800,
            OI.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING: 30,
            f"{OI.LLM_INPUT_MESSAGES}.0.message.role": "user",
            f"{OI.LLM_INPUT_MESSAGES}.0.message.content": "my order is late",
            f"{OI.LLM_OUTPUT_MESSAGES}.0.message.role": "assistant",
            f"{OI.LLM_OUTPUT_MESSAGES}.0.message.content": "let me check",
            **common,
        },
    )
    end(llm, 251)
    tool = start(
        tracer,
        "lookup_order",
        agent,
        260,
        {
            OI.OPENINFERENCE_SPAN_KIND: OIKind.TOOL.value,
            OI.TOOL_NAME: "lookup_order",
            OI.INPUT_VALUE: json.dumps({"order": 42}),
            OI.OUTPUT_VALUE: "shipped",
            **common,
        },
    )
    end(tool, 280)
    end(agent, 300)
    return Expected(
        name="openinference",
        session_key=f"oi-session-{tag}",
        user_id=f"oi-user-{tag}",
        agent_name="support",
        agent_key="",
        trace_hex=format(agent.get_span_context().trace_id, "032x"),
        llm=[
            LLMRow(
                model="gemini-2.5-pro",
                prompt_tokens=900,
                response_tokens=90,
                latency_ms=250,
                cache_read_tokens=800,
                reasoning_tokens=30,
                provider="google",
                prompt_contains="my order is late",
                response_contains="let me check",
            )
        ],
        tools=[{"tool": "lookup_order", "arguments": {"order": 42}, "result": "shipped"}],
    )


CONVENTIONS = (genai_current, genai_older, openllmetry, openinference)


def session_uuid(e: Expected) -> uuid.UUID:
    from agentstream.otlp.mapping import session_id_of

    return session_id_of(e.session_key or f"trace:{e.trace_hex}")


def agent_uuid(e: Expected) -> uuid.UUID:
    from agentstream.otlp.mapping import agent_id_of

    if e.agent_key:
        return agent_id_of(f"id:{e.agent_key}", session_uuid(e))
    return agent_id_of(f"name:{e.agent_name}", session_uuid(e))
