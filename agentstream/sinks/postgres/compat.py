"""psycopg's private API the sink relies on, in one place (tests/test_sink_compat.py).

``format_row_binary`` is psycopg's own C (or Python) formatter of a binary COPY row: the
sink encodes rows ahead of the flush with it (copy.py), which psycopg's public API offers
only inside an open COPY. It lives in a private module, so an upgrade may move or change it;
the test encodes known rows and compares them with the format PostgreSQL documents, and
fails with this module's name if the function is gone or its output differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg.abc import Transformer

try:
    from psycopg._copy_base import format_row_binary as _format_row_binary
except ImportError as exc:  # pragma: no cover - only after a psycopg upgrade
    raise ImportError(
        "psycopg no longer provides psycopg._copy_base.format_row_binary, which "
        "agentstream/sinks/postgres/compat.py wraps: pin psycopg to the range in "
        "pyproject.toml or port compat.py to the new psycopg"
    ) from exc

__all__ = ["format_row_binary"]

# psycopg's function itself, not a wrapper: it runs once per row. (row, transformer, out):
# appends ``row`` as one binary COPY row (field count, then length and bytes per field).
format_row_binary: Callable[[Sequence[Any], Transformer, bytearray], None] = _format_row_binary
