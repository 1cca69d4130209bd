"""Rollups: fold new rows into the fact tables and recompute only the touched time buckets.

The public face of the package: ``run_rollup`` and its ``RollupResult``. How a run works is
told in ``run.py``; each other module holds one concern of it. ``_CommittedReader`` is not
public: tests make it fail, to check that a run which dies between its transactions is
finished by the next one.
"""

from agentstream.analytics.rollup.changes import GAP_GRACE
from agentstream.analytics.rollup.reader import _CommittedReader as _CommittedReader
from agentstream.analytics.rollup.run import RollupResult, run_rollup

__all__ = ["GAP_GRACE", "RollupResult", "run_rollup"]
