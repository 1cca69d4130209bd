"""The demo's OpenTelemetry part: agents instrumented with OpenTelemetry (GenAI conventions),
exporting with the SDK's own OTLP/HTTP exporter to ``agentstream otlp`` — the only thing
such an agent changes is ``OTEL_EXPORTER_OTLP_ENDPOINT``.

Usage: ``OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 .venv/bin/python
scripts/demo_otel.py [TRACES]``.
"""

from __future__ import annotations

import json
import random
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.trace import Status, StatusCode

MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4"))
AGENTS = ("travel-planner", "support-triage", "code-reviewer")


def main() -> None:
    traces = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    rng = random.Random(11)
    provider = TracerProvider(resource=Resource.create({"service.name": "demo-otel-agent"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from env
    tracer = provider.get_tracer("demo-otel")
    for n in range(traces):
        system, model = rng.choice(MODELS)
        agent = rng.choice(AGENTS)
        conversation = f"otel-demo-{n // 3}"
        t = time.time_ns()
        with tracer.start_as_current_span(
            f"invoke_agent {agent}",
            start_time=t,
            attributes={
                GA.GEN_AI_OPERATION_NAME: "invoke_agent",
                GA.GEN_AI_PROVIDER_NAME: system,
                GA.GEN_AI_AGENT_NAME: agent,
                GA.GEN_AI_CONVERSATION_ID: conversation,
                "user.id": f"otel-user-{n % 7}",
            },
            end_on_exit=False,
        ) as root:
            for step in range(rng.randint(1, 4)):
                prompt = rng.randint(400, 6000)
                cached = rng.choice((0, prompt // 2))
                output = rng.randint(50, 900)
                start = t + step * 2_000_000_000
                latency = rng.randint(300, 1900) * 1_000_000
                span = tracer.start_span(
                    f"chat {model}",
                    start_time=start,
                    attributes={
                        GA.GEN_AI_OPERATION_NAME: "chat",
                        GA.GEN_AI_PROVIDER_NAME: system,
                        GA.GEN_AI_REQUEST_MODEL: model,
                        GA.GEN_AI_USAGE_INPUT_TOKENS: prompt,
                        GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
                        GA.GEN_AI_USAGE_OUTPUT_TOKENS: output,
                        GA.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                        GA.GEN_AI_INPUT_MESSAGES: json.dumps(
                            [
                                {
                                    "role": "user",
                                    "parts": [
                                        {"type": "text", "content": f"step {step} of request {n}"}
                                    ],
                                }
                            ]
                        ),
                    },
                )
                if rng.random() < 0.05:
                    span.set_attribute("error.type", "RateLimitError")
                    span.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
                span.end(end_time=start + latency)
                tool = tracer.start_span(
                    "execute_tool search",
                    start_time=start + latency,
                    attributes={
                        GA.GEN_AI_OPERATION_NAME: "execute_tool",
                        GA.GEN_AI_TOOL_NAME: "search",
                        GA.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"q": f"query {n}.{step}"}),
                    },
                )
                tool.end(end_time=start + latency + 80_000_000)
            root.end(end_time=t + 9_000_000_000)
    provider.shutdown()  # flushes: every batch exported (and acknowledged) before exit
    print(f"exported {traces} OpenTelemetry agent traces")


if __name__ == "__main__":
    main()
