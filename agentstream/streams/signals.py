"""SIGTERM/SIGINT: finish the in-flight batch, commit its offsets, then let faust stop.

mode's worker starts stopping at once on a signal. These handlers replace its own: they wait
(bounded) for the flush in progress to commit and ack, commit the offsets, and only then
start faust's shutdown. During that shutdown faust stops fetching and waits for every message
already handed to the agent to be acked; the agent writes those last buffered batches (at
most about two) and faust commits again. If all that has not finished within
``FORCE_EXIT_AFTER_S`` (say the database went away), the process exits with status 1: its
uncommitted records are redelivered to the group, and nothing is lost.
A second signal exits at once, also with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable

from agentstream.streams.processor import Processor

__all__ = ["DRAIN_TIMEOUT_S", "FORCE_EXIT_AFTER_S", "install_graceful_stop"]

log = logging.getLogger(__name__)

# How long the in-flight flush may take to finish after a signal. Longer than a healthy
# flush by far; short enough for an orchestrator's grace period (Kubernetes: 30 s).
DRAIN_TIMEOUT_S = 20.0
# From the signal to a forced exit, whatever is still pending.
FORCE_EXIT_AFTER_S = 45.0


def _force_exit(reason: str) -> None:
    log.error("event=forced_exit reason=%s note=uncommitted records will be redelivered", reason)
    logging.shutdown()
    os._exit(1)


def install_graceful_stop(
    loop: asyncio.AbstractEventLoop,
    processor: Processor,
    commit: Callable[[], Awaitable[object]],
    shutdown: Callable[[signal.Signals], None],
) -> None:
    pending: list[asyncio.Task[None]] = []

    async def drain(sig: signal.Signals) -> None:
        loop.call_later(FORCE_EXIT_AFTER_S, _force_exit, "shutdown took too long")
        log.info("event=stop_requested signal=%s", sig.name)
        try:
            await asyncio.wait_for(processor.idle.wait(), DRAIN_TIMEOUT_S)
            await asyncio.wait_for(commit(), DRAIN_TIMEOUT_S)
            log.info("event=drained offsets=committed")
        except TimeoutError:
            log.warning(
                "event=drain_timeout after_s=%.0f note=uncommitted batch will be redelivered",
                DRAIN_TIMEOUT_S,
            )
        except Exception as exc:  # the commit failing must not block the shutdown
            log.warning("event=drain_commit_failed error=%r", exc)
        shutdown(sig)

    def on_signal(sig: signal.Signals) -> None:
        if pending:
            _force_exit(f"second signal {sig.name}")
            return
        pending.append(loop.create_task(drain(sig)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
