"""SIGTERM/SIGINT: stop fetching, write and commit what was decoded, leave the group, exit 0.

The first signal asks the consume loop to stop: it writes the batch being filled and waits
for the writes in flight, commits their offsets, and returns; the runner then leaves the
consumer group (its partitions move at once, not after a session timeout). If all that has
not finished within ``FORCE_EXIT_AFTER_S`` (say the database went away), the process exits
with status 1: its uncommitted records are redelivered to the group, and nothing is lost.
A second signal exits at once, also with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

__all__ = ["FORCE_EXIT_AFTER_S", "install_graceful_stop"]

log = logging.getLogger(__name__)

# From the signal to a forced exit, whatever is still pending. Longer than a healthy
# flush by far; short enough for an orchestrator's grace period (Kubernetes: 30 s, then
# SIGKILL, which loses nothing either).
FORCE_EXIT_AFTER_S = 45.0


def _force_exit(reason: str) -> None:
    log.error("event=forced_exit reason=%s note=uncommitted records will be redelivered", reason)
    logging.shutdown()
    os._exit(1)


def install_graceful_stop(
    loop: asyncio.AbstractEventLoop, request_stop: Callable[[], None]
) -> None:
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            _force_exit(f"second signal {sig.name}")
            return
        received.append(sig)
        log.info("event=stop_requested signal=%s", sig.name)
        loop.call_later(FORCE_EXIT_AFTER_S, _force_exit, "shutdown took too long")
        request_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
