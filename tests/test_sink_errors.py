"""Error classification: by exception class and SQLSTATE (no services needed)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from sinks.postgres.errors import classify, terminal_advice


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (errors.CheckViolation(), "data"),
        (errors.NumericValueOutOfRange(), "data"),
        (errors.InvalidTextRepresentation(), "data"),
        (errors.UntranslatableCharacter(), "data"),
        (errors.ProgramLimitExceeded(), "data"),
        (errors.SerializationFailure(), "transient"),
        (errors.DeadlockDetected(), "transient"),
        (errors.AdminShutdown(), "transient"),
        (errors.CannotConnectNow(), "transient"),
        (errors.ConnectionFailure(), "transient"),
        (errors.DiskFull(), "transient"),
        (psycopg.OperationalError("connection refused"), "transient"),  # no SQLSTATE
        (ConnectionResetError(), "transient"),
        (errors.UndefinedTable(), "terminal"),
        (errors.InsufficientPrivilege(), "terminal"),
        (errors.InvalidPassword(), "terminal"),
        (errors.SyntaxError(), "terminal"),
        (ValueError("a bug"), "terminal"),
    ],
)
def test_errors_are_classified_by_class_and_sqlstate(exc: BaseException, outcome: str) -> None:
    assert classify(exc) == outcome


def test_terminal_errors_say_what_to_do() -> None:
    assert "agentstream migrate" in terminal_advice(errors.UndefinedTable())
    assert "AGENTSTREAM_DATABASE_URL" in terminal_advice(errors.InvalidPassword())
    assert "grant" in terminal_advice(errors.InsufficientPrivilege())
