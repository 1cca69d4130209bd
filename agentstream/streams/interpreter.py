"""CPython settings for the worker process (and the OTLP intake's, which maps spans into
records much as the worker decodes them): fewer garbage collections, quicker GIL hand-offs.

Measured on the ingest bench (BENCHMARKS.md), each a gain on the drain of its own:

* **Garbage collection.** Decoding allocates several container objects per record (the
  model, its dicts, its jsonb values, the message's bookkeeping), and they live until their
  batch is written: three batches (the one being written, the one queued behind it, the one
  being filled: consume.WRITES_IN_FLIGHT) are alive at any time. CPython collects its first
  generation whenever the containers allocated and not yet freed since the last collection
  exceed a threshold; each collection walks every one of them, and those that survive are
  walked again by the older generations. With a threshold below that live set, collections
  run every few thousand records and walk the batches in flight again and again, to find
  nothing: almost nothing they allocate forms a cycle, and reference counting frees the
  batch once it is written. So the threshold is set above the live set, in proportion to
  the batch size (``YOUNG_PER_BATCH_RECORD``): collections then run only when cyclic
  garbage (futures, exceptions with tracebacks) accumulates that far, and still run then.
  ``gc.freeze()`` moves what start-up allocated (aiokafka, psycopg, pydantic's schemas) to a
  permanent generation that collections no longer walk.
* **GIL switch interval.** The flush thread streams COPY data and waits for the server; each
  time it comes back from the socket it needs the GIL, which the event-loop thread holds
  while it decodes (pydantic-core validates a 200-record message in ~1 ms without releasing
  it). With CPython's 5 ms interval the flush thread waited that long for each hand-off while
  the server sat idle; 0.5 ms gave 10-25% more rows/s on the same drain.
* **Event loop.** uvloop (libuv, in C) where it is installed (the ``worker`` extra): the
  worker's loop reads Kafka's fetch responses, wakes tasks and hands writes to the flush
  thread, and asyncio's own loop does that in Python (its selector, handles and socket
  transport were about a fifth of the worker's CPU samples). asyncio's loop otherwise.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable

__all__ = [
    "GEN0_THRESHOLD_MIN",
    "SWITCH_INTERVAL_S",
    "YOUNG_PER_BATCH_RECORD",
    "event_loop_factory",
    "gen0_threshold",
    "tune_interpreter",
]

GEN0_THRESHOLD_MIN = 50_000
# First-generation threshold per record of a batch: above the containers alive while three
# batches are held (about 11 per record each for one-record messages, fewer in arrays), with
# room for a fetch being decoded.
YOUNG_PER_BATCH_RECORD = 60
SWITCH_INTERVAL_S = 0.0005


def gen0_threshold(batch_records: int) -> int:
    """The first generation's threshold for batches of ``batch_records`` records."""
    return max(GEN0_THRESHOLD_MIN, YOUNG_PER_BATCH_RECORD * batch_records)


def tune_interpreter(batch_records: int = 0) -> None:
    """Collect what start-up left, freeze it, raise the thresholds, shorten the interval.

    ``batch_records``: the records held in flight (the worker's batch size; the OTLP
    intake passes its spans in flight, cli/otlp_cmd.py); 0 keeps the minimum threshold."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold(batch_records), max(gen1, 20), gen2)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """The worker's event loop: uvloop's where installed, else asyncio's (for
    ``asyncio.Runner(loop_factory=...)``)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the worker extra installs it
        return asyncio.new_event_loop
    return uvloop.new_event_loop
