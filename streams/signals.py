"""SIGTERM/SIGINT: finish the in-flight batch, commit its offsets, then let faust stop.

mode's worker stops at once on a signal, cancelling an agent in the middle of a flush. These
handlers replace its own: they stop new flushes from starting, wait (bounded) for the one in
progress to commit and ack, commit the offsets, and only then start faust's shutdown.
A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from streams.processor import Processor

__all__ = ["DRAIN_TIMEOUT_S", "install_graceful_stop"]

log = logging.getLogger(__name__)

# How long the in-flight flush may take to finish after a signal. Longer than a healthy
# flush by far; short enough for an orchestrator's grace period (Kubernetes: 30 s).
DRAIN_TIMEOUT_S = 20.0


def install_graceful_stop(
    loop: asyncio.AbstractEventLoop,
    processor: Processor,
    commit: Callable[[], Awaitable[object]],
    shutdown: Callable[[signal.Signals], None],
) -> None:
    pending: list[asyncio.Task[None]] = []

    async def drain(sig: signal.Signals) -> None:
        processor.stopping = True
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
            shutdown(sig)  # second signal: no more waiting
            return
        pending.append(loop.create_task(drain(sig)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
