"""The flush thread: writes encoded batches into PostgreSQL one after the other, in the order
they were handed over, each retried until it is durable.

The consume loop keeps two batches in its hands (consume.py): while one is written, the next
one is already encoded and waits here. The thread goes from one transaction's COMMIT straight
to the next one's BEGIN, so the database does not sit idle while the event loop notices the
end of a write, encodes the next batch and starts it (that gap was a tenth of a drain).

Order is what makes two batches in flight safe:

* One thread, first in first out: a batch is written only after every batch handed over
  before it is durable. Its rows can carry newer states of records written by the batch
  before it, and the sink's rules decide between states on the assumption that they arrive
  in offset order, per partition.
* A transient failure (the database restarting, a serialization failure) is retried here,
  on the same thread, with capped exponential backoff: the batch behind it waits, instead of
  being written first.
* A batch that fails for good (a terminal error, or given up while a rebalance waits) stops
  the thread's work: every batch behind it is refused unwritten, and the consume loop commits
  none of their offsets. Everything is delivered again after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agentstream.sinks.postgres import EncodedBatch, TransientSinkError, WriteResult
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics

__all__ = [
    "RETRY_BUDGET_DURING_REBALANCE_S",
    "RETRY_CAP_S",
    "RETRY_FIRST_S",
    "Flusher",
    "WorkerStopped",
]

log = logging.getLogger(__name__)

# Backoff between attempts of a failing flush: doubles from the first value to the cap.
RETRY_FIRST_S = 0.5
RETRY_CAP_S = 10.0
# While a rebalance waits on this worker (the consume loop finishes the writes in flight
# before handing partitions over), a flush that has failed for this long is given up: the
# worker stops without committing, so the group can move on and the batch is redelivered
# elsewhere.
RETRY_BUDGET_DURING_REBALANCE_S = 30.0


class WorkerStopped(Exception):
    """The worker cannot go on; the message says why and what to do."""


class Flusher:
    """Writes batches with ``write`` on one thread of its own, in order; see the module
    docstring. ``rebalancing`` is read on that thread (a bool the loop sets)."""

    def __init__(
        self,
        write: Callable[[EncodedBatch], WriteResult],
        health: HealthState,
        metrics: WorkerMetrics,
        *,
        rebalancing: Callable[[], bool] = lambda: False,
    ) -> None:
        self._write = write
        self._health = health
        self._metrics = metrics
        self._rebalancing = rebalancing
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="agentstream-flush")
        self._closing = threading.Event()
        self._failed: BaseException | None = None

    async def write(self, encoded: EncodedBatch) -> WriteResult:
        """Queue ``encoded`` behind the batches handed over before; returns once it is
        durable. Raises what made it (or a batch before it) fail for good."""
        return await asyncio.wrap_future(self._thread.submit(self._write_in_order, encoded))

    def close(self) -> None:
        """Stop retrying and refuse what is queued (the worker is stopping: what was not
        written is not committed either, and is delivered again)."""
        self._closing.set()
        self._thread.shutdown(wait=False, cancel_futures=True)

    # --- on the flush thread ------------------------------------------------------------

    def _write_in_order(self, encoded: EncodedBatch) -> WriteResult:
        if self._failed is not None:
            raise WorkerStopped(
                f"a batch was not written because the one before it failed: {self._failed}"
            )
        try:
            return self._write_until_durable(encoded)
        except BaseException as exc:
            self._failed = exc
            raise

    def _write_until_durable(self, encoded: EncodedBatch) -> WriteResult:
        delay = RETRY_FIRST_S
        first_failure: float | None = None
        while True:
            try:
                result = self._write(encoded)
            except TransientSinkError as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                self._health.last_flush_ok = False
                self._health.last_error = str(exc)
                self._metrics.flush_retries.inc()
                if self._rebalancing() and now - first_failure > RETRY_BUDGET_DURING_REBALANCE_S:
                    raise WorkerStopped(
                        f"PostgreSQL has been failing for {now - first_failure:.0f}s while a "
                        f"rebalance waits on this worker; stopping without committing so the "
                        f"batch is redelivered. Last error: {exc}"
                    ) from exc
                log.warning(
                    "event=flush_retry records=%d retry_in_s=%.1f error=%r",
                    sum(len(g.items) for g in encoded.groups),
                    delay,
                    str(exc),
                )
                if self._closing.wait(delay):
                    raise WorkerStopped(
                        f"the worker is stopping while PostgreSQL fails; the batch was not "
                        f"written and will be delivered again. Last error: {exc}"
                    ) from exc
                delay = min(delay * 2, RETRY_CAP_S)
                continue
            if first_failure is not None:
                log.info("event=flush_recovered after_s=%.1f", time.monotonic() - first_failure)
            self._health.last_flush_ok = True
            self._health.last_error = ""
            return result
