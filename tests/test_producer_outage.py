"""Kafka stops answering mid-way: publishing fails clearly after the bound, nothing hangs.

The real broker sits behind a small TCP proxy (below) that the test can freeze: frames stop
flowing both ways but connections stay open, as with a hung broker or a network partition.
The proxy rewrites the broker address in Metadata responses so that the client keeps
talking through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import pytest
from aiokafka.protocol import metadata as metadata_protocol

from agentstream.contract.settings import Settings
from agentstream.producers import AgentStream, DeliveryError, PublishTimeout, ensure_topics, uuid7
from tests.sink_records import sdk_event
from tests.support.services import Services

pytestmark = pytest.mark.integration

_METADATA = 3


class FreezableKafkaProxy:
    """Forwards Kafka's wire protocol to ``upstream``; ``freeze()`` holds every frame."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._open = asyncio.Event()
        self._open.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self._open.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection(*self._upstream)
        self._writers += [client_w, upstream_w]
        requests: dict[int, tuple[int, int]] = {}
        for coro in (
            self._pump(client_r, upstream_w, requests, to_broker=True),
            self._pump(upstream_r, client_w, requests, to_broker=False),
        ):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        requests: dict[int, tuple[int, int]],
        *,
        to_broker: bool,
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                if to_broker:
                    api_key, version, correlation = struct.unpack(">hhi", frame[:8])
                    requests[correlation] = (api_key, version)
                else:
                    (correlation,) = struct.unpack(">i", frame[:4])
                    api_key, version = requests.pop(correlation, (-1, -1))
                    if api_key == _METADATA:
                        frame = frame[:4] + self._rewrite_metadata(version, frame[4:])
                await self._open.wait()  # frozen: hold the frame, keep the connection
                writer.write(struct.pack(">i", len(frame)) + frame)
                await writer.drain()
        writer.close()

    def _rewrite_metadata(self, version: int, body: bytes) -> bytes:
        cls: Any = getattr(metadata_protocol, f"MetadataResponse_v{version}")
        response = cls.decode(body)
        fields = {name: getattr(response, name) for name in cls.SCHEMA.names}
        fields["brokers"] = [
            (broker[0], "127.0.0.1", self.port, *broker[3:]) for broker in fields["brokers"]
        ]
        encoded: bytes = cls(**fields).encode()
        return encoded


async def test_buffer_full_while_broker_hangs_raises_then_close_reports(
    services: Services, topic_prefix: str
) -> None:
    proxy = FreezableKafkaProxy(services.kafka_bootstrap)
    await proxy.start()
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{proxy.port}",
        topic_prefix=topic_prefix,
        producer_buffer_records=50,
        producer_send_timeout_s=2,
        producer_linger_ms=0,
    )
    try:
        await ensure_topics(settings, ["events"])
        stream = AgentStream(settings)
        await asyncio.wait_for(stream.start(), 30)
        sid = uuid7()
        for i in range(20):
            await stream.publish(sdk_event(sid, i))
        await stream.flush()  # through the proxy: the broker is reachable
        assert stream.stats.delivered_records == 20

        proxy.freeze()
        accepted = 0

        async def publish_until_refused() -> PublishTimeout:
            nonlocal accepted
            for i in range(10_000):
                try:
                    await stream.publish(sdk_event(sid, i))
                except PublishTimeout as exc:
                    return exc
                accepted += 1
            raise AssertionError("10,000 records accepted while the broker hung")

        # wait_for only guards against a hang; the SDK's bound must fire first.
        refused = await asyncio.wait_for(publish_until_refused(), 60)
        assert "Kafka is slow or unreachable" in str(refused)
        assert refused.topic == f"{topic_prefix}events" and refused.timeout_s == 2
        assert accepted == 50  # exactly the buffer: memory stays bounded, nothing dropped

        with pytest.raises(DeliveryError) as info:
            await asyncio.wait_for(stream.close(timeout_s=2), 60)
        # Every record accepted after the freeze is reported, none silently lost.
        assert info.value.undelivered == 50
        assert stream.stats.delivered_records == 20
    finally:
        await proxy.close()
