"""CPython settings for the worker process (and the OTLP intake's, which maps spans into
records much as the worker decodes them): fewer garbage collections, quicker GIL hand-offs.

Measured on the ingest bench (BENCHMARKS.md), each a gain on the drain of its own:

* **Garbage collection.** Decoding a batch message allocates several container objects per
  record (the model, its dicts, its jsonb values), so CPython's default first-generation
  threshold (700 allocations) runs a collection every ~150 records, and every tenth of
  those walks the older generations too. Records are freed by reference counting as soon as
  their batch is written; almost nothing they allocate forms a cycle, so those collections
  find nothing. Decoding and preparing 111k records in-process took 13.1 µs each with the
  defaults and 5.6 µs with the settings below (5.6 µs with the collector off); the drain
  went from ~31k to ~40k rows/s. ``gc.freeze()`` moves what start-up allocated (faust,
  aiokafka, pydantic's schemas) to a permanent generation that collections no longer walk.
  The collector stays on: cycles (futures, exceptions with tracebacks) are still
  collected, every ~50k allocations instead of every 700.
* **GIL switch interval.** The flush thread streams COPY data and waits for the server; each
  time it comes back from the socket it needs the GIL, which the event-loop thread holds
  while it decodes (pydantic-core validates a 200-record message in ~1 ms without releasing
  it). With CPython's 5 ms interval the flush thread waited that long for each hand-off while
  the server sat idle; 0.5 ms gave 10-25% more rows/s on the same drain.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GEN0_THRESHOLD", "SWITCH_INTERVAL_S", "tune_interpreter"]

GEN0_THRESHOLD = 50_000
SWITCH_INTERVAL_S = 0.0005


def tune_interpreter() -> None:
    """Collect what start-up left, freeze it, raise the thresholds, shorten the interval."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, max(gen1, 20), gen2)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
