"""The flush thread with a fake write (no services): batches written one after the other in the
order handed over, a failing batch retried before the next one starts, and nothing written
after a batch that failed for good."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from agentstream.sinks.postgres import TerminalSinkError, TransientSinkError, WriteResult
from agentstream.streams import flusher as flusher_module
from agentstream.streams.flusher import Flusher, WorkerStopped
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics


def batch(name: str) -> Any:
    return SimpleNamespace(name=name, groups=[])


class FakeWrite:
    """Records (batch, thread) per attempt; ``fail`` maps a batch to the errors of its first
    attempts; ``gates`` holds a batch's write until set."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.fail: dict[str, list[BaseException]] = {}
        self.gates: dict[str, threading.Event] = {}

    def __call__(self, encoded: Any) -> WriteResult:
        name = encoded.name
        self.attempts.append((name, threading.current_thread().name))
        gate = self.gates.get(name)
        if gate is not None:
            assert gate.wait(5)
        errors = self.fail.get(name)
        if errors:
            raise errors.pop(0)
        return WriteResult(accepted={name: 1})


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flusher_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(flusher_module, "RETRY_CAP_S", 0.02)


def make(write: FakeWrite, **kwargs: Any) -> tuple[Flusher, HealthState]:
    health = HealthState()
    return Flusher(write, health, WorkerMetrics(), **kwargs), health


async def test_batches_are_written_in_order_on_one_thread_of_its_own() -> None:
    write = FakeWrite()
    write.gates["a"] = threading.Event()
    flusher, _ = make(write)
    a = asyncio.create_task(flusher.write(batch("a")))
    b = asyncio.create_task(flusher.write(batch("b")))
    await asyncio.sleep(0.05)
    # "b" waits behind the slow "a": it is not started on another thread.
    assert [n for n, _ in write.attempts] == ["a"]
    write.gates["a"].set()
    results = await asyncio.gather(a, b)
    assert [r.accepted for r in results] == [{"a": 1}, {"b": 1}]
    assert [n for n, _ in write.attempts] == ["a", "b"]
    threads = {t for _, t in write.attempts}
    assert len(threads) == 1 and threads != {threading.current_thread().name}
    flusher.close()


async def test_a_transient_failure_is_retried_before_the_next_batch_starts() -> None:
    write = FakeWrite()
    write.fail["a"] = [TransientSinkError("restarting"), TransientSinkError("restarting")]
    flusher, health = make(write)
    results = await asyncio.gather(flusher.write(batch("a")), flusher.write(batch("b")))
    assert [n for n, _ in write.attempts] == ["a", "a", "a", "b"]
    assert [r.accepted for r in results] == [{"a": 1}, {"b": 1}]
    assert health.last_flush_ok and health.last_error == ""
    flusher.close()


async def test_nothing_is_written_after_a_batch_that_failed_for_good() -> None:
    write = FakeWrite()
    write.fail["a"] = [TerminalSinkError("no such table; run `agentstream migrate`")]
    flusher, _ = make(write)
    a = asyncio.create_task(flusher.write(batch("a")))
    b = asyncio.create_task(flusher.write(batch("b")))
    with pytest.raises(TerminalSinkError, match="migrate"):
        await a
    with pytest.raises(WorkerStopped, match="the one before it failed"):
        await b
    with pytest.raises(WorkerStopped):
        await flusher.write(batch("c"))
    assert [n for n, _ in write.attempts] == ["a"]
    flusher.close()


async def test_close_ends_the_retries_of_a_failing_batch() -> None:
    write = FakeWrite()
    write.fail["a"] = [TransientSinkError("connection refused")] * 1000
    flusher, health = make(write)
    a = asyncio.create_task(flusher.write(batch("a")))
    while len(write.attempts) < 3:  # noqa: ASYNC110 - polls the fake's state
        await asyncio.sleep(0.01)
    assert not health.last_flush_ok and "connection refused" in health.last_error
    flusher.close()
    with pytest.raises(WorkerStopped, match="stopping"):
        await asyncio.wait_for(a, 5)
