"""Run ``agentstream otlp`` as a real process, and send it traces with the OpenTelemetry SDK."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from opentelemetry.exporter.otlp.json.http.trace_exporter import (
    OTLPSpanExporter as JsonSpanExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as ProtoSpanExporter,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from agentstream.contract.settings import Settings
from tests.support.worker import WorkerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class IntakeProcess(WorkerProcess):
    """One ``agentstream otlp`` process on free ports of 127.0.0.1 (OTLP/HTTP and gRPC)."""

    command = "otlp"

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *args: str,
        port: int | None = None,
        grpc_port: int | None = None,
        **env: str,
    ) -> None:
        self.port = port or free_port()
        self.grpc_port = grpc_port or free_port()
        env = {
            "AGENTSTREAM_OTLP_PORT": str(self.port),
            "AGENTSTREAM_OTLP_GRPC_PORT": str(self.grpc_port),
            "AGENTSTREAM_OTLP_RESOLVER_GROUP": f"{settings.topic_prefix}resolver",
            **env,
        }
        super().__init__(settings, log_path, *args, **env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def exporter(self, encoding: str, **kwargs: Any) -> SpanExporter:
        """The SDK's exporter for ``encoding``: protobuf or json (OTLP/HTTP), or grpc."""
        if encoding == "grpc":
            return GrpcSpanExporter(endpoint=self.grpc_target, insecure=True, **kwargs)
        return exporter(self.url, encoding, **kwargs)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:  # not listening (yet, or any more)
            return 0, ""

    def wait_ready(self, wait_s: float = 60.0) -> Self:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"intake exited:\n{self.log()}")
            if self.get("/healthz")[0] == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(f"intake not ready after {wait_s}s:\n{self.log()}")

    def post(
        self, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(
            self.url + "/v1/traces",
            data=body,
            headers={"Content-Type": content_type, **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def metric(self, name: str, **labels: str) -> float:
        """A counter's value from /metrics (0 when absent)."""
        want = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""
        )
        for line in self.get("/metrics")[1].splitlines():
            key, _, value = line.rpartition(" ")
            if key == want:
                return float(value)
        return 0.0


def exporter(url: str, encoding: str, **kwargs: Any) -> SpanExporter:
    cls = JsonSpanExporter if encoding == "json" else ProtoSpanExporter
    return cls(endpoint=url + "/v1/traces", **kwargs)


class RouteByName(SimpleSpanProcessor):
    """Exports each span as it ends (children before parents, one request each), to the
    exporter whose name prefix matches (the first one otherwise): two intakes, one trace."""

    def __init__(self, routes: Sequence[tuple[str, SpanExporter]]) -> None:
        super().__init__(routes[0][1])
        self.routes = routes

    def on_end(self, span: ReadableSpan) -> None:
        for prefix, target in self.routes:
            if span.name.startswith(prefix):
                result = target.export([span])
                assert result.name == "SUCCESS", f"export of {span.name} failed: {result}"
                return
        raise AssertionError(f"no route for span {span.name}")


def provider(*routes: tuple[str, SpanExporter]) -> TracerProvider:
    tp = TracerProvider()
    tp.add_span_processor(RouteByName(routes))
    return tp
