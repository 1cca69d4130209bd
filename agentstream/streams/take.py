"""Batches of decoded messages, sized in records, acknowledged by the caller (not by faust).

faust's ``Stream.noack_take(max_, within)`` counts messages; a message here holds one record
or a batch of hundreds, so a message count bounds neither memory nor flush size. This is the
same mechanism (a stream processor fills a buffer that a timer or a size limit empties;
acks are left to the caller) with two changes:

* each message is decoded as it arrives (``prepare``) and the buffer is sized in records;
* the buffer keeps filling while the caller writes the previous batch (double buffering):
  decoding the next batch overlaps the database write of this one. Memory stays bounded at
  about two batches: the processor waits once the next batch is full.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Sized", "take_batches"]


class Sized(Protocol):
    @property
    def size(self) -> int: ...


P = TypeVar("P", bound=Sized)


async def take_batches(
    stream: Any, *, max_records: int, within: float, prepare: Callable[[Any], P]
) -> AsyncIterator[list[P]]:
    """Yield lists of ``prepare(event)``: at ``max_records`` records or ``within`` seconds."""
    buffer: list[P] = []
    size = 0
    full = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def add_to_buffer(value: Any) -> Any:
        nonlocal size
        event = stream.current_event
        if event is None:  # pragma: no cover - faust sets it before running processors
            raise RuntimeError("stream processor ran without a current event")
        prepared = prepare(event)
        buffer.append(prepared)
        size += prepared.size
        if size >= max_records:
            full.set()
            room.clear()
            # Back-pressure: the stream (and the fetcher behind it) waits until the
            # caller has taken this buffer.
            await stream.wait(room)
        return value

    enable_acks = stream.enable_acks
    stream.enable_acks = False  # the caller acks after the database commit
    stream.add_processor(add_to_buffer)
    stream._enable_passive(stream.channel.__aiter__())
    try:
        while not stream.should_stop:
            await stream.wait_for_stopped(full, timeout=within)
            if buffer:
                batch = list(buffer)
                buffer.clear()
                size = 0
                full.clear()
                room.set()
                yield batch
    finally:
        stream.enable_acks = enable_acks
        stream._processors.remove(add_to_buffer)
