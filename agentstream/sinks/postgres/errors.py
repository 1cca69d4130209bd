"""What a PostgreSQL failure means for the pipeline: one place maps driver errors to a decision.

Three outcomes, decided by exception class and SQLSTATE, never by message text:

* **data** — the server refused some row(s) of an otherwise sound write (class 22 data
  exceptions, class 23 integrity violations the sink does not handle itself, 54000 program
  limits such as an over-large index row). The writer bisects the batch to isolate the
  offending records; they go to the dead-letter topic and the rest is written.
* **transient** — the write may succeed if tried again: the connection was lost (class 08,
  or no SQLSTATE at all), the server is shutting down or starting (57P01-57P03), the
  statement was cancelled (57014), serialization failure (40001), deadlock (40P01),
  insufficient resources (class 53), lock not available (55P03). The caller reconnects and
  retries the whole flush with backoff.
* **terminal** — retrying cannot help: authentication (28), a missing table or schema
  (42P01, 3F000: not migrated), permission denied (42501), a missing database (3D000), any
  other error. The worker stops with a message saying what to do.
"""

from __future__ import annotations

from typing import Literal

import psycopg

__all__ = [
    "Outcome",
    "SinkError",
    "TerminalSinkError",
    "TransientSinkError",
    "classify",
    "sqlstate_of",
    "terminal_advice",
]

Outcome = Literal["data", "transient", "terminal"]

_TRANSIENT_CODES = frozenset({"57P01", "57P02", "57P03", "57014", "40001", "40P01", "55P03"})
_TRANSIENT_CLASSES = frozenset({"08", "53"})
_DATA_CLASSES = frozenset({"22", "23"})
_DATA_CODES = frozenset({"54000"})


class SinkError(Exception):
    """Base of the sink's own errors."""


class TransientSinkError(SinkError):
    """The flush failed for a reason that may pass; nothing of it was committed."""


class TerminalSinkError(SinkError):
    """The flush cannot succeed until someone acts; the message says what to do."""


def sqlstate_of(exc: BaseException) -> str | None:
    return exc.sqlstate if isinstance(exc, psycopg.Error) else None


def classify(exc: BaseException) -> Outcome:
    """Map an exception raised while writing to what the writer should do about it."""
    if not isinstance(exc, psycopg.Error):
        # OSError and friends from the socket: the connection is gone.
        return "transient" if isinstance(exc, OSError | TimeoutError) else "terminal"
    state = exc.sqlstate
    if state is None:
        # No SQLSTATE: the client library failed (connection refused, closed, broken
        # pipe) - OperationalError/InterfaceError without a server answer.
        return "transient" if isinstance(exc, psycopg.OperationalError) else "terminal"
    if state in _TRANSIENT_CODES or state[:2] in _TRANSIENT_CLASSES:
        return "transient"
    if state in _DATA_CODES or state[:2] in _DATA_CLASSES:
        return "data"
    return "terminal"


def terminal_advice(exc: BaseException) -> str:
    """A sentence telling the operator what to do about a terminal error."""
    state = sqlstate_of(exc) or ""
    if state in ("42P01", "3F000", "42703"):
        return "the database schema is missing or out of date: run `agentstream migrate`"
    if state == "3D000":
        return "the database does not exist: run `agentstream migrate` (it creates it)"
    if state.startswith("28"):
        return "PostgreSQL refused the credentials: check AGENTSTREAM_DATABASE_URL"
    if state == "42501":
        return "the database user lacks a privilege: grant it INSERT/UPDATE/SELECT on the tables"
    return "this is not expected to pass on retry: check the PostgreSQL log and the message"
